"""Pure kernels on torch tensors: no files, no printing, no global device state.

New tensors follow the input's device and dtype. Everything fitted follows the estimator
contract of ``relcli.core._estimator`` (``fit`` returns self, learned state ends in ``_``).
"""

from __future__ import annotations

import torch

from relcli.core._estimator import ESTIMATORS, Estimator
from relcli.core.anchors import STRATEGIES, AnchorSelector, SpaceStats, SpaceStatsAccumulator, select_anchors, space_stats
from relcli.core.heads import HEADS, LogisticHead, MLPHead
from relcli.core.irp import IRP
from relcli.core.relative import AGGREGATIONS, SIMILARITIES, RelativeProjector, relative_projection
from relcli.core.translate import (
    DIRECT_TRANSLATORS,
    AffineTranslator,
    DirectTranslator,
    LinearTranslator,
    OrthoLinearTranslator,
    Procrustes,
    fit_direct_translator,
)
from relcli.errors import UsageError

TRANSLATION_METHODS = ("irp", *DIRECT_TRANSLATORS)


def fit_translator(
    method: str,
    source_anchors: torch.Tensor,
    target_anchors: torch.Tensor,
    target_norm: float | None = None,
    **params,
) -> Estimator:
    """Fit any translation method on parallel anchors: ``irp`` (folded IRP) or a direct one.

    ``target_norm`` (IRP only) is the norm restored on every output row.
    """
    if method == "irp":
        try:
            irp = IRP(**params)
        except TypeError as exc:
            raise UsageError(f"bad parameters for method 'irp': {exc}") from None
        return irp.fit(target_anchors, source_anchors, target_norm=target_norm)
    return fit_direct_translator(method, source_anchors, target_anchors, **params)


def apply_translator(translator: Estimator, x: torch.Tensor, chunk_rows: int | None = None) -> torch.Tensor:
    """Translate source rows with a fitted translator of any method."""
    if isinstance(translator, IRP):
        return translator.translate(x, chunk_rows=chunk_rows)
    if isinstance(translator, DirectTranslator):
        return translator.transform(x, chunk_rows=chunk_rows)
    raise UsageError(f"{type(translator).__name__} is not a translator")


__all__ = [
    "AGGREGATIONS", "DIRECT_TRANSLATORS", "ESTIMATORS", "HEADS", "SIMILARITIES", "STRATEGIES",
    "TRANSLATION_METHODS", "AffineTranslator", "AnchorSelector", "DirectTranslator", "Estimator", "IRP",
    "LinearTranslator", "LogisticHead", "MLPHead", "OrthoLinearTranslator", "Procrustes", "RelativeProjector",
    "SpaceStats", "SpaceStatsAccumulator", "apply_translator", "fit_direct_translator", "fit_translator",
    "relative_projection", "select_anchors", "space_stats",
]
