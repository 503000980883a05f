"""Exception types shared by every layer; the CLI maps them to exit codes in one place.

``exit_code`` follows DESIGN §6: 1 for a runtime or data problem, 2 for a usage error.
Messages are one line; ``path``, when given, names the file the problem is in.
"""

from __future__ import annotations

import os


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


class NotFittedError(RelcliError, RuntimeError):
    """An estimator was used before ``fit`` (or loading) gave it its learned state."""
