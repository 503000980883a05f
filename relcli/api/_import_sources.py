"""The readers behind ``api.import_file``: ``.npy`` (+ id/label text files), JSON lines and Parquet,
each giving ``RowLoop.read`` what it needs of a reader (``.vec`` word vectors: ``relcli.io.wordvec``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from relcli.api._export_formats import sidecars
from relcli.errors import DataError, FileFormatError, UsageError, describe_rows


def _typed(values: list, path: Path, what: str) -> np.ndarray:
    """Ids or labels read as text: int64 when every one is a canonical integer, else strings."""
    from relcli.io._reader import as_id_array

    try:
        if values and all(str(int(v)) == v for v in values):
            return np.asarray([int(v) for v in values], dtype=np.int64)
    except (ValueError, OverflowError):  # not all integers, or one past int64: strings
        pass
    return as_id_array(values)


def _read_lines(path: Path, what: str) -> list[str]:
    """One value a line, the row's position its line's (``relcli.io.join.text_lines``)."""
    from relcli.io.join import text_lines

    try:
        return text_lines(path.read_bytes(), path)
    except OSError as exc:
        raise FileFormatError(f"cannot read {what}: {exc.strerror or exc}", path) from None


def word_vector_source(path: Path):
    """A ``.vec``/``.vec.gz`` file's reader, its words typed as every text id is (``_typed``)."""
    from relcli.io.wordvec import WordVectorSource

    source = WordVectorSource(path)
    source.ids = _typed(source.ids.tolist(), path, "words")
    return source


class _Source:
    """What ``RowLoop.read`` needs of a reader: ``path``, ``n_rows``, ``dim``, ``ids``, ``labels``,
    ``dtype`` (a float dtype name) and ``iter_chunks(batch)`` -> (first row, CPU tensor)."""

    path: Path
    n_rows: int
    dim: int
    dtype: str = "float32"
    ids: np.ndarray | None = None
    labels: np.ndarray | None = None

    def name(self, rows) -> str:
        rows = list(rows)
        keys = rows if self.ids is None else self.ids[np.asarray(rows, dtype=np.int64)].tolist()
        return describe_rows(keys, "rows" if self.ids is None else "ids")


class _NpySource(_Source):
    def __init__(self, path: Path, ids_file: Path | None, labels_file: Path | None):
        from relcli.io.npy import NpyReader

        self.path = path
        self.reader = NpyReader(path, None)
        self.n_rows, self.dim = self.reader.n_rows, self.reader.dim
        self.dtype = self.reader.dtype
        default_ids, default_labels = sidecars(path)
        for attr, given, default, what in (("ids", ids_file, default_ids, "ids"), ("labels", labels_file, default_labels, "labels")):
            source = given if given is not None else default if default.is_file() else None
            if source is None:
                continue
            if not Path(source).is_file():
                raise FileFormatError(f"no such {what} file", source)
            values = _read_lines(Path(source), f"the {what} file")
            if len(values) != self.n_rows:
                raise DataError(f"has {len(values)} {what} for the {self.n_rows} rows of {path.name}", source)
            setattr(self, attr, _typed(values, Path(source), what))
        self.files = [ids_file or (default_ids if self.ids is not None else None),
                      labels_file or (default_labels if self.labels is not None else None)]

    def iter_chunks(self, batch_size: int, start: int = 0, stop: int | None = None):
        return self.reader.iter_chunks(batch_size, start, stop)

    def close(self) -> None:
        self.reader.close()


class _JsonlSource(_Source):
    """Two passes: ids, labels and the row count first (so every message can name ids), then vectors."""

    def __init__(self, path: Path, vector_column: str, id_column: str | None, label_column: str | None):
        self.path, self.vector_column = path, vector_column
        ids, labels, dim = [], [], None
        self.id_column = id_column
        self.label_column = label_column
        for row, record in self._records():
            if dim is None:
                self.id_column = ("id" if "id" in record else None) if id_column is None else id_column or None
                self.label_column = ("label" if "label" in record else None) if label_column is None else label_column or None
            where = f"line {row + 1}"
            vector = record.get(vector_column)
            if not isinstance(vector, list) or not vector:
                raise DataError(f"{where}: {vector_column!r} must be a non-empty list of numbers", path)
            if dim is None:
                dim = len(vector)
            elif len(vector) != dim:
                raise DataError(f"{where}: {vector_column!r} has {len(vector)} numbers, line 1 has {dim}", path)
            for column, bucket in ((self.id_column, ids), (self.label_column, labels)):
                if column is not None:
                    value = record.get(column)
                    if not isinstance(value, (str, int)) or isinstance(value, bool):
                        raise DataError(f"{where}: {column!r} must be a string or an integer, got {value!r}", path)
                    bucket.append(value)
        if dim is None:
            raise DataError("holds no rows", path)
        self.n_rows, self.dim = self._count, dim
        from relcli.io._reader import as_id_array

        self.ids = as_id_array(ids) if self.id_column else None
        self.labels = as_id_array(labels) if self.label_column else None
        self.dtype = "float64"  # JSON numbers are doubles; the output is float32 unless asked

    def _records(self):
        self._count = 0
        try:
            with open(self.path, encoding="utf-8") as handle:
                for line_no, line in enumerate(handle):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise FileFormatError(f"line {line_no + 1} is not JSON: {exc.msg}", self.path) from None
                    except RecursionError:
                        raise FileFormatError(f"line {line_no + 1} is nested too deep to be a record", self.path) from None
                    if not isinstance(record, dict):
                        raise FileFormatError(f"line {line_no + 1} is not a JSON object", self.path)
                    self.constants = "true" in line or "false" in line  # a bool may hide among the numbers
                    yield self._count, record
                    self._count += 1
        except UnicodeDecodeError:
            raise FileFormatError("is not valid UTF-8 text", self.path) from None

    def iter_chunks(self, batch_size: int, start: int = 0, stop: int | None = None):
        stop = self.n_rows if stop is None else stop
        rows, suspects, first = [], [], start
        for row, record in self._records():
            if row < start:
                continue
            if row >= stop:
                break
            if self.constants:
                suspects.append(len(rows))
            rows.append(record[self.vector_column])
            if len(rows) == batch_size:
                yield first, self._tensor(rows, first, suspects)
                first, rows, suspects = first + len(rows), [], []
        if rows:
            yield first, self._tensor(rows, first, suspects)

    def _tensor(self, rows: list, start: int, suspects: list[int]):
        """The rows' vectors as float64: numbers only (not strings, bools, lists or null); the rows whose
        lines hold ``true``/``false`` (``suspects``) are checked value by value, the rest by numpy's dtype."""
        import torch

        def numbers(vector) -> bool:
            return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in vector)

        try:
            block = np.asarray(rows)
        except (TypeError, ValueError):
            block = None
        bad = [i for i in suspects if not numbers(rows[i])]
        if block is None or block.ndim != 2 or block.dtype.kind not in "iuf" or bad:
            bad = [start + i for i, vector in enumerate(rows) if not numbers(vector)]
            raise DataError(f"{self.vector_column!r} holds values that are not numbers in {self.name(bad)}", self.path)
        return torch.from_numpy(block.astype(np.float64, copy=False))

    def close(self) -> None:
        pass


class _ParquetSource(_Source):
    def __init__(self, path: Path, vector_column: str | None, id_column: str | None, label_column: str | None):
        import pyarrow as pa

        from relcli.io._parquet_layout import open_parquet

        self.path = path
        try:
            self.file = open_parquet(path)
        except (pa.ArrowException, OSError) as exc:
            raise FileFormatError(f"cannot read Parquet: {str(exc).splitlines()[0][:200]}", path) from None
        schema = self.file.schema_arrow
        names = list(schema.names)
        listy = [n for n in names if _is_list(schema.field(n).type)]
        if vector_column is None:
            vector_column = "vector" if "vector" in names else listy[0] if len(listy) == 1 else None
            if vector_column is None:
                raise UsageError(f"which column holds the vectors? use --vector-column (list columns: "
                                 f"{', '.join(listy) or 'none'})", path)
        if vector_column not in names:
            raise UsageError(f"has no column {vector_column!r} (columns: {', '.join(names)})", path)
        vtype = schema.field(vector_column).type
        if not _is_list(vtype) or not (pa.types.is_floating(vtype.value_type) or pa.types.is_integer(vtype.value_type)):
            raise DataError(f"column {vector_column!r} is {vtype}, not a list of numbers", path)
        self.vector_column = vector_column
        self.dtype = {"halffloat": "float16", "float": "float32", "double": "float64"}.get(str(vtype.value_type), "float32")
        self.n_rows = self.file.metadata.num_rows
        self.ids = self._column(id_column, "id", "--id-column", names)
        self.labels = self._column(label_column, "label", "--label-column", names)
        if pa.types.is_fixed_size_list(vtype):
            self.dim = vtype.list_size
        else:
            self.dim = None
            for batch in self.file.iter_batches(batch_size=1024, columns=[vector_column]):
                lengths = batch.column(0).value_lengths().to_numpy(zero_copy_only=False)
                found = lengths[~np.isnan(lengths.astype(np.float64))] if lengths.dtype.kind == "f" else lengths
                if len(found):
                    self.dim = int(found[0])
                    break
        if not self.dim:
            raise DataError(f"column {vector_column!r} holds no vectors", path)

    def _column(self, given: str | None, default: str, option: str, names: list[str]) -> np.ndarray | None:
        from relcli.io._parquet_reader import id_values

        column = (default if default in names else None) if given is None else given or None
        if column is None:
            return None
        if column not in names:
            raise UsageError(f"has no column {column!r} for {option} (columns: {', '.join(names)})", self.path)
        values = self.file.read(columns=[column]).column(0)
        if values.null_count:
            nulls = np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))
            raise DataError(f"column {column!r} is empty in {describe_rows(nulls.tolist(), 'rows')}", self.path)
        return id_values(values, self.path, column)

    def iter_chunks(self, batch_size: int, start: int = 0, stop: int | None = None):
        """Chunks of ``batch_size`` rows (float16 and integers as float32), each copied out of Arrow
        batches of bounded size (``batch_rows``) as they are read: memory stays flat whatever the
        file's row groups hold."""
        import torch

        from relcli.io._parquet_layout import batch_rows

        stop = self.n_rows if stop is None else stop
        dtype = np.float64 if self.dtype == "float64" else np.float32
        step = min(batch_size, batch_rows(self.dim, np.dtype(self.dtype).itemsize))
        first, chunk, filled = start, None, 0
        for rows in self._matrices(step, start, stop):
            done = 0
            while done < len(rows):
                if chunk is None:
                    chunk, filled = np.empty((min(batch_size, stop - first), self.dim), dtype), 0
                take = min(len(rows) - done, len(chunk) - filled)
                chunk[filled:filled + take] = rows[done:done + take]
                filled, done = filled + take, done + take
                if filled == len(chunk):
                    yield first, torch.from_numpy(chunk)
                    first, chunk = first + len(chunk), None

    def _matrices(self, step: int, start: int, stop: int):
        """Rows start:stop as possibly read-only (n, dim) arrays, Arrow batch by Arrow batch,
        with empty vectors, vectors of another length and empty numbers named."""
        import pyarrow.compute as pc

        position = 0  # the file's row of the batch's first row
        for batch in self.file.iter_batches(batch_size=step, columns=[self.vector_column]):
            begin, position = position, position + batch.num_rows
            lo, hi = max(begin, start), min(position, stop)
            if hi <= lo:
                if begin >= stop:
                    break
                continue
            column = batch.column(0).slice(lo - begin, hi - lo)
            n = len(column)
            if column.null_count:
                bad = np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False)) + lo
                raise DataError(f"column {self.vector_column!r} has no vector in {self.name(bad)}", self.path)
            lengths = pc.list_value_length(column).to_numpy(zero_copy_only=False)
            if (lengths != self.dim).any():
                bad = np.flatnonzero(lengths != self.dim) + lo
                raise DataError(f"column {self.vector_column!r} has vectors of another length than {self.dim} in "
                                f"{self.name(bad)}", self.path)
            values = pc.list_flatten(column)
            if values.null_count:
                inner = np.repeat(np.arange(n), self.dim)[values.is_null().to_numpy(zero_copy_only=False)]
                raise DataError(f"column {self.vector_column!r} has empty (null) numbers in "
                                f"{self.name(np.unique(inner) + lo)}", self.path)
            yield values.to_numpy(zero_copy_only=False).reshape(n, self.dim)
        if position < stop:
            raise DataError(f"holds {position} rows, its footer says {self.n_rows}", self.path)

    def close(self) -> None:
        self.file.close()


def _is_list(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_fixed_size_list(arrow_type)

