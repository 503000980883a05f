"""Raw items for ``relcli embed``: text lines, tables of text, or arrays (e.g. images N×C×H×W).

Arrays are read batch by batch (memory-mapped .npy, HDF5 slices); texts and tables are read
whole, since strings are small next to the embeddings they become.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import re

import numpy as np

from relcli.errors import DataError, FileFormatError, UsageError
from relcli.io._reader import as_id_array, check_unique

TEXT_SUFFIXES = {".txt"}
TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".parquet"}
ARRAY_SUFFIXES = {".npy", ".npz", ".h5", ".hdf5"}


@dataclass
class Items:
    """What to embed: ``modality`` 'text' or 'tensor', the row count, ids and labels (or None)."""

    path: Path
    modality: str
    n_rows: int
    ids: Any
    labels: Any
    _texts: list[str] | None = None
    _array: Any = None

    def batches(self, batch_size: int) -> Iterator[tuple[int, Any]]:
        """(first row, batch): lists of str for text, float32 CPU tensors for arrays."""
        import torch

        for start in range(0, self.n_rows, batch_size):
            stop = min(start + batch_size, self.n_rows)
            if self.modality == "text":
                yield start, self._texts[start:stop]
            else:
                yield start, torch.from_numpy(np.array(self._array[start:stop], dtype=np.float32))


INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


def _column(frame, name: str | None, option: str, path: Path):
    """An id or label column: int64 when every value is an integer (as written), else strings."""
    if name is None:
        return None
    if name not in frame.columns:
        raise DataError(f"has no column {name!r} for {option} (columns: {', '.join(map(str, frame.columns))})", path)
    values = frame[name].tolist()
    empty = sum(1 for v in values if v is None or v == "" or (isinstance(v, float) and v != v))
    if empty:
        raise DataError(f"column {name!r} has {empty} empty value(s)", path)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values) or all(
        isinstance(v, str) and INTEGER.fullmatch(v) for v in values
    ):
        return np.array([int(v) for v in values], dtype=np.int64)
    return [str(v) for v in values]


def _read_table(path: Path):
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        # Cells are read as written: no NA guessing ("NA", "None" stay text), no number parsing
        # ("007" stays "007"); _column turns an all-integer id or label column into int64.
        if suffix in (".csv", ".tsv"):
            return pd.read_csv(path, sep="," if suffix == ".csv" else "\t", dtype=str, keep_default_na=False)
        if suffix == ".jsonl":
            return pd.read_json(path, lines=True, dtype=False)
        try:
            return pd.read_parquet(path)
        except ImportError:
            raise UsageError("reading Parquet needs pyarrow: pip install 'relcli[parquet]'") from None
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError, OSError) as exc:
        raise FileFormatError(f"cannot read the table: {str(exc).splitlines()[0][:160]}", path) from None


def _read_array(path: Path, key: str | None):
    suffix = path.suffix.lower()
    ids = labels = None
    try:
        if suffix == ".npy":
            return np.load(path, mmap_mode="r", allow_pickle=False), None, None
        if suffix == ".npz":
            archive = np.load(path, allow_pickle=False)
            names = [n for n in archive.files if n not in ("ids", "labels")]
            ids = archive["ids"] if "ids" in archive.files else None
            labels = archive["labels"] if "labels" in archive.files else None
            return archive[_pick_key(names, key, path)], ids, labels
    except (ValueError, OSError, EOFError) as exc:
        raise FileFormatError(f"cannot read the array: {str(exc).splitlines()[0][:160]}", path) from None
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(f"cannot read HDF5 (truncated or corrupt?): {str(exc)[:160]}", path) from None
    names = [n for n, d in handle.items() if isinstance(d, h5py.Dataset) and n not in ("ids", "labels")]
    if "ids" in handle:
        ids = handle["ids"].asstr()[...].tolist() if handle["ids"].dtype.kind in "SO" else handle["ids"][...]
    if "labels" in handle:
        labels = handle["labels"].asstr()[...].tolist() if handle["labels"].dtype.kind in "SO" else handle["labels"][...]
    return handle[_pick_key(names, key, path)], ids, labels


def _pick_key(names: list[str], key: str | None, path: Path) -> str:
    if key is not None:
        if key not in names:
            raise FileFormatError(f"has no array {key!r} (arrays: {', '.join(names) or 'none'})", path)
        return key
    if len(names) != 1:
        raise UsageError(f"has {len(names)} arrays ({', '.join(names) or 'none'}): pick one with --key", path)
    return names[0]


def open_items(
    path: Path,
    text_column: str | None = None,
    id_column: str | None = None,
    label_column: str | None = None,
    key: str | None = None,
    labels_file: Path | None = None,
) -> Items:
    """Open raw items by extension (.txt, .csv/.tsv/.jsonl/.parquet, .npy/.npz/.h5)."""
    if not path.exists():
        raise FileFormatError("no such file", path)
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        # Only "\n" ends an item (str.splitlines would also split at \f, \v, U+2028 ...).
        lines = path.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        texts = [line.rstrip("\r") for line in lines]
        items = Items(path, "text", len(texts), None, None, _texts=texts)
    elif suffix in TABLE_SUFFIXES:
        frame = _read_table(path)
        if len(frame) == 0:
            raise DataError("is empty: nothing to embed", path)
        column = text_column or "text"
        if column not in frame.columns:
            raise DataError(
                f"has no text column {column!r} (columns: {', '.join(map(str, frame.columns))}); use --text-column", path
            )
        texts = ["" if t is None else str(t) for t in frame[column].tolist()]
        items = Items(
            path, "text", len(texts), _column(frame, id_column, "--id-column", path),
            _column(frame, label_column, "--label-column", path), _texts=texts,
        )
    elif suffix in ARRAY_SUFFIXES:
        array, ids, labels = _read_array(path, key)
        if array.ndim < 2:
            raise DataError(f"array has shape {list(array.shape)}; expected (items, ...) with at least 2 dims", path)
        if array.dtype.kind not in "fiub":
            raise DataError(f"array has dtype {array.dtype}; expected numbers", path)
        items = Items(path, "tensor", int(array.shape[0]), ids, labels, _array=array)
    else:
        raise UsageError(
            f"unknown input type {suffix or '(none)'!r}: use .txt, .csv, .tsv, .jsonl, .parquet, .npy, .npz or .h5", path
        )
    if items.n_rows == 0:
        raise DataError("is empty: nothing to embed", path)
    if labels_file is not None:
        if not labels_file.exists():
            raise FileFormatError("no such labels file", labels_file)
        try:
            items.labels = np.load(labels_file, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise FileFormatError(f"cannot read labels: {str(exc)[:160]}", labels_file) from None
        if items.labels.ndim != 1:
            raise DataError(f"labels must be 1-D, got shape {list(items.labels.shape)}", labels_file)
        if len(items.labels) != items.n_rows:
            raise DataError(f"has {len(items.labels)} labels for the {items.n_rows} items of {path.name}", labels_file)
    for name, values in (("ids", items.ids), ("labels", items.labels)):
        if values is not None and len(values) != items.n_rows:
            raise DataError(f"has {len(values)} {name} for {items.n_rows} items", path)
    if items.ids is None:
        items.ids = np.arange(items.n_rows, dtype=np.int64)  # the item's position is its id
    items.ids = as_id_array(items.ids)
    check_unique(items.ids, path)
    if items.labels is not None:
        items.labels = as_id_array(items.labels)
    return items
