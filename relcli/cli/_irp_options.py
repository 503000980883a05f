"""IRP options shared by ``invert``, ``translate`` and ``stitch`` (one spelling everywhere)."""

from __future__ import annotations

from typing import Annotated

import typer

Rcond = Annotated[
    str,
    typer.Option(
        "--rcond",
        help="Singular-value cut-off relative to the largest: a number in [0, 1), or 'auto' (IRP: chosen by "
        "cross-validation on the anchors; direct methods: 1e-6).",
    ),
]
Prune = Annotated[
    float,
    typer.Option("--prune-threshold", min=0.0, max=1.0, help="IRP δ: keep anchors farther than δ in 1-|cos| (0 = keep all)."),
]
Subspaces = Annotated[int, typer.Option("--subspaces", min=1, help="IRP ω: average over this many pruned anchor subsets.")]
AllowRankDeficient = Annotated[
    bool, typer.Option("--allow-rank-deficient", help="IRP: accept fewer independent anchors than target dimensions.")
]
BAD_CONDITION = 1e6
DIRECT_RCOND = 1e-6
FALLBACK_RCOND = 1e-3


def parse_rcond(value: str, method: str = "irp"):
    """'auto' (IRP cross-validates; direct methods use 1e-6) or a float in [0, 1)."""
    from relcli.errors import UsageError

    if value.strip().lower() == "auto":
        return "auto" if method == "irp" else DIRECT_RCOND
    try:
        number = float(value)
    except ValueError:
        raise UsageError(f"--rcond {value!r}: expected 'auto' or a number in [0, 1)") from None
    if not 0.0 <= number < 1.0:
        raise UsageError(f"--rcond {value!r}: expected 'auto' or a number in [0, 1)")
    return number


def report_conditioning(irp, path, detail, warn) -> None:
    """Condition numbers with -v; a warning when the inverse is badly conditioned."""
    numbers = [float(c) for c in irp.condition_numbers_]
    ranks = [int(r) for r in irp.ranks_]
    if irp.rcond_scores_:
        table = ", ".join(f"{c}: mrr {v['mrr']:.3f} cos {v['cosine']:.3f}" for c, v in irp.rcond_scores_.items())
        detail(f"IRP rcond=auto chose {irp.rcond_:g} (held-out anchor scores: {table})")
    detail(f"IRP condition number(s) of the target anchors: {', '.join(f'{c:.3g}' for c in numbers)}; rank(s) kept: {ranks}")
    dims = int(irp.inverse_.shape[2])
    if min(ranks) < dims:
        detail(f"IRP reconstructs within the {min(ranks)} of {dims} target directions that the anchors span above the cut-off")
    worst = max(numbers)
    if worst > BAD_CONDITION:
        warn(
            f"{path}: target anchors are badly conditioned (condition number {worst:.3g}); results may be poor: "
            "use more or more diverse anchors, --prune-threshold, or a larger --rcond"
        )
