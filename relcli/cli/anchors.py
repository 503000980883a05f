"""``relcli anchors``: choose anchors in a space, or take the parallel anchors of another."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import ProgressBar, command, configure, report, settings
from relcli.core import registry


@command
def anchors(
    input: Annotated[Path, typer.Argument(help="Embedding file to take anchors from.")],
    output: opt.Output,
    n_anchors: Annotated[Optional[int], typer.Option("-n", "--n-anchors", min=1, help="How many anchors to choose.")] = None,
    strategy: Annotated[opt.StrategyName, typer.Option("--strategy", help=registry.choices_help(registry.STRATEGIES))] = "fps",
    seed: opt.Seed = 0,
    like: Annotated[
        Optional[Path], typer.Option("--like", help="Anchors file of another space: take the rows with the same ids, in its order.")
    ] = None,
    pairs: Annotated[
        Optional[Path],
        typer.Option("--pairs", help="Two columns, tab- or space-separated (as MUSE dictionaries): (id in --like's space, id in "
                     "this space) when the ids differ (e.g. an EN-IT dictionary; many-to-many: every pair whose two ids "
                     "exist is used). With -n: (id here, id in --target)."),
    ] = None,
    target: Annotated[
        Optional[Path],
        typer.Option("--target", help="With -n and --pairs: choose only among ids that have a partner in this file."),
    ] = None,
    candidates: Annotated[
        Optional[int],
        typer.Option("--candidates", min=1, help="fps/kmeans: choose among this many rows, a seeded sample (default: "
                     "max(16 x n, 10,000)); all rows when the file has fewer."),
    ] = None,
    ids: Annotated[Optional[Path], typer.Option(
        "--ids", help="With -n: choose only among the rows whose ids are in this file (.txt list, an embedding file's ids, "
        "or -), e.g. the train side of `relcli split`.")] = None,
    exclude_ids: Annotated[Optional[Path], typer.Option(
        "--exclude-ids", help="With -n: never choose the rows whose ids are in this file.")] = None,
    drop_invalid: Annotated[
        bool, typer.Option("--drop-invalid", help="Leave NaN/Inf and all-zero rows out of the statistics and the choice.")
    ] = False,
    key: opt.Key = None,
    dtype: opt.Dtype = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Choose anchors (ids + vectors + whole-space statistics), or the parallel anchors of another space.

    \b
    Examples:
      relcli anchors x.h5 -n 768 --strategy fps --seed 0 -o xa.h5
      relcli anchors x.h5 -n 768 --ids train.txt -o xa.h5        (only among the train items)
      relcli anchors y.h5 --like xa.h5 -o ya.h5
      relcli anchors en.h5 -n 2000 --pairs en_fr.tsv --target fr.h5 -o en_a.h5
      relcli anchors fr.h5 --like en_a.h5 --pairs en_fr.tsv -o fr_a.h5
    """
    configure(device, quiet, verbose, debug)
    from relcli import api

    with ProgressBar() as bar:
        result = api.anchors(
            input, output=output, n_anchors=n_anchors, strategy=strategy, seed=seed, like=like, pairs=pairs, target=target,
            candidates=candidates, ids=ids, exclude_ids=exclude_ids,
            drop_invalid=drop_invalid, key=key, dtype=dtype, batch_size=batch_size, device=settings.device, progress=bar,
        )
    report(result, f"wrote {result.rows} anchors of {result.scores['space']['n_rows']:,} x {result.dims} to {result.output}")
