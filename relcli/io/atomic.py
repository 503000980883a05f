"""Atomic outputs: write to a hidden sibling temp file, rename into place only on success.

An interrupted or failed step leaves no output file, never a half one, and an existing output
is replaced only after success (so reading and writing the same path in one step is safe).
Temp files are named ``.NAME.PID.RANDOM.relcli-tmp``; a temp file left by a process that no
longer runs (e.g. killed with SIGKILL) is removed the next time the same output is written,
and since it never carries the output's name it is never mistaken for output.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from relcli.errors import FileFormatError, UsageError

TEMP_SUFFIX = ".relcli-tmp"
WRITABLE_SUFFIXES = {".h5": "hdf5", ".hdf5": "hdf5", ".safetensors": "safetensors"}


def output_format(path: str | os.PathLike) -> str:
    """'hdf5' or 'safetensors' from the output's extension; anything else is a usage error."""
    suffix = Path(path).suffix.lower()
    try:
        return WRITABLE_SUFFIXES[suffix]
    except KeyError:
        raise UsageError(
            f"unknown output extension {suffix or '(none)'!r}: relcli writes .h5/.hdf5 or .safetensors",
            path,
        ) from None


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before any work, when the output's folder is missing or not writable."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise FileFormatError(f"cannot write: folder {str(folder)!r} does not exist", path)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FileFormatError(f"cannot write: folder {str(folder)!r} is not writable", path)
    if path.is_dir():
        raise FileFormatError("cannot write: it is a folder", path)
    return path


def check_output(path: str | os.PathLike) -> Path:
    """Before any work: the output's extension names a format relcli writes and its folder is writable."""
    output_format(path)
    return check_writable(path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temps(path: Path) -> None:
    """Delete temp files of ``path`` whose writer process is gone."""
    prefix = f".{path.name}."
    folder = path.parent if str(path.parent) else Path(".")
    for candidate in folder.glob(f"{glob_escape(prefix)}*{TEMP_SUFFIX}"):
        middle = candidate.name[len(prefix) : -len(TEMP_SUFFIX)]
        pid_text = middle.split(".", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            with contextlib.suppress(OSError):
                candidate.unlink()


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it to ``path`` when the block succeeds.

    On any exception (KeyboardInterrupt included) the temp file is deleted and ``path`` is left
    exactly as it was.
    """
    path = check_writable(path)
    remove_stale_temps(path)
    folder = path.parent if str(path.parent) else Path(".")
    temp = folder / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    try:
        yield temp
        if not temp.exists():
            raise FileFormatError("internal error: nothing was written", path)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temp.unlink()
        raise
