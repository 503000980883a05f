"""The one registry of what relcli offers: method names, what each is, and where it lives.

The CLI builds its choices from these tables and the core its factories, so a method exists in
exactly one place. Importing this module imports no torch (``relcli --help`` stays fast);
classes are imported only when a method is used.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from relcli.errors import UsageError

#: name -> (class location, one-line description). Every translator fits source-first.
TRANSLATORS: dict[str, tuple[str, str]] = {
    "irp": ("relcli.core.irp:IRP", "inverse relative projection, folded into one d_X x d_Y map"),
    "procrustes": ("relcli.core.translate:Procrustes",
                   "orthogonal map between the standardised anchors (MUSE's for word translation)"),
    "linear": ("relcli.core.translate:LinearTranslator", "least-squares linear map"),
    "affine": ("relcli.core.translate:AffineTranslator", "least-squares map with a bias (equals linear under standard scaling)"),
    "ortho-linear": ("relcli.core.translate:OrthoLinearTranslator", "least squares, then the nearest orthogonal map"),
}

#: what ``--method`` accepts: ``auto`` (cross-validate every method on the anchors) and each translator.
METHODS: dict[str, str] = {
    "auto": "cross-validate every method on the anchors and keep the best",
    **{name: entry[1] for name, entry in TRANSLATORS.items()},
}

#: what ``--objective`` accepts: what ``auto`` maximises and the quality estimate measures (``relcli.core._scoring``).
OBJECTIVES: dict[str, str] = {
    "auto": "retrieval when some source anchor has several different target anchors (a dictionary), else all",
    "all": "retrieval, neighbourhoods and reconstruction R2 (for classifiers and general use)",
    "retrieval": "retrieval and neighbourhoods only (search, word translation)",
}

HEADS: dict[str, tuple[str, str]] = {
    "logistic": ("relcli.core.heads:LogisticHead", "multinomial logistic regression"),
    "mlp": ("relcli.core.heads:MLPHead", "one hidden layer"),
}

STRATEGIES: dict[str, str] = {
    "random": "a seeded random sample",
    "per-class": "class-balanced, needs labels",
    "fps": "farthest points on the sphere",
    "kmeans": "rows nearest to spherical k-means centroids",
}

SIMILARITIES: dict[str, str] = {
    "cosine": "<x^, a^>",
    "angular": "arccos(cos)/pi",
    "euclidean": "||x - a||_2",
    "l1": "||x - a||_1",
    "linf": "||x - a||_inf",
}

AGGREGATIONS: dict[str, str] = {"concat": "blocks side by side", "sum": "blocks added"}

SCALINGS: dict[str, str] = {
    "standard": "per dimension, with the anchors' mean and std",
    "isotropic": "one scale for all dimensions",
    "none": "no scaling",
}


def choices_help(table: dict[str, Any]) -> str:
    """'a (what a) | b (what b)' for a --help text."""
    return " | ".join(f"{name} ({entry[1] if isinstance(entry, tuple) else entry})" for name, entry in table.items())


def _load(location: str) -> type:
    module, _, name = location.partition(":")
    return getattr(importlib.import_module(module), name)


def translator_class(method: str) -> type:
    """The translator class registered as ``method``."""
    if not isinstance(method, str) or method not in TRANSLATORS:
        raise UsageError(f"unknown translation method {method!r}; choose one of: {', '.join(TRANSLATORS)}")
    return _load(TRANSLATORS[method][0])


def head_class(name: str) -> type:
    """The classifier head class registered as ``name``."""
    if not isinstance(name, str) or name not in HEADS:
        raise UsageError(f"unknown head {name!r}; choose one of: {', '.join(HEADS)}")
    return _load(HEADS[name][0])


def _parameters(cls: type) -> list[str]:
    return [n for n in inspect.signature(cls.__init__).parameters if n != "self"]


def options_of(method: str) -> list[str]:
    """The options (constructor parameters) a translation method takes."""
    return _parameters(translator_class(method))


#: options given to every method that takes them, and ignored by the others
GENERAL_OPTIONS = ("seed", "objective")


def make_translator(method: str, **options: Any):
    """An unfitted translator of ``method`` with ``options``; None means the method's default.

    An option the method does not take is a ``UsageError`` that says which methods take it,
    e.g. ``center`` with ``procrustes``. ``seed`` and ``objective`` go to every method that uses them.
    """
    cls = translator_class(method)
    accepted = _parameters(cls)
    given = {name: value for name, value in options.items() if value is not None}
    for name in given:
        if name not in accepted and name not in GENERAL_OPTIONS:
            takers = [m for m in TRANSLATORS if name in options_of(m)]
            flag = "--" + name.replace("_", "-")
            where = f"it applies to {', '.join(takers)}" if takers else "no method takes it"
            raise UsageError(f"option {flag} does not apply to method {method!r}: {where}")
    translator = cls(**{name: value for name, value in given.items() if name in accepted})
    translator._check_params()
    return translator
