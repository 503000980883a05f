"""The writers behind ``api.export`` (Parquet, ``.npy`` + id/label lists, JSON lines, ``.vec``) and the helpers
export and import share: formats by extension, the pyarrow check, ``.npy`` sidecar names."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from relcli.errors import OutputError, UsageError

FORMATS = {".parquet": "parquet", ".npy": "npy", ".jsonl": "jsonl", ".vec": "vec"}
EXPORT_DTYPES = ("float32", "float64")
NPY_HEADER_BYTES = 128  # magic, version, length and the padded header dict: a multiple of 64, as numpy writes


def _format(path: Path, option: str, verb: str, reading: bool = False) -> str:
    """The format of ``path`` by its extension; ``reading`` (import): ``.vec.gz`` is one too, and
    ``.txt``/``.txt.gz`` are word vectors in the same text format (GloVe, word2vec, MUSE write them)."""
    if reading and path.name.lower().endswith((".vec.gz", ".txt", ".txt.gz")):
        return "vec"
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        also = " (or .vec.gz, and word vectors as .txt or .txt.gz)" if reading else ""
        raise UsageError(f"{option}: relcli {verb} .parquet, .npy, .jsonl or .vec{also} (by extension), not "
                         f"{path.suffix.lower() or '(none)'!r}", path) from None


def _need_pyarrow():
    try:
        import pyarrow  # noqa: F401
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise UsageError("Parquet needs pyarrow: pip install 'relcli[parquet]'") from None


def sidecars(path: Path) -> tuple[Path, Path]:
    """``x.npy`` -> (``x.ids.txt``, ``x.labels.txt``)."""
    base = path.with_suffix("")
    return base.with_name(base.name + ".ids.txt"), base.with_name(base.name + ".labels.txt")


def _plain(values: np.ndarray) -> list:
    return values.tolist()


# --------------------------------------------------------------------------------------- export sinks
class _Sink:
    """A writer for ``RowLoop.run``: ``prepare`` in the loop's thread, ``append`` in the writing thread."""

    def __init__(self, temp: Path, path: Path, dim: int, dtype: str):
        self.temp, self.path, self.dim, self.dtype = temp, path, dim, dtype

    def prepare(self, block, ids, labels, columns=None):
        return block.detach().cpu().numpy(), ids, labels

    def append(self, prepared) -> None:
        try:
            self._append(*prepared)
        except OSError as exc:
            from relcli.io.atomic import describe_os_error

            raise OutputError(describe_os_error(exc), self.path) from None


class _ParquetSink(_Sink):
    def __init__(self, temp, path, dim, dtype, ids, labels, metadata: dict):
        import pyarrow as pa
        import pyarrow.parquet as pq

        super().__init__(temp, path, dim, dtype)
        fields = [pa.field("id", pa.int64() if ids.dtype.kind in "iu" else pa.string(), nullable=False)]
        if labels is not None:
            fields.append(pa.field("label", pa.int64() if labels.dtype.kind in "iu" else pa.string(), nullable=False))
        fields.append(pa.field("vector", pa.list_(pa.float32() if dtype == "float32" else pa.float64(), dim), nullable=False))
        self.schema = pa.schema(fields, metadata={"relcli": json.dumps(metadata)})
        self.writer = pq.ParquetWriter(str(temp), self.schema)

    def _append(self, block, ids, labels) -> None:
        import pyarrow as pa

        columns = [pa.array(_plain(ids), self.schema.field("id").type)]
        if labels is not None:
            columns.append(pa.array(_plain(labels), self.schema.field("label").type))
        values = pa.array(np.ascontiguousarray(block).reshape(-1), self.schema.field("vector").type.value_type)
        columns.append(pa.FixedSizeListArray.from_arrays(values, self.dim))
        table = pa.Table.from_arrays(columns, schema=self.schema)
        self.writer.write_table(table, row_group_size=max(len(block), 1))

    def close(self) -> None:
        self.writer.close()


def npy_header(n_rows: int, dim: int, dtype: str) -> bytes:
    """A .npy (version 1.0) header of a fixed NPY_HEADER_BYTES, so the row count can be rewritten in place."""
    descr = np.dtype(dtype).newbyteorder("<").str
    text = "{'descr': %r, 'fortran_order': False, 'shape': (%d, %d), }" % (descr, n_rows, dim)
    length = NPY_HEADER_BYTES - 10
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", length) + (text.ljust(length - 1) + "\n").encode("latin1")


class _NpySink(_Sink):
    def __init__(self, temp, path, dim, dtype, n_rows: int):
        super().__init__(temp, path, dim, dtype)
        self.handle = open(temp, "wb")
        self.handle.write(npy_header(n_rows, dim, dtype))
        self.rows, self.ids, self.labels = 0, [], []

    def _append(self, block, ids, labels) -> None:
        self.handle.write(np.ascontiguousarray(block, dtype=np.dtype(self.dtype).newbyteorder("<")).tobytes())
        self.rows += len(block)
        self.ids.extend(_plain(ids))
        if labels is not None:
            self.labels.extend(_plain(labels))

    def close(self) -> None:
        self.handle.seek(0)
        self.handle.write(npy_header(self.rows, self.dim, self.dtype))
        self.handle.close()


class _VecSink(_Sink):
    """``.vec`` text (``relcli.io.wordvec``): the ids are the words; the header's row count (at most
    ``most_rows``) is rewritten at the end."""

    def __init__(self, temp, path, dim, dtype, most_rows):
        from relcli.io.wordvec import header_line

        super().__init__(temp, path, dim, dtype)
        self.handle, self.rows, self.most_rows = open(temp, "wb"), 0, most_rows
        self.handle.write(header_line(0, dim, most_rows))

    def _append(self, block, ids, labels) -> None:
        from relcli.io.wordvec import PARSE_ROWS, vector_lines

        for lo in range(0, len(block), PARSE_ROWS):  # the text of a whole chunk would take several times its memory
            self.handle.write(vector_lines(block[lo:lo + PARSE_ROWS], ids[lo:lo + PARSE_ROWS], self.dtype))
        self.rows += len(block)

    def close(self) -> None:
        from relcli.io.wordvec import header_line

        self.handle.seek(0)
        self.handle.write(header_line(self.rows, self.dim, self.most_rows))
        self.handle.close()


class _JsonlSink(_Sink):
    def __init__(self, temp, path, dim, dtype):
        super().__init__(temp, path, dim, dtype)
        self.handle = open(temp, "w", encoding="utf-8", newline="\n")

    def _append(self, block, ids, labels) -> None:
        id_list = _plain(ids)
        label_list = None if labels is None else _plain(labels)
        lines = []
        for row, vector in enumerate(block.tolist()):  # float32 -> the exact double: repr round-trips
            record = {"id": id_list[row]}
            if label_list is not None:
                record["label"] = label_list[row]
            record["vector"] = vector
            lines.append(json.dumps(record, ensure_ascii=False, allow_nan=False))
        self.handle.write("\n".join(lines) + "\n")

    def close(self) -> None:
        self.handle.close()

