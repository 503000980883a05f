"""Every option the subcommands share, defined once as an Annotated alias (one spelling, one meaning).

Choices come from ``relcli.core.registry`` (which imports no torch), so ``--help`` lists them. The
shared options fall into the ``--help`` panels below; a command's own options stay under "Options".
"""

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from relcli.core import registry

DEFAULT_BATCH = None

MethodName = Literal[tuple(registry.METHODS)]  # type: ignore[valid-type]
ObjectiveName = Literal[tuple(registry.OBJECTIVES)]  # type: ignore[valid-type]
ScalingName = Literal[tuple(registry.SCALINGS)]  # type: ignore[valid-type]
StrategyName = Literal[tuple(registry.STRATEGIES)]  # type: ignore[valid-type]
HeadName = Literal[tuple(registry.HEADS)]  # type: ignore[valid-type]
AggregateName = Literal[tuple(registry.AGGREGATIONS)]  # type: ignore[valid-type]
DtypeName = Literal["float16", "bfloat16", "float32", "float64"]

ROWS_PANEL = "Files and rows"
FIT_PANEL = "Fitting"
RUN_PANEL = "Running"

# -- files and rows ----------------------------------------------------------------------------
def _rows(*names: str, **kwargs):
    return typer.Option(*names, rich_help_panel=ROWS_PANEL, **kwargs)


def _run(*names: str, **kwargs):
    return typer.Option(*names, rich_help_panel=RUN_PANEL, **kwargs)


def _fit(*names: str, **kwargs):
    return typer.Option(*names, rich_help_panel=FIT_PANEL, **kwargs)


Output = Annotated[Path, typer.Option("-o", "--output", help="Output file: .h5/.hdf5 or .safetensors (by extension).")]
Key = Annotated[Optional[str], _rows("--key", help="Name of the 2-D array in a foreign file.")]
Dtype = Annotated[Optional[DtypeName], _rows("--dtype", help="Output dtype (default: the input's).")]
BatchSize = Annotated[Optional[int], _rows(
    "--batch-size", min=1, envvar="RELCLI_BATCH_SIZE",
    help="Rows read, computed and written per chunk (default: env RELCLI_BATCH_SIZE, else about 32 MiB of rows).")]
DropInvalid = Annotated[bool, _rows(
    "--drop-invalid", help="Skip rows with NaN/Inf (or all zeros where direction matters) instead of failing.")]
Shard = Annotated[Optional[str], _rows(
    "--shard", help="I/N: only the I-th (from 0) of N contiguous, balanced row ranges; join the shard files with "
    "`relcli merge`.")]
Rows = Annotated[Optional[str], _rows("--rows", help="A:B: only rows A to B (Python slice bounds).")]
Ids = Annotated[Optional[Path], _rows(
    "--ids", help="Only the rows whose ids are in this file (.txt list, an embedding file's ids, or - for standard input).")]
ExcludeIds = Annotated[Optional[Path], _rows(
    "--exclude-ids", help="Leave out the rows whose ids are in this file (e.g. the anchors, or the test side of "
    "`relcli split`).")]
Force = Annotated[bool, _rows(
    "--force", help="Combine files whose recorded spaces (relcli.space) differ; by default that is an error naming both.")]

# -- how the command runs ----------------------------------------------------------------------
Seed = Annotated[int, _run("--seed", min=0, max=2**63 - 1, help="Random seed; the same seed gives the same output.")]
Device = Annotated[Optional[str], _run("--device", help="auto|cpu|cuda[:N] (default: env RELCLI_DEVICE, else auto).")]
Quiet = Annotated[bool, _run("-q", "--quiet", help="Silence everything but errors.")]
Verbose = Annotated[bool, _run("-v", "--verbose", help="Print details (condition numbers, choices).")]
Debug = Annotated[bool, _run("--debug", help="Show the traceback on errors.")]

# -- relative representations ------------------------------------------------------------------
Similarity = Annotated[
    Optional[list[str]],
    typer.Option("--similarity", "-s", help=f"{' | '.join(registry.SIMILARITIES)}; repeat or comma-separate for a product of "
                 "invariances (each block standardised per row)."),
]
Aggregate = Annotated[AggregateName, typer.Option("--aggregate", help="How several similarity blocks combine.")]

# -- translation (translate, stitch run; a subset for invert) ------------------------------------
Method = Annotated[MethodName, typer.Option("--method", "-m", help=registry.choices_help(registry.METHODS))]
Objective = Annotated[ObjectiveName, typer.Option(
    "--objective", help="What auto maximises and the quality estimate measures: " + registry.choices_help(registry.OBJECTIVES))]
MinScore = Annotated[
    Optional[float],
    typer.Option("--min-score", help="Exit 1 and write nothing when the quality estimate (held-out anchor score, "
                 "0 = chance, 1 = perfect) is below this."),
]
Center = Annotated[Optional[bool], _fit(
    "--center/--no-center", help="IRP: centre both spaces on their anchor means (default: off).")]
Scaling = Annotated[Optional[ScalingName], _fit(
    "--scaling", help="Direct methods: " + registry.choices_help(registry.SCALINGS) + " (default: standard).")]
Rcond = Annotated[Optional[str], _fit(
    "--rcond", help="Singular-value cut-off relative to the largest: a number in [0, 1), or 'auto' (the default; IRP: "
    "chosen by cross-validation on the anchors; linear: a ridge penalty by leave-one-out instead; affine, "
    "ortho-linear: 1e-3).")]
Prune = Annotated[Optional[float], _fit(
    "--prune-threshold", min=0.0, max=1.0, help="IRP δ: keep anchors farther than δ in 1-|cos| (default 0: keep all).")]
Subspaces = Annotated[Optional[int], _fit(
    "--subspaces", min=1, help="IRP ω: average over this many pruned anchor subsets (default 1).")]
AllowRankDeficient = Annotated[Optional[bool], _fit(
    "--allow-rank-deficient", help="IRP: accept fewer independent anchors than target dimensions.")]

def parse_rcond(value: str | None):
    """--rcond: None (the method's default), 'auto', or a number in [0, 1)."""
    from relcli.errors import UsageError

    if value is None:
        return None
    if value.strip().lower() == "auto":
        return "auto"
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"--rcond {value!r}: expected 'auto' or a number in [0, 1)") from None
    if not 0.0 <= number < 1.0:
        raise UsageError(f"--rcond {value!r}: expected 'auto' or a number in [0, 1)")
    return number
