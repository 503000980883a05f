"""Raw items for ``relcli embed``: text lines, tables of text, or arrays (e.g. images N×C×H×W).

Arrays are read batch by batch (memory-mapped .npy, HDF5 slices); texts and tables are read
whole, since strings are small next to the embeddings they become. ``-`` reads text lines (or
JSONL, when the first line is a JSON object) from standard input.

Tables: the text is column ``text`` (or ``--text-column``); ids and labels come from columns
``id`` and ``label`` when they exist (or the columns named by ``--id-column``/``--label-column``);
without ids the row number (from 0) is the id. A text that is empty, blank or null is an error
naming its rows, or with ``skip_empty`` the row is left out. Ids must be unique.
"""

from __future__ import annotations

import hashlib
import io
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from relcli.errors import DataError, FileFormatError, RelcliError, UsageError, describe_rows
from relcli.io._reader import check_unique, whole_number_array

STDIN = "-"
STDIN_NAME = "<stdin>"
#: Input formats by extension; ``--format`` names one of the text formats for stdin or odd names.
SUFFIXES = {".txt": "txt", ".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".parquet": "parquet",
            ".npy": "npy", ".npz": "npz", ".h5": "h5", ".hdf5": "h5"}
TEXT_FORMATS = ("txt", "csv", "tsv", "jsonl", "parquet")
TABLE_FORMATS = ("csv", "tsv", "jsonl", "parquet")
# Kept for callers that test an extension.
TEXT_SUFFIXES = {".txt"}
TABLE_SUFFIXES = {".csv", ".tsv", ".jsonl", ".parquet"}
ARRAY_SUFFIXES = {".npy", ".npz", ".h5", ".hdf5"}


@dataclass
class Items:
    """What to embed: ``modality`` 'text' or 'tensor', the row count, ids and labels (or None).

    ``path`` names the input in messages (``<stdin>`` for standard input); ``skipped`` holds the
    ids of rows left out as empty; ``sha256`` is the digest of standard input's bytes; ``id_noun``
    is how messages name the ids ('ids', or 'rows' when the row numbers are the ids).
    """

    path: Path
    modality: str
    n_rows: int
    ids: Any
    labels: Any
    _texts: list[str] | None = None
    _array: Any = None
    skipped: list = field(default_factory=list)
    sha256: str | None = None
    id_noun: str = "rows"

    @property
    def from_stdin(self) -> bool:
        return str(self.path) == STDIN_NAME

    def batches(self, batch_size: int, first: int = 0, last: int | None = None) -> Iterator[tuple[int, Any]]:
        """(first row, batch) over items ``first:last``: lists of str for text, float32 CPU tensors for arrays."""
        import torch

        last = self.n_rows if last is None else last
        for start in range(first, last, batch_size):
            stop = min(start + batch_size, last)
            if self.modality == "text":
                yield start, self._texts[start:stop]
            else:
                yield start, torch.from_numpy(np.array(self._array[start:stop], dtype=np.float32))


INTEGER = re.compile(r"-?(0|[1-9][0-9]*)")


def _column(frame, name: str | None, option: str, path: Path):
    """An id or label column: int64 when every value is an integer (as written, or a whole JSON number:
    ``whole_number_array``), else strings."""
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
    return whole_number_array(values, "labels" if "label" in option else "ids", path)  # text, or JSON numbers


def _default_column(frame, given: str | None, default: str) -> str | None:
    """The column for ids or labels: the one named (``''`` for none), else ``default`` if present."""
    if given is not None:
        return given or None
    return default if default in frame.columns else None


def _read_table(source, kind: str, path: Path):
    import pandas as pd

    try:
        # Cells are read as written: no NA guessing ("NA", "None" stay text), no number parsing
        # ("007" stays "007"); _column turns an all-integer id or label column into int64.
        if kind in ("csv", "tsv"):
            return pd.read_csv(source, sep="," if kind == "csv" else "\t", dtype=str, keep_default_na=False)
        if kind == "jsonl":
            return pd.read_json(source, lines=True, dtype=False)
        try:
            return pd.read_parquet(source)
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
    except RelcliError:
        raise
    except (ValueError, OSError, EOFError) as exc:
        raise FileFormatError(f"cannot read the array: {str(exc).splitlines()[0][:160]}", path) from None
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise FileFormatError(f"cannot read HDF5 (truncated or corrupt?): {str(exc)[:160]}", path) from None
    names = [n for n, d in handle.items() if isinstance(d, h5py.Dataset) and n not in ("ids", "labels")]
    ids, labels = _h5_column(handle, "ids", path), _h5_column(handle, "labels", path)
    return handle[_pick_key(names, key, path)], ids, labels


def _h5_column(handle, name: str, path: Path):
    """An HDF5 items file's ``ids``/``labels`` (strings as UTF-8, or numbers), or None."""
    if name not in handle:
        return None
    dataset = handle[name]
    try:
        if dataset.dtype.kind in "SO":
            return dataset.asstr(encoding="utf-8")[...].tolist()
        return dataset[...]
    except UnicodeDecodeError:
        raise FileFormatError(f"{name!r} holds strings that are not valid UTF-8", path) from None
    except (OSError, RuntimeError, TypeError, ValueError) as exc:
        raise FileFormatError(f"cannot read {name!r}: {str(exc).splitlines()[0][:160] if str(exc) else 'unreadable'}",
                              path) from None


def _pick_key(names: list[str], key: str | None, path: Path) -> str:
    if key is not None:
        if key not in names:
            raise UsageError(f"has no array {key!r} for --key (arrays: {', '.join(names) or 'none'})", path)
        return key
    if len(names) != 1:
        raise UsageError(f"has {len(names)} arrays ({', '.join(names) or 'none'}): pick one with --key", path)
    return names[0]


def _sniff_stdin(data: bytes) -> str:
    """JSONL when the first non-blank line is a JSON object, else text lines."""
    for line in data.split(b"\n"):
        if line.strip():
            return "jsonl" if line.lstrip().startswith(b"{") else "txt"
    return "txt"


def _lines(data: bytes, path: Path) -> list[str]:
    """One item per line; only "\\n" ends an item (str.splitlines would also split at \\f, \\v, U+2028 ...)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileFormatError(f"is not UTF-8 text (byte {exc.start}): {exc.reason}", path) from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def _is_empty(value) -> bool:
    return value is None or (isinstance(value, float) and value != value) or not str(value).strip()


def open_items(
    path,
    text_column: str | None = None,
    id_column: str | None = None,
    label_column: str | None = None,
    key: str | None = None,
    labels_file: Path | None = None,
    *,
    format: str | None = None,
    skip_empty: bool = False,
    stdin=None,
) -> Items:
    """Open raw items by extension (.txt, .csv/.tsv/.jsonl/.parquet, .npy/.npz/.h5) or ``format``.

    ``path`` ``-`` reads standard input (``stdin``, a binary stream, defaults to ``sys.stdin``):
    text lines, or JSONL when ``format`` says so or the first line is a JSON object.
    """
    if format is not None and format not in TEXT_FORMATS:
        raise UsageError(f"unknown --format {format!r}; choose one of {', '.join(TEXT_FORMATS)}")
    digest = None
    if str(path) == STDIN:
        stream = stdin if stdin is not None else getattr(sys.stdin, "buffer", sys.stdin)
        data = stream.read()
        data = data.encode("utf-8") if isinstance(data, str) else data
        digest = hashlib.sha256(data).hexdigest()
        path, kind = Path(STDIN_NAME), format or _sniff_stdin(data)
        source = io.BytesIO(data)
    else:
        path = Path(path)
        if not path.exists():
            raise FileFormatError("no such file", path)
        if path.is_dir():
            raise FileFormatError("is a folder, not a file of items", path)
        kind = format or SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise UsageError(
                f"unknown input type {path.suffix.lower() or '(none)'!r}: use .txt, .csv, .tsv, .jsonl, .parquet, .npy, "
                ".npz or .h5, or name a text format with --format", path
            )
        source = path
        data = None
    text_where = id_note = ""
    explicit_ids = id_column is not None and id_column != ""
    if kind == "txt":
        texts = _lines(data if data is not None else path.read_bytes(), path)
        items = Items(path, "text", len(texts), None, None, _texts=texts)
    elif kind in TABLE_FORMATS:
        frame = _read_table(source, kind, path)
        if len(frame) == 0:
            raise DataError("is empty: nothing to embed", path)
        column = text_column or "text"
        if column not in frame.columns:
            raise DataError(
                f"has no text column {column!r} (columns: {', '.join(map(str, frame.columns))}); use --text-column", path
            )
        id_name = _default_column(frame, id_column, "id")
        explicit_ids = id_name is not None
        id_note = f" (column {id_name!r})" if id_name else ""
        texts = frame[column].tolist()
        text_where = f" (column {column!r})"
        items = Items(
            path, "text", len(texts), _column(frame, id_name, "--id-column", path),
            _column(frame, _default_column(frame, label_column, "label"), "--label-column", path), _texts=texts,
        )
    else:
        array, ids, labels = _read_array(path, key)
        if array.ndim < 2:
            raise DataError(f"array has shape {list(array.shape)}; expected (items, ...) with at least 2 dims", path)
        if array.dtype.kind not in "fiub":
            raise DataError(f"array has dtype {array.dtype}; expected numbers", path)
        items = Items(path, "tensor", int(array.shape[0]), ids, labels, _array=array)
        explicit_ids = ids is not None
    items.sha256 = digest
    items.id_noun = "ids" if explicit_ids else "rows"
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
    items.ids = whole_number_array(items.ids, "ids", path)
    check_unique(items.ids, path, f" of the input{id_note}")
    if items.labels is not None:
        items.labels = whole_number_array(items.labels, "labels", labels_file or path)
    if items.modality == "text":
        _check_texts(items, skip_empty, items.id_noun, text_where)
    return items


def _check_texts(items: Items, skip_empty: bool, noun: str, where: str) -> None:
    """Empty, blank or null texts: an error naming their rows, or (``skip_empty``) left out."""
    empty = np.array([_is_empty(t) for t in items._texts], dtype=bool)
    if empty.any():
        keys = items.ids[empty].tolist()
        if not skip_empty:
            raise DataError(f"empty text{where} in {describe_rows(keys, noun)}; use --skip-empty to leave them out",
                            items.path)
        if empty.all():
            raise DataError(f"has no text to embed: all {items.n_rows} rows are empty{where}", items.path)
        keep = ~empty
        items.skipped = keys
        items._texts = [t for t, k in zip(items._texts, keep.tolist()) if k]
        items.ids = items.ids[keep]
        items.labels = None if items.labels is None else items.labels[keep]
        items.n_rows = len(items._texts)
    items._texts = [t if isinstance(t, str) else str(t) for t in items._texts]
