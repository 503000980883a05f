"""The estimator contract shared by everything relcli fits.

Parameters are stored by ``__init__`` under their own names and nothing else happens there;
``fit`` returns ``self``; learned state lives in public attributes whose names end in ``_``.
Tensor state and JSON-able state (floats, lists, dicts) are split by ``fitted_state`` so the
I/O layer can write them into a safetensors file (tensors + JSON header metadata) and
``from_fitted_state`` can rebuild the estimator without re-fitting. Every subclass is
registered by class name in ``ESTIMATORS`` so a saved file names the class that reads it.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch

from relcli.errors import FileFormatError, NotFittedError

ESTIMATORS: dict[str, type["Estimator"]] = {}


class Estimator:
    """Base class: ``get_params``, fitted-state checks, save/load of state, device moves."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
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

    def _learned_names(self) -> list[str]:
        return [n for n in vars(self) if n.endswith("_") and not n.startswith("_")]

    @property
    def is_fitted(self) -> bool:
        return bool(self._learned_names())

    def check_fitted(self) -> None:
        """Raise ``NotFittedError`` unless ``fit`` (or loading) has run."""
        if not self.is_fitted:
            raise NotFittedError(f"{type(self).__name__} is not fitted: call fit() first")

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
        """Rebuild a fitted estimator from ``get_params()`` and ``fitted_state()`` output."""
        unknown = set(params) - set(cls._param_names())
        if unknown:
            raise FileFormatError(f"{cls.__name__} does not take parameters {sorted(unknown)}")
        estimator = cls(**params)
        for name, value in {**tensors, **(extras or {})}.items():
            if not name.endswith("_"):
                raise FileFormatError(f"learned state name {name!r} must end in '_'")
            setattr(estimator, name, value)
        return estimator

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None):
        """Move the tensor state to ``device``/``dtype`` (floating tensors only change dtype)."""
        for name in self._learned_names():
            value = getattr(self, name)
            if isinstance(value, torch.Tensor):
                target_dtype = dtype if (dtype is not None and value.is_floating_point()) else None
                setattr(self, name, value.to(device=device, dtype=target_dtype))
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"


def estimator_class(name: str) -> type[Estimator]:
    """The registered estimator class called ``name`` (as saved in a file's metadata)."""
    import relcli.core  # noqa: F401  (registers every estimator)

    try:
        return ESTIMATORS[name]
    except KeyError:
        raise FileFormatError(
            f"unknown estimator {name!r}; known: {', '.join(sorted(ESTIMATORS))}"
        ) from None
