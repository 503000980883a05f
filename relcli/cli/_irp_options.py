"""IRP options shared by ``invert``, ``translate`` and ``stitch`` (one spelling everywhere)."""

from __future__ import annotations

from typing import Annotated

import typer

Rcond = Annotated[
    float,
    typer.Option("--rcond", min=0.0, max=1.0, help="IRP: drop singular values below rcond x the largest (pseudo-inverse cut-off)."),
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


def report_conditioning(irp, path, detail, warn) -> None:
    """Condition numbers with -v; a warning when the inverse is badly conditioned."""
    numbers = [float(c) for c in irp.condition_numbers_]
    ranks = [int(r) for r in irp.ranks_]
    detail(f"IRP condition number(s) of the target anchors: {', '.join(f'{c:.3g}' for c in numbers)}; rank(s) kept: {ranks}")
    worst = max(numbers)
    if worst > BAD_CONDITION:
        warn(
            f"{path}: target anchors are badly conditioned (condition number {worst:.3g}); results may be poor: "
            "use more or more diverse anchors, --prune-threshold, or a larger --rcond"
        )
