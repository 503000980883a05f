"""Option values converted without pydantic.

Typer (>= 0.26) converts every option value through a pydantic ``TypeAdapter``; importing pydantic
costs ~0.2 s, paid by every ``relcli`` command before it starts. relcli's options only use plain
annotations — ``str``, ``int``, ``float``, ``Path``, ``bool``, a ``Literal`` of choices, lists of
these, with ``min``/``max`` — so they are converted here, with messages of relcli's own. Anything
else (a custom parser, a file, a tuple, clamping) still goes to Typer; so does everything on a
Typer version without these internals (nothing changes there but the start-up time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

PLAIN = (str, int, float, Path, bool)


def _literal_choices(annotation: Any) -> tuple | None:
    if get_origin(annotation) is Literal and all(isinstance(c, str) for c in get_args(annotation)):
        return get_args(annotation)
    return None


def _element(annotation: Any) -> Any:
    """The annotation of one value: ``list[X]`` -> X, else the annotation itself."""
    return get_args(annotation)[0] if get_origin(annotation) is list and len(get_args(annotation)) == 1 else annotation


def handled(annotation: Any, info: Any) -> bool:
    """Whether relcli converts values of this annotation itself."""
    if any(getattr(info, name, None) for name in ("parser", "click_type", "clamp")):
        return False
    leaf = _element(annotation)
    return leaf in PLAIN or _literal_choices(leaf) is not None


def _shown(value: Any) -> str:
    """``repr`` of a bad value, cut to keep the error on one readable line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _in_range(number, info) -> None:
    low, high = getattr(info, "min", None), getattr(info, "max", None)
    if low is not None and number < low:
        raise ValueError(f"{_shown(number)} is below the minimum, {low}")
    if high is not None and number > high:
        raise ValueError(f"{_shown(number)} is above the maximum, {high}")


def convert(annotation: Any, value: Any, info: Any, ctx: Any = None) -> Any:
    """One value (a command-line string, an environment variable, or a typed default) as
    ``annotation``; ValueError with a user-facing reason when it is not one."""
    choices = _literal_choices(annotation)
    if choices is not None:
        from typer._param_types import coerce_cli_choice

        return coerce_cli_choice(value, choices=choices, case_sensitive=info.case_sensitive, ctx=ctx)
    if annotation is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("1", "true", "yes", "on", "t", "y"):
            return True
        if text in ("0", "false", "no", "off", "f", "n"):
            return False
        raise ValueError(f"{_shown(value)} is not a boolean (true/false)")
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"{_shown(value)} is not an integer")
        try:
            number = int(value.strip()) if isinstance(value, str) else value
        except ValueError:
            raise ValueError(f"{_shown(value)} is not an integer") from None
        _in_range(number, info)
        return number
    if annotation is float:
        try:
            number = float(value.strip()) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{_shown(value)} is not a number") from None
        if not math.isfinite(number):
            raise ValueError(f"{_shown(value)} is not a finite number")
        _in_range(number, info)
        return number
    if annotation is Path:
        try:
            return Path(value)  # an empty one is judged where paths are (the API's checks), like any other
        except TypeError:
            raise ValueError(f"{_shown(value)} is not a path") from None
    if not isinstance(value, str):
        raise ValueError(f"{_shown(value)} is not text")
    return value


def install() -> None:
    """Route the plain annotations of every relcli option to ``convert`` (idempotent)."""
    try:
        from typer import _coercion, core
        from typer._click.exceptions import BadParameter
    except ImportError:  # another Typer: its own conversion, unchanged
        return
    build = getattr(core, "build_runtime_param", None)
    base = getattr(_coercion, "RuntimeParam", None)
    if build is None or base is None or getattr(build, "relcli_plain", False):
        return

    @dataclass(frozen=True)
    class PlainRuntimeParam(base):
        def _coerce_value(self, value, param, ctx):
            leaf = _element(self.annotation)
            try:
                if leaf is not self.annotation:
                    items = value if isinstance(value, (list, tuple)) else [value]
                    return [convert(leaf, item, self.parameter_info, ctx) for item in items]
                return convert(leaf, value, self.parameter_info, ctx)
            except ValueError as exc:
                raise BadParameter(str(exc), ctx=ctx, param=param) from None

    def build_runtime_param(descriptor):
        if descriptor.file_annotation is None and handled(descriptor.annotation, descriptor.parameter_info):
            return PlainRuntimeParam(annotation=descriptor.annotation, parameter_info=descriptor.parameter_info)
        return build(descriptor)

    build_runtime_param.relcli_plain = True
    core.build_runtime_param = build_runtime_param
