"""Exception types shared by every layer; the CLI maps them to exit codes in one place.

``exit_code`` follows DESIGN §6: 1 for a runtime or data problem, 2 for a usage error.
Messages are one line; ``path``, when given, names the file the problem is in.
"""

from __future__ import annotations

import os
from collections.abc import Sequence


class RelcliError(Exception):
    """Base of relcli's errors: a one-line message, optionally tied to a file."""

    exit_code = 1

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else os.fspath(path)

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class UsageError(RelcliError, ValueError):
    """The command or call was used wrongly (bad option value, unknown name): exit 2."""

    exit_code = 2


class FileFormatError(RelcliError):
    """A file is missing, unreadable, or does not follow the embedding-file contract."""


class DataError(RelcliError, ValueError):
    """The numbers do not fit: shapes, ids, NaN/Inf or zero rows, too few anchors."""


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
