"""Bare ``.npy`` matrices: read only (no ids, labels or metadata; the row index is the id)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from relcli.errors import FileFormatError
from relcli.io._reader import EmbeddingReader, native, short

SUPPORTED = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")


class NpyReader(EmbeddingReader):
    format = "npy"

    def __init__(self, path: Path, key: str | None):
        super().__init__(path, key)
        try:
            self._array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise FileFormatError(f"cannot read .npy (truncated or not a numeric array?): {short(exc)}", path) from None
        self.key = "array"
        if self._array.ndim != 2:
            raise FileFormatError(
                f"array is {self._array.ndim}-D (shape {list(self._array.shape)}); relcli needs a 2-D matrix (rows, dims)", path
            )
        if self._array.dtype.name not in SUPPORTED:
            raise FileFormatError(f"array has unsupported dtype {self._array.dtype}", path)
        self.shape = (int(self._array.shape[0]), int(self._array.shape[1]))
        self.dtype = self._array.dtype.name
        self._finish_open()

    def _read_slice(self, start: int, stop: int):
        import torch

        return torch.from_numpy(np.array(native(self._array[start:stop])))

    def array_shapes(self):
        return {"array": (list(self._array.shape), self.dtype)}
