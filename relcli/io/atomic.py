"""Atomic outputs: write to a hidden sibling temp file, rename into place only on success.

An interrupted or failed step leaves no output file, never a half one, and an existing output
is replaced only after success (so reading and writing the same path in one step is safe).
Temp files are named ``.NAME.PID.RANDOM.relcli-tmp`` (NAME shortened with a hash when the name
would pass the file-system limit); a temp file left by a process that no longer runs (e.g.
killed with SIGKILL) is removed the next time the same output is written, and since it never
carries the output's name it is never mistaken for output.

A step with several outputs (``translate -o y.h5 --save-map m.safetensors``) writes all temps
first and renames them together at the end (``OutputGroup``): both or neither.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from relcli import interrupts
from relcli.errors import FileFormatError, OutputError, UsageError

TEMP_SUFFIX = ".relcli-tmp"
WRITABLE_SUFFIXES = {".h5": "hdf5", ".hdf5": "hdf5", ".safetensors": "safetensors"}
_MAX_NAME_BYTES = 255


def output_format(path: str | os.PathLike) -> str:
    """'hdf5' or 'safetensors' from the output's extension; anything else is a usage error."""
    suffix = Path(path).suffix.lower()
    try:
        return WRITABLE_SUFFIXES[suffix]
    except KeyError:
        raise UsageError(
            f"unknown output extension {suffix or '(none)'!r}: relcli writes .h5/.hdf5 or .safetensors", path
        ) from None


def check_writable(path: str | os.PathLike) -> Path:
    """Fail early, before any work, when the output's folder is missing or not writable."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if len(os.fsencode(path.name)) > _MAX_NAME_BYTES:
        raise UsageError(f"cannot write: the file name is longer than {_MAX_NAME_BYTES} bytes", path)
    try:
        if not folder.is_dir():
            raise FileFormatError(f"cannot write: folder {str(folder)!r} does not exist", path)
        if not os.access(folder, os.W_OK | os.X_OK):
            raise FileFormatError(f"cannot write: folder {str(folder)!r} is not writable", path)
        if path.is_dir():
            raise FileFormatError("cannot write: it is a folder", path)
    except OSError as exc:  # a name the system refuses: a folder name over 255 bytes, a path too long
        raise FileFormatError(f"cannot write: {exc.strerror or 'input/output error'}", path) from None
    return path


def check_output(path: str | os.PathLike) -> Path:
    """Before any work: the output's extension names a format relcli writes and its folder is writable."""
    output_format(path)
    return check_writable(path)


def describe_os_error(error: OSError) -> str:
    """'cannot write: no space left on device; nothing was written' and the like."""
    reason = {
        errno.ENOSPC: "no space left on device",
        errno.EFBIG: "the file-size limit was reached (ulimit -f)",
        errno.EDQUOT: "the disk quota is exceeded",
    }.get(error.errno, error.strerror or str(error))
    return f"cannot write: {reason}; nothing was written"


def guarded(output, action):
    """``action()``, with an OSError (a full disk, a file-size limit) raised as the one-line
    ``OutputError`` that names ``output``."""
    try:
        return action()
    except OSError as exc:
        raise OutputError(describe_os_error(exc), output) from None


def check_space(path: Path, expected_bytes: int) -> None:
    """Fail before the work when the output cannot fit: free space, and the file-size limit."""
    folder = path.parent if str(path.parent) else Path(".")
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(folder).free
        if expected_bytes > free:
            raise OutputError(
                f"cannot write: no space left on device (needs about {_size(expected_bytes)}, {_size(free)} free); "
                "nothing was written",
                path,
            )
    with contextlib.suppress(ImportError, OSError, ValueError):
        import resource

        limit = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
        if limit != resource.RLIM_INFINITY and expected_bytes > limit:
            raise OutputError(
                f"cannot write: the file-size limit (ulimit -f, {_size(limit)}) is below the output's "
                f"{_size(expected_bytes)}; nothing was written",
                path,
            )


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _stem(path: Path) -> str:
    """The part of the temp name that comes from the output's name (hashed when too long)."""
    name = path.name
    if len(os.fsencode(name)) + 48 <= _MAX_NAME_BYTES:
        return name
    return "h" + hashlib.sha256(os.fsencode(name)).hexdigest()[:32]


def remove_stale_temps(path: Path) -> None:
    """Delete temp files of ``path`` whose writer process is gone."""
    prefix = f".{_stem(path)}."
    folder = path.parent if str(path.parent) else Path(".")
    for candidate in folder.glob(f"{glob_escape(prefix)}*{TEMP_SUFFIX}"):
        middle = candidate.name[len(prefix) : -len(TEMP_SUFFIX)]
        pid_text = middle.split(".", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            with contextlib.suppress(OSError):
                candidate.unlink()


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def temp_path(path: Path) -> Path:
    folder = path.parent if str(path.parent) else Path(".")
    return folder / f".{_stem(path)}.{os.getpid()}.{secrets.token_hex(4)}{TEMP_SUFFIX}"


class OutputGroup:
    """Outputs written together: each gets a temp path; all are renamed into place at the end or none.

    >>> with OutputGroup() as group:
    ...     write(group.temp(y_path)); save(group.temp(map_path))
    """

    def __init__(self) -> None:
        self._temps: dict[Path, Path] = {}

    def temp(self, path: str | os.PathLike) -> Path:
        path = check_writable(path)
        if path in self._temps:
            raise UsageError("two outputs of one step have the same path", path)
        remove_stale_temps(path)
        self._temps[path] = temp_path(path)
        return self._temps[path]

    def __enter__(self) -> "OutputGroup":
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                interrupts.check()  # a signal recorded during I/O: no output
                for path, temp in self._temps.items():
                    if not temp.exists():
                        raise FileFormatError("internal error: nothing was written", path)
                with interrupts.critical():  # all renamed, or (an OSError) the rest left out; never half by a signal
                    for path, temp in self._temps.items():
                        try:
                            os.replace(temp, path)
                        except OSError as error:
                            raise OutputError(describe_os_error(error), path) from None
                    interrupts.committed()
                return False
        finally:
            for temp in self._temps.values():
                with contextlib.suppress(OSError):
                    temp.unlink()
        return False


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it to ``path`` when the block succeeds.

    On any exception (KeyboardInterrupt included) the temp file is deleted and ``path`` is left
    exactly as it was.
    """
    with OutputGroup() as group:
        yield group.temp(path)
