"""What every encoder backend shares: ``EncoderOptions``, the ``Encoder`` protocol, option checks,
error helpers, and ``library_output`` (stderr kept for relcli while a model loads and runs)."""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from relcli.errors import FileFormatError, UsageError

#: Pooling modes over token states, named as sentence-transformers names them.
POOLINGS = ("mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
#: A tokenizer's ``model_max_length`` above this means "not set" (transformers uses 1e30).
UNSET_LIMIT = 1_000_000


@dataclass
class EncoderOptions:
    """Options a backend may use. ``None`` means "the model's own" (its token limit, its pooling);
    a built-in backend refuses an option that does not apply to it rather than ignore it."""

    device: Any = "cpu"
    max_length: int | None = None
    pooling: str | None = None
    tokenizer: Path | None = None
    output_name: str | None = None
    quiet: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Encoder(Protocol):
    """``modality`` is 'text' (encode takes a list of str) or 'tensor' (a float tensor batch).

    Optional attributes: ``path`` (the model file or folder errors should name) and ``settings``
    (a dict of what was really used, recorded in provenance).
    """

    modality: str

    def encode(self, batch) -> Any:  # returns a (rows, dims) torch tensor
        ...


def _missing_extra(package: str, extra: str) -> UsageError:
    return UsageError(f"this encoder needs the optional package {package!r}: pip install 'relcli[{extra}]'")


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def _require_path(path: Path, what: str, folder: bool = False) -> Path:
    if not path.exists():
        raise FileFormatError(f"{what} not found", path)
    if folder and not path.is_dir():
        raise FileFormatError(f"{what} must be a folder (a saved model)", path)
    if not folder and path.is_dir():
        raise FileFormatError(f"{what} must be a file, not a folder", path)
    return path


def _refuse(options: EncoderOptions, backend: str, names: tuple[str, ...], why: str = "") -> None:
    """Options that do not apply to a backend are a usage error, not silently ignored."""
    flags = {"max_length": "--max-length", "pooling": "--pooling", "tokenizer": "--tokenizer",
             "output_name": "--output-name"}
    for name in names:
        if getattr(options, name) is not None:
            raise UsageError(f"{flags[name]} does not apply to {backend}: encoders{why}")


def _check_pooling(pooling: str | None) -> None:
    if pooling is not None and pooling not in POOLINGS:
        raise UsageError(f"unknown --pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")


def _check_max_length(max_length: int | None) -> None:
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise UsageError(f"--max-length must be a positive integer, got {max_length!r}")


@contextmanager
def library_output(quiet: bool):
    """Keep stderr for relcli while loading and running a model.

    The libraries' own progress bars are always off (relcli draws its own); under ``quiet`` their
    logging shows only errors and Python warnings are off too. Nothing is imported here: libraries
    already imported are switched directly (the backends enter this after importing theirs);
    transformers, if it is first imported inside, through its environment variable. Everything is
    put back on exit, so nothing leaks into the caller's process.
    """
    import logging
    import sys
    import warnings

    env = {"TRANSFORMERS_VERBOSITY": "error"} if quiet else {}
    saved_env = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    before = {}
    if "transformers" in sys.modules:
        import transformers.utils.logging as tlog

        before["transformers"] = (tlog.is_progress_bar_enabled(), tlog.get_verbosity())
        tlog.disable_progress_bar()
        if quiet:
            tlog.set_verbosity(logging.ERROR)
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.utils as hub

        before["huggingface_hub"] = hub.are_progress_bars_disabled()
        hub.disable_progress_bars()
    st_logger = logging.getLogger("sentence_transformers")
    st_level = st_logger.level
    if quiet:
        st_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            yield
    finally:
        st_logger.setLevel(st_level)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if "transformers" in before:
            bar, verbosity = before["transformers"]
            tlog.set_verbosity(verbosity)
            (tlog.enable_progress_bar if bar else tlog.disable_progress_bar)()
        elif quiet and "transformers" in sys.modules:  # first imported inside, at error level
            import transformers.utils.logging as tlog

            tlog.set_verbosity(logging.WARNING)
        if "huggingface_hub" in before and not before["huggingface_hub"]:
            hub.enable_progress_bars()

