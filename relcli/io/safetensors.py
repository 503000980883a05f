"""safetensors embedding files: a reader and a streaming writer, without torch on the read path.

Layout (DESIGN §3): tensor ``embeddings`` (N, d); ``ids``/``labels`` as int64, or strings as
``NAME_utf8`` (uint8 bytes) + ``NAME_offsets`` (int64, N+1); other auxiliary tensors by name;
``relcli.*`` header metadata whose values are JSON strings.

Every header is validated before a byte of data is trusted: known dtypes, non-negative integer
shapes, offsets inside the file that match shape × item size, and nothing nested too deep.

The writer streams: it reserves room for the header, appends the matrix rows as they come, then
the auxiliary tensors, and writes the header last (padded with spaces, which the format allows),
so the row count, the ids and the metadata may all be known only at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path
from typing import Any

import numpy as np

from relcli.errors import FileFormatError, OutputError
from relcli.io import meta
from relcli.io._reader import EmbeddingReader, as_id_array, native, strings_in_chunks
from relcli.io.atomic import describe_os_error, guarded

ST_TO_NAME = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8",
    "U64": "uint64", "U32": "uint32", "U16": "uint16", "U8": "uint8", "BOOL": "bool",
}
NAME_TO_ST = {v: k for k, v in ST_TO_NAME.items()}
ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4,
            "int16": 2, "int8": 1, "uint64": 8, "uint32": 4, "uint16": 2, "uint8": 1, "bool": 1}
MAX_HEADER = 100_000_000  # the safetensors library's own limit
HEADER_ROOM = 1 << 16


def _invalid(name: str, why: str, path) -> FileFormatError:
    return FileFormatError(f"safetensors header entry {name!r} is invalid: {why}", path)


def read_header(path: Path) -> tuple[dict[str, Any], dict[str, str], int]:
    """Parse and validate a safetensors header: (tensor entries, metadata, data start)."""
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise FileFormatError("safetensors header is truncated or invalid", path)
        (header_len,) = struct.unpack("<Q", head)
        if header_len > min(size - 8, MAX_HEADER) or header_len < 2:
            raise FileFormatError("safetensors header is truncated or invalid", path)
        raw = handle.read(header_len)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FileFormatError("safetensors header is not valid UTF-8", path) from None
    header = meta.parse_json(text, "safetensors header", path)
    if not isinstance(header, dict):
        raise FileFormatError("safetensors header must be a JSON object", path)
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FileFormatError("safetensors __metadata__ must be an object of strings", path)
    data_len = size - 8 - header_len
    spans = []
    for name, entry in header.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise _invalid(name, "needs exactly dtype, shape and data_offsets", path)
        dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dtype, str) or dtype not in ST_TO_NAME:
            raise _invalid(name, f"unknown dtype {dtype!r}", path)
        if not isinstance(shape, list) or not all(type(v) is int and v >= 0 for v in shape):
            raise _invalid(name, f"shape {shape!r} must be a list of non-negative integers", path)
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(v) is int for v in offsets)):
            raise _invalid(name, f"data_offsets {offsets!r} must be two integers", path)
        begin, end = offsets
        expected = int(np.prod(shape, dtype=object)) * ITEMSIZE[ST_TO_NAME[dtype]]
        if not 0 <= begin <= end or end - begin != expected:
            raise _invalid(name, f"data_offsets {offsets} do not match shape {shape} of {dtype}", path)
        if end > data_len:
            raise FileFormatError(f"safetensors data is truncated (tensor {name!r} ends past the file)", path)
        spans.append((begin, end, name))
    spans.sort()
    for (_, end_a, a), (begin_b, _, b) in zip(spans, spans[1:]):
        if begin_b < end_a:
            raise FileFormatError(f"safetensors tensors {a!r} and {b!r} overlap", path)
    return header, metadata, 8 + header_len


class SafetensorsReader(EmbeddingReader):
    format = "safetensors"

    def __init__(self, path: Path, key: str | None):
        super().__init__(path, key)
        self._header, metadata, self._data_start = read_header(path)
        self.attrs = meta.decode(metadata, all_json=True, path=path)
        self._refuse_estimators()
        self.key = self._select_key({name: tuple(entry["shape"]) for name, entry in self._header.items()})
        self.dtype = ST_TO_NAME[self._header[self.key]["dtype"]]
        if self.dtype == "bool":
            raise FileFormatError(f"array {self.key!r} is boolean, not numbers", path)
        self.ids = self.strings("ids")
        self.labels = self.strings("labels")
        self._finish_open()

    def _raw(self, name: str, start_row: int = 0, stop_row: int | None = None) -> np.ndarray:
        """Rows of a tensor read straight from the file (bfloat16 comes back as uint16)."""
        entry = self._header[name]
        dtype = ST_TO_NAME[entry["dtype"]]
        shape = list(entry["shape"]) or [1]
        row_items = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else 1
        stop_row = shape[0] if stop_row is None else stop_row
        offset = self._data_start + entry["data_offsets"][0] + start_row * row_items * ITEMSIZE[dtype]
        count = (stop_row - start_row) * row_items
        np_dtype = np.dtype(np.uint16 if dtype == "bfloat16" else dtype).newbyteorder("<")
        try:
            with open(self.path, "rb") as handle:
                handle.seek(offset)
                data = np.fromfile(handle, dtype=np_dtype, count=count)
        except OSError as exc:
            raise FileFormatError(f"cannot read tensor {name!r}: {exc.strerror or exc}", self.path) from None
        if data.size != count:
            raise FileFormatError(f"safetensors data is truncated (tensor {name!r})", self.path)
        return data.reshape(()) if not entry["shape"] else data.reshape([stop_row - start_row] + shape[1:])

    def _tensor(self, block: np.ndarray, dtype: str):
        import torch

        tensor = torch.from_numpy(native(block))
        return tensor.view(torch.bfloat16) if dtype == "bfloat16" else tensor

    def _read_slice(self, start: int, stop: int):
        return self._tensor(self._raw(self.key, start, stop), self.dtype)

    def array(self, name: str):
        if name not in self._header:
            return None
        return self._tensor(self._raw(name), ST_TO_NAME[self._header[name]["dtype"]])

    def strings(self, name: str):
        if name in self._header:
            values = self._raw(name)
            if values.ndim != 1 or values.dtype.kind not in "iu":
                raise FileFormatError(f"{name!r} must be a 1-D integer tensor", self.path)
            return as_id_array(values)  # int64; uint64 past int64 as text, never wrapped
        if f"{name}_utf8" in self._header and f"{name}_offsets" in self._header:
            blob = self._raw(f"{name}_utf8").tobytes()
            offsets = self._raw(f"{name}_offsets")
            if offsets.ndim != 1 or offsets.dtype.kind not in "iu":
                raise FileFormatError(f"{name}_offsets must be a 1-D integer tensor", self.path)
            offsets = offsets.astype(np.int64)
            if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(blob) or np.any(np.diff(offsets) < 0):
                raise FileFormatError(f"{name}_offsets do not match {name}_utf8", self.path)
            def decode(start: int, stop: int) -> list[str]:
                bounds = offsets[start:stop + 1].tolist()
                return [blob[a:b].decode("utf-8") for a, b in zip(bounds[:-1], bounds[1:])]

            try:
                return strings_in_chunks(len(offsets) - 1, decode)
            except UnicodeDecodeError:
                raise FileFormatError(f"{name}_utf8 is not valid UTF-8", self.path) from None
        return None

    def array_shapes(self):
        shapes = {n: (list(e["shape"]), ST_TO_NAME[e["dtype"]]) for n, e in self._header.items()}
        for name in list(shapes):
            if name.endswith("_utf8") and f"{name[:-5]}_offsets" in shapes:
                count = shapes.pop(f"{name[:-5]}_offsets")[0][0] - 1
                shapes.pop(name)
                shapes[name[:-5]] = ([max(count, 0)], "string")
        return shapes


def encode_strings(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Strings as (UTF-8 bytes, int64 offsets of length N+1)."""
    encoded = [v.encode("utf-8") for v in values.tolist()]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum([len(e) for e in encoded], out=offsets[1:])
    return np.frombuffer(b"".join(encoded), dtype=np.uint8), offsets


def blobs_of(aux: dict[str, np.ndarray], arrays: dict[str, np.ndarray]) -> dict[str, tuple[str, list[int], bytes]]:
    """Auxiliary tensors as (dtype name, shape, little-endian bytes), strings split in two."""
    blobs: dict[str, tuple[str, list[int], bytes]] = {}
    for name, values in aux.items():
        if values.dtype == object:
            utf8, offsets = encode_strings(values)
            blobs[f"{name}_utf8"] = ("uint8", [len(utf8)], utf8.tobytes())
            blobs[f"{name}_offsets"] = ("int64", [len(offsets)], offsets.astype("<i8").tobytes())
        else:
            blobs[name] = ("int64", [len(values)], values.astype("<i8").tobytes())
    for name, values in arrays.items():
        if values.dtype.name not in NAME_TO_ST:
            raise TypeError(f"cannot store {values.dtype} in safetensors")
        blobs[name] = (values.dtype.name, list(values.shape), values.astype(values.dtype.newbyteorder("<")).tobytes())
    return blobs


class SafetensorsWriter:
    """Streams rows into a new safetensors file; ``finish`` appends the rest and writes the header."""

    def __init__(self, temp: Path, dim: int, dtype: str, n_rows_hint: int | None, output: Path):
        self.temp, self.output, self.dim, self.dtype = temp, output, dim, dtype
        self._room = HEADER_ROOM
        self._rows = 0
        self._handle = open(temp, "wb")  # noqa: SIM115 - closed in finish()/abort()
        try:
            guarded(self.output, lambda: self._handle.write(b" " * (8 + self._room)))
        except BaseException:
            self.abort()
            raise

    def append(self, block: np.ndarray) -> None:
        if block.size:
            little = np.ascontiguousarray(block.astype(block.dtype.newbyteorder("<"), copy=False))
            guarded(self.output, lambda: self._handle.write(memoryview(little).cast("B")))
        self._rows += block.shape[0]

    def finish(self, aux: dict[str, np.ndarray], arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
        blobs = blobs_of(aux, arrays)
        matrix_bytes = self._rows * self.dim * ITEMSIZE[self.dtype]
        header: dict[str, Any] = {
            "__metadata__": meta.encode_safetensors(attrs),
            "embeddings": {"dtype": NAME_TO_ST[self.dtype], "shape": [self._rows, self.dim], "data_offsets": [0, matrix_bytes]},
        }
        offset = matrix_bytes
        for name, (dtype, shape, data) in blobs.items():
            header[name] = {"dtype": NAME_TO_ST[dtype], "shape": shape, "data_offsets": [offset, offset + len(data)]}
            offset += len(data)
            guarded(self.output, lambda data=data: self._handle.write(data))
        encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
        if len(encoded) <= self._room:
            guarded(self.output, lambda: (self._handle.seek(0), self._handle.write(struct.pack("<Q", self._room) + encoded)))
            guarded(self.output, self._handle.close)
        else:
            guarded(self.output, self._handle.close)
            guarded(self.output, lambda: self._relocate(encoded))

    def _relocate(self, encoded: bytes) -> None:
        """The header outgrew its room: copy the data behind a new header of the right size."""
        encoded += b" " * (-len(encoded) % 8)
        moved = self.temp.with_name(self.temp.name + ".move")
        try:
            with open(self.temp, "rb") as source, open(moved, "wb") as target:
                target.write(struct.pack("<Q", len(encoded)) + encoded)
                source.seek(8 + self._room)
                shutil.copyfileobj(source, target, 1 << 24)
            os.replace(moved, self.temp)
        finally:
            if moved.exists():
                moved.unlink()

    def abort(self) -> None:
        try:
            self._handle.close()
        except OSError:
            pass


def read_tensors(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Every tensor of a (small) safetensors file as CPU torch tensors, and its metadata."""
    import torch

    header, metadata, data_start = read_header(path)
    tensors = {}
    with open(path, "rb") as handle:
        for name, entry in header.items():
            dtype = ST_TO_NAME[entry["dtype"]]
            begin, end = entry["data_offsets"]
            handle.seek(data_start + begin)
            raw = handle.read(end - begin)
            if len(raw) != end - begin:
                raise FileFormatError(f"safetensors data is truncated (tensor {name!r})", path)
            np_dtype = np.dtype(np.uint16 if dtype == "bfloat16" else dtype).newbyteorder("<")
            array = native(np.frombuffer(raw, dtype=np_dtype).reshape(entry["shape"])).copy()
            tensor = torch.from_numpy(array)
            tensors[name] = tensor.view(torch.bfloat16) if dtype == "bfloat16" else tensor
    return tensors, metadata


def write_tensors(temp: Path, tensors: dict[str, Any], attrs: dict[str, Any], output: Path) -> None:
    """A whole (small) safetensors file of CPU torch tensors and relcli.* metadata, at ``temp``."""
    import torch

    header: dict[str, Any] = {"__metadata__": meta.encode_safetensors(attrs)}
    blobs, offset = [], 0
    for name, tensor in tensors.items():
        tensor = tensor.detach().cpu().contiguous()
        dtype = str(tensor.dtype).replace("torch.", "")
        array = tensor.view(torch.uint16).numpy() if dtype == "bfloat16" else tensor.numpy()
        data = np.ascontiguousarray(array.astype(array.dtype.newbyteorder("<"), copy=False)).tobytes()
        header[name] = {"dtype": NAME_TO_ST[dtype], "shape": list(array.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    encoded = json.dumps(header, separators=(",", ":")).encode("utf-8")
    encoded += b" " * (-len(encoded) % 8)
    try:
        with open(temp, "wb") as handle:
            handle.write(struct.pack("<Q", len(encoded)) + encoded)
            for data in blobs:
                handle.write(data)
    except OSError as exc:
        raise OutputError(describe_os_error(exc), output) from None
