"""Embedding files (DESIGN §3): one matrix plus optional row ids, labels, arrays and metadata.

Readers stream row chunks as CPU torch tensors without loading the file; writers fill a file
chunk by chunk (HDF5 chunked by rows; safetensors preallocated, then filled) inside an atomic
temp file. Metadata keys are stored as ``relcli.<name>`` with JSON-encoded values in both
formats (HDF5 root attributes, safetensors header metadata) and exposed without the prefix.
"""

from __future__ import annotations

import contextlib
import json
import os
import struct
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from relcli.errors import DataError, FileFormatError, UsageError
from relcli.io.atomic import atomic_output, output_format

FORMAT_VERSION = 1
META_PREFIX = "relcli."
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
KINDS = ("embeddings", "anchors", "relative", "predictions", "head", "translator")
FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
# Arrays with these names are parts of the contract, never candidates for the matrix.
RESERVED = {"ids", "labels", "anchor_ids", "space_mean", "space_std", "source_ids"}

ST_TO_NAME = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}
NAME_TO_ST = {v: k for k, v in ST_TO_NAME.items()}
ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
            "int16": 2, "int8": 1, "uint64": 8, "uint32": 4, "uint16": 2, "uint8": 1, "bool": 1}


def sniff_format(path: Path) -> str:
    """'hdf5', 'safetensors' or 'npy' from the file's first bytes (extension only as a hint)."""
    if not path.exists():
        raise FileFormatError("no such file", path)
    if path.is_dir():
        raise FileFormatError("is a folder, not an embedding file", path)
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    if head.startswith(NPY_MAGIC):
        return "npy"
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5"):
        raise FileFormatError("is not an HDF5 file (bad signature; truncated or corrupt?)", path)
    if suffix == ".npy":
        raise FileFormatError("is not a .npy file (bad magic)", path)
    if len(head) == 8:
        (header_len,) = struct.unpack("<Q", head)
        if 2 <= header_len <= 100_000_000:
            return "safetensors"
    if suffix == ".safetensors":
        raise FileFormatError("safetensors header is truncated or invalid", path)
    raise FileFormatError("is neither HDF5, safetensors nor .npy", path)


def _decode_meta(raw: dict[str, Any], all_json: bool) -> dict[str, Any]:
    """relcli.* metadata without the prefix.

    safetensors values are all JSON strings. HDF5 attributes hold strings, numbers and booleans
    natively (so plain h5py reads ``relcli.kind`` as ``anchors``) and objects, lists and None as
    JSON. A string that itself looks like JSON is stored JSON-quoted, so decoding (parse exactly
    the attributes that look like JSON) is unambiguous.
    """
    attrs: dict[str, Any] = {}
    for key, value in raw.items():
        if not key.startswith(META_PREFIX):
            continue
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        if isinstance(value, str) and (all_json or _looks_like_json(value)):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                pass
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        attrs[key[len(META_PREFIX):]] = value
    return attrs


def _looks_like_json(text: str) -> bool:
    return text[:1] in ("{", "[", '"') or text == "null"


def _hdf5_attr(value: Any):
    """A metadata value as an HDF5 attribute: plain strings and numbers natively, the rest JSON."""
    if isinstance(value, str):
        return json.dumps(value) if _looks_like_json(value) else value
    if isinstance(value, (bool, int, float)):
        return value
    return json.dumps(value)


def _check_ids(ids, n_rows: int, path: Path, what: str = "ids") -> None:
    if len(ids) != n_rows:
        raise FileFormatError(f"has {len(ids)} {what} for {n_rows} rows", path)
    if what == "ids":
        seen: dict[Any, int] = {}
        for row, value in enumerate(ids.tolist() if isinstance(ids, np.ndarray) else ids):
            if value in seen:
                raise FileFormatError(
                    f"duplicate id {value!r} at rows {seen[value]} and {row}: ids must be unique", path
                )
            seen[value] = row


class EmbeddingFile:
    """Read-only view of an embedding file; subclasses implement one format.

    ``shape`` is (rows, dims); ``dtype`` a name from FLOAT_DTYPES; ``attrs`` the relcli.*
    metadata; ``ids``/``labels`` are a list of str or an int64 array, or None.
    """

    format = "?"

    def __init__(self, path: Path, key: str | None):
        self.path = path
        self.requested_key = key
        self.key: str = ""
        self.shape: tuple[int, int] = (0, 0)
        self.dtype: str = "float32"
        self.attrs: dict[str, Any] = {}
        self.ids: list[str] | np.ndarray | None = None
        self.labels: list[str] | np.ndarray | None = None

    # -- context manager ------------------------------------------------------------------
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        pass

    # -- properties -----------------------------------------------------------------------
    @property
    def n_rows(self) -> int:
        return self.shape[0]

    @property
    def dim(self) -> int:
        return self.shape[1]

    @property
    def kind(self) -> str:
        return str(self.attrs.get("kind", "embeddings"))

    def row_keys(self) -> list[str]:
        """Join keys of the rows: the ids as strings, or the row indices when there are none."""
        if self.ids is None:
            return [str(i) for i in range(self.n_rows)]
        if isinstance(self.ids, np.ndarray):
            return [str(i) for i in self.ids.tolist()]
        return list(self.ids)

    def _finish_open(self) -> None:
        if self.ids is not None:
            _check_ids(self.ids, self.n_rows, self.path)
        if self.labels is not None:
            _check_ids(self.labels, self.n_rows, self.path, "labels")
        if self.dtype not in FLOAT_DTYPES and not self.dtype.startswith(("int", "uint")):
            raise FileFormatError(f"array {self.key!r} has dtype {self.dtype}, not a number type", self.path)

    def _select_key(self, candidates: dict[str, tuple[int, ...]]) -> str:
        """Pick the matrix: --key, else 'embeddings', else the only 2-D array."""
        key = self.requested_key
        if key is not None:
            if key not in candidates:
                names = ", ".join(sorted(candidates)) or "none"
                raise UsageError(f"has no array {key!r} (arrays: {names})", self.path)
        elif "embeddings" in candidates:
            key = "embeddings"
        else:
            matrices = [n for n, s in candidates.items() if len(s) == 2 and n.split("/")[-1] not in RESERVED]
            if not matrices:
                shapes = ", ".join(f"{n} {list(s)}" for n, s in candidates.items()) or "no arrays"
                raise FileFormatError(f"has no 2-D array to use as embeddings ({shapes})", self.path)
            if len(matrices) > 1:
                raise UsageError(
                    f"has several 2-D arrays ({', '.join(sorted(matrices))}): pick one with --key", self.path
                )
            key = matrices[0]
        shape = candidates[key]
        if len(shape) != 2:
            raise FileFormatError(
                f"array {key!r} is {len(shape)}-D (shape {list(shape)}); relcli needs a 2-D matrix (rows, dims)",
                self.path,
            )
        self.shape = (int(shape[0]), int(shape[1]))
        return key

    # -- data -----------------------------------------------------------------------------
    def _read_slice(self, start: int, stop: int):
        raise NotImplementedError  # each format implements it

    def _read_sorted(self, indices: np.ndarray):
        return _stack([self._read_slice(int(i), int(i) + 1) for i in indices])

    def iter_chunks(self, batch_size: int = 65536) -> Iterator[tuple[int, Any]]:
        """Yield (first row, chunk) over the whole matrix; chunks are CPU torch tensors."""
        batch_size = max(int(batch_size), 1)
        for start in range(0, self.n_rows, batch_size):
            yield start, self._read_slice(start, min(start + batch_size, self.n_rows))

    def read_all(self):
        """The whole matrix as one CPU tensor."""
        return self._read_slice(0, self.n_rows)

    def read_rows(self, indices: Sequence[int]):
        """Rows at ``indices`` (any order, repeats allowed) as one CPU tensor."""
        import torch

        index = np.asarray(indices, dtype=np.int64)
        if index.size == 0:
            return torch.empty((0, self.dim), dtype=_torch_dtype(self.dtype))
        if index.min() < 0 or index.max() >= self.n_rows:
            raise DataError(f"row index out of range 0..{self.n_rows - 1}", self.path)
        unique, inverse = np.unique(index, return_inverse=True)
        rows = self._read_sorted(unique)
        return rows[torch.from_numpy(inverse.reshape(-1))]

    def array(self, name: str):
        """An auxiliary numeric array (e.g. space_mean) as a CPU tensor, or None."""
        return None

    def strings(self, name: str) -> list[str] | np.ndarray | None:
        """An auxiliary id-like array (strings or int64), or None."""
        return None

    def array_shapes(self) -> dict[str, tuple[list[int], str]]:
        """Every array in the file: name -> (shape, dtype), for ``relcli info``."""
        return {}


def _torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def _stack(chunks):
    import torch

    return torch.cat(chunks, dim=0)


# ---------------------------------------------------------------------------------------------
# HDF5
# ---------------------------------------------------------------------------------------------
class HDF5File(EmbeddingFile):
    format = "hdf5"

    def __init__(self, path: Path, key: str | None):
        import h5py

        super().__init__(path, key)
        try:
            self._file = h5py.File(path, "r")
        except OSError as exc:
            raise FileFormatError(f"cannot read HDF5 (truncated or corrupt?): {_short(exc)}", path) from None
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
                datasets[name] = tuple(obj.shape)

        try:
            self._file.visititems(visit)
            self.key = self._select_key(datasets)
            self._matrix = self._file[self.key]
            self.dtype = _h5_dtype_name(self._matrix.dtype, self.path)
            self.attrs = _decode_meta(dict(self._file.attrs), all_json=False)
            self.ids = self.strings("ids")
            self.labels = self.strings("labels")
        except (OSError, RuntimeError, KeyError) as exc:
            raise FileFormatError(f"cannot read HDF5 (truncated or corrupt?): {_short(exc)}", self.path) from None
        self._finish_open()

    def close(self) -> None:
        self._file.close()

    def _read_slice(self, start: int, stop: int):
        import torch

        try:
            block = self._matrix[start:stop]
        except (OSError, RuntimeError) as exc:
            raise FileFormatError(f"cannot read rows {start}..{stop} (truncated?): {_short(exc)}", self.path) from None
        return torch.from_numpy(np.ascontiguousarray(_native(block)))

    def _read_sorted(self, indices: np.ndarray):
        import torch

        block = self._matrix[indices] if len(indices) > 1 else self._matrix[int(indices[0]) : int(indices[0]) + 1]
        return torch.from_numpy(np.ascontiguousarray(_native(block)))

    def array(self, name: str):
        import h5py
        import torch

        if name not in self._file or not isinstance(self._file[name], h5py.Dataset):
            return None
        return torch.from_numpy(np.array(_native(np.asarray(self._file[name][()]))))

    def strings(self, name: str):
        import h5py

        if name not in self._file:
            return None
        dataset = self._file[name]
        if not isinstance(dataset, h5py.Dataset):
            raise FileFormatError(f"{name!r} must be a dataset, not a group", self.path)
        if dataset.ndim != 1:
            raise FileFormatError(f"{name!r} must be 1-D, got shape {list(dataset.shape)}", self.path)
        if dataset.dtype.kind in ("S", "O", "U"):
            return list(dataset.asstr()[...])
        if dataset.dtype.kind in ("i", "u"):
            return dataset[...].astype(np.int64)
        raise FileFormatError(f"{name!r} must hold strings or integers, got {dataset.dtype}", self.path)

    def array_shapes(self):
        import h5py

        shapes = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset):
                shapes[name] = (list(obj.shape), str(obj.dtype) if obj.dtype.kind not in "SOU" else "string")

        self._file.visititems(visit)
        return shapes


def _h5_dtype_name(dtype, path) -> str:
    name = np.dtype(dtype).name
    if name not in ITEMSIZE:
        raise FileFormatError(f"embeddings have unsupported dtype {dtype}", path)
    return name


def _native(array: np.ndarray) -> np.ndarray:
    """The array in native byte order (a no-op, not a copy, when it already is)."""
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def _short(exc: BaseException) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


# ---------------------------------------------------------------------------------------------
# safetensors
# ---------------------------------------------------------------------------------------------
def read_safetensors_header(path: Path) -> tuple[dict[str, Any], dict[str, str], int]:
    """Parse a safetensors header without torch: (tensor entries, metadata, data start)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise FileFormatError("safetensors header is truncated or invalid", path)
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise FileFormatError("safetensors header is truncated or invalid", path)
        raw = handle.read(header_len)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise FileFormatError("safetensors header is truncated or invalid", path) from None
    if not isinstance(header, dict):
        raise FileFormatError("safetensors header is truncated or invalid", path)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise FileFormatError("safetensors __metadata__ must be an object of strings", path)
    data_len = size - 8 - header_len
    for name, entry in header.items():
        try:
            begin, end = (int(v) for v in entry["data_offsets"])
            dtype = ST_TO_NAME[entry["dtype"]]
            expected = int(np.prod([int(v) for v in entry["shape"]], dtype=np.int64)) * ITEMSIZE[dtype]
            if any(not isinstance(v, int) for v in [*entry["data_offsets"], *entry["shape"]]):
                raise TypeError
        except (KeyError, TypeError, ValueError, AttributeError):
            raise FileFormatError(f"safetensors entry {name!r} is invalid", path) from None
        if end > data_len or end - begin != expected:
            raise FileFormatError(f"safetensors data is truncated (tensor {name!r} ends past the file)", path)
    return header, metadata, 8 + header_len


class SafetensorsFile(EmbeddingFile):
    format = "safetensors"

    def __init__(self, path: Path, key: str | None):
        super().__init__(path, key)
        self._header, metadata, self._data_start = read_safetensors_header(path)
        shapes = {name: tuple(entry["shape"]) for name, entry in self._header.items()}
        shapes.update(self._string_arrays())
        self.key = self._select_key({n: s for n, s in shapes.items() if n in self._header})
        self.dtype = ST_TO_NAME[self._header[self.key]["dtype"]]
        self.attrs = _decode_meta(metadata, all_json=True)
        self.ids = self.strings("ids")
        self.labels = self.strings("labels")
        self._finish_open()

    def _string_arrays(self) -> dict[str, tuple[int, ...]]:
        found = {}
        for name in self._header:
            if name.endswith("_utf8") and f"{name[:-5]}_offsets" in self._header:
                found[name[:-5]] = (self._header[f"{name[:-5]}_offsets"]["shape"][0] - 1,)
        return found

    def _raw(self, name: str, start_row: int = 0, stop_row: int | None = None) -> np.ndarray:
        """Rows of a tensor read straight from the file (no torch, any numpy dtype but bf16)."""
        entry = self._header[name]
        dtype = ST_TO_NAME[entry["dtype"]]
        shape = list(entry["shape"])
        scalar = not shape
        if scalar:
            shape = [1]
        row_items = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
        stop_row = shape[0] if stop_row is None else stop_row
        item = ITEMSIZE[dtype]
        offset = self._data_start + entry["data_offsets"][0] + start_row * row_items * item
        count = (stop_row - start_row) * row_items
        np_dtype = np.uint16 if dtype == "bfloat16" else np.dtype(dtype).newbyteorder("<")
        with open(self.path, "rb") as handle:
            handle.seek(offset)
            data = np.fromfile(handle, dtype=np_dtype, count=count)
        if data.size != count:
            raise FileFormatError(f"safetensors data is truncated (tensor {name!r})", self.path)
        return data.reshape(()) if scalar else data.reshape([stop_row - start_row] + shape[1:])

    def _read_slice(self, start: int, stop: int):
        import torch

        block = self._raw(self.key, start, stop)
        tensor = torch.from_numpy(_native(block))
        return tensor.view(torch.bfloat16) if self.dtype == "bfloat16" else tensor

    def _read_sorted(self, indices: np.ndarray):
        # contiguous runs of rows are read in one go
        runs = np.split(indices, np.nonzero(np.diff(indices) != 1)[0] + 1)
        return _stack([self._read_slice(int(r[0]), int(r[-1]) + 1) for r in runs])

    def array(self, name: str):
        import torch

        if name not in self._header:
            return None
        data = self._raw(name)
        tensor = torch.from_numpy(_native(data))
        return tensor.view(torch.bfloat16) if self._header[name]["dtype"] == "BF16" else tensor

    def strings(self, name: str):
        if name in self._header:
            values = self._raw(name)
            if values.ndim != 1 or values.dtype.kind not in "iu":
                raise FileFormatError(f"{name!r} must be a 1-D integer tensor", self.path)
            return values.astype(np.int64)
        if f"{name}_utf8" in self._header and f"{name}_offsets" in self._header:
            blob = self._raw(f"{name}_utf8").tobytes()
            offsets = self._raw(f"{name}_offsets").astype(np.int64)
            if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(blob) or np.any(np.diff(offsets) < 0):
                raise FileFormatError(f"{name}_offsets do not match {name}_utf8", self.path)
            try:
                return [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]
            except UnicodeDecodeError:
                raise FileFormatError(f"{name}_utf8 is not valid UTF-8", self.path) from None
        return None

    def array_shapes(self):
        shapes = {n: (list(e["shape"]), ST_TO_NAME[e["dtype"]]) for n, e in self._header.items()}
        for name, shape in self._string_arrays().items():
            shapes.pop(f"{name}_utf8", None)
            shapes.pop(f"{name}_offsets", None)
            shapes[name] = (list(shape), "string")
        return shapes


# ---------------------------------------------------------------------------------------------
# .npy (a bare matrix, read only)
# ---------------------------------------------------------------------------------------------
class NpyFile(EmbeddingFile):
    format = "npy"

    def __init__(self, path: Path, key: str | None):
        super().__init__(path, key)
        try:
            self._array = np.load(path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise FileFormatError(f"cannot read .npy (truncated or not a numeric array?): {_short(exc)}", path) from None
        self.key = "array"
        if self._array.ndim != 2:
            raise FileFormatError(
                f"array is {self._array.ndim}-D (shape {list(self._array.shape)}); relcli needs a 2-D matrix (rows, dims)",
                path,
            )
        self.shape = (int(self._array.shape[0]), int(self._array.shape[1]))
        self.dtype = _h5_dtype_name(self._array.dtype, path)
        self._finish_open()

    def _read_slice(self, start: int, stop: int):
        import torch

        return torch.from_numpy(np.array(_native(self._array[start:stop])))

    def array_shapes(self):
        return {"array": (list(self._array.shape), self.dtype)}


READERS = {"hdf5": HDF5File, "safetensors": SafetensorsFile, "npy": NpyFile}


def open_embeddings(path: str | os.PathLike, key: str | None = None) -> EmbeddingFile:
    """Open an embedding file of any supported format (sniffed from its first bytes)."""
    path = Path(path)
    return READERS[sniff_format(path)](path, key)


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------
def _as_numpy(values) -> np.ndarray:
    """Auxiliary arrays as numpy (bfloat16, which numpy lacks, is widened to float32)."""
    if hasattr(values, "detach"):
        import torch

        tensor = values.detach().cpu().contiguous()
        if tensor.dtype == torch.bfloat16:
            tensor = tensor.float()
        return tensor.numpy()
    return np.asarray(values)


def _is_string_array(values) -> bool:
    if isinstance(values, np.ndarray):
        return values.dtype.kind in "USO"
    return len(values) > 0 and isinstance(values[0], str)


def _encode_strings(values: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    encoded = [str(v).encode("utf-8") for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


class EmbeddingWriter:
    """Write an embedding file chunk by chunk, atomically.

    >>> with EmbeddingWriter("y.h5", n_rows, dim, ids=ids, attrs={"kind": "embeddings"}) as w:
    ...     for chunk in chunks: w.write(chunk)

    ``ids``/``labels``: list of str or int array; ``arrays``: auxiliary numeric tensors;
    ``id_arrays``: auxiliary id lists such as ``anchor_ids``. ``attrs`` are stored as relcli.*
    metadata (JSON values); ``format`` and ``kind`` are always present.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        n_rows: int,
        dim: int,
        dtype: str = "float32",
        *,
        ids=None,
        labels=None,
        attrs: dict[str, Any] | None = None,
        arrays: dict[str, Any] | None = None,
        id_arrays: dict[str, Any] | None = None,
    ):
        self.path = Path(path)
        self.format = output_format(self.path)
        if dtype not in FLOAT_DTYPES:
            raise UsageError(f"unsupported output dtype {dtype!r}; choose one of {', '.join(FLOAT_DTYPES)}")
        if dtype == "bfloat16" and self.format == "hdf5":
            raise UsageError("HDF5 cannot store bfloat16: write .safetensors or use --dtype float32", self.path)
        self.n_rows, self.dim, self.dtype = int(n_rows), int(dim), dtype
        self.attrs = {"format": FORMAT_VERSION, "kind": "embeddings", **(attrs or {})}
        if self.attrs["kind"] not in KINDS:
            raise UsageError(f"unknown kind {self.attrs['kind']!r}")
        for name, values in (("ids", ids), ("labels", labels)):
            if values is not None and len(values) != self.n_rows:
                raise DataError(f"{len(values)} {name} for {self.n_rows} rows", self.path)
        if ids is not None:
            try:
                _check_ids(ids, self.n_rows, self.path)
            except FileFormatError as exc:
                raise DataError(exc.message, self.path) from None
        self.aux_ids = {k: v for k, v in {"ids": ids, "labels": labels, **(id_arrays or {})}.items() if v is not None}
        self.arrays = {k: _as_numpy(v) for k, v in (arrays or {}).items()}
        self.rows_written = 0
        self._atomic = None

    def __enter__(self):
        self._atomic = atomic_output(self.path)
        self._temp = self._atomic.__enter__()
        try:
            (self._open_hdf5 if self.format == "hdf5" else self._open_safetensors)()
        except BaseException:
            self._atomic.__exit__(*sys.exc_info())
            raise
        return self

    def write(self, chunk) -> None:
        """Append the next rows (a torch tensor or numpy array of shape (rows, dim))."""
        block = self._convert(chunk)
        if block.ndim != 2 or block.shape[1] != self.dim:
            raise DataError(f"chunk of shape {list(block.shape)} does not fit (rows, {self.dim})", self.path)
        stop = self.rows_written + block.shape[0]
        if stop > self.n_rows:
            raise DataError(f"more rows written than the {self.n_rows} announced", self.path)
        if self.format == "hdf5":
            self._matrix[self.rows_written : stop] = block
        else:
            if block.size:
                little = np.ascontiguousarray(block.astype(block.dtype.newbyteorder("<"), copy=False))
                self._handle.write(memoryview(little).cast("B"))
        self.rows_written = stop

    def __exit__(self, exc_type, exc, tb):
        error = exc
        try:
            self._close()
            if error is None and self.rows_written != self.n_rows:
                error = DataError(f"wrote {self.rows_written} of {self.n_rows} rows", self.path)
        except BaseException as close_error:  # a failed close must still drop the temp file
            error = error or close_error
        if error is None:
            self._atomic.__exit__(None, None, None)
            return False
        with contextlib.suppress(BaseException):
            self._atomic.__exit__(type(error), error, error.__traceback__)
        if error is not exc:
            raise error
        return False

    # -- helpers --------------------------------------------------------------------------
    def _convert(self, chunk) -> np.ndarray:
        if hasattr(chunk, "detach"):
            import torch

            tensor = chunk.detach().to("cpu", getattr(torch, self.dtype)).contiguous()
            return tensor.view(torch.uint16).numpy() if self.dtype == "bfloat16" else tensor.numpy()
        if self.dtype == "bfloat16":
            import torch

            return self._convert(torch.from_numpy(np.asarray(chunk, dtype=np.float32)))
        return np.asarray(chunk, dtype=self.dtype)

    def _close(self) -> None:
        if self.format == "hdf5":
            self._file.close()
        else:
            self._handle.close()

    def _open_hdf5(self) -> None:
        import h5py

        self._file = h5py.File(self._temp, "w")
        rows_per_chunk = max(1, min(self.n_rows, (1 << 20) // max(1, self.dim * ITEMSIZE[self.dtype])))
        self._matrix = self._file.create_dataset(
            "embeddings", shape=(self.n_rows, self.dim), dtype=self.dtype,
            chunks=(rows_per_chunk, self.dim) if self.n_rows and self.dim else None,
        )
        for name, values in self.aux_ids.items():
            if _is_string_array(values):
                if any("\x00" in str(v) for v in values):
                    raise DataError(f"{name} contain a NUL character, which HDF5 strings cannot hold; write .safetensors", self.path)
                self._file.create_dataset(name, data=np.array(list(values), dtype=object), dtype=h5py.string_dtype())
            else:
                self._file.create_dataset(name, data=np.asarray(values, dtype=np.int64))
        for name, values in self.arrays.items():
            self._file.create_dataset(name, data=values)
        for key, value in self.attrs.items():
            self._file.attrs[META_PREFIX + key] = _hdf5_attr(value)

    def _open_safetensors(self) -> None:
        blobs: dict[str, tuple[str, list[int], bytes]] = {}
        for name, values in self.aux_ids.items():
            if _is_string_array(values):
                utf8, offsets = _encode_strings(values)
                blobs[f"{name}_utf8"] = ("uint8", [len(utf8)], utf8.tobytes())
                blobs[f"{name}_offsets"] = ("int64", [len(offsets)], offsets.astype("<i8").tobytes())
            else:
                data = np.asarray(values, dtype="<i8")
                blobs[name] = ("int64", [len(data)], data.tobytes())
        for name, values in self.arrays.items():
            blobs[name] = (values.dtype.name, list(values.shape), values.astype(values.dtype.newbyteorder("<")).tobytes())
        header: dict[str, Any] = {"__metadata__": {META_PREFIX + k: json.dumps(v) for k, v in self.attrs.items()}}
        offset = 0
        for name, (dtype, shape, data) in blobs.items():
            header[name] = {"dtype": NAME_TO_ST[dtype], "shape": shape, "data_offsets": [offset, offset + len(data)]}
            offset += len(data)
        matrix_bytes = self.n_rows * self.dim * ITEMSIZE[self.dtype]
        header["embeddings"] = {
            "dtype": NAME_TO_ST[self.dtype], "shape": [self.n_rows, self.dim],
            "data_offsets": [offset, offset + matrix_bytes],
        }
        encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
        encoded += b" " * (-len(encoded) % 8)
        self._handle = open(self._temp, "wb")
        self._handle.write(struct.pack("<Q", len(encoded)))
        self._handle.write(encoded)
        for _, _, data in blobs.values():
            self._handle.write(data)
        # preallocate the matrix, then fill it in order
        start = self._handle.tell()
        self._handle.truncate(start + matrix_bytes)
        self._handle.seek(start)


def write_embeddings(path: str | os.PathLike, matrix, dtype: str | None = None, **kwargs) -> Path:
    """Write a whole in-memory matrix (torch or numpy) as an embedding file, atomically."""
    array = matrix
    if dtype is None:
        dtype = str(getattr(matrix, "dtype", "float32")).replace("torch.", "")
    n_rows, dim = int(matrix.shape[0]), int(matrix.shape[1])
    with EmbeddingWriter(path, n_rows, dim, dtype, **kwargs) as writer:
        if n_rows:
            writer.write(array)
    return Path(path)
