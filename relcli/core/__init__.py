"""Pure kernels on torch tensors: no files, no printing, no global device state.

New tensors follow the input's device and dtype. Everything fitted follows the estimator
contract of ``relcli.core._estimator`` (``fit`` returns self, learned state ends in ``_``);
every translator fits source-first, ``fit(source_anchors, target_anchors)``, and
``transform(x)`` takes absolute source rows.

Names are imported lazily, so ``relcli.core.registry`` (the method names the CLI offers) can be
read without importing torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "relcli.core._estimator": ("ESTIMATORS", "Estimator"),
    "relcli.core.anchors": ("AnchorSelector", "select_anchors"),
    "relcli.core.stats": ("SpaceStats", "SpaceStatsAccumulator", "space_stats"),
    "relcli.core.heads": ("LogisticHead", "MLPHead"),
    "relcli.core.irp": ("IRP", "InverseRelativeProjection"),
    "relcli.core.relative": ("RelativeProjector", "relative_projection"),
    "relcli.core.translate": (
        "Translator", "DirectTranslator", "Procrustes", "LinearTranslator", "AffineTranslator", "OrthoLinearTranslator",
    ),
    "relcli.core.registry": ("TRANSLATORS", "HEADS", "STRATEGIES", "SIMILARITIES", "AGGREGATIONS", "make_translator"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'relcli.core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return __all__
