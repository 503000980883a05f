"""``api.stitch_fit``, ``api.stitch_apply``, ``api.stitch_run``: zero-shot stitching of an encoder to
a classifier head fitted in another space."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from relcli.api._context import (
    DEFAULT_BATCH,
    as_path,
    blame,
    check_batch_size,
    check_number,
    check_seed,
    compute_dtype_of,
    load_anchors,
    provenance,
    resolve_device,
    rows_by_keys,
    select_by_ids,
)
from relcli.api._results import Progress, Result
from relcli.api._rows import RowLoop
from relcli.api.project import _similarities
from relcli.errors import DataError, UsageError
from relcli.io.spaces import SPACE_KEY, check_same_space, read_space


class Scorer:
    """A head ready to score rows: ours (class names, optional relative mode) or a TorchScript module."""

    def __init__(self, path: Path, device):
        from relcli.io.kinds import load_estimator
        from relcli.io.torchscript import SUFFIXES, load_torchscript

        self.path, self.relative, self.estimator, self.module, self.space = path, None, None, None, None
        if path.suffix.lower() in SUFFIXES:
            self.module = load_torchscript(path, device, "head file")
            self.input_dim, self.class_names = None, None
        else:
            self.estimator, attrs = load_estimator(path, "head")
            self.estimator.to(device)
            self.class_names = attrs.get("class_names")
            self.relative = attrs.get("relative")
            self.space = read_space(attrs, path)  # the space an absolute head's input rows must be in
            self.input_dim = self.estimator.input_dim
            if self.class_names is not None and (
                not isinstance(self.class_names, list) or len(self.class_names) != len(self.estimator.classes_)
            ):
                raise DataError(f"relcli.class_names must list one name per class ({len(self.estimator.classes_)})", path)
            if self.relative is not None and not (isinstance(self.relative, dict) and isinstance(self.relative.get("anchor_keys"), list)):
                raise DataError("relcli.relative must record the anchor_keys of a relative-mode head", path)

    def scores(self, x):
        """Class scores (n × C) for a chunk of rows."""
        import torch

        from relcli.io.torchscript import error_cause

        if self.module is None:
            return self.estimator.predict_scores(x, chunk_rows=None)
        with torch.no_grad():
            try:
                scores = self.module(x.float())
            except (RuntimeError, torch.jit.Error) as exc:
                raise DataError(f"TorchScript head failed on a batch of shape {tuple(x.shape)}: {error_cause(exc)}", self.path) from None
        if not isinstance(scores, torch.Tensor) or scores.ndim != 2 or scores.shape[0] != x.shape[0]:
            raise DataError(f"TorchScript head returned shape {tuple(getattr(scores, 'shape', ()))}; expected (rows, classes)", self.path)
        return scores

    def class_values(self, n_classes: int) -> np.ndarray:
        """What each score column means: class names, the head's classes, or 0..C-1."""
        if self.class_names is not None:
            values = np.empty(len(self.class_names), dtype=object)
            values[:] = [str(c) for c in self.class_names]
            return values
        if self.estimator is not None:
            return self.estimator.classes_.cpu().numpy().astype(np.int64)
        return np.arange(n_classes, dtype=np.int64)


def encode_labels(values: np.ndarray) -> tuple[list | None, np.ndarray]:
    """(class names or None for integer labels, int64 codes): how heads see labels."""
    if values.dtype.kind in "iu":
        return None, values.astype(np.int64)
    names, codes = np.unique(values.astype(str), return_inverse=True)
    return [str(n) for n in names], codes.reshape(-1).astype(np.int64)


def _all_rows(reader, loop: RowLoop, device, need_direction: bool, batch_size: int):
    """Every valid row of a file in memory (fitting a head needs them all at once), with their rows."""
    import torch

    parts, rows = [], []
    for chunk_rows, chunk in loop.read(reader, device=device, dtype=compute_dtype_of(reader.dtype),
                                       batch_size=batch_size, need_direction=need_direction):
        parts.append(chunk)
        rows.append(chunk_rows)
    empty = torch.empty(0, reader.dim, device=device, dtype=compute_dtype_of(reader.dtype))
    return (torch.cat(parts) if parts else empty), (np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64))


def stitch_fit(
    input,
    *,
    output,
    head: str = "logistic",
    anchors=None,
    similarity=("cosine",),
    aggregate: str = "concat",
    center: bool = False,
    l2: float = 1e-4,
    max_iter: int = 200,
    hidden: int = 256,
    epochs: int = 200,
    ids=None,
    exclude_ids=None,
    force: bool = False,
    seed: int = 0,
    key: str | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    device: str | None = None,
) -> Result:
    """Fit a classifier head on a labelled embedding file (or on its relative representation).

    ``ids`` / ``exclude_ids``: fit on these rows only / on every row but these (id lists: .txt,
    an embedding file's ids, or ``-``), e.g. the train side of ``relcli split``. An absolute head
    records the input's space, which ``stitch apply`` and ``stitch run`` check; ``anchors`` must
    share the input's recorded space unless ``force``."""
    import torch

    from relcli.core.metrics import accuracy
    from relcli.core.registry import head_class
    from relcli.core.relative import RelativeProjector
    from relcli.io.atomic import check_writable
    from relcli.io.embeddings import open_embeddings
    from relcli.io.kinds import expect_kind, save_estimator

    input, output, anchors = Path(input), Path(output), as_path(anchors)
    if output.suffix.lower() != ".safetensors":
        raise UsageError("a head is saved as .safetensors", output)
    check_writable(output)
    check_seed(seed)
    check_batch_size(batch_size)
    params = {"logistic": dict(l2=l2, max_iter=max_iter, seed=seed),
              "mlp": dict(hidden=hidden, epochs=epochs, weight_decay=l2, seed=seed)}.get(head)
    model = head_class(head)(**params)
    model._check_params()
    torch_device = resolve_device(device)
    with open_embeddings(input, key=key) as reader:
        expect_kind(reader, ("embeddings", "anchors"), "`stitch fit`")
        if reader.labels is None:
            raise DataError("has no labels: `stitch fit` needs a labelled file", input)
        loop = RowLoop.over(reader, hint="")
        x, rows = _all_rows(reader, loop, torch_device, anchors is not None, batch_size)
        selected = select_by_ids(reader.row_keys(), as_path(ids), as_path(exclude_ids), input)
        if selected is not None:
            keep = np.isin(rows, np.asarray(selected, dtype=np.int64))
            if not keep.any():
                raise DataError("no valid rows left after --ids/--exclude-ids", input)
            x, rows = x[torch.from_numpy(keep).to(x.device)], rows[keep]
        class_names, codes = encode_labels(reader.labels[rows])
        input_space = read_space(reader.attrs, input)
        if len(np.unique(codes)) < 2:
            raise DataError(f"has {len(np.unique(codes))} class among its labels; a classifier needs at least 2", input)
    relative = None
    if anchors is not None:
        anchor_set = load_anchors(anchors, torch_device, x.dtype)
        check_same_space((input, input_space), (anchors, anchor_set.space), force)
        projector = RelativeProjector(_similarities(similarity), aggregate, center)
        with blame(anchors, anchor_set.keys):
            projector.fit(anchor_set.vectors)
        if anchor_set.vectors.shape[1] != x.shape[1]:
            raise DataError(f"dimension mismatch: {input.name} has {x.shape[1]} dims, anchors {anchor_set.vectors.shape[1]}", anchors)
        with blame(input, reader.keys_of(rows), reader.key_noun):
            x = projector.transform(x)
        relative = {"anchor_keys": anchor_set.join_keys, "similarities": list(projector.similarities),
                    "aggregate": aggregate, "center": center}
    y = torch.from_numpy(codes).to(torch_device)
    with blame(input):
        model.fit(x, y)
    train_accuracy = accuracy(model.predict(x), y)
    parameters = {"head": head, **params, "relative": relative is not None,
                  "ids": None if ids is None else str(ids), "exclude_ids": None if exclude_ids is None else str(exclude_ids)}
    attrs = {"class_names": class_names, "relative": relative, "train_accuracy": train_accuracy,
             "provenance": provenance("stitch fit", parameters, [input, anchors]),
             **({SPACE_KEY: input_space} if input_space and relative is None else {})}
    save_estimator(output, model, "head", attrs)
    return Result("stitch fit", output, int(x.shape[0]), int(x.shape[1]), parameters=parameters,
                  scores={"train_accuracy": train_accuracy, "classes": len(model.classes_)}, files={"output": output})


def _write_predictions(reader, loop: RowLoop, scorer: Scorer, transform, output: Path, attrs: dict, *, device, batch_size,
                       need_direction: bool) -> int:
    """Stream rows through ``transform`` then the head; write scores, predicted labels and ids."""
    from relcli.io.embeddings import EmbeddingWriter
    from relcli.io.kinds import predictions_layout

    if reader.n_rows == 0:
        raise DataError("has no rows to classify", reader.path)
    known = None if scorer.estimator is None else len(scorer.estimator.classes_)
    state = {"values": None if known is None else scorer.class_values(known)}

    def score(chunk):
        scores = scorer.scores(transform(chunk))
        if state["values"] is None:
            state["values"] = scorer.class_values(scores.shape[1])
        elif scores.shape[1] != len(state["values"]):
            raise DataError(f"head returned {scores.shape[1]} classes, {len(state['values'])} before", scorer.path)
        return scores

    def labels_of(scores):
        return state["values"][scores.argmax(dim=1).cpu().numpy()]

    with EmbeddingWriter(output, None, known, "float32", attrs=attrs) as writer:
        chunks = loop.read(reader, device=device, dtype=compute_dtype_of(reader.dtype), batch_size=batch_size,
                           need_direction=need_direction)
        loop.run(chunks, score, writer, labels_of=labels_of)
        if state["values"] is None:
            raise DataError("has no usable rows to classify", reader.path)
        writer.attrs.update(predictions_layout(state["values"].tolist())["attrs"])
        writer.attrs["dropped"] = len(loop.dropped)
    return len(state["values"])


def _relative_transform(scorer: Scorer, anchors: Path | None, device, dtype, rows_space=(None, None), force: bool = False):
    """For a relative-mode head: project rows onto this space's anchors parallel to the head's anchors.
    ``rows_space`` (path, space) of the rows, which the anchors must share unless ``force``."""
    import torch

    from relcli.core.relative import RelativeProjector

    if scorer.relative is None:
        if anchors is not None:
            raise UsageError("--anchors is for heads fitted in relative mode; this head takes absolute embeddings", scorer.path)
        return None
    if anchors is None:
        raise UsageError("this head was fitted on relative representations: give --anchors with this space's anchors, "
                         "parallel to the head's anchors", scorer.path)
    source = load_anchors(anchors, device, dtype)
    check_same_space(rows_space, (anchors, source.space), force)
    rows = rows_by_keys(scorer.relative["anchor_keys"], source.keys, anchors, f"anchor ids of head {scorer.path.name}")
    relative = scorer.relative
    projector = RelativeProjector(relative.get("similarities", ["cosine"]), relative.get("aggregate", "concat"),
                                  bool(relative.get("center", False)))
    with blame(anchors, source.keys):
        projector.fit(source.vectors[torch.as_tensor(rows, device=device)])
    return projector


def stitch_apply(
    input,
    *,
    head,
    output,
    anchors=None,
    shard=None,
    rows=None,
    drop_invalid: bool = False,
    force: bool = False,
    key: str | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    device: str | None = None,
    progress: Progress | None = None,
) -> Result:
    """Apply a head to an embedding file in its space (or, for a relative-mode head, with ``anchors``).
    Recorded spaces that differ (the input's and the head's, or the input's and the anchors') are an
    error unless ``force``."""
    from relcli.io.atomic import check_output
    from relcli.io.embeddings import open_embeddings
    from relcli.io.kinds import expect_kind

    input, head, output, anchors = Path(input), Path(head), check_output(output), as_path(anchors)
    check_batch_size(batch_size)
    torch_device = resolve_device(device)
    scorer = Scorer(head, torch_device)
    with open_embeddings(input, key=key) as reader:
        expect_kind(reader, ("embeddings", "anchors"), "`stitch apply`")
        space = read_space(reader.attrs, input)
        projector = _relative_transform(scorer, anchors, torch_device, compute_dtype_of(reader.dtype), (input, space), force)
        if projector is None:
            check_same_space((head, scorer.space), (input, space), force)
        if projector is None and scorer.input_dim is not None and reader.dim != scorer.input_dim:
            raise DataError(f"dimension mismatch of a head: {input.name} has {reader.dim} dims, head {head.name} expects "
                            f"{scorer.input_dim}; translate the file into the head's space first", input)
        transform = (lambda chunk: projector.transform(chunk, chunk_rows=None)) if projector else (lambda chunk: chunk)
        loop, shard_record = RowLoop.sharded(reader, shard, rows, drop_invalid=drop_invalid, progress=progress,
                                             description="stitch apply")
        attrs = {"head": str(head), **({"shard": shard_record} if shard_record else {}),
                 "provenance": provenance("stitch apply", {"head": str(head), "shard": shard_record}, [input, head, anchors])}
        n_classes = _write_predictions(reader, loop, scorer, transform, output, attrs, device=torch_device,
                                       batch_size=batch_size, need_direction=projector is not None and projector.needs_direction)
    return Result("stitch apply", output, loop.written, n_classes, len(loop.dropped), loop.dropped_ids,
                  parameters={"head": str(head)}, files={"output": output})


def stitch_run(
    src,
    *,
    tgt_anchors,
    head,
    output,
    src_anchors=None,
    method: str = "auto",
    objective: str = "all",
    center: bool | None = None,
    scaling: str | None = None,
    rcond: float | str | None = None,
    prune_threshold: float | None = None,
    subspaces: int | None = None,
    allow_rank_deficient: bool | None = None,
    min_score: float | None = None,
    shard=None,
    rows=None,
    drop_invalid: bool = False,
    force: bool = False,
    seed: int = 0,
    key: str | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    device: str | None = None,
    progress: Progress | None = None,
) -> Result:
    """Translate ``src`` into the head's space and classify it, in one pass (no file in between).

    The translator is chosen and checked on the anchors as in ``translate`` (``method="auto"``,
    the quality estimate, ``min_score``), ``objective`` ``"all"`` by default even for many-to-many
    anchors (several captions of one image, say): a classifier needs the target's offset and scale,
    and the mean of the translations serves it. The target anchors must be in the head's recorded space
    (and ``src`` in the source anchors') unless ``force``.
    """
    from relcli.api._translation import fit_translation
    from relcli.io.atomic import check_output
    from relcli.io.embeddings import open_embeddings
    from relcli.io.kinds import expect_kind

    src, head, output = Path(src), Path(head), check_output(output)
    check_batch_size(batch_size)
    check_seed(seed)
    min_score = check_number(min_score, "--min-score")
    torch_device = resolve_device(device)
    scorer = Scorer(head, torch_device)
    if scorer.relative is not None:
        raise UsageError("`stitch run` translates into the head's absolute space; for a relative-mode head use "
                         "`stitch apply --anchors`", head)
    options = {"center": center, "scaling": scaling, "rcond": rcond, "prune_threshold": prune_threshold,
               "subspaces": subspaces, "allow_rank_deficient": allow_rank_deficient}
    with open_embeddings(src, key=key) as reader:
        expect_kind(reader, ("embeddings", "anchors"), "--src")
        translation = fit_translation(reader, src, tgt_anchors, src_anchors, method, options, seed, torch_device,
                                      min_score=min_score, force=force, target_of=(head, scorer.space),
                                      objective=objective)
        translator = translation.translator.to(torch_device, compute_dtype_of(reader.dtype))
        if scorer.input_dim is not None and translator.target_dim_ != scorer.input_dim:
            raise DataError(f"dimension mismatch of a head: the target anchors have {translator.target_dim_} dims, head "
                            f"{head.name} expects {scorer.input_dim}", tgt_anchors)
        loop, shard_record = RowLoop.sharded(reader, shard, rows, drop_invalid=drop_invalid, progress=progress,
                                             description=f"stitch ({translator.method})")
        attrs = {"head": str(head), "translation": translation.info, **({"shard": shard_record} if shard_record else {}),
                 "provenance": provenance("stitch run", {**translation.info, "head": str(head), "shard": shard_record},
                                          [*translation.inputs, head])}
        n_classes = _write_predictions(reader, loop, scorer, translator.transform, output, attrs, device=torch_device,
                                       batch_size=batch_size, need_direction=translator.needs_direction)
    return Result("stitch run", output, loop.written, n_classes, len(loop.dropped), loop.dropped_ids,
                  parameters=translation.info, scores={"estimate": translation.estimate}, warnings=translation.warnings,
                  details=translation.details, notes=translation.notes, files={"output": output})
