"""Exception types shared by every layer; the CLI maps them to exit codes in one place.

``exit_code`` follows DESIGN §6: 1 for a runtime or data problem, 2 for a usage error.
Messages are one line; ``path``, when given, names the file the problem is in.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class RelcliError(Exception):
    """Base of relcli's errors: a one-line message, optionally tied to a file."""

    exit_code = 1

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else os.fspath(path)

    def __str__(self) -> str:
        return one_line(f"{shown_path(self.path)}: {self.message}" if self.path else self.message)


class UsageError(RelcliError, ValueError):
    """The command or call was used wrongly (bad option value, unknown name): exit 2."""

    exit_code = 2


class FileFormatError(RelcliError):
    """A file is missing, unreadable, or does not follow the embedding-file contract."""


class DataError(RelcliError, ValueError):
    """The numbers do not fit: shapes, ids, NaN/Inf or zero rows, too few anchors."""


#: the names of bad rows in messages (``relcli.core._common.invalid_rows`` is the one test of them)
NONFINITE = "NaN/Inf"
ZERO = "all zeros (no direction)"


class RowsError(DataError):
    """Some rows of one input cannot be used.

    ``positions`` are the rows' positions in the tensor the kernel was given (a chunk, say);
    ``problem`` says what is wrong with them ("NaN/Inf", "all zeros: no direction", ...). The
    one row loop of ``relcli.api`` turns positions into the file's ids, or drops the rows.
    """

    def __init__(self, problem: str, positions: Sequence[int], what: str = "input", path=None):
        self.problem = problem
        self.positions = [int(p) for p in positions]
        self.what = what
        super().__init__(f"{what} has {problem} in {describe_rows(self.positions, noun='rows')}", path)


class NotFittedError(RelcliError, RuntimeError):
    """An estimator was used before ``fit`` (or loading) gave it its learned state."""


class OutputError(RelcliError):
    """An output could not be written (full disk, file-size limit, I/O error); nothing was left behind."""


def describe_rows(keys: Sequence, noun: str = "ids", limit: int = 5) -> str:
    """``3 row(s) (ids 'a', 'b', 'c')``: how every message names a set of rows."""
    keys = list(keys)
    shown = ", ".join(repr(k) if isinstance(k, str) else str(k) for k in keys[:limit])
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return f"{len(keys)} row(s) ({noun} {shown}{more})"


def shown_path(path: str) -> str:
    """A path as a message shows it: as is, or, when it holds control characters (a newline), quoted the
    way ``ls`` does, ``'bad'$'\\n''name.h5'``, so the message stays one line and the name is exact."""
    if not _CONTROL.search(path):
        return path
    parts = []
    for text, control in re.findall(r"([^\x00-\x1f\x7f]*)([\x00-\x1f\x7f]*)", path):
        if text:
            parts.append("'" + text.replace("'", "'\\''") + "'")
        if control:
            escaped = "".join({"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(c, f"\\x{ord(c):02x}") for c in control)
            parts.append(f"$'{escaped}'")
    return "".join(parts)


def one_line(message: str) -> str:
    """A message on one line: control characters left in it (from a name inside the text) become '?'."""
    return _CONTROL.sub("?", message)
