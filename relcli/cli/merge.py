"""``relcli merge``: the shard files of a ``--shard I/N`` (or ``--rows A:B``) run → one file."""

from pathlib import Path
from typing import Annotated

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import ProgressBar, command, configure, report


@command
def merge(
    shards: Annotated[list[Path], typer.Argument(help="Shard files (any order), e.g. parts/part*.h5.", show_default=False)],
    output: opt.Output,
    copy: Annotated[bool, typer.Option("--copy", help="HDF5: write a self-contained copy instead of a virtual dataset "
                                       "that references the shards.")] = False,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Merge shard files (from --shard I/N or --rows A:B) into one file, checking that they tile the input.

    The shards must be of one run: same source, kind, dims and options, no shard missing or
    given twice. HDF5 output is a virtual dataset that references the shards (stored by paths
    relative to it: move the folder as a whole; keep the shards) with ids, labels and per-row
    arrays copied in; --copy, or a .safetensors output, copies the rows.

    \b
    Examples:
      relcli merge parts/part*.h5 -o merged.h5
      relcli merge parts/part*.h5 --copy -o merged.h5
      relcli merge parts/part*.safetensors -o merged.safetensors
    """
    configure(None, quiet, verbose, debug)
    from relcli.api.merge import merge as merge_files

    with ProgressBar() as bar:
        result = merge_files(shards, output=output, copy=copy, batch_size=batch_size, progress=bar)
    how = "virtual: references the shards; keep them beside it, or use --copy" if result.parameters.get("virtual") else "copied"
    report(result, f"merged {len(shards)} shard(s), {result.rows:,} x {result.dims} rows, into {result.output} ({how})")
