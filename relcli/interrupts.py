"""Ctrl-C and SIGTERM that always stop a step cleanly: no output, exit 130, every time.

A signal raises KeyboardInterrupt at once when it lands in relcli's own code, outside a *critical
section* (code that libraries call back into, such as the file object libhdf5 writes through, where
an exception would be swallowed with "Exception ignored ..." and the step would go on) and outside
an import. Anywhere else -- inside a library's Python code, which native code may have called (an
exception thrown through pybind11 there aborts the process), or while a native module initialises
-- the signal is only recorded, and ``check`` raises it at the next safe point. Outputs are renamed into place only after
a last ``check``, so a step that was interrupted never leaves an output behind, whatever it was doing;
once they are in place (``committed``) a signal is too late to undo the step and is ignored, so a
step never reports "interrupted" over an output it wrote. The CLI installs the handler
(``handling``); library users keep Python's own.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

_state = {"pending": False, "critical": 0, "committed": False}
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _safe_to_raise(frame) -> bool:
    """True when ``frame`` runs relcli's own code and no import is under way below it."""
    if frame is None or not frame.f_code.co_filename.startswith(_PACKAGE):
        return False
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return False
        frame = frame.f_back
    return True


def _handler(signum, frame) -> None:
    if _state["committed"]:
        return
    _state["pending"] = True
    if not _state["critical"] and _safe_to_raise(frame):
        raise KeyboardInterrupt


def check() -> None:
    """Raise KeyboardInterrupt if a signal came while it could not be raised."""
    if _state["pending"] and not _state["committed"]:
        raise KeyboardInterrupt


def committed() -> None:
    """The step's outputs are in place: from now on a signal is ignored (until the next ``handling``)."""
    _state["committed"] = True


def is_committed() -> bool:
    return _state["committed"]


@contextlib.contextmanager
def critical() -> Iterator[None]:
    """A section a signal must not interrupt with an exception (it is recorded instead)."""
    _state["critical"] += 1
    try:
        yield
    finally:
        _state["critical"] -= 1


@contextlib.contextmanager
def handling() -> Iterator[None]:
    """Install the handler for SIGINT and SIGTERM for the duration of a command."""
    _state["pending"] = _state["committed"] = False
    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, _handler)
        except ValueError:  # not in the main thread
            pass
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _state["pending"] = False
