"""``relcli stitch``: zero-shot stitching of an encoder to a classifier head of another space.

fit    train a head on a labelled target-space file (absolute, or relative to anchors)
apply  run a head (ours, or a TorchScript module) on an embedding file -> predictions file
run    the one-shot path: source file + target anchors + target head -> predictions
"""

from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import ProgressBar, command, configure, report, settings
from relcli.cli._help import PanelCommand
from relcli.core import registry

app = typer.Typer(
    help="Zero-shot stitching: fit a classifier head in one space, apply it to (translated) embeddings of another.\n\n"
    "\b\nExample:\n  relcli stitch fit y.h5 -o head.safetensors\n"
    "  relcli stitch run --src x.h5 --tgt-anchors ya.h5 --head head.safetensors -o preds.h5",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain Click help: rendering with Rich would cost ~0.2 s of imports
)

HEAD_FILE_HELP = "A head saved by `relcli stitch fit` (.safetensors), or a TorchScript module (.pt/.ts) mapping rows to class scores."


@app.command("fit", cls=PanelCommand)
@command
def fit(
    input: Annotated[Path, typer.Argument(help="Labelled embedding file of the head's space (the target).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Head file to write (.safetensors).")],
    head: Annotated[opt.HeadName, typer.Option("--head", help=registry.choices_help(registry.HEADS))] = "logistic",
    anchors: Annotated[
        Optional[Path],
        typer.Option("--anchors", "-a", help="Relative mode (relreps baseline): fit on the relative representations w.r.t. these anchors."),
    ] = None,
    similarity: opt.Similarity = None,
    aggregate: opt.Aggregate = "concat",
    center: Annotated[bool, typer.Option("--center/--no-center", help="Relative mode: centre on the anchors' mean.")] = False,
    l2: Annotated[float, typer.Option("--l2", min=0.0, help="Weight penalty (logistic l2, mlp weight decay).")] = 1e-4,
    max_iter: Annotated[int, typer.Option("--max-iter", min=1, help="Logistic: L-BFGS iterations.")] = 200,
    hidden: Annotated[int, typer.Option("--hidden", min=1, help="MLP: hidden units.")] = 256,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="MLP: full-batch Adam steps.")] = 200,
    ids: opt.Ids = None,
    exclude_ids: opt.ExcludeIds = None,
    seed: opt.Seed = 0,
    key: opt.Key = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    force: opt.Force = False,
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
      relcli stitch fit y.h5 --ids train.txt -o head.safetensors      (train side of `relcli split`)
    """
    configure(device, quiet, verbose, debug)
    from relcli import api

    result = api.stitch_fit(
        input, output=output, head=head, anchors=anchors, similarity=similarity, aggregate=aggregate, center=center,
        l2=l2, max_iter=max_iter, hidden=hidden, epochs=epochs, ids=ids, exclude_ids=exclude_ids, seed=seed, key=key,
        batch_size=batch_size, force=force, device=settings.device,
    )
    report(result, f"fitted a {head} head on {result.rows:,} x {result.dims} ({result.scores['classes']} classes, "
                   f"train accuracy {result.scores['train_accuracy']:.4f}) -> {result.output}")


@app.command("apply", cls=PanelCommand)
@command
def apply(
    input: Annotated[Path, typer.Argument(help="Embedding file in the head's space (e.g. translated by `relcli translate`).")],
    head: Annotated[Path, typer.Option("--head", help=HEAD_FILE_HELP)],
    output: opt.Output,
    anchors: Annotated[
        Optional[Path], typer.Option("--anchors", "-a", help="Relative-mode heads: this space's anchors, parallel to the head's.")
    ] = None,
    shard: opt.Shard = None,
    rows: opt.Rows = None,
    drop_invalid: opt.DropInvalid = False,
    key: opt.Key = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    force: opt.Force = False,
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
    from relcli import api

    with ProgressBar() as bar:
        result = api.stitch_apply(input, head=head, output=output, anchors=anchors, shard=shard, rows=rows,
                                  drop_invalid=drop_invalid, key=key,
                                  batch_size=batch_size, force=force, device=settings.device, progress=bar)
    report(result, f"wrote {result.rows:,} predictions to {result.output}")


@app.command("run", cls=PanelCommand)
@command
def run(
    src: Annotated[Path, typer.Option("--src", help="Source embedding file.")],
    tgt_anchors: Annotated[Path, typer.Option("--tgt-anchors", help="Target-space anchors (or a target embedding file).")],
    head: Annotated[Path, typer.Option("--head", help=HEAD_FILE_HELP)],
    output: opt.Output,
    src_anchors: Annotated[Optional[Path], typer.Option("--src-anchors", help="Source anchors parallel to --tgt-anchors.")] = None,
    method: opt.Method = "auto",
    objective: opt.Objective = "all",
    center: opt.Center = None,
    scaling: opt.Scaling = None,
    rcond: opt.Rcond = None,
    prune_threshold: opt.Prune = None,
    subspaces: opt.Subspaces = None,
    allow_rank_deficient: opt.AllowRankDeficient = None,
    min_score: opt.MinScore = None,
    shard: opt.Shard = None,
    rows: opt.Rows = None,
    drop_invalid: opt.DropInvalid = False,
    seed: opt.Seed = 0,
    key: opt.Key = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    force: opt.Force = False,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """One shot: translate a source file into the head's space and classify it (no file in between).

    Example: relcli stitch run --src x.h5 --tgt-anchors ya.h5 --head head.safetensors -o preds.h5
    """
    configure(device, quiet, verbose, debug)
    from relcli import api

    with ProgressBar() as bar:
        result = api.stitch_run(
            src=src, tgt_anchors=tgt_anchors, head=head, output=output, src_anchors=src_anchors, method=method,
            objective=objective, center=center, scaling=scaling, rcond=opt.parse_rcond(rcond), prune_threshold=prune_threshold,
            subspaces=subspaces, allow_rank_deficient=allow_rank_deficient, min_score=min_score,
            shard=shard, rows=rows, drop_invalid=drop_invalid, seed=seed,
            key=key, batch_size=batch_size, force=force, device=settings.device, progress=bar,
        )
    report(result, f"wrote {result.rows:,} predictions to {result.output} ({result.parameters.get('method')})")
