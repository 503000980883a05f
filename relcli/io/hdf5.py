"""HDF5 embedding files (``.h5``, ``.hdf5``): a reader and a writer.

Layout (DESIGN §3): dataset ``embeddings`` (N, d) chunked by rows; ``ids`` and ``labels`` as
UTF-8 strings or int64; other auxiliary datasets by name; ``relcli.*`` root attributes.

The writer does its I/O through a Python file object that never reports a failed write to
libhdf5: a full disk or a file-size limit is recorded, libhdf5 finishes and closes normally, and
the error is raised by relcli (``OutputError``). Letting libhdf5 see the failure leaves it unable
to close the file, and the interpreter then crashes at exit (a segfault on every full disk).
"""

from __future__ import annotations

import errno
import io
from pathlib import Path
from typing import Any

import numpy as np

from relcli import interrupts
from relcli.errors import DataError, FileFormatError, OutputError, RelcliError
from relcli.io import meta
from relcli.io._reader import EmbeddingReader, native, short
from relcli.io.atomic import describe_os_error

SUPPORTED = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
CHUNK_BYTES = 1 << 20


class HDF5Reader(EmbeddingReader):
    format = "hdf5"

    def __init__(self, path: Path, key: str | None):
        import h5py

        super().__init__(path, key)
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise FileFormatError(f"cannot read HDF5 (truncated or corrupt?): {short(exc)}", path) from None
        try:
            self._open()
        except BaseException:
            self._file.close()
            raise

    def _open(self) -> None:
        import h5py

        datasets: dict[str, tuple[int, ...]] = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                datasets[name] = tuple(obj.shape or ())

        try:
            self._file.visititems(visit)
            self.attrs = meta.decode(dict(self._file.attrs), all_json=False, path=self.path)
            self._refuse_estimators()
            self.key = self._select_key(datasets)
            self._matrix = self._file[self.key]
            self.dtype = _dtype_name(self._matrix.dtype, self.path)
            self.ids = self.strings("ids")
            self.labels = self.strings("labels")
        except RelcliError:
            raise
        except (OSError, RuntimeError, KeyError, ValueError, TypeError) as exc:
            raise FileFormatError(f"cannot read HDF5 (truncated or corrupt?): {short(exc)}", self.path) from None
        self._finish_open()

    def close(self) -> None:
        self._file.close()

    def _read(self, selection):
        import torch

        try:
            block = self._matrix[selection]
        except (OSError, RuntimeError, ValueError) as exc:
            raise FileFormatError(f"cannot read rows (truncated or corrupt?): {short(exc)}", self.path) from None
        return torch.from_numpy(np.ascontiguousarray(native(block)))

    def _read_slice(self, start: int, stop: int):
        return self._read(slice(start, stop))

    def _read_sorted(self, indices: np.ndarray):
        return self._read(indices if len(indices) > 1 else slice(int(indices[0]), int(indices[0]) + 1))

    def _dataset(self, name: str):
        import h5py

        if name not in self._file:
            return None
        dataset = self._file[name]
        if not isinstance(dataset, h5py.Dataset):
            raise FileFormatError(f"{name!r} must be a dataset, not a group", self.path)
        return dataset

    def array(self, name: str):
        import torch

        dataset = self._dataset(name)
        if dataset is None:
            return None
        if dataset.dtype.kind not in "fiub":
            raise FileFormatError(f"{name!r} must hold numbers, got {dataset.dtype}", self.path)
        try:
            return torch.from_numpy(np.array(native(np.asarray(dataset[()]))))
        except (OSError, RuntimeError) as exc:
            raise FileFormatError(f"cannot read {name!r}: {short(exc)}", self.path) from None

    def strings(self, name: str):
        dataset = self._dataset(name)
        if dataset is None:
            return None
        if dataset.ndim != 1:
            raise FileFormatError(f"{name!r} must be 1-D, got shape {list(dataset.shape)}", self.path)
        try:
            if dataset.dtype.kind in ("S", "O", "U"):
                values = np.empty(dataset.shape[0], dtype=object)
                values[:] = dataset.asstr()[...].tolist()
                return values
            if dataset.dtype.kind in ("i", "u"):
                return dataset[...].astype(np.int64)
        except UnicodeDecodeError:
            raise FileFormatError(f"{name!r} holds strings that are not valid UTF-8", self.path) from None
        except (OSError, RuntimeError) as exc:
            raise FileFormatError(f"cannot read {name!r}: {short(exc)}", self.path) from None
        raise FileFormatError(f"{name!r} must hold strings or integers, got {dataset.dtype}", self.path)

    def array_shapes(self):
        import h5py

        shapes = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                shapes[name] = (list(obj.shape or ()), str(obj.dtype) if obj.dtype.kind not in "SOU" else "string")

        self._file.visititems(visit)
        return shapes


def _dtype_name(dtype, path) -> str:
    name = np.dtype(dtype).name
    if name not in SUPPORTED:
        raise FileFormatError(f"embeddings have unsupported dtype {dtype}", path)
    return name


class _GuardedFile(io.RawIOBase):
    """A file libhdf5 writes through whose failures are recorded, never reported to libhdf5."""

    def __init__(self, path: Path):
        super().__init__()
        self._file = open(path, "w+b", buffering=0)  # noqa: SIM115 - closed in close()
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._file.readinto(buffer)

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        size = len(view)
        if self.error is None:
            try:
                while len(view):
                    written = self._file.write(view)
                    if not written:
                        raise OSError(errno.ENOSPC, "No space left on device")
                    view = view[written:]
            except OSError as exc:
                self.error = exc
        return size

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()

    def truncate(self, size: int | None = None) -> int:
        if self.error is None:
            try:
                return self._file.truncate(size)
            except OSError as exc:
                self.error = exc
        return self.tell() if size is None else size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            try:
                self._file.close()
            except OSError as exc:
                self.error = self.error or exc
        super().close()


class HDF5Writer:
    """Fills a new HDF5 file row block by row block; ``finish`` adds ids, arrays and metadata."""

    def __init__(self, temp: Path, dim: int, dtype: str, n_rows_hint: int | None, output: Path):
        import h5py

        self.output = output
        self._guard = _GuardedFile(temp)
        self._file = h5py.File(self._guard, "w")
        rows_per_chunk = max(1, CHUNK_BYTES // max(1, dim * np.dtype(dtype).itemsize))
        if n_rows_hint:
            rows_per_chunk = min(rows_per_chunk, n_rows_hint)
        self._matrix = self._file.create_dataset(
            "embeddings", shape=(n_rows_hint or 0, dim), maxshape=(None, dim), dtype=dtype, chunks=(rows_per_chunk, dim)
        )
        self._rows = 0
        self._check()

    def _check(self) -> None:
        if self._guard.error is not None:
            raise OutputError(describe_os_error(self._guard.error), self.output)

    def append(self, block: np.ndarray) -> None:
        stop = self._rows + block.shape[0]
        with interrupts.critical():  # libhdf5 calls back into _GuardedFile: no exception may be raised there
            if stop > self._matrix.shape[0]:
                self._matrix.resize(max(stop, 2 * self._matrix.shape[0]), axis=0)
            self._matrix[self._rows : stop] = block
        self._rows = stop
        self._check()
        interrupts.check()

    def finish(self, aux: dict[str, np.ndarray], arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
        with interrupts.critical():
            self._write_rest(aux, arrays, attrs)
        self._check()
        interrupts.check()

    def _write_rest(self, aux: dict[str, np.ndarray], arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
        import h5py

        if self._matrix.shape[0] != self._rows:
            self._matrix.resize(self._rows, axis=0)
        for name, values in aux.items():
            if values.dtype == object:
                if any("\x00" in v for v in values.tolist()):
                    raise DataError(f"{name} contain a NUL character, which HDF5 strings cannot hold; write .safetensors", self.output)
                self._file.create_dataset(name, data=values, dtype=h5py.string_dtype())
            else:
                self._file.create_dataset(name, data=values)
        for name, values in arrays.items():
            self._file.create_dataset(name, data=values)
        for key, value in attrs.items():
            self._file.attrs[meta.META_PREFIX + key] = meta.encode_hdf5(value)
        self._file.close()
        self._guard.close()

    def abort(self) -> None:
        with interrupts.critical():
            try:
                self._file.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away
                pass
            self._guard.close()
