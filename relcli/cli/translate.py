"""``relcli translate``: source embeddings -> a target space, by IRP or a direct translator."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import ProgressBar, command, configure, report, settings


@command
def translate(
    src: Annotated[Path, typer.Option("--src", help="Source embedding file to translate.")],
    output: opt.Output,
    tgt_anchors: Annotated[
        Optional[Path],
        typer.Option("--tgt-anchors", help="Target-space anchors (an anchors file, or any embedding file: all its rows)."),
    ] = None,
    src_anchors: Annotated[
        Optional[Path],
        typer.Option("--src-anchors", help="Source-space anchors parallel to --tgt-anchors (default: --src rows with the same ids)."),
    ] = None,
    method: opt.Method = "auto",
    objective: opt.Objective = "auto",
    center: opt.Center = None,
    scaling: opt.Scaling = None,
    rcond: opt.Rcond = None,
    prune_threshold: opt.Prune = None,
    subspaces: opt.Subspaces = None,
    allow_rank_deficient: opt.AllowRankDeficient = None,
    min_score: opt.MinScore = None,
    confidence: Annotated[bool, typer.Option("--confidence", help="Also write a per-row 'confidence' array (agreement "
                          "of the cross-validation fold models, -1..1; low = re-embed that row).")] = False,
    save_map: Annotated[Optional[Path], typer.Option("--save-map", help="Also save the fitted map (.safetensors) for --map.")] = None,
    map_file: Annotated[Optional[Path], typer.Option("--map", help="Apply a saved map instead of fitting one.")] = None,
    reverse: Annotated[bool, typer.Option("--reverse", help="With --map: apply the map backwards (target -> source), "
                       "e.g. new-model queries into the old index's space.")] = False,
    shard: opt.Shard = None,
    rows: opt.Rows = None,
    drop_invalid: opt.DropInvalid = False,
    seed: opt.Seed = 0,
    key: opt.Key = None,
    dtype: opt.Dtype = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    force: opt.Force = False,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Translate embeddings into another space using parallel anchors; the method is chosen and checked on them.

    Every fit cross-validates on the anchors and prints a quality estimate (auto: of every method,
    keeping the best).

    \b
    Examples:
      relcli translate --src x.h5 --tgt-anchors ya.h5 -o y_hat.h5
      relcli translate --src x.h5 --src-anchors xa.h5 --tgt-anchors ya.h5 --method procrustes -o y_hat.h5
      relcli translate --src x.h5 --tgt-anchors ya.h5 --min-score 0.5 --confidence -o y_hat.h5
      relcli translate --src x.h5 --tgt-anchors ya.h5 --save-map map.safetensors -o y_hat.h5
      relcli translate --src x_new.h5 --map map.safetensors -o y_new.h5
      relcli translate --src x_new.h5 --map map.safetensors --shard 3/8 -o part3.h5   (then relcli merge)
      relcli translate --src queries_y.h5 --map map.safetensors --reverse -o queries_in_x.h5
    """
    configure(device, quiet, verbose, debug)
    from relcli import api

    with ProgressBar() as bar:
        result = api.translate(
            src, output=output, tgt_anchors=tgt_anchors, src_anchors=src_anchors, method=method, objective=objective, center=center,
            scaling=scaling, rcond=opt.parse_rcond(rcond), prune_threshold=prune_threshold, subspaces=subspaces,
            allow_rank_deficient=allow_rank_deficient, min_score=min_score, confidence=confidence, save_map=save_map,
            map=map_file, reverse=reverse, shard=shard, rows=rows, drop_invalid=drop_invalid,
            seed=seed, key=key, dtype=dtype, batch_size=batch_size, force=force, device=settings.device, progress=bar,
        )
    saved = f"; saved the fitted map to {result.files['save_map']}" if "save_map" in result.files else ""
    report(result, f"wrote {result.rows:,} x {result.dims} rows to {result.output} ({result.parameters.get('method')}){saved}")
