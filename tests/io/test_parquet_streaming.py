"""Parquet is read in bounded pieces, whatever its row groups hold: ``relcli import`` (``_ParquetSource``)
and ``ParquetReader`` (the dask layer). pyarrow's defaults read a row group's whole column chunk and,
through ``iter_batches``' pre-buffering, kept every row group read: 3.7 GB to import 1M × 768 rows."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="relcli[parquet] is not installed (pip install 'relcli[parquet]')")
import pyarrow.parquet as pq  # noqa: E402

from relcli.api._import_sources import _ParquetSource  # noqa: E402
from relcli.io import _parquet_layout  # noqa: E402


def write_table(path, rows: np.ndarray, row_group_size: int, fixed: bool = True) -> None:
    n, d = rows.shape
    flat = pa.array(rows.reshape(-1))
    vectors = pa.FixedSizeListArray.from_arrays(flat, d) if fixed else pa.ListArray.from_arrays(
        pa.array(np.arange(0, n * d + 1, d, dtype=np.int32)), flat)
    table = pa.table({"id": pa.array([f"r{i}" for i in range(n)]), "vector": vectors})
    pq.write_table(table, path, row_group_size=row_group_size)


@pytest.mark.parametrize("batch", [1, 7, 1000, 1500, 2999, 5000])
@pytest.mark.parametrize("span", [(0, None), (5, 2500), (1024, 1025)])
def test_import_chunks_gather_small_arrow_batches(tmp_path, monkeypatch, batch, span):
    monkeypatch.setattr(_parquet_layout, "READ_BATCH_BYTES", 1)  # Arrow batches of 1,024 rows
    rows = np.random.default_rng(0).standard_normal((3000, 8)).astype(np.float16)
    write_table(tmp_path / "t.parquet", rows, row_group_size=2000, fixed=False)
    source = _ParquetSource(tmp_path / "t.parquet", None, None, None)
    start, stop = span
    chunks = list(source.iter_chunks(batch, start, stop))
    stop = 3000 if stop is None else stop
    firsts, tensors = zip(*chunks)
    assert all(t.shape[0] == batch for t in tensors[:-1]) and 0 < tensors[-1].shape[0] <= batch
    assert list(firsts) == list(range(start, stop, batch))
    whole = np.concatenate([t.numpy() for t in tensors])
    assert whole.dtype == np.float32 and np.array_equal(whole, rows[start:stop].astype(np.float32))
    tensors[0][0, 0] = 99.0  # writable, and not a view of anything the next chunk reuses
    source.close()


_PEAK = """
import json, sys
import pyarrow as pa
from pathlib import Path
from relcli.io import _parquet_layout
_parquet_layout.READ_BATCH_BYTES = 1  # Arrow batches of 1,024 rows (3 MB): Arrow's peak is a few of them
which, path = sys.argv[1], Path(sys.argv[2])
rows = 0
if which == "import":
    from relcli.api._import_sources import _ParquetSource
    source = _ParquetSource(path, None, None, None)
    for _, chunk in source.iter_chunks(8192):
        rows += chunk.shape[0]
else:
    from relcli.io.parquet import ParquetReader
    with ParquetReader(path, None) as reader:
        for _, chunk in reader.iter_chunks(8192):
            rows += chunk.shape[0]
print(json.dumps({"rows": rows, "arrow_peak": pa.default_memory_pool().max_memory()}))
"""


@pytest.mark.parametrize("which", ["import", "reader"])
def test_one_large_row_group_is_read_in_bounded_memory(tmp_path, which):
    """40,000 × 768 float32 (123 MB) in one row group: Arrow's peak stays a few batches, far below the
    group's size (pyarrow's defaults held the whole group, and every group read before it)."""
    rows = np.random.default_rng(1).standard_normal((40_000, 768)).astype(np.float32)
    write_table(tmp_path / "big.parquet", rows, row_group_size=40_000)
    del rows
    done = subprocess.run([sys.executable, "-c", _PEAK, which, str(tmp_path / "big.parquet")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["rows"] == 40_000
    assert facts["arrow_peak"] < 64 << 20, facts  # pyarrow's defaults: 220 MB
