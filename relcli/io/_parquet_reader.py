"""``ParquetReader``: a Parquet file or a folder of them read as an embedding file, in small batches
(see ``relcli.io.parquet`` for the layout read)."""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np

from relcli.errors import FileFormatError, RelcliError, UsageError
from relcli.io import meta
from relcli.io._parquet_layout import (
    ARRAY_PREFIX,
    ID_COLUMNS,
    LABEL_COLUMNS,
    VECTOR_COLUMNS,
    _is_list,
    _number_name,
    _pyarrow,
    batch_rows,
    dataset_files,
    open_parquet,
)
from relcli.io._reader import EmbeddingReader, as_id_array, short


def _to_matrix(column, dim: int, dtype: str, path: Path, first_row: int) -> np.ndarray:
    """A list column (an Arrow array of one batch) as a (rows, dim) numpy matrix; nulls and ragged rows named."""
    import pyarrow as pa

    if column.null_count:
        row = first_row + int(np.flatnonzero(np.asarray(column.is_null()))[0])
        raise FileFormatError(f"row {row} has no vector (null)", path)
    if not pa.types.is_fixed_size_list(column.type):
        lengths = np.asarray(column.value_lengths())
        if len(lengths) and (lengths != dim).any():
            row = int(np.flatnonzero(lengths != dim)[0])
            raise FileFormatError(f"row {first_row + row} has {lengths[row]} values, the first row {dim}: vectors must "
                                  "all have one length", path)
    values = column.flatten()
    if values.null_count:
        position = int(np.flatnonzero(np.asarray(values.is_null()))[0])
        raise FileFormatError(f"row {first_row + position // max(dim, 1)} holds a null value", path)
    flat = values.to_numpy(zero_copy_only=False)
    if flat.dtype.name != dtype:
        raise FileFormatError(f"holds {flat.dtype} vectors where the first file holds {dtype}", path)
    return flat.reshape(-1, dim)


def id_values(column, path: Path, name: str) -> np.ndarray:
    """An id or label column as int64 or an object array of str (``as_id_array``): integers, text,
    or bytes read as UTF-8 text (as HDF5 byte strings are); any other type is an error."""
    import pyarrow as pa

    if column.null_count:
        raise FileFormatError(f"column {name!r} has {column.null_count} null value(s)", path)
    if pa.types.is_integer(column.type):
        return as_id_array(column.to_numpy())  # uint64 past int64 as text, never wrapped
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        values = np.empty(len(column), dtype=object)
        values[:] = column.to_pylist()
        return values
    if pa.types.is_binary(column.type) or pa.types.is_large_binary(column.type):
        try:
            return as_id_array([value.decode("utf-8") for value in column.to_pylist()])
        except UnicodeDecodeError:
            raise FileFormatError(f"column {name!r} holds bytes that are not UTF-8 text", path) from None
    if pa.types.is_dictionary(column.type):
        return id_values(column.cast(column.type.value_type), path, name)
    raise FileFormatError(f"column {name!r} must hold strings or integers, got {column.type}", path)


class _Piece:
    """One row group of one file: where its rows sit in the dataset."""

    __slots__ = ("file", "group", "first", "rows")

    def __init__(self, file: int, group: int, first: int, rows: int):
        self.file, self.group, self.first, self.rows = file, group, first, rows


class ParquetReader(EmbeddingReader):
    """A Parquet file or a folder of Parquet files, read as an embedding file (see the module docstring)."""

    format = "parquet"

    def __init__(self, path: Path, key: str | None):
        super().__init__(Path(path), key)
        pa = _pyarrow()
        self.files = dataset_files(self.path)
        if not self.files:
            raise FileFormatError("is a folder without .parquet files", self.path)
        self._open_file, self._open_index, self._cursor = None, -1, None
        try:
            self._scan(pa)
        except RelcliError:
            self.close()
            raise
        except (OSError, ValueError, TypeError, KeyError, pa.ArrowException) as exc:
            self.close()
            raise FileFormatError(f"cannot read Parquet (truncated or corrupt?): {short(exc)}", self._blame) from None
        self._finish_open()

    # -- opening -------------------------------------------------------------------------------

    def _scan(self, pa) -> None:
        self._blame = self.files[0]
        first = open_parquet(self.files[0])
        schema = first.schema_arrow
        raw = {k.decode("utf-8", "replace"): v.decode("utf-8", "replace") for k, v in (schema.metadata or {}).items()}
        self.attrs = meta.decode({k: v for k, v in raw.items() if k.startswith(meta.META_PREFIX)}, all_json=True, path=self.path)
        self._refuse_estimators()
        self._file_arrays = {k[len(ARRAY_PREFIX):]: v for k, v in raw.items() if k.startswith(ARRAY_PREFIX)}
        self.key = self._vector_column(schema)
        value_type = schema.field(self.key).type.value_type
        dtype = _number_name(value_type)
        if dtype is None:
            raise FileFormatError(f"column {self.key!r} holds lists of {value_type}, not numbers", self.files[0])
        self.dtype = dtype
        self._id_column = next((c for c in ID_COLUMNS if c in schema.names), None)
        self._label_column = next((c for c in LABEL_COLUMNS if c in schema.names), None)
        self._schema = schema
        self._pieces: list[_Piece] = []
        total, dim = 0, None
        if pa.types.is_fixed_size_list(schema.field(self.key).type):
            dim = schema.field(self.key).type.list_size
        ids, labels = [], []
        for index, file in enumerate(self.files):
            self._blame = file
            handle = first if index == 0 else open_parquet(file)
            try:
                self._check_schema(handle.schema_arrow, file)
                for group in range(handle.num_row_groups):
                    rows = handle.metadata.row_group(group).num_rows
                    if rows:
                        self._pieces.append(_Piece(index, group, total, rows))
                        total += rows
                if dim is None and handle.metadata.num_rows:
                    dim = self._first_length(handle, file)
                for column, values in ((self._id_column, ids), (self._label_column, labels)):
                    if column is not None:
                        values.append(id_values(handle.read(columns=[column]).column(0).combine_chunks(), file, column))
            finally:
                handle.close()
        self._starts = [piece.first for piece in self._pieces]
        self.shape = (total, int(dim or 0))
        self.ids = np.concatenate(ids) if ids else None
        self.labels = np.concatenate(labels) if labels else None
        if self._id_column is not None and ids and len({v.dtype.kind for v in ids}) > 1:
            raise FileFormatError(f"column {self._id_column!r} holds integers in some files and strings in others", self.path)
        self._batch_rows = batch_rows(self.shape[1], np.dtype(self.dtype).itemsize)

    def _vector_column(self, schema) -> str:
        lists = [f.name for f in schema if _is_list(f.type)]
        key = self.requested_key
        if key is not None:
            if key not in schema.names:
                raise UsageError(f"has no column {key!r} (columns: {', '.join(schema.names)})", self.path)
            if key not in lists:
                raise FileFormatError(f"column {key!r} is {schema.field(key).type}, not a list of numbers (a vector)", self.path)
            return key
        for name in VECTOR_COLUMNS:
            if name in lists:
                return name
        if not lists:
            raise FileFormatError(f"has no vector column (a list of numbers; columns: {', '.join(schema.names)})", self.files[0])
        if len(lists) > 1:
            raise UsageError(f"has several vector columns ({', '.join(lists)}): pick one with --key", self.path)
        return lists[0]

    def _check_schema(self, schema, file: Path) -> None:
        if self.key not in schema.names:
            raise FileFormatError(f"has no column {self.key!r}, which {self.files[0].name} has: a dataset's files must "
                                  "share one schema", file)
        if schema.field(self.key).type != self._schema.field(self.key).type:
            raise FileFormatError(f"column {self.key!r} is {schema.field(self.key).type}, in {self.files[0].name} "
                                  f"{self._schema.field(self.key).type}", file)
        for column in (self._id_column, self._label_column):
            if column is not None and column not in schema.names:
                raise FileFormatError(f"has no column {column!r}, which {self.files[0].name} has", file)

    def _first_length(self, handle, file: Path) -> int:
        for batch in handle.iter_batches(batch_size=1, columns=[self.key]):
            if batch.num_rows:
                column = batch.column(0)
                if column.null_count:
                    raise FileFormatError("its first row has no vector (null)", file)
                return int(column.value_lengths()[0].as_py())
        return 0

    # -- rows ------------------------------------------------------------------------------------

    def close(self) -> None:
        self._cursor = None
        if self._open_file is not None:
            self._open_file.close()
            self._open_file, self._open_index = None, -1

    def _file(self, index: int):
        if index != self._open_index:
            self.close()
            self._open_file, self._open_index = open_parquet(self.files[index]), index
        return self._open_file

    def _batches(self, piece: _Piece):
        """(first row in the piece, matrix) batch by batch over one row group."""
        handle = self._file(piece.file)
        offset = 0
        for batch in handle.iter_batches(batch_size=self._batch_rows, row_groups=[piece.group], columns=[self.key]):
            matrix = _to_matrix(batch.column(0), self.dim, self.dtype, self.files[piece.file], piece.first + offset)
            yield offset, matrix
            offset += len(matrix)

    def _rows_of_piece(self, piece: _Piece, lo: int, hi: int) -> list[np.ndarray]:
        """Rows lo:hi (within the row group) of a piece; reads on from where the last read stopped."""
        cursor = self._cursor
        if cursor is None or cursor[0] is not piece or cursor[2] > lo:
            cursor = self._cursor = [piece, self._batches(piece), 0, np.empty((0, self.dim), self.dtype)]
        out = []
        while lo < hi:
            start, buffer = cursor[2], cursor[3]
            end = start + len(buffer)
            if lo >= end:
                try:
                    start, buffer = next(cursor[1])
                except StopIteration:
                    raise FileFormatError(f"row group {piece.group} ended early (truncated?)", self.files[piece.file]) from None
                cursor[2], cursor[3] = start, buffer
                continue
            take = min(hi, end)
            out.append(buffer[lo - start : take - start])
            lo = take
        return out

    def _read_slice(self, start: int, stop: int):
        import pyarrow as pa
        import torch

        parts: list[np.ndarray] = []
        row = start
        try:
            while row < stop:
                piece = self._pieces[bisect.bisect_right(self._starts, row) - 1]
                high = min(stop, piece.first + piece.rows)
                parts += self._rows_of_piece(piece, row - piece.first, high - piece.first)
                row = high
        except (OSError, ValueError, pa.ArrowException) as exc:
            self._cursor = None
            raise FileFormatError(f"cannot read rows (truncated or corrupt?): {short(exc)}", self.path) from None
        if not parts:
            return torch.from_numpy(np.empty((0, self.dim), dtype=self.dtype))
        rows = np.concatenate(parts) if len(parts) > 1 else parts[0]
        return torch.from_numpy(rows if rows.flags.writeable and rows.flags.c_contiguous else rows.copy())

    # -- other arrays --------------------------------------------------------------------------

    def _column(self, name: str):
        """A whole column of the dataset (over every file), or None when there is no such column."""
        import pyarrow as pa

        if name not in self._schema.names:
            return None
        chunks = []
        for file in self.files:
            with open_parquet(file) as handle:
                chunks.extend(handle.read(columns=[name]).column(0).chunks)
        return pa.chunked_array(chunks, type=self._schema.field(name).type).combine_chunks()

    def _file_array(self, name: str) -> np.ndarray | None:
        text = self._file_arrays.get(name)
        if text is None:
            return None
        record = meta.parse_json(text, f"metadata {ARRAY_PREFIX}{name}", self.path)
        if not isinstance(record, dict) or not {"dtype", "shape", "data"} <= set(record):
            raise FileFormatError(f"metadata {ARRAY_PREFIX}{name} must hold dtype, shape and data", self.path)
        try:
            if record["dtype"] == "string":
                values = np.empty(len(record["data"]), dtype=object)
                values[:] = [str(v) for v in record["data"]]
                return values
            return np.asarray(record["data"], dtype=record["dtype"]).reshape(record["shape"])
        except (TypeError, ValueError) as exc:
            raise FileFormatError(f"metadata {ARRAY_PREFIX}{name} is invalid: {short(exc)}", self.path) from None

    def array(self, name: str):
        import pyarrow as pa
        import torch

        values = self._file_array(name)
        if values is None:
            column = None if name == self.key else self._column(name)
            if column is None:
                return None
            if _is_list(column.type):
                dtype = _number_name(column.type.value_type)
                if dtype is None:
                    raise FileFormatError(f"column {name!r} must hold numbers, got {column.type}", self.path)
                length = column.type.list_size if pa.types.is_fixed_size_list(column.type) else (
                    int(column.value_lengths()[0].as_py()) if len(column) else 0)
                values = _to_matrix(column, length, dtype, self.path, 0)
            elif _number_name(column.type) is not None or pa.types.is_boolean(column.type):
                if column.null_count:
                    raise FileFormatError(f"column {name!r} has {column.null_count} null value(s)", self.path)
                values = column.to_numpy(zero_copy_only=False)
            else:
                raise FileFormatError(f"column {name!r} must hold numbers, got {column.type}", self.path)
        if values.dtype == object:
            raise FileFormatError(f"{name!r} must hold numbers, got strings", self.path)
        return torch.from_numpy(np.array(values, copy=True, order="C"))

    def strings(self, name: str):
        if name == "ids":
            return self.ids
        if name == "labels":
            return self.labels
        values = self._file_array(name)
        if values is not None:
            if values.ndim != 1 or values.dtype.kind not in "iuO":
                raise FileFormatError(f"{name!r} must be 1-D strings or integers", self.path)
            return values if values.dtype == object else as_id_array(values)
        column = self._column(name)
        return None if column is None else id_values(column, self.path, name)

    def array_shapes(self):
        shapes: dict[str, tuple[list[int], str]] = {}
        for field in self._schema:
            if field.name == self.key:
                shapes[field.name] = ([self.n_rows, self.dim], self.dtype)
                continue
            name = {self._id_column: "ids", self._label_column: "labels"}.get(field.name, field.name)
            if _is_list(field.type):
                size = [field.type.list_size] if hasattr(field.type, "list_size") else ["?"]
                shapes[name] = ([self.n_rows, *size], _number_name(field.type.value_type) or str(field.type.value_type))
            elif _number_name(field.type) is not None:
                shapes[name] = ([self.n_rows], _number_name(field.type))
            else:
                shapes[name] = ([self.n_rows], "string" if "string" in str(field.type) else str(field.type))
        for name in self._file_arrays:
            values = self._file_array(name)
            shapes[name] = (list(values.shape), "string" if values.dtype == object else values.dtype.name)
        return shapes
