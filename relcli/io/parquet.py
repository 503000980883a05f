"""Parquet embedding datasets (``.parquet`` files, or a folder of them): a reader and a streaming writer.

Layout read: one row per item, a vector column (fixed-size list, or list, of numbers) and
optionally an id column and a label column. The vector column is ``--key``, else the first of
``embeddings``, ``embedding``, ``vector`` that exists, else the only list column; ids are column
``id`` (or ``ids``), labels ``label`` (or ``labels``). A folder is read as one dataset: its
``.parquet`` files in sorted path order (names starting with ``.`` or ``_``, such as Spark's
``_SUCCESS``, are skipped), so Spark's ``part-00000-...`` files keep their order. Rows are read in
small batches, never a whole row group, so memory stays flat on files with huge row groups.

Layout written (``ParquetWriter``, one file): columns ``id``, ``label`` (when the rows have them),
``vector`` (fixed-size list of the output dtype; the layout of ``relcli export``) and one column per per-row array (such as
``translate --confidence``); relcli metadata in the file's key-value metadata as ``relcli.*`` keys
with JSON values (as in safetensors headers), and per-file arrays (``anchor_ids``, ``space_mean``,
...) as ``relcli-array.NAME`` keys holding ``{"dtype", "shape", "data"}``. Row groups hold about
64 MiB. The reader maps ``id``/``label`` back to the contract's ``ids``/``labels``.

Rows reach ``ParquetWriter.append`` before the ids, labels and per-row arrays (which come to
``finish``), while Parquet stores them side by side in every row group: the rows are spilled to a
raw temp file beside the output and written out, row group by row group, in ``finish``. Peak disk
use is about twice the output; memory stays at one row group.

Needs pyarrow (``pip install 'relcli[parquet]'``); nothing here imports it until a file is opened.

The writer is here; the reader is ``relcli.io._parquet_reader`` and the names both use are in
``relcli.io._parquet_layout``, all re-exported here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from relcli import interrupts
from relcli.errors import DataError, OutputError, UsageError
from relcli.io import meta
from relcli.io._parquet_layout import (
    ARRAY_PREFIX,
    ID_COLUMNS,
    INSTALL_HINT,
    LABEL_COLUMNS,
    NUMBER_TYPES,
    PARQUET_MAGIC,
    READ_BATCH_BYTES,
    SUFFIXES,
    VECTOR,
    VECTOR_COLUMNS,
    _pyarrow,
    dataset_files,
    is_parquet_dataset,
)
from relcli.io._parquet_reader import ParquetReader
from relcli.io._reader import short
from relcli.io.atomic import TEMP_SUFFIX, describe_os_error, guarded

__all__ = [
    "ARRAY_PREFIX", "ID_COLUMNS", "INSTALL_HINT", "LABEL_COLUMNS", "NUMBER_TYPES", "PARQUET_MAGIC", "READ_BATCH_BYTES",
    "ROW_GROUP_BYTES", "SUFFIXES", "VECTOR", "VECTOR_COLUMNS", "ParquetReader", "ParquetWriter", "dataset_files",
    "is_parquet_dataset",
]

ROW_GROUP_BYTES = 64 << 20


def _spill_path(temp: Path) -> Path:
    """The raw rows' temp file: named like a relcli temp file, so a killed run's is cleaned up too."""
    name = temp.name
    if name.endswith(TEMP_SUFFIX):
        return temp.with_name(name[: -len(TEMP_SUFFIX)] + ".rows" + TEMP_SUFFIX)
    return temp.with_name(name + ".rows")


def _arrow_ids(pa, values: np.ndarray):
    if values.dtype == object:
        return pa.array(values.tolist(), type=pa.string())
    return pa.array(values.astype(np.int64, copy=False), type=pa.int64())


def _arrow_rows(pa, values: np.ndarray):
    """A per-row numpy array as an Arrow column: 1-D as is, (rows, k) as fixed-size lists."""
    values = np.ascontiguousarray(values)
    if values.ndim == 1:
        return pa.array(values)
    flat = values.reshape(len(values), -1)
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1)), flat.shape[1])


def _metadata_array(values: np.ndarray) -> str:
    if values.dtype == object:
        return json.dumps({"dtype": "string", "shape": [len(values)], "data": [str(v) for v in values.tolist()]})
    return json.dumps({"dtype": values.dtype.name, "shape": list(values.shape), "data": values.reshape(-1).tolist()})


class ParquetWriter:
    """Streams rows into a single Parquet file (interface of ``HDF5Writer``; see the module docstring)."""

    def __init__(self, temp: Path, dim: int, dtype: str, n_rows_hint: int | None, output: Path):
        if dtype == "bfloat16":
            raise UsageError("Parquet cannot store bfloat16: write .safetensors or use --dtype float32", output)
        _pyarrow()
        self.temp, self.output, self.dim, self.dtype = Path(temp), Path(output), int(dim), dtype
        self._spill = _spill_path(self.temp)
        self._rows = 0
        self._handle = guarded(self.output, lambda: open(self._spill, "wb"))  # noqa: SIM115 - closed in finish()/abort()

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=np.dtype(self.dtype).newbyteorder("="))
        if block.ndim != 2 or block.shape[1] != self.dim:
            raise DataError(f"chunk of shape {list(block.shape)} does not fit (rows, {self.dim})", self.output)
        if block.size:
            guarded(self.output, lambda: self._handle.write(memoryview(block).cast("B")))
        self._rows += block.shape[0]
        interrupts.check()

    def finish(self, aux: dict[str, np.ndarray], arrays: dict[str, np.ndarray], attrs: dict[str, Any]) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        guarded(self.output, self._handle.close)
        n = self._rows
        names = {"ids": "id", "labels": "label"}
        columns: dict[str, Any] = {}
        file_arrays: dict[str, np.ndarray] = {}
        for name, values in aux.items():
            if name in names or len(values) == n:
                columns[names.get(name, name)] = values
            else:
                file_arrays[name] = values
        for name, values in arrays.items():
            values = np.asarray(values)
            if values.ndim >= 1 and len(values) == n and n > 0 and name not in ("space_mean", "space_std"):
                columns[name] = values
            else:
                file_arrays[name] = values
        if VECTOR in columns:
            raise DataError(f"a per-row array is named {VECTOR!r}, the name of the vector column", self.output)
        metadata = {key: value for key, value in meta.encode_safetensors(attrs).items()}
        metadata.update({ARRAY_PREFIX + name: _metadata_array(values) for name, values in file_arrays.items()})
        value_type = pa.from_numpy_dtype(np.dtype(self.dtype))
        fields = []
        for name, values in columns.items():
            if name in ("id", "label"):
                fields.append(pa.field(name, pa.string() if values.dtype == object else pa.int64(), nullable=False))
        fields.append(pa.field(VECTOR, pa.list_(value_type, self.dim), nullable=False))
        for name, values in columns.items():
            if name not in ("id", "label"):
                fields.append(pa.field(name, _arrow_rows(pa, values[:0]).type, nullable=False))
        schema = pa.schema(fields, metadata=metadata)
        group_rows = max(1, ROW_GROUP_BYTES // max(1, self.dim * np.dtype(self.dtype).itemsize))
        row_bytes = self.dim * np.dtype(self.dtype).itemsize
        try:
            with open(self._spill, "rb") as spill, pq.ParquetWriter(self.temp, schema) as writer:
                for start in range(0, n, group_rows) if n else ():
                    stop = min(n, start + group_rows)
                    raw = spill.read((stop - start) * row_bytes)
                    block = np.frombuffer(raw, dtype=self.dtype).reshape(stop - start, self.dim)
                    data = []
                    for field in schema:
                        if field.name == VECTOR:
                            data.append(pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1)), self.dim))
                        elif field.name in ("id", "label"):
                            data.append(_arrow_ids(pa, columns[field.name][start:stop]))
                        else:
                            data.append(_arrow_rows(pa, columns[field.name][start:stop]))
                    writer.write_table(pa.Table.from_arrays(data, schema=schema), row_group_size=stop - start)
                    interrupts.check()
                if n == 0:
                    writer.write_table(schema.empty_table())
        except OSError as exc:
            raise OutputError(describe_os_error(exc), self.output) from None
        except pa.ArrowException as exc:
            raise OutputError(f"cannot write Parquet: {short(exc)}; nothing was written", self.output) from None
        finally:
            self._remove_spill()

    def _remove_spill(self) -> None:
        try:
            os.unlink(self._spill)
        except OSError:
            pass

    def abort(self) -> None:
        try:
            self._handle.close()
        except OSError:
            pass
        self._remove_spill()
