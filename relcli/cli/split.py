"""``relcli split``: seeded, optionally stratified train/test id lists from an embedding file."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import command, configure, report

SIZE_HELP = "a fraction in (0, 1) of the rows, or a whole number of rows"


@command
def split(
    input: Annotated[Path, typer.Argument(help="Embedding file whose row ids are split (its matrix is not read).")],
    train_out: Annotated[Path, typer.Option("--train-out", help="Where to write the train ids (.txt, one id per line).")],
    test_out: Annotated[Path, typer.Option("--test-out", help="Where to write the test ids (.txt, one id per line).")],
    test_size: Annotated[float, typer.Option("--test-size", "--test", help=f"Test rows: {SIZE_HELP} "
                                             "(a fraction f gives ceil(f·n) rows).")] = 0.25,
    train_size: Annotated[Optional[float], typer.Option("--train-size", help=f"Train rows: {SIZE_HELP} (a fraction "
                                                        "gives floor(f·n)); default: every row not in the test set.")] = None,
    stratify: Annotated[bool, typer.Option("--stratify", help="Keep each label's share the same on both sides "
                                           "(needs labels in INPUT).")] = False,
    seed: opt.Seed = 0,
    key: opt.Key = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Write seeded train/test id lists (both files or neither), for evaluate/stitch --ids and --exclude-ids.

    Each list is in the file's row order; files without ids are split by row number.

    \b
    Examples:
      relcli split x.h5 --test-size 0.25 --seed 0 --train-out train.txt --test-out test.txt
      relcli split x.h5 --test-size 500 --train-size 1000 --stratify --train-out train.txt --test-out test.txt
      relcli evaluate y_hat.h5 --reference y.h5 --ids test.txt
    """
    configure(None, quiet, verbose, debug)
    from relcli import api

    result = api.split(input, train_out=train_out, test_out=test_out, test_size=test_size, train_size=train_size,
                       stratify=stratify, seed=seed, key=key)
    p = result.parameters
    left = f"; {p['left_out']:,} rows in neither" if p["left_out"] else ""
    how = " (stratified)" if stratify else ""
    report(result, f"wrote {p['train_rows']:,} train ids to {train_out} and {p['test_rows']:,} test ids to {test_out}{how}{left}")
