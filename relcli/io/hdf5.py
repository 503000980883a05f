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
import os
from pathlib import Path
from typing import Any

import numpy as np

from relcli import interrupts
from relcli.errors import DataError, FileFormatError, OutputError, RelcliError
from relcli.io import meta
from relcli.io._reader import EmbeddingReader, as_id_array, contiguous_runs, native, short, strings_in_chunks
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
        """Sorted distinct rows. h5py's point selection costs per row (8.9 s for 1M rows read in order, about
        what a slice read of 14 rows costs), so: runs of 16 rows or more on average, a slice each; rows at
        least one in DENSE_ROWS of their span, the span read slice by slice and the rows kept (an `--ids`
        list of a fifth of 4M rows: `evaluate` 128 s → 53 s); else point selection."""
        runs = contiguous_runs(indices)
        if len(runs) * 16 <= len(indices):
            return self._read_runs(runs)
        if len(indices) * DENSE_ROWS >= int(indices[-1]) - int(indices[0]) + 1:
            return self._read_spanned(indices)
        return self._read(indices if len(indices) > 1 else slice(int(indices[0]), int(indices[0]) + 1))

    def _read_spanned(self, indices: np.ndarray):
        import torch

        parts = []
        for lo in range(int(indices[0]), int(indices[-1]) + 1, SPAN_ROWS):
            first, stop = np.searchsorted(indices, [lo, lo + SPAN_ROWS])
            if stop > first:
                wanted = indices[first:stop]
                parts.append(self._read_slice(lo, int(wanted[-1]) + 1)[torch.from_numpy(wanted - lo)])
        return parts[0] if len(parts) == 1 else torch.cat(parts)

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
                return strings_in_chunks(dataset.shape[0], lambda start, stop: _decoded(dataset[start:stop]))
            if dataset.dtype.kind in ("i", "u"):
                return as_id_array(dataset[...])  # uint64 past int64 as text, never wrapped
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


#: sorted rows at least one in this many of their span are read as slices of the span (``_read_sorted``)
DENSE_ROWS = 8
#: rows per slice of such a span
SPAN_ROWS = 8192


def _decoded(raw: np.ndarray) -> list[str]:
    """UTF-8 strings of an HDF5 string block (bytes, or str where h5py decoded them already), decoded
    in one call: joined at NUL bytes, which HDF5's C strings cannot hold (2 s less at 4M ids than a
    decode per string). A block whose strings do hold a NUL (fixed-length, say) goes one by one."""
    values = raw.tolist()
    if not values or isinstance(values[0], str):
        return [v if isinstance(v, str) else v.decode("utf-8") for v in values]
    parts = b"\0".join(values).decode("utf-8").split("\0")
    return parts if len(parts) == len(values) else [v.decode("utf-8") for v in values]


def _dtype_name(dtype, path) -> str:
    name = np.dtype(dtype).name
    if name not in SUPPORTED:
        raise FileFormatError(f"embeddings have unsupported dtype {dtype}", path)
    return name


class _GuardedFile(io.RawIOBase):
    """A file libhdf5 writes through whose failures are recorded, never reported to libhdf5.

    After a failed write, what libhdf5 writes next is kept in memory (page by page, on top of the
    bytes on disk), so what it reads back is what it wrote: libhdf5 re-reads its own structures
    (the global heap of variable-length strings, say), and garbage read back from a short file
    made it fail, or crash. The memory is bounded: the writer checks ``error`` after every block.
    """

    PAGE = 1 << 12

    def __init__(self, path: Path):
        super().__init__()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        self._pos = 0
        self._size = 0  # the file as libhdf5 sees it (disk, and the pages kept in memory)
        self._pages: dict[int, bytearray] = {}
        self.error: OSError | None = None

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def _disk(self, size: int, offset: int) -> bytes:
        data = os.pread(self._fd, size, offset)
        return data + bytes(size - len(data))  # past the end on disk: zeros, like a sparse file

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        size = max(0, min(len(view), self._size - self._pos))
        if not self._pages:
            view[:size] = self._disk(size, self._pos)
        else:
            done = 0
            while done < size:
                offset = self._pos + done
                page, within = divmod(offset, self.PAGE)
                step = min(size - done, self.PAGE - within)
                kept = self._pages.get(page)
                view[done : done + step] = kept[within : within + step] if kept is not None else self._disk(step, offset)
                done += step
        self._pos += size
        return size

    def _keep(self, offset: int, data: memoryview) -> None:
        """Bytes that could not reach the disk, kept in memory pages."""
        done = 0
        while done < len(data):
            page, within = divmod(offset + done, self.PAGE)
            step = min(len(data) - done, self.PAGE - within)
            if page not in self._pages:
                try:
                    self._pages[page] = bytearray(self._disk(self.PAGE, page * self.PAGE))
                except OSError:
                    self._pages[page] = bytearray(self.PAGE)
            self._pages[page][within : within + step] = data[done : done + step]
            done += step

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        size, offset, done = len(view), self._pos, 0
        if self.error is None:
            try:
                while done < size:
                    written = os.pwrite(self._fd, view[done:], offset + done)
                    if not written:
                        raise OSError(errno.ENOSPC, "No space left on device")
                    done += written
            except OSError as exc:
                self.error = exc
        if done < size:
            self._keep(offset + done, view[done:])
        self._pos = offset + size
        self._size = max(self._size, self._pos)
        return size

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def truncate(self, size: int | None = None) -> int:
        size = self._pos if size is None else size
        if self.error is None:
            try:
                os.ftruncate(self._fd, size)
            except OSError as exc:
                self.error = exc
        for page in [p for p in self._pages if p * self.PAGE >= size]:
            del self._pages[page]
        page, within = divmod(size, self.PAGE)
        if page in self._pages:
            self._pages[page][within:] = bytes(self.PAGE - within)
        self._size = size
        return size

    def flush(self) -> None:
        pass

    def close(self) -> None:
        if not self.closed:
            self._pages.clear()
            try:
                os.close(self._fd)
            except OSError as exc:
                self.error = self.error or exc
        super().close()


class HDF5Writer:
    """Fills a new HDF5 file row block by row block; ``finish`` adds ids, arrays and metadata."""

    def __init__(self, temp: Path, dim: int, dtype: str, n_rows_hint: int | None, output: Path):
        import h5py

        self.output = output
        self._guard = _GuardedFile(temp)
        self._file = None
        try:
            with interrupts.critical():
                self._file = h5py.File(self._guard, "w")
                rows_per_chunk = max(1, CHUNK_BYTES // max(1, dim * np.dtype(dtype).itemsize))
                if n_rows_hint:
                    rows_per_chunk = min(rows_per_chunk, n_rows_hint)
                self._matrix = self._file.create_dataset(
                    "embeddings", shape=(n_rows_hint or 0, dim), maxshape=(None, dim), dtype=dtype,
                    chunks=(rows_per_chunk, dim)
                )
            self._rows = 0
            self._check()
        except BaseException:
            self.abort()  # a writer that failed to start closes what it opened: nothing flushes later, at exit
            raise

    def _check(self) -> None:
        if self._guard.error is not None:
            raise OutputError(describe_os_error(self._guard.error), self.output)

    def append(self, block: np.ndarray) -> None:
        stop = self._rows + block.shape[0]
        try:
            with interrupts.critical():  # libhdf5 calls back into _GuardedFile: no exception may be raised there
                if stop > self._matrix.shape[0]:
                    self._matrix.resize(max(stop, 2 * self._matrix.shape[0]), axis=0)
                self._matrix[self._rows : stop] = block
        except (OSError, RuntimeError, ValueError):
            self._check()  # libhdf5 failing after a failed write: report the write
            raise
        self._rows = stop
        self._check()
        interrupts.check()

    def finish(self, aux: dict[str, np.ndarray], arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
        try:
            with interrupts.critical():
                self._write_rest(aux, arrays, attrs)
        except (OSError, RuntimeError, ValueError):
            self._check()  # libhdf5 failing after a failed write: report the write
            raise
        self._check()
        interrupts.check()

    def _write_rest(self, aux: dict[str, np.ndarray], arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
        import h5py

        if self._matrix.shape[0] != self._rows:
            self._matrix.resize(self._rows, axis=0)
        for name, values in aux.items():
            if values.dtype == object:
                if "\x00" in "".join(values.tolist()):
                    raise DataError(f"{name} contain a NUL character, which HDF5 strings cannot hold; write .safetensors", self.output)
                text = h5py.string_dtype()  # as the array's own dtype, h5py need not look at every item's type
                self._file.create_dataset(name, data=values.view(text), dtype=text)
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
                if self._file is not None:
                    self._file.close()
            except Exception:  # noqa: BLE001 - the file is being thrown away
                pass
            self._guard.close()
