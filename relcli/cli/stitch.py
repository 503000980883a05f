"""``relcli stitch``: zero-shot stitching of an encoder to a classifier head of another space.

fit    train a head on a labelled target-space file (absolute, or relative to anchors)
apply  run a head (ours, or a TorchScript module) on an embedding file -> predictions file
run    the one-shot path: source file + target anchors + target head -> predictions
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _irp_options as irp_opt
from relcli.cli import _options as opt
from relcli.cli._runtime import command, configure, resolve_device, say
from relcli.cli.project import SIMILARITY_HELP, parse_similarities
from relcli.encoders import error_cause

app = typer.Typer(
    help="Zero-shot stitching: fit a classifier head in one space, apply it to (translated) embeddings of another.",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain Click help: rendering with Rich would cost ~0.2 s of imports
)

HEAD_FILE_HELP = "A head saved by `relcli stitch fit` (.safetensors), or a TorchScript module (.pt/.ts) mapping rows to class scores."
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".jit")


class LoadedHead:
    """A head ready to score rows: ours (with class names and an optional relative mode) or TorchScript."""

    def __init__(self, path: Path, device):
        import torch

        from relcli.errors import FileFormatError
        from relcli.io.estimators import load_estimator

        self.path = path
        self.relative = None
        if path.suffix.lower() in TORCHSCRIPT_SUFFIXES:
            if not path.is_file():
                raise FileFormatError("no such head file", path)
            try:
                self.module = torch.jit.load(str(path), map_location=device).eval()
            except (RuntimeError, ValueError) as exc:
                raise FileFormatError(f"is not a TorchScript module: {error_cause(exc)}", path) from None
            self.estimator, self.class_names, self.input_dim = None, None, None
        else:
            self.module = None
            self.estimator, meta = load_estimator(path, kinds=("head",))
            self.estimator.to(device)
            self.class_names = meta.get("class_names")
            self.relative = meta.get("relative")
            self.input_dim = int(self.estimator.input_mean_.shape[0])

    def scores(self, x):
        """(scores n x C, predicted class index n) for a chunk of rows."""
        import torch

        from relcli.errors import DataError

        if self.module is None:
            scores = self.estimator.predict_scores(x, chunk_rows=None)
        else:
            with torch.no_grad():
                try:
                    scores = self.module(x.float())
                except (RuntimeError, torch.jit.Error) as exc:
                    raise DataError(f"TorchScript head failed on a batch of shape {tuple(x.shape)}: {error_cause(exc)}", self.path) from None
            if scores.ndim != 2 or scores.shape[0] != x.shape[0]:
                raise DataError(f"TorchScript head returned shape {tuple(scores.shape)}; expected (rows, classes)", self.path)
        return scores, scores.argmax(dim=1)

    def label_values(self, n_classes: int):
        """What a predicted class index means: class names, the head's classes_, or 0..C-1."""
        if self.class_names is not None:
            return list(self.class_names)
        if self.estimator is not None:
            return self.estimator.classes_.cpu().numpy()
        import numpy as np

        return np.arange(n_classes, dtype=np.int64)


def write_predictions(reader, output: Path, head: LoadedHead, transform, *, device, batch_size, attrs, drop_invalid):
    """Stream rows through ``transform`` then the head; write scores, labels and ids."""
    import numpy as np
    import torch

    from relcli.cli import _pipeline as pipe
    from relcli.io.embeddings import EmbeddingWriter

    # Classes are known from our heads; a TorchScript head tells on its first batch.
    probe = transform(pipe.load_rows(reader, device, [0], check=False)) if reader.n_rows else None
    n_classes = head.scores(probe)[0].shape[1] if probe is not None else 0
    values = head.label_values(n_classes)
    keep = None
    if drop_invalid:
        keep = np.ones(reader.n_rows, dtype=bool)
        keep[pipe.invalid_rows(reader, batch_size)] = False
    n_out = reader.n_rows if keep is None else int(keep.sum())
    predicted = [] if isinstance(values, list) else np.zeros(n_out, dtype=np.int64)
    ids = reader.ids if keep is None or reader.ids is None else pipe.take_rows(reader.ids, keep)
    # Labels are only known at the end: scores stream to a temp writer, labels are patched in.
    scores_chunks = []
    cdtype = pipe.compute_dtype(reader.dtype)
    written = 0
    from relcli.cli._runtime import progress

    with progress(reader.n_rows, "stitch") as advance:
        for start, chunk in reader.iter_chunks(batch_size):
            chunk = chunk.to(device=device, dtype=cdtype)
            if keep is not None:
                chunk = chunk[torch.from_numpy(keep[start : start + len(chunk)]).to(device)]
            else:
                pipe.check_chunk(reader, chunk, start, allow_zero=True)
            if len(chunk):
                scores, index = head.scores(transform(chunk))
                scores_chunks.append(scores.float().cpu())
                index = index.cpu().numpy()
                if isinstance(predicted, list):
                    predicted.extend(values[i] for i in index)
                else:
                    predicted[written : written + len(index)] = np.asarray(values)[index]
                written += len(index)
            advance(len(chunk))
    all_scores = torch.cat(scores_chunks) if scores_chunks else torch.zeros(0, n_classes)
    attrs = {"kind": "predictions", "classes": [v if isinstance(v, str) else int(v) for v in values], **attrs}
    with EmbeddingWriter(output, n_out, all_scores.shape[1], "float32", ids=ids, labels=predicted, attrs=attrs) as writer:
        if n_out:
            writer.write(all_scores)
    return n_out


def _relative_transform(head: LoadedHead, anchors: Path | None, device):
    """For a relative-mode head: project rows onto the source anchors parallel to the head's anchors."""
    import torch

    from relcli.cli import _pipeline as pipe
    from relcli.core.relative import RelativeProjector
    from relcli.errors import UsageError
    from relcli.io.join import rows_for_keys

    if head.relative is None:
        if anchors is not None:
            raise UsageError("--anchors is for heads fitted in relative mode; this head takes absolute embeddings", head.path)
        return lambda chunk: chunk
    if anchors is None:
        raise UsageError(
            "this head was fitted on relative representations: give --anchors with this space's anchors, "
            "parallel to the head's anchors",
            head.path,
        )
    source = pipe.load_anchor_set(anchors, device)
    rows = rows_for_keys(head.relative["anchor_keys"], source.keys, anchors, what=f"anchor ids of head {head.path.name}")
    vectors = source.vectors[torch.as_tensor(rows, device=device)]
    projector = RelativeProjector(head.relative["similarities"], head.relative["aggregate"], head.relative["center"]).fit(vectors)
    return lambda chunk: projector.transform(chunk.to(vectors.dtype), chunk_rows=None)


@app.command("fit")
@command
def fit(
    input: Annotated[Path, typer.Argument(help="Labelled embedding file of the head's space (the target).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Head file to write (.safetensors).")],
    head: Annotated[str, typer.Option("--head", help="logistic (multinomial logistic regression) | mlp (one hidden layer).")] = "logistic",
    anchors: Annotated[
        Optional[Path],
        typer.Option("--anchors", "-a", help="Relative mode (relreps baseline): fit on the relative representations w.r.t. these anchors."),
    ] = None,
    similarity: Annotated[Optional[list[str]], typer.Option("--similarity", "-s", help=SIMILARITY_HELP)] = None,
    aggregate: Annotated[str, typer.Option("--aggregate", help="concat | sum (relative mode).")] = "concat",
    center: Annotated[bool, typer.Option("--center/--no-center", help="Relative mode: centre on the anchors' mean.")] = False,
    l2: Annotated[float, typer.Option("--l2", min=0.0, help="Weight penalty (logistic l2, mlp weight decay).")] = 1e-4,
    max_iter: Annotated[int, typer.Option("--max-iter", min=1, help="Logistic: L-BFGS iterations.")] = 200,
    hidden: Annotated[int, typer.Option("--hidden", min=1, help="MLP: hidden units.")] = 256,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="MLP: full-batch Adam steps.")] = 200,
    seed: opt.Seed = 0,
    key: opt.Key = None,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Fit a classifier head on a labelled embedding file and save it.

    \b
    Examples:
      relcli stitch fit y.h5 --head logistic -o head.safetensors
      relcli stitch fit y.h5 --anchors ya.h5 -o rel_head.safetensors   (relative mode)
    """
    configure(device, quiet, verbose, debug)
    import numpy as np
    import torch

    from relcli.cli import _pipeline as pipe
    from relcli.core.heads import HEADS
    from relcli.core.metrics import accuracy
    from relcli.core.relative import RelativeProjector
    from relcli.errors import DataError, UsageError
    from relcli.io.atomic import check_writable
    from relcli.io.embeddings import open_embeddings
    from relcli.io.estimators import save_estimator

    if output.suffix.lower() != ".safetensors":
        raise UsageError("a head is saved as .safetensors", output)
    check_writable(output)
    if head not in HEADS:
        raise UsageError(f"unknown --head {head!r}; choose one of: {', '.join(HEADS)}")
    torch_device = resolve_device(device)
    with open_embeddings(input, key=key) as reader:
        if reader.labels is None:
            raise DataError("has no labels: `stitch fit` needs a labelled file", input)
        x = pipe.load_rows(reader, torch_device)
        labels = reader.labels
        class_names = None
        if isinstance(labels, list):
            class_names, codes = np.unique(np.asarray(labels, dtype=object), return_inverse=True)
            class_names = [str(c) for c in class_names]
            labels = codes.reshape(-1).astype(np.int64)
        y = torch.from_numpy(np.asarray(labels, dtype=np.int64)).to(torch_device)
    relative = None
    inputs = [input]
    if anchors is not None:
        anchor_set = pipe.load_anchor_set(anchors, torch_device)
        similarities = parse_similarities(similarity)
        projector = RelativeProjector(similarities, aggregate, center).fit(anchor_set.vectors.to(x.dtype))
        x = projector.transform(x)
        relative = {
            "anchor_keys": anchor_set.source_keys or anchor_set.keys,
            "similarities": similarities,
            "aggregate": aggregate,
            "center": center,
        }
        inputs.append(anchors)
    params = {"logistic": dict(l2=l2, max_iter=max_iter, seed=seed), "mlp": dict(hidden=hidden, epochs=epochs, weight_decay=l2, seed=seed)}[head]
    model = HEADS[head](**params).fit(x, y)
    train_accuracy = accuracy(model.predict(x), y)
    attrs = {
        "class_names": class_names,
        "relative": relative,
        "train_accuracy": train_accuracy,
        "provenance": pipe.provenance("stitch fit", {"head": head, **params, "relative": relative is not None}, inputs),
    }
    save_estimator(output, model, "head", attrs)
    say(f"fitted a {head} head on {x.shape[0]:,} x {x.shape[1]} ({len(model.classes_)} classes, train accuracy {train_accuracy:.4f}) -> {output}")


@app.command("apply")
@command
def apply(
    input: Annotated[Path, typer.Argument(help="Embedding file in the head's space (e.g. translated by `relcli translate`).")],
    head: Annotated[Path, typer.Option("--head", help=HEAD_FILE_HELP)],
    output: opt.Output,
    anchors: Annotated[
        Optional[Path], typer.Option("--anchors", "-a", help="Relative-mode heads: this space's anchors, parallel to the head's.")
    ] = None,
    drop_invalid: opt.DropInvalid = False,
    key: opt.Key = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Apply a head to an embedding file; write a predictions file (scores, predicted labels, ids).

    \b
    Examples:
      relcli stitch apply y_hat.h5 --head head.safetensors -o preds.h5
      relcli stitch apply x.h5 --head rel_head.safetensors --anchors xa.h5 -o preds.h5   (relative mode)
    """
    configure(device, quiet, verbose, debug)
    from relcli.cli import _pipeline as pipe
    from relcli.errors import DataError
    from relcli.io.atomic import check_output
    from relcli.io.embeddings import open_embeddings

    check_output(output)
    torch_device = resolve_device(device)
    loaded = LoadedHead(head, torch_device)
    transform = _relative_transform(loaded, anchors, torch_device)
    with open_embeddings(input, key=key) as reader:
        if loaded.relative is None and loaded.input_dim is not None and reader.dim != loaded.input_dim:
            raise DataError(
                f"dimension mismatch of a head: {input.name} has {reader.dim} dims, head {head.name} expects "
                f"{loaded.input_dim}; translate the file into the head's space first",
                input,
            )
        attrs = {"head": str(head), "provenance": pipe.provenance("stitch apply", {"head": str(head)}, [input, head, anchors])}
        n = write_predictions(reader, output, loaded, transform, device=torch_device, batch_size=batch_size,
                              attrs=attrs, drop_invalid=drop_invalid)
    say(f"wrote {n:,} predictions to {output}")


@app.command("run")
@command
def run(
    src: Annotated[Path, typer.Option("--src", help="Source embedding file.")],
    tgt_anchors: Annotated[Path, typer.Option("--tgt-anchors", help="Target-space anchors (or a target embedding file).")],
    head: Annotated[Path, typer.Option("--head", help=HEAD_FILE_HELP)],
    output: opt.Output,
    src_anchors: Annotated[Optional[Path], typer.Option("--src-anchors", help="Source anchors parallel to --tgt-anchors.")] = None,
    method: irp_opt.Method = "irp",
    center: irp_opt.Center = False,
    scaling: irp_opt.Scaling = "standard",
    rcond: irp_opt.Rcond = "auto",
    prune_threshold: irp_opt.Prune = 0.0,
    subspaces: irp_opt.Subspaces = 1,
    allow_rank_deficient: irp_opt.AllowRankDeficient = False,
    drop_invalid: opt.DropInvalid = False,
    seed: opt.Seed = 0,
    key: opt.Key = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """One shot: translate a source file into the head's space and classify it (no file in between).

    Example: relcli stitch run --src x.h5 --tgt-anchors ya.h5 --head head.safetensors -o preds.h5
    """
    configure(device, quiet, verbose, debug)
    from relcli.cli import _pipeline as pipe
    from relcli.cli.translate import fit_from_files
    from relcli.core import TRANSLATION_METHODS, apply_translator
    from relcli.errors import DataError, UsageError
    from relcli.io.atomic import check_output
    from relcli.io.embeddings import open_embeddings

    check_output(output)
    if method not in TRANSLATION_METHODS:
        raise UsageError(f"unknown --method {method!r}; choose one of: {', '.join(TRANSLATION_METHODS)}")
    torch_device = resolve_device(device)
    loaded = LoadedHead(head, torch_device)
    if loaded.relative is not None:
        raise UsageError("`stitch run` translates into the head's absolute space; for a relative-mode head use `stitch apply --anchors`", head)
    with open_embeddings(src, key=key) as reader:
        translator, info = fit_from_files(
            reader, src, tgt_anchors, src_anchors, method, center, scaling, rcond, prune_threshold, subspaces,
            allow_rank_deficient, seed, torch_device,
        )
        target_dim = int(translator.map_.shape[1]) if hasattr(translator, "map_") else int(translator.target_dim_)
        if loaded.input_dim is not None and target_dim != loaded.input_dim:
            raise DataError(
                f"dimension mismatch of a head: the target anchors have {target_dim} dims, head {head.name} expects {loaded.input_dim}",
                tgt_anchors,
            )
        attrs = {
            "head": str(head),
            "translation": info,
            "provenance": pipe.provenance("stitch run", {**info, "head": str(head)}, [src, tgt_anchors, src_anchors, head]),
        }
        n = write_predictions(
            reader, output, loaded, lambda chunk: apply_translator(translator, chunk), device=torch_device,
            batch_size=batch_size, attrs=attrs, drop_invalid=drop_invalid,
        )
    say(f"wrote {n:,} predictions to {output} ({method})")
