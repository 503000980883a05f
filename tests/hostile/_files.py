"""Building hostile files: copies of valid relcli files with lying headers, metadata or arrays.

Plain functions on paths (``src`` a valid file, ``dst`` the copy to write), used by the catalogue
in-process and by the reader fuzzer in its own subprocess; nothing here imports pytest.

safetensors files are edited by hand (8-byte little-endian header length + JSON header + data),
so a header may say anything; HDF5 files are edited with h5py (attributes and datasets).
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path
from typing import Any, Callable

import numpy as np

META = "relcli."
ST_DTYPE = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32",
            "int16": "I16", "int8": "I8", "uint64": "U64", "uint32": "U32", "uint16": "U16", "uint8": "U8",
            "bool": "BOOL"}
NP_DTYPE = {v: k for k, v in ST_DTYPE.items()}


def is_h5(path: Path) -> bool:
    return Path(path).suffix.lower() in (".h5", ".hdf5")


# --------------------------------------------------------------------------- raw bytes
def copy(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return Path(dst)


def empty(dst: Path) -> Path:
    Path(dst).write_bytes(b"")
    return Path(dst)


def truncate(src: Path, dst: Path, keep: float | int = 0.5) -> Path:
    data = Path(src).read_bytes()
    n = int(len(data) * keep) if isinstance(keep, float) else keep
    Path(dst).write_bytes(data[:n])
    return Path(dst)


def garbage(dst: Path, size: int = 4096, seed: int = 0) -> Path:
    Path(dst).write_bytes(np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8).tobytes())
    return Path(dst)


def flip(src: Path, dst: Path, offsets, xor: int = 0xFF) -> Path:
    data = bytearray(Path(src).read_bytes())
    for offset in [offsets] if isinstance(offsets, int) else offsets:
        data[offset] ^= xor
    Path(dst).write_bytes(bytes(data))
    return Path(dst)


# --------------------------------------------------------------------------- safetensors
def st_load(path: Path) -> tuple[dict[str, Any], bytes]:
    """(header with __metadata__, data bytes) of a well-formed safetensors file."""
    raw = Path(path).read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + length].decode("utf-8"))
    return header, raw[8 + length :]


def st_dump(dst: Path, header: dict | bytes | str, data: bytes, length: int | None = None) -> Path:
    """Write a safetensors file; ``header`` may be raw bytes/str (anything), ``length`` a lie."""
    if isinstance(header, dict):
        encoded = json.dumps(header, separators=(",", ":"), allow_nan=True).encode("utf-8")
    else:
        encoded = header.encode("utf-8") if isinstance(header, str) else header
    encoded += b" " * (-len(encoded) % 8)
    size = len(encoded) if length is None else length
    Path(dst).write_bytes(struct.pack("<Q", size) + encoded + data)
    return Path(dst)


def st_edit(src: Path, dst: Path, edit: Callable[[dict], Any]) -> Path:
    """Copy with the header changed by ``edit(header)`` (in place, or returning a replacement)."""
    header, data = st_load(src)
    changed = edit(header)
    return st_dump(dst, header if changed is None else changed, data)


def st_tensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Every tensor as numpy (by its safetensors dtype) and the raw metadata strings."""
    header, data = st_load(path)
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = np.dtype(NP_DTYPE.get(entry["dtype"], "uint16")).newbyteorder("<")
        tensors[name] = np.frombuffer(data[begin:end], dtype=dtype).reshape(entry["shape"]).copy()
    return tensors, metadata


def st_write(dst: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> Path:
    """A well-formed safetensors file of numpy arrays and raw metadata strings."""
    header: dict[str, Any] = {"__metadata__": metadata}
    blobs, offset = [], 0
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        blob = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": ST_DTYPE[array.dtype.name], "shape": list(array.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    return st_dump(dst, header, b"".join(blobs))


# --------------------------------------------------------------------------- HDF5
def h5_edit(src: Path, dst: Path, edit: Callable) -> Path:
    import h5py

    copy(src, dst)
    with h5py.File(dst, "r+") as f:
        edit(f)
    return Path(dst)


def _h5_attr_value(value: Any, raw: bool):
    if raw:
        return value
    from relcli.io.meta import encode_hdf5

    if isinstance(value, float) and not np.isfinite(value):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value, allow_nan=True)
    return encode_hdf5(value)


# --------------------------------------------------------------------------- both formats
def set_meta(src: Path, dst: Path, key: str, value: Any, raw: bool = False) -> Path:
    """relcli.KEY = value (JSON-encoded as relcli writes it; ``raw``: the stored value as given)."""
    if is_h5(dst):
        def edit(f):
            f.attrs[META + key] = _h5_attr_value(value, raw)
        return h5_edit(src, dst, edit)

    def edit_header(header):
        header.setdefault("__metadata__", {})[META + key] = value if raw else json.dumps(value, allow_nan=True)
    return st_edit(src, dst, edit_header)


def del_meta(src: Path, dst: Path, key: str) -> Path:
    if is_h5(dst):
        return h5_edit(src, dst, lambda f: f.attrs.__delitem__(META + key) if META + key in f.attrs else None)

    def edit_header(header):
        header.get("__metadata__", {}).pop(META + key, None)
    return st_edit(src, dst, edit_header)


def edit_json_meta(src: Path, dst: Path, key: str, change: Callable[[Any], Any]) -> Path:
    """relcli.KEY decoded, changed by ``change`` (returning the new value), written back as JSON."""
    if is_h5(src):
        import h5py

        with h5py.File(src, "r") as f:
            stored = f.attrs[META + key]
        stored = stored.decode() if isinstance(stored, bytes) else stored
        value = json.loads(stored) if isinstance(stored, str) and stored[:1] in "[{\"" else stored
    else:
        value = json.loads(st_load(src)[0]["__metadata__"][META + key])
    new = change(value)
    return set_meta(src, dst, key, value if new is None else new)


def get_array(path: Path, name: str) -> np.ndarray:
    if is_h5(path):
        import h5py

        with h5py.File(path, "r") as f:
            d = f[name]
            return d.asstr()[...] if d.dtype.kind in "SO" else d[...]
    return st_tensors(path)[0][name]


def set_array(src: Path, dst: Path, name: str, array, dtype: str | None = None) -> Path:
    """Replace (or add; ``array`` None: remove) one array/dataset; strings go as relcli stores them."""
    if is_h5(dst):
        import h5py

        def edit(f):
            if name in f:
                del f[name]
            if array is None:
                return
            values = np.asarray(array)
            if values.dtype.kind in "UO":
                f.create_dataset(name, data=values.astype(object), dtype=h5py.string_dtype())
            else:
                f.create_dataset(name, data=values if dtype is None else values.astype(dtype))
        return h5_edit(src, dst, edit)
    tensors, metadata = st_tensors(src)
    for key in (name, f"{name}_utf8", f"{name}_offsets"):
        tensors.pop(key, None)
    if array is not None:
        values = np.asarray(array)
        if values.dtype.kind in "UO":
            encoded = [str(v).encode("utf-8") for v in values.tolist()]
            offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
            np.cumsum([len(e) for e in encoded], out=offsets[1:])
            tensors[f"{name}_utf8"] = np.frombuffer(b"".join(encoded), dtype=np.uint8)
            tensors[f"{name}_offsets"] = offsets
        else:
            tensors[name] = values if dtype is None else values.astype(dtype)
    return st_write(dst, tensors, metadata)


def set_rows(src: Path, dst: Path, rows: dict[int, Any], name: str = "embeddings") -> Path:
    """Overwrite whole rows of the matrix (values broadcast over the row), keeping its dtype."""
    matrix = np.array(get_array(src, name))
    for row, value in rows.items():
        matrix[row] = value
    return set_array(src, dst, name, matrix)


def ids_of(path: Path) -> list:
    values = get_array(path, "ids") if is_h5(path) else None
    if values is None:
        tensors, _ = st_tensors(path)
        if "ids" in tensors:
            return tensors["ids"].tolist()
        blob, offsets = tensors["ids_utf8"].tobytes(), tensors["ids_offsets"]
        return [blob[offsets[i]:offsets[i + 1]].decode() for i in range(len(offsets) - 1)]
    return [v.decode() if isinstance(v, bytes) else v for v in values.tolist()]
