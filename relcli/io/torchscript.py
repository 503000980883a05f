"""TorchScript modules (encoders and heads) loaded from local files, with errors that name the file."""

from __future__ import annotations

import re
from pathlib import Path

from relcli.errors import FileFormatError

SUFFIXES = (".pt", ".pth", ".ts", ".jit")


#: an exception class name at the head of a line ("RuntimeError: ", "torch.jit.Error: "): not for users.
_CLASS_PREFIX = re.compile(r"^(?:[A-Za-z_][\w.]*(?:Error|Exception)\b:?\s*)+")


def error_cause(exc: BaseException) -> str:
    """The informative line of an error: TorchScript puts the real cause on its last line (without the
    exception class name it starts with)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    cause = _CLASS_PREFIX.sub("", lines[-1]).strip() if lines else ""
    return cause[:200] or "unknown error"


def load_torchscript(path: Path, device, what: str = "TorchScript module"):
    """``torch.jit.load`` in eval mode on ``device``; a missing or foreign file is a FileFormatError."""
    import warnings

    import torch

    if not path.exists():
        raise FileFormatError(f"{what} not found", path)
    if path.is_dir():
        raise FileFormatError(f"{what} must be a file, not a folder", path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.13 deprecates TorchScript
            return torch.jit.load(str(path), map_location=device).eval()
    except (RuntimeError, ValueError, OSError) as exc:
        raise FileFormatError(f"is not a TorchScript module: {error_cause(exc)}", path) from None
