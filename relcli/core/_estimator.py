"""The estimator contract shared by everything relcli fits.

Parameters are stored by ``__init__`` under their own names and nothing else happens there;
``fit`` returns ``self``; learned state lives in public attributes whose names end in ``_``.
Each class declares its learned state by name and type in ``_state`` (``"tensor1"`` for a 1-D
floating tensor, ``"itensor1"``/``"btensor1"`` for integer/bool ones, ``"float"``, ``"int"``,
``"list"``, ``"dict"``...); it counts as fitted when every declared attribute is present, and
``fit`` assigns them all at once through ``_set_state`` only when it succeeds, so a failed fit
never leaves a half-fitted estimator.

``fitted_state`` splits the state into tensors and JSON-able values for the I/O layer;
``from_fitted_state`` rebuilds an estimator from a file and checks every name, type and shape,
so a file that lies fails at the door. Every concrete subclass is registered by class name in
``ESTIMATORS`` so a saved file names the class that reads it.
"""

from __future__ import annotations

import inspect
import math
from typing import Any, ClassVar

import torch

from relcli.errors import FileFormatError, NotFittedError, RelcliError

ESTIMATORS: dict[str, type["Estimator"]] = {}

_SCALARS = {"float": (int, float), "int": (int,), "bool": (bool,), "str": (str,), "list": (list,), "dict": (dict,)}


class Estimator:
    """Base class: ``get_params``, fitted-state checks, save/load of state, device moves."""

    #: learned attribute -> type: "tensorN" (N-D floating tensor), "itensorN" (integer), "btensorN" (bool),
    #: or a scalar kind.
    _state: ClassVar[dict[str, str]] = {}
    #: learned attributes that may be absent (e.g. IRP's folded map when fitted without sources).
    _optional_state: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls._state and not cls.__dict__.get("_abstract", False):
            ESTIMATORS[cls.__name__] = cls

    @classmethod
    def _param_names(cls) -> list[str]:
        signature = inspect.signature(cls.__init__)
        return [
            name
            for name, p in signature.parameters.items()
            if name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self) -> dict[str, Any]:
        """The constructor arguments, read back from the attributes of the same names."""
        return {name: getattr(self, name) for name in self._param_names()}

    def _check_params(self) -> None:
        """Raise ``UsageError`` for a bad parameter value; subclasses override."""

    def _check_state(self) -> None:
        """Raise ``FileFormatError`` when loaded state is inconsistent (shapes); subclasses override."""

    def _learned_names(self) -> list[str]:
        return [n for n in self._state if hasattr(self, n)]

    @property
    def is_fitted(self) -> bool:
        required = [n for n in self._state if n not in self._optional_state]
        return bool(required) and all(hasattr(self, n) for n in required)

    def check_fitted(self) -> None:
        """Raise ``NotFittedError`` unless ``fit`` (or loading) has run."""
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() first")

    def _set_state(self, **state: Any) -> None:
        """Replace the whole learned state at once (the last step of a successful ``fit``)."""
        unknown = set(state) - set(self._state)
        if unknown:  # a programming error, not a user's
            raise AttributeError(f"{type(self).__name__} declares no learned state {sorted(unknown)}")
        for name in self._state:
            self.__dict__.pop(name, None)
        self.__dict__.pop("_derived", None)  # anything computed from the old state (see ``derived``)
        for name, value in state.items():
            if value is not None or name not in self._optional_state:
                setattr(self, name, value)

    def derived(self, key, compute):
        """``compute()``, remembered under ``key`` until the learned state changes (e.g. a map folded
        and cast once for a device and dtype, not once per chunk)."""
        cache = self.__dict__.setdefault("_derived", {})
        if key not in cache:
            cache[key] = compute()
        return cache[key]

    def fitted_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Learned state split into (tensors, JSON-able values), ready to be saved."""
        self.check_fitted()
        tensors: dict[str, torch.Tensor] = {}
        extras: dict[str, Any] = {}
        for name in self._learned_names():
            value = getattr(self, name)
            if isinstance(value, torch.Tensor):
                tensors[name] = value.detach().contiguous()
            else:
                extras[name] = value
        return tensors, extras

    @classmethod
    def from_fitted_state(
        cls,
        params: dict[str, Any],
        tensors: dict[str, torch.Tensor],
        extras: dict[str, Any] | None = None,
    ) -> "Estimator":
        """Rebuild a fitted estimator from ``get_params()`` and ``fitted_state()`` output.

        Every parameter and state entry is checked (names, types, shapes); a problem is a
        ``FileFormatError`` naming the field.
        """
        if not isinstance(params, dict):
            raise FileFormatError(f"{cls.__name__} parameters must be an object, got {type(params).__name__}")
        unknown = set(params) - set(cls._param_names())
        if unknown:
            raise FileFormatError(f"{cls.__name__} does not take parameters {sorted(unknown)}")
        try:
            estimator = cls(**params)
            estimator._check_params()
        except (RelcliError, TypeError, ValueError) as exc:
            raise FileFormatError(f"bad {cls.__name__} parameters: {getattr(exc, 'message', exc)}") from None
        state = {**tensors, **(extras or {})}
        unknown = set(state) - set(cls._state)
        if unknown:
            raise FileFormatError(f"{cls.__name__} has no learned state {sorted(unknown)}")
        missing = [n for n in cls._state if n not in state and n not in cls._optional_state]
        if missing:
            raise FileFormatError(f"{cls.__name__} state is missing {', '.join(missing)}")
        for name, value in state.items():
            _check_type(cls.__name__, name, value, cls._state[name])
        estimator._set_state(**state)
        estimator._check_state()
        return estimator

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """Move the tensor state to ``device``/``dtype`` (floating tensors only change dtype)."""
        self.__dict__.pop("_derived", None)
        for name in self._learned_names():
            value = getattr(self, name)
            if isinstance(value, torch.Tensor):
                target_dtype = dtype if (dtype is not None and value.is_floating_point()) else None
                setattr(self, name, value.to(device=device, dtype=target_dtype))
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


#: tensor kinds by prefix: what dtype each must have ("tensorN" floating, "itensorN" integer, "btensorN" bool).
_TENSOR_KINDS = {"tensor": "floating", "itensor": "integer", "btensor": "bool"}
_FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def _dtype_kind(value: torch.Tensor) -> str:
    if value.dtype == torch.bool:
        return "bool"
    if value.is_floating_point():
        return "floating"
    return "complex" if value.is_complex() else "integer"


def _check_type(owner: str, name: str, value: Any, kind: str) -> None:
    prefix = kind.rstrip("0123456789")
    if prefix in _TENSOR_KINDS:
        ndim = int(kind[len(prefix):])
        if not isinstance(value, torch.Tensor):
            raise FileFormatError(f"{owner} state {name} must be a tensor, got {type(value).__name__}")
        wanted = _TENSOR_KINDS[prefix]
        if _dtype_kind(value) != wanted:
            dtype = str(value.dtype).replace("torch.", "")
            raise FileFormatError(f"{owner} state {name} must hold {wanted} values, got dtype {dtype}")
        if value.ndim != ndim:
            raise FileFormatError(f"{owner} state {name} must be {ndim}-D, got shape {list(value.shape)}")
        if wanted == "floating" and value.numel():
            if not bool(torch.isfinite(value).all()):
                raise FileFormatError(f"{owner} state {name} holds NaN/Inf")
            if float(torch.linalg.vector_norm(value.double())) > _FLOAT32_MAX:
                raise FileFormatError(f"{owner} state {name} holds values too large for float32 (its norm overflows)")
        return
    wrong_bool = isinstance(value, bool) and kind != "bool"
    if wrong_bool or not isinstance(value, _SCALARS[kind]):
        raise FileFormatError(f"{owner} state {name} must be a {kind}, got {type(value).__name__}")
    if kind == "float" and not math.isfinite(value):
        raise FileFormatError(f"{owner} state {name} must be finite, got {value}")
    if kind == "float" and abs(value) > _FLOAT32_MAX:
        raise FileFormatError(f"{owner} state {name} is {value:g}, beyond float32's range")


def estimator_class(name: str) -> type[Estimator]:
    """The registered estimator class called ``name`` (as saved in a file's metadata)."""
    import relcli.core.heads  # noqa: F401  (registers every estimator)
    import relcli.core.irp  # noqa: F401
    import relcli.core.relative  # noqa: F401
    import relcli.core.translate  # noqa: F401

    if not isinstance(name, str) or name not in ESTIMATORS:
        raise FileFormatError(f"unknown estimator {name!r}; known: {', '.join(sorted(ESTIMATORS))}")
    return ESTIMATORS[name]
