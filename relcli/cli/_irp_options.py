"""Translation options shared by ``invert``, ``translate`` and ``stitch run`` (one spelling everywhere)."""

from __future__ import annotations

from typing import Annotated

import typer

Method = Annotated[
    str,
    typer.Option(
        "--method", "-m",
        help="irp (inverse relative projection, folded into one d_X x d_Y map) | procrustes | linear | affine | ortho-linear",
    ),
]
Center = Annotated[bool, typer.Option("--center/--no-center", help="IRP: centre both spaces on their anchor means.")]
Scaling = Annotated[
    str, typer.Option("--scaling", help="Direct methods: standard (per-dimension, anchor statistics) | isotropic | none.")
]
Rcond = Annotated[
    str,
    typer.Option(
        "--rcond",
        help="Singular-value cut-off relative to the largest: a number in [0, 1), or 'auto' (IRP: chosen by "
        "cross-validation on the anchors; direct methods: 1e-3).",
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
BAD_CONDITION = 1e4
DIRECT_RCOND = 1e-3  # measured on sample_data: 1e-6 lets nearly dead source units dominate (CKA 0.02)
FALLBACK_RCOND = 1e-3


def parse_rcond(value: str, method: str = "irp"):
    """'auto' (IRP cross-validates; direct methods use DIRECT_RCOND) or a float in [0, 1)."""
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
    """Condition numbers and the kept rank with -v; a warning when the inverse amplifies noise.

    The warning looks at the conditioning of what the pseudo-inverse keeps (σ_max over the
    smallest kept singular value), not of the raw anchors: dead or collinear directions that
    the cut-off drops are harmless.
    """
    if irp.rcond_scores_:
        table = ", ".join(f"{c}: mrr {v['mrr']:.3f} cos {v['cosine']:.3f}" for c, v in irp.rcond_scores_.items())
        detail(f"IRP rcond=auto chose {irp.rcond_:g} (held-out anchor scores: {table})")
    ranks = [int(r) for r in irp.ranks_]
    dims = int(irp.inverse_.shape[2])
    detail(
        f"IRP target anchors: condition number {', '.join(f'{c:.3g}' for c in irp.condition_numbers_)}; "
        f"kept {', '.join(map(str, ranks))} of {dims} directions (condition {', '.join(f'{c:.3g}' for c in irp.kept_condition_numbers_)})"
    )
    worst = max(float(c) for c in irp.kept_condition_numbers_)
    if worst > BAD_CONDITION:
        warn(
            f"{path}: the IRP inverse is badly conditioned (condition number {worst:.3g} at rcond={irp.rcond_:g}); "
            "results may be poor: use --rcond auto or a larger --rcond, more or more diverse anchors, or --prune-threshold"
        )
