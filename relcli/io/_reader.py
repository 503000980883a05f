"""What every embedding-file reader shares: picking the matrix, ids, labels, row access.

A reader is a read-only view: ``shape`` is (rows, dims), ``dtype`` a name from FLOAT_DTYPES (or an
integer type), ``attrs`` the relcli.* metadata without the prefix, ``ids``/``labels`` a 1-D
numpy array (int64, or object holding str) or None. Rows come back as CPU torch tensors in the
file's dtype.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

import numpy as np

from relcli.errors import DataError, FileFormatError, UsageError

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")
# Arrays with these names are parts of the contract, never candidates for the matrix.
RESERVED = {"ids", "labels", "anchor_ids", "space_mean", "space_std", "source_ids"}


def as_id_array(values) -> np.ndarray:
    """Ids or labels as a 1-D numpy array: int64 when every value is an integer, else object holding str."""
    if not isinstance(values, np.ndarray):
        values = list(values)
        if values and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
            try:
                values = np.asarray(values, dtype=np.int64)
            except OverflowError:  # past int64: every id stays text, as in .txt id lists
                pass
    if isinstance(values, np.ndarray) and values.dtype.kind in "iu":
        if values.dtype.kind == "u" and values.size and int(values.max()) > np.iinfo(np.int64).max:
            return as_id_array([str(v) for v in values.reshape(-1).tolist()])  # past int64: text, never wrapped
        return values.astype(np.int64, copy=False).reshape(-1)
    if isinstance(values, np.ndarray) and values.dtype == object and values.ndim == 1:
        if all(map(isinstance, values.tolist(), repeat(str))):  # already strings: a copy, not a rebuild (0.4 s at 1M)
            return values.copy()
    array = np.empty(len(values), dtype=object)
    array[:] = [v if isinstance(v, str) else str(v) for v in (values.tolist() if isinstance(values, np.ndarray) else values)]
    return array


def whole_number_array(values, what: str, path) -> np.ndarray:
    """Ids or labels read with the items of ``embed`` (an array, JSON numbers): floats that are all whole
    numbers (a label array saved as float, ``"label": 1.0``) become int64, as integers would be; any
    other float (0.5, NaN) is an error naming the row, never the text '0.5'. Text (CSV cells) stays text."""
    if not (isinstance(values, np.ndarray) and values.dtype.kind in "fiub"):
        listed = values.tolist() if isinstance(values, np.ndarray) else list(values)
        numbers = all(isinstance(v, (int, float, np.number)) and not isinstance(v, (bool, np.bool_)) for v in listed)
        if listed and numbers and any(isinstance(v, (float, np.floating)) for v in listed):
            values = np.asarray(listed, dtype=np.float64)  # JSON numbers: 1.0 is the class 1, 0.5 no class
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        values = values.astype(np.float64)  # float16's range ends below 2^63
        whole = np.isfinite(values) & (np.floor(values) == values) & (np.abs(values) < 2.0**63)
        if not bool(whole.all()):
            row = int(np.flatnonzero(~whole)[0])
            raise DataError(f"{what} must be integers or text; row {row} holds {float(values[row])}", path)
        return values.astype(np.int64)
    return as_id_array(values)


def pair_keys(source_ids, ids) -> np.ndarray:
    """'source<TAB>id' per row: what must be unique in an anchors file taken through a dictionary
    (many-to-many pairs: an id may come with several partners)."""
    keys = np.empty(len(ids), dtype=object)
    keys[:] = [f"{a}\t{b}" for a, b in zip(source_ids.tolist(), ids.tolist())]
    return keys


def key_hashes(keys) -> np.ndarray:
    """int64 per key: integer ids as they are, anything else by Python's ``hash`` (equal keys, equal
    hashes; sorting these finds or joins millions of keys without a dict of them)."""
    if isinstance(keys, np.ndarray) and keys.dtype.kind in "iu":
        return keys.astype(np.int64, copy=False)
    return np.fromiter(map(hash, keys), dtype=np.int64, count=len(keys))


def repeats(hashes: np.ndarray) -> bool:
    """Whether any value of ``hashes`` occurs twice (one sort; no argsort)."""
    ordered = np.sort(hashes)
    return bool((ordered[1:] == ordered[:-1]).any())


def check_unique(ids: np.ndarray, path, where: str = "", lines: np.ndarray | None = None) -> None:
    """Ids must be unique: a duplicate is an error naming it and its two rows (the first repeated id
    in row order, with the row it first appeared at), or their ``lines`` in a text file.

    In O(n log n) over 8-byte keys (the ids themselves, or Python's hash of each string id), so four
    million string ids cost ~1 s and 64 MB, not a dict of every id; only rows whose keys collide are
    compared exactly."""
    suspects = _colliding_rows(ids)
    seen: dict[Any, int] = {}
    for row, value in zip(suspects.tolist(), ids[suspects].tolist()):
        if value in seen:
            at = f"rows {seen[value]} and {row}" if lines is None else f"lines {lines[seen[value]]} and {lines[row]}"
            raise FileFormatError(f"duplicate id {value!r} at {at}{where}: ids must be unique", path)
        seen[value] = row


def _colliding_rows(ids: np.ndarray) -> np.ndarray:
    """Rows (ascending) whose 8-byte key (``key_hashes``) another row shares: the only rows that can
    repeat an id, to be compared exactly. One sort, no dict of every id."""
    if len(ids) < 2:
        return np.zeros(0, dtype=np.int64)
    keys = key_hashes(ids)
    if not repeats(keys):
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    clash = np.flatnonzero(keys[order[1:]] == keys[order[:-1]])
    return np.unique(np.concatenate([order[clash], order[clash + 1]]))


def repeated_rows(ids: np.ndarray) -> np.ndarray:
    """Rows (ascending) whose id occurs at an earlier row: what keeping each id's first row leaves out."""
    suspects = _colliding_rows(ids)
    seen: set = set()
    later = []
    for row, value in zip(suspects.tolist(), ids[suspects].tolist()):
        if value in seen:
            later.append(row)
        seen.add(value)
    return np.asarray(later, dtype=np.int64)


def contiguous_runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of consecutive values in sorted, distinct ``indices``."""
    breaks = np.flatnonzero(np.diff(indices) != 1) + 1
    starts = np.concatenate([[0], breaks]).astype(np.int64)
    stops = np.concatenate([breaks, [len(indices)]]).astype(np.int64)
    return list(zip(indices[starts].tolist(), (indices[stops - 1] + 1).tolist()))


def strings_in_chunks(count: int, read: Callable[[int, int], Iterable[str]], chunk: int = 65536) -> np.ndarray:
    """An object array of ``count`` strings filled ``chunk`` at a time from ``read(start, stop)``, so
    reading millions of ids holds one chunk's temporaries, not a second copy of every id."""
    values = np.empty(count, dtype=object)
    for start in range(0, count, chunk):
        stop = min(count, start + chunk)
        values[start:stop] = list(read(start, stop))
    return values


class EmbeddingReader:
    """Base of the format readers; subclasses set the fields in ``__init__`` and implement
    ``_read_slice``, ``array``, ``strings`` and ``array_shapes``."""

    format = "?"

    def __init__(self, path: Path, key: str | None):
        self.path = path
        self.requested_key = key
        self.key: str = ""
        self.shape: tuple[int, int] = (0, 0)
        self.dtype: str = "float32"
        self.attrs: dict[str, Any] = {}
        self.ids: np.ndarray | None = None
        self.labels: np.ndarray | None = None
        self._keys: list[str] | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        pass

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
        if self._keys is None:
            source = range(self.n_rows) if self.ids is None else self.ids.tolist()
            self._keys = [v if isinstance(v, str) else str(v) for v in source]
        return self._keys

    def adopt_ids(self, rows: np.ndarray, ids: np.ndarray) -> None:
        """Hold ``ids`` at ``rows`` in place of this file's own id strings, and drop the cached join
        keys. For ids a join has just matched to this file's (``rows_for_keys``: equal strings):
        one copy of millions of string ids in memory instead of two (300 MB at 4M ids)."""
        if self.ids is None or ids is None or self.ids.dtype != object or ids.dtype != object:
            return
        if len(rows) != len(ids):
            raise ValueError(f"{len(rows)} rows for {len(ids)} ids")
        self.ids[rows] = ids
        self._keys = None

    def keys_of(self, rows) -> list:
        """How messages name rows: their ids (str or int), or their row numbers."""
        rows = np.asarray(rows, dtype=np.int64)
        return rows.tolist() if self.ids is None else self.ids[rows].tolist()

    @property
    def key_noun(self) -> str:
        return "rows" if self.ids is None else "ids"

    def _refuse_estimators(self) -> None:
        """A fitted map or head is not an embedding file: say what it is and where it belongs."""
        if self.kind in ("translator", "head"):
            what = "map (translate --map)" if self.kind == "translator" else "head (stitch --head)"
            raise FileFormatError(f"is a fitted {what}, not an embedding file", self.path)

    def _finish_open(self) -> None:
        for name in ("ids", "labels"):
            values = getattr(self, name)
            if values is None:
                continue
            if len(values) != self.n_rows:
                raise FileFormatError(f"has {len(values)} {name} for {self.n_rows} rows", self.path)
            setattr(self, name, as_id_array(values))
        if self.ids is not None:
            source = self.strings("source_ids") if self.kind == "anchors" else None
            if source is not None and len(source) != len(self.ids):
                raise FileFormatError(f"has {len(source)} source_ids for {len(self.ids)} rows", self.path)
            check_unique(self.ids if source is None else pair_keys(source, self.ids), self.path)
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
                raise UsageError(f"has several 2-D arrays ({', '.join(sorted(matrices))}): pick one with --key", self.path)
            key = matrices[0]
        shape = candidates[key]
        if len(shape) != 2:
            raise FileFormatError(
                f"array {key!r} is {len(shape)}-D (shape {list(shape)}); relcli needs a 2-D matrix (rows, dims)", self.path
            )
        self.shape = (int(shape[0]), int(shape[1]))
        return key

    def _read_slice(self, start: int, stop: int):
        raise TypeError(f"{type(self).__name__} is a base class")

    def _read_sorted(self, indices: np.ndarray):
        return self._read_runs(contiguous_runs(indices))

    def _read_runs(self, runs: list[tuple[int, int]]):
        """Rows of the (start, stop) runs, one read each, in order."""
        import torch

        if len(runs) == 1:
            return self._read_slice(*runs[0])
        return torch.cat([self._read_slice(start, stop) for start, stop in runs], dim=0)

    def iter_chunks(self, batch_size: int = 65536, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, Any]]:
        """Yield (first row, chunk) over rows ``start:stop`` (all by default); chunks are CPU torch tensors."""
        batch_size = max(int(batch_size), 1)
        stop = self.n_rows if stop is None else stop
        for first in range(start, stop, batch_size):
            yield first, self._read_slice(first, min(first + batch_size, stop))

    def read_all(self):
        """The whole matrix as one CPU tensor."""
        return self._read_slice(0, self.n_rows)

    def read_rows(self, indices: Sequence[int]):
        """Rows at ``indices`` (any order, repeats allowed) as one CPU tensor."""
        import torch

        index = np.asarray(indices, dtype=np.int64)
        if index.size == 0:
            return torch.empty((0, self.dim), dtype=getattr(torch, self.dtype) if self.dtype in FLOAT_DTYPES else torch.float32)
        if index.min() < 0 or index.max() >= self.n_rows:
            raise DataError(f"row index out of range 0..{self.n_rows - 1}", self.path)
        if (np.diff(index) > 0).all():  # sorted, no repeats (a chunk of a join, say): no gather
            return self._read_sorted(index)
        unique, inverse = np.unique(index, return_inverse=True)
        return self._read_sorted(unique)[torch.from_numpy(inverse.reshape(-1))]

    def array(self, name: str):
        """An auxiliary numeric array (e.g. space_mean) as a CPU tensor, or None."""
        return None

    def strings(self, name: str) -> np.ndarray | None:
        """An auxiliary id-like array (int64, or object holding str), or None."""
        return None

    def array_shapes(self) -> dict[str, tuple[list[int], str]]:
        """Every array in the file: name -> (shape, dtype), for ``relcli info``."""
        return {}


def native(array: np.ndarray) -> np.ndarray:
    """The array in native byte order (a no-op, not a copy, when it already is)."""
    return array.astype(array.dtype.newbyteorder("="), copy=False)


def short(exc: BaseException) -> str:
    """The first line of an exception's message, for a one-line error."""
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return text or "unreadable"
