"""Embedding files (DESIGN §3): open any supported file, write HDF5 or safetensors by extension.

Readers stream row chunks as CPU torch tensors without loading the file (one module per
format: ``hdf5``, ``safetensors``, ``npy``). ``EmbeddingWriter`` fills a file chunk by chunk
inside an atomic temp file; the row count, the ids and labels (whole, or chunk by chunk with
the rows) and the metadata may all be settled only when it closes. It never writes NaN/Inf: a
chunk holding them raises ``RowsError`` with their positions, before anything of it is written.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from relcli.errors import NONFINITE, DataError, FileFormatError, OutputError, RowsError, UsageError
from relcli.io.meta import EMBEDDING_KINDS, FORMAT_VERSION, KINDS
from relcli.io._reader import FLOAT_DTYPES, EmbeddingReader, as_id_array, check_unique, pair_keys
from relcli.io.atomic import OutputGroup, check_space, describe_os_error, output_format

HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2}

__all__ = ["EMBEDDING_KINDS", "FLOAT_DTYPES", "KINDS", "EmbeddingReader", "EmbeddingWriter", "open_embeddings", "sniff_format", "write_embeddings"]


def sniff_format(path: Path) -> str:
    """'hdf5', 'safetensors' or 'npy' from the file's first bytes (extension only as a hint)."""
    try:
        is_folder = stat.S_ISDIR(os.stat(path).st_mode)
    except OSError as exc:  # missing, or a name the system refuses (too long, a symlink loop)
        missing = exc.errno in (errno.ENOENT, errno.ENOTDIR)
        raise FileFormatError("no such file" if missing else f"cannot read: {exc.strerror or 'input/output error'}",
                              path) from None
    if is_folder:
        raise FileFormatError("is a folder, not an embedding file", path)
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as exc:
        raise FileFormatError(f"cannot read: {exc.strerror or exc}", path) from None
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(NPY_MAGIC):
        return "npy"
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        raise FileFormatError("is not an HDF5 file (bad signature; truncated or corrupt?)", path)
    if suffix == ".npy":
        raise FileFormatError("is not a .npy file (bad magic)", path)
    if len(head) == 8 and 2 <= struct.unpack("<Q", head)[0] <= 100_000_000:
        return "safetensors"
    if suffix == ".safetensors":
        raise FileFormatError("safetensors header is truncated or invalid", path)
    raise FileFormatError("is neither HDF5, safetensors nor .npy", path)


def open_embeddings(path: str | os.PathLike, key: str | None = None) -> EmbeddingReader:
    """Open an embedding file of any supported format (sniffed from its first bytes)."""
    from relcli.io.hdf5 import HDF5Reader
    from relcli.io.npy import NpyReader
    from relcli.io.safetensors import SafetensorsReader

    path = Path(path)
    readers = {"hdf5": HDF5Reader, "safetensors": SafetensorsReader, "npy": NpyReader}
    return readers[sniff_format(path)](path, key)


def _as_numpy(values) -> np.ndarray:
    """Auxiliary arrays as numpy (bfloat16, which numpy lacks, is widened to float32)."""
    if hasattr(values, "detach"):
        import torch

        tensor = values.detach().cpu().contiguous()
        return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    return np.asarray(values)


@dataclass
class Prepared:
    """A chunk checked and converted by ``EmbeddingWriter.prepare``, ready to ``append``."""

    block: np.ndarray
    extras: dict[str, np.ndarray]


def _smallest(dtype) -> float:
    """The smallest positive value of a torch float dtype (a subnormal: the normal minimum times eps)."""
    import torch

    info = torch.finfo(dtype)
    return info.smallest_normal * info.eps


class EmbeddingWriter:
    """Write an embedding file chunk by chunk, atomically.

    >>> with EmbeddingWriter("y.h5", ids=ids, attrs={"kind": "embeddings"}) as w:
    ...     for chunk in chunks: w.write(chunk)

    ``n_rows`` and ``dim`` may be left out (known at the end, or from the first chunk). ``ids``/
    ``labels`` are given whole up front, or chunk by chunk with ``write(chunk, ids=, labels=)``.
    ``arrays``: auxiliary numeric tensors; ``id_arrays``: auxiliary id lists (``anchor_ids``).
    ``attrs`` (relcli.* metadata; ``format`` and ``kind`` are always present) may be updated
    until the writer closes. ``group`` joins an ``OutputGroup`` of outputs renamed together.
    ``allow_nonfinite`` lets NaN/Inf through (for tests and foreign data; no command sets it).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_rows: int | None = None,
        dim: int | None = None,
        dtype: str = "float32",
        *,
        ids=None,
        labels=None,
        attrs: dict[str, Any] | None = None,
        arrays: dict[str, Any] | None = None,
        id_arrays: dict[str, Any] | None = None,
        group: OutputGroup | None = None,
        allow_nonfinite: bool = False,
    ):
        self.path = Path(path)
        self.allow_nonfinite = allow_nonfinite
        self.format = output_format(self.path)
        if dtype not in FLOAT_DTYPES:
            raise UsageError(f"unsupported output dtype {dtype!r}; choose one of {', '.join(FLOAT_DTYPES)}")
        if dtype == "bfloat16" and self.format == "hdf5":
            raise UsageError("HDF5 cannot store bfloat16: write .safetensors or use --dtype float32", self.path)
        self.n_rows = None if n_rows is None else int(n_rows)
        self.dim = None if dim is None else int(dim)
        self.dtype = dtype
        self.attrs = {"format": FORMAT_VERSION, "kind": "embeddings", **(attrs or {})}
        if self.attrs["kind"] not in EMBEDDING_KINDS:
            raise UsageError(f"unknown kind of embedding file {self.attrs['kind']!r}; one of {', '.join(EMBEDDING_KINDS)}")
        self._whole = {}
        for name, values in (("ids", ids), ("labels", labels)):
            if values is not None:
                if self.n_rows is not None and len(values) != self.n_rows:
                    raise DataError(f"{len(values)} {name} for {self.n_rows} rows", self.path)
                self._whole[name] = as_id_array(values)
        self.id_arrays = {k: as_id_array(v) for k, v in (id_arrays or {}).items()}
        if "ids" in self._whole:
            self._check_ids(self._whole["ids"])
        self._chunks: dict[str, list[np.ndarray]] = {"ids": [], "labels": []}
        self._columns: dict[str, list[np.ndarray]] = {}
        self.arrays = {k: _as_numpy(v) for k, v in (arrays or {}).items()}
        self.rows_written = 0
        self._group = group
        self._own_group = None
        self._format_writer = None

    def _check_ids(self, ids: np.ndarray) -> None:
        source = self.id_arrays.get("source_ids")
        try:
            check_unique(ids if source is None or len(source) != len(ids) else pair_keys(source, ids), self.path)
        except FileFormatError as exc:
            raise DataError(exc.message, self.path) from None

    def __enter__(self):
        if self._group is None:
            self._own_group = self._group = OutputGroup()
        try:
            self._temp = self._group.temp(self.path)
            if self.dim is not None:
                self._open_format(self.dim)
        except BaseException as error:  # __exit__ will not run: remove the temp file here
            if self._own_group is not None:
                self._own_group.__exit__(type(error), error, error.__traceback__)
            raise
        return self

    def _open_format(self, dim: int) -> None:
        from relcli.io.hdf5 import HDF5Writer
        from relcli.io.safetensors import SafetensorsWriter

        if dim < 1:
            raise DataError(f"cannot write embeddings with {dim} dimensions", self.path)
        self.dim = dim
        if self.n_rows is not None:
            check_space(self.path, self.n_rows * dim * ITEMSIZE[self.dtype])
        cls = HDF5Writer if self.format == "hdf5" else SafetensorsWriter
        try:
            self._format_writer = cls(self._temp, dim, self.dtype, self.n_rows, self.path)
        except OSError as exc:
            raise OutputError(describe_os_error(exc), self.path) from None

    def write(self, chunk, ids=None, labels=None, columns: dict | None = None) -> None:
        """Append the next rows (torch tensor or numpy array, (rows, dim)), with their ids/labels
        and per-row ``columns`` (name -> one float per row, stored as a float32 array of that name).

        Rows holding NaN/Inf (after conversion to the output dtype) raise ``RowsError`` naming
        their positions in ``chunk``; nothing of the chunk is written then.
        """
        self.append(self.prepare(chunk, ids, labels, columns))

    def prepare(self, chunk, ids=None, labels=None, columns: dict | None = None) -> "Prepared":
        """The checks and conversions of ``write`` without the I/O: ``append`` the result to write it.

        Split so that a pipeline can check a chunk where it was computed (a ``RowsError`` belongs to
        the row loop) and write it from another thread while the next chunk computes.
        """
        tensor = self._convert(chunk)
        if tensor.ndim != 2 or (self.dim is not None and tensor.shape[1] != self.dim):
            raise DataError(f"chunk of shape {list(tensor.shape)} does not fit (rows, {self.dim})", self.path)
        if not self.allow_nonfinite:
            finite = self._finite_rows(tensor)
            if finite is not None:
                overflow = f" after conversion to {self.dtype} (values beyond its range)" if self._finite_input(chunk) else ""
                raise RowsError(NONFINITE + overflow, (~finite).nonzero().flatten().tolist(), "output")
        lost = self._vanished_rows(chunk, tensor)
        if len(lost):
            raise RowsError(f"all zeros after conversion to {self.dtype} (every value below its range)", lost, "output")
        n = tensor.shape[0]
        extras: dict[str, np.ndarray] = {}
        for name, values in (("ids", ids), ("labels", labels)):
            if values is not None:
                if name in self._whole:
                    raise DataError(f"{name} given both whole and with the rows", self.path)
                if len(values) != n:
                    raise DataError(f"{len(values)} {name} for a chunk of {n} rows", self.path)
                extras[name] = as_id_array(values)
        for name, values in (columns or {}).items():
            values = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float32).reshape(-1)
            if len(values) != n:
                raise DataError(f"{len(values)} {name} values for a chunk of {n} rows", self.path)
            extras["column:" + name] = values
        return Prepared(self._numpy(tensor), extras)

    def append(self, prepared: "Prepared") -> None:
        """Write a prepared chunk (in order: one caller at a time)."""
        block = prepared.block
        if self.n_rows is not None and self.rows_written + block.shape[0] > self.n_rows:
            raise DataError(f"more rows written than the {self.n_rows} announced", self.path)
        for name, values in prepared.extras.items():
            if name.startswith("column:"):
                self._columns.setdefault(name[len("column:"):], []).append(values)
            else:
                self._chunks[name].append(values)
        if self._format_writer is None:
            self._open_format(block.shape[1])
        self._format_writer.append(block)
        self.rows_written += block.shape[0]

    @staticmethod
    def _finite_rows(tensor):
        """None when every row is finite (one cheap pass), else the mask of finite rows."""
        import torch

        if tensor.shape[1] == 0 or bool(torch.isfinite(tensor.sum())):
            return None  # NaN and Inf survive a sum: a finite sum means finite rows (an overflowing one is checked below)
        finite = torch.isfinite(tensor).all(dim=1)
        return None if bool(finite.all()) else finite

    def _vanished_rows(self, chunk, tensor) -> list[int]:
        """Rows that held a value but are all zeros in the output dtype (a float64 .vec row of 1e-50s
        in float32, a row of 1e-9s in float16): their direction is lost, as an overflow's is."""
        import torch

        source_dtype = chunk.dtype if hasattr(chunk, "detach") else torch.from_numpy(np.asarray(chunk)[:0]).dtype
        if tensor.numel() == 0 or not source_dtype.is_floating_point or _smallest(tensor.dtype) <= _smallest(source_dtype):
            return []  # the output reaches every nonzero value the input can hold (integers are at least 1)
        empty = tensor.abs().amax(dim=1) == 0  # 3× faster than ~any(dim=1) on the CPU
        if not bool(empty.any()):
            return []
        source = chunk.detach().cpu() if hasattr(chunk, "detach") else torch.from_numpy(np.asarray(chunk))
        return (empty & source.any(dim=1)).nonzero().flatten().tolist()

    @staticmethod
    def _finite_input(chunk) -> bool:
        if hasattr(chunk, "detach"):
            import torch

            return bool(torch.isfinite(chunk).all())
        return bool(np.isfinite(np.asarray(chunk, dtype=np.float64)).all())

    def _convert(self, chunk):
        """The chunk as a CPU tensor in the output dtype."""
        import torch

        if not hasattr(chunk, "detach"):  # numpy: convert in numpy, keeping every bit (NaN payloads too)
            chunk = torch.from_numpy(np.ascontiguousarray(chunk, dtype=np.float32 if self.dtype == "bfloat16" else self.dtype))
        return chunk.detach().to("cpu", getattr(torch, self.dtype)).contiguous()

    def _numpy(self, tensor) -> np.ndarray:
        import torch

        return tensor.view(torch.uint16).numpy() if self.dtype == "bfloat16" else tensor.numpy()

    def _aux(self) -> dict[str, np.ndarray]:
        aux = {}
        for name in ("ids", "labels"):
            if name in self._whole:
                aux[name] = self._whole[name]
            elif self._chunks[name]:
                parts = self._chunks[name]
                values = np.concatenate(parts) if all(p.dtype == parts[0].dtype for p in parts) else as_id_array(
                    [str(v) for p in parts for v in p.tolist()]
                )
                if len(values) != self.rows_written:
                    raise DataError(f"{len(values)} {name} for {self.rows_written} rows", self.path)
                aux[name] = values
        if "ids" in aux and "ids" not in self._whole:
            self._check_ids(aux["ids"])
        return {**aux, **self.id_arrays}

    def __exit__(self, exc_type, exc, tb):
        try:
            if exc_type is None:
                if self.n_rows is not None and self.rows_written != self.n_rows:
                    raise DataError(f"wrote {self.rows_written} of {self.n_rows} rows", self.path)
                if self._format_writer is None:
                    self._open_format(self.dim or 1)
                columns = {name: np.concatenate(parts) for name, parts in self._columns.items()}
                self._format_writer.finish(self._aux(), {**self.arrays, **columns}, self.attrs)
        except BaseException as error:
            if self._format_writer is not None:
                self._format_writer.abort()
            if self._own_group is not None:
                self._own_group.__exit__(type(error), error, error.__traceback__)
            raise
        if exc_type is not None and self._format_writer is not None:
            self._format_writer.abort()
        if self._own_group is not None:
            self._own_group.__exit__(exc_type, exc, tb)
        return False


def write_embeddings(path: str | os.PathLike, matrix, dtype: str | None = None, **kwargs) -> Path:
    """Write a whole in-memory matrix (torch or numpy) as an embedding file, atomically."""
    if dtype is None:
        dtype = str(getattr(matrix, "dtype", "float32")).replace("torch.", "")
    n_rows, dim = int(matrix.shape[0]), int(matrix.shape[1])
    with EmbeddingWriter(path, n_rows, dim, dtype, **kwargs) as writer:
        if n_rows:
            writer.write(matrix)
    return Path(path)
