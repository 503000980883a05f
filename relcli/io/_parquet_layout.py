"""What the Parquet reader and writer share (see ``relcli.io.parquet``): column names, metadata
keys, the pyarrow check, which files make a dataset, and which Arrow types are vectors and numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from relcli.errors import UsageError

PARQUET_MAGIC = b"PAR1"
SUFFIXES = (".parquet", ".parq")
VECTOR_COLUMNS = ("embeddings", "embedding", "vector")
ID_COLUMNS = ("id", "ids")
LABEL_COLUMNS = ("label", "labels")
VECTOR = "vector"  # the vector column ParquetWriter writes
ARRAY_PREFIX = "relcli-array."
NUMBER_TYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
INSTALL_HINT = "pip install 'relcli[parquet]'"
#: rows are read from Parquet in Arrow batches of about this many bytes
READ_BATCH_BYTES = 16 << 20
#: and column chunks through a stream buffer of this size. Without it pyarrow reads a row group's
#: whole column chunk at once, and pre-buffering keeps every row group it read: a 1M × 768 file of
#: one row group (common from other tools) took 3 GB to read, relcli's own exports 3.7 GB at 1M rows.
READ_BUFFER_BYTES = 8 << 20


def _pyarrow():
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401 - the submodule is what we use
    except ImportError:
        raise UsageError(f"Parquet needs pyarrow: {INSTALL_HINT}") from None
    return pyarrow


def open_parquet(path: Path):
    """A ``pyarrow.parquet.ParquetFile`` that streams its column chunks (memory flat in row-group size)."""
    import pyarrow.parquet as pq

    return pq.ParquetFile(str(path), pre_buffer=False, buffer_size=READ_BUFFER_BYTES)


def batch_rows(dim: int, itemsize: int) -> int:
    """Rows per Arrow batch: about READ_BATCH_BYTES of vectors, at least 1,024 rows."""
    return max(1024, READ_BATCH_BYTES // max(1, dim * itemsize))


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith((".", "_")) for part in path.relative_to(root).parts)


def dataset_files(path: Path) -> list[Path]:
    """The Parquet files of a dataset: the file itself, or a folder's ``.parquet`` files in sorted order."""
    path = Path(path)
    if not path.is_dir():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file() and _visible(p, path))


def is_parquet_dataset(path: Path) -> bool:
    """A Parquet file (by its magic bytes) or a folder holding ``.parquet`` files (for ``sniff_format``)."""
    path = Path(path)
    if path.is_dir():
        return bool(dataset_files(path))
    try:
        with open(path, "rb") as handle:
            return handle.read(4) == PARQUET_MAGIC
    except OSError:
        return False


def _is_list(arrow_type) -> bool:
    import pyarrow as pa

    return pa.types.is_fixed_size_list(arrow_type) or pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type)


def _number_name(arrow_type) -> str | None:
    """numpy dtype name of an Arrow number type relcli can read, else None."""
    try:
        name = np.dtype(arrow_type.to_pandas_dtype()).name
    except (NotImplementedError, TypeError):  # pyarrow has no numpy twin for this type (decimal, string, ...)
        return None
    return name if name in NUMBER_TYPES else None

