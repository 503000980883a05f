"""``relcli project`` (absolute -> relative) and ``relcli invert`` (relative -> another space, by IRP)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import ProgressBar, command, configure, report, settings


@command
def project(
    input: Annotated[Path, typer.Argument(help="Embedding file (absolute space).")],
    anchors: Annotated[Path, typer.Option("--anchors", "-a", help="Anchors file of the same space.")],
    output: opt.Output,
    similarity: opt.Similarity = None,
    aggregate: opt.Aggregate = "concat",
    center: Annotated[bool, typer.Option("--center/--no-center", help="Subtract the anchors' mean first.")] = False,
    shard: opt.Shard = None,
    rows: opt.Rows = None,
    drop_invalid: opt.DropInvalid = False,
    key: opt.Key = None,
    dtype: opt.Dtype = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    force: opt.Force = False,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Project embeddings onto anchors: r_j = cos(x, a_j) (or other similarities), one column per anchor.

    Example: relcli project x.h5 --anchors xa.h5 -o x_rel.h5
    """
    configure(device, quiet, verbose, debug)
    from relcli import api

    with ProgressBar() as bar:
        result = api.project(
            input, anchors=anchors, output=output, similarity=similarity, aggregate=aggregate, center=center,
            shard=shard, rows=rows, drop_invalid=drop_invalid, key=key, dtype=dtype, batch_size=batch_size, force=force, device=settings.device, progress=bar,
        )
    report(result, f"wrote {result.rows:,} x {result.dims} relative rows to {result.output}")


@command
def invert(
    input: Annotated[Path, typer.Argument(help="Relative file made by `relcli project` (cosine).")],
    anchors: Annotated[Path, typer.Option("--anchors", "-a", help="Target-space anchors parallel to the relative file's anchors.")],
    output: opt.Output,
    rcond: opt.Rcond = None,
    prune_threshold: opt.Prune = None,
    subspaces: opt.Subspaces = None,
    allow_rank_deficient: opt.AllowRankDeficient = None,
    target_norm: Annotated[
        Optional[float],
        typer.Option("--target-norm", min=0.0, help="Norm of every output row (default: the target space's mean norm "
                     "from the anchors file's statistics)."),
    ] = None,
    seed: opt.Seed = 0,
    shard: opt.Shard = None,
    rows: opt.Rows = None,
    drop_invalid: opt.DropInvalid = False,
    dtype: opt.Dtype = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Invert relative rows into the target space: Ŷ = R (Â_Yᵀ)⁺, rows rescaled to the target's norm.

    Example: relcli invert x_rel.h5 --anchors ya.h5 -o y_hat.h5
    """
    configure(device, quiet, verbose, debug)
    from relcli import api

    with ProgressBar() as bar:
        result = api.invert(
            input, anchors=anchors, output=output, rcond=opt.parse_rcond(rcond), prune_threshold=prune_threshold,
            subspaces=subspaces, allow_rank_deficient=allow_rank_deficient, target_norm=target_norm, seed=seed,
            shard=shard, rows=rows, drop_invalid=drop_invalid, dtype=dtype, batch_size=batch_size, device=settings.device, progress=bar,
        )
    report(result, f"wrote {result.rows:,} x {result.dims} rows to {result.output}")
