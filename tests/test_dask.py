"""relcli.dask on a real two-process ``LocalCluster``: equal to the single-process commands.

Ground truth is ``api.translate(..., map=...)`` / ``api.project`` (what ``relcli translate --map`` and
``relcli project`` run) on the same files; Dask computes the same kernels on other row blocks, so
results agree to float32 rounding. The cluster is started once for the module (two worker
processes, one thread each) and every test that needs workers runs on it.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("dask.array", reason="relcli[dask] is not installed (pip install 'relcli[dask]')")
distributed = pytest.importorskip("distributed", reason="relcli[dask] is not installed (pip install 'relcli[dask]')")

import dask  # noqa: E402
import dask.array as da  # noqa: E402
import h5py  # noqa: E402

import relcli.dask as rd  # noqa: E402
from relcli import api  # noqa: E402
from relcli.errors import DataError  # noqa: E402
from relcli.io.embeddings import open_embeddings, write_embeddings  # noqa: E402

N_ROWS, DIM, ATOL = 203, 16, 1e-5


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((N_ROWS, DIM)).astype(np.float32)
    q, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    y = (1.5 * x @ q + 0.01 * rng.standard_normal((N_ROWS, DIM))).astype(np.float32)
    ids = [f"row-{i}" for i in range(N_ROWS)]
    write_embeddings(folder / "x.h5", x, ids=ids, labels=np.arange(N_ROWS) % 3)
    anchors = np.arange(0, N_ROWS, 4)
    write_embeddings(folder / "xa.h5", x[anchors], ids=[ids[i] for i in anchors])
    write_embeddings(folder / "ya.h5", y[anchors], ids=[ids[i] for i in anchors])
    api.translate(folder / "xa.h5", tgt_anchors=folder / "ya.h5", method="linear", save_map=folder / "map.safetensors",
                  output=folder / "xa_in_y.h5")
    api.translate(folder / "x.h5", map=folder / "map.safetensors", output=folder / "single.h5")
    api.project(folder / "x.h5", anchors=folder / "xa.h5", similarity=["cosine", "euclidean"], output=folder / "rel.h5")
    return folder, x, ids


@pytest.fixture(scope="module")
def client():
    """Two worker processes with one thread each, as the default scheduler of every compute."""
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None)
    with distributed.Client(cluster) as connected:
        yield connected
    cluster.close()


def matrix(path):
    with open_embeddings(path) as reader:
        return reader.read_all().numpy(), reader.ids, reader.labels, dict(reader.attrs)


def test_translate_file_on_two_worker_processes_equals_the_cli(files, client):
    folder, _, ids = files
    result = rd.translate_file(folder / "x.h5", map=folder / "map.safetensors", output=folder / "dask.h5", chunk_rows=16)
    assert (result.rows, result.dims) == (N_ROWS, DIM)
    got, got_ids, got_labels, attrs = matrix(folder / "dask.h5")
    want, want_ids, want_labels, want_attrs = matrix(folder / "single.h5")
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    assert got_ids.tolist() == ids and got_labels.tolist() == want_labels.tolist()
    assert attrs["kind"] == "embeddings" and attrs["translation"]["method"] == want_attrs["translation"]["method"]
    assert attrs["provenance"]["parameters"]["engine"] == "dask"

    pids = client.run(os.getpid)
    assert len(pids) == 2 and os.getpid() not in pids.values()
    loads = client.run(rd.loads)
    map_path = str((folder / "map.safetensors").resolve())
    assert sum(worker.get(map_path, 0) for worker in loads.values()) >= 1
    assert all(worker.get(map_path, 0) <= 1 for worker in loads.values()), loads  # once per worker, not per block


def test_hdf5_through_h5py_and_zarr_in_and_out(files, client, tmp_path):
    folder, x, ids = files
    want, *_ = matrix(folder / "single.h5")
    with h5py.File(folder / "x.h5", "r") as handle:
        y = rd.translate(da.from_array(handle["embeddings"], chunks=(50, -1)), map=folder / "map.safetensors")
        assert y.shape == (N_ROWS, DIM) and y.dtype == np.float32 and y.npartitions == 5
        rd.write(y, tmp_path / "y.h5", ids=ids)
    got, got_ids, _, _ = matrix(tmp_path / "y.h5")
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    assert got_ids.tolist() == ids

    da.from_array(x, chunks=(64, DIM)).to_zarr(str(tmp_path / "x.zarr"), component="embeddings")
    z = rd.translate(da.from_zarr(str(tmp_path / "x.zarr"), component="embeddings"), map=folder / "map.safetensors")
    rd.write(z, tmp_path / "y.zarr", ids=ids)
    import zarr

    group = zarr.open_group(str(tmp_path / "y.zarr"), mode="r")
    np.testing.assert_allclose(group["embeddings"][:], want, atol=ATOL, rtol=0)
    assert group["ids"][:].tolist() == ids and '"embeddings"' in group.attrs["relcli.kind"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folder left


def test_project_file_equals_relcli_project(files, client, tmp_path):
    folder, _, _ = files
    rd.project_file(folder / "x.h5", anchors=folder / "xa.h5", similarity=["cosine", "euclidean"],
                    output=tmp_path / "rel.h5", chunk_rows=40)
    got, got_ids, _, attrs = matrix(tmp_path / "rel.h5")
    want, want_ids, _, want_attrs = matrix(folder / "rel.h5")
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    assert got_ids.tolist() == want_ids.tolist()
    assert attrs["kind"] == "relative" and attrs["similarities"] == want_attrs["similarities"]
    with open_embeddings(tmp_path / "rel.h5") as a, open_embeddings(folder / "rel.h5") as b:
        assert a.strings("anchor_ids").tolist() == b.strings("anchor_ids").tolist()


def test_a_parquet_folder_as_input(files, client, tmp_path):
    """A Spark-style folder (part files, an id column, a list<float> vector column) through the cluster."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    folder, x, ids = files
    data = tmp_path / "corpus"
    data.mkdir()
    for part, (a, b) in enumerate([(0, 100), (100, N_ROWS)]):
        table = pa.table({"id": ids[a:b], "vector": pa.array(x[a:b].tolist(), type=pa.list_(pa.float32()))})
        pq.write_table(table, data / f"part-{part:05d}.parquet", row_group_size=30)
    (data / "_SUCCESS").write_text("")
    source = rd.from_embeddings(data, chunk_rows=32)
    assert source.array.shape == (N_ROWS, DIM) and source.ids.tolist() == ids
    rd.write(rd.translate(source.array, map=folder / "map.safetensors"), tmp_path / "y.h5", ids=source.ids)
    got, *_ = matrix(tmp_path / "y.h5")
    want, *_ = matrix(folder / "single.h5")
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)


def test_invalid_rows_are_an_error_naming_row_and_file(files, client, tmp_path):
    folder, x, ids = files
    bad = x.copy()
    bad[150] = np.nan
    source = write_embeddings(tmp_path / "bad.h5", bad, ids=ids, allow_nonfinite=True)
    with pytest.raises(DataError, match=r"bad\.h5: NaN/Inf in 1 row\(s\) \(rows 150\)"):
        rd.translate_file(source, map=folder / "map.safetensors", output=tmp_path / "y.h5", chunk_rows=64)
    assert not (tmp_path / "y.h5").exists()


def test_blocks_without_a_cluster_and_for_other_engines(files, tmp_path):
    folder, x, _ = files
    want, *_ = matrix(folder / "single.h5")
    with dask.config.set(scheduler="synchronous"):
        np.testing.assert_allclose(rd.translate(x, map=folder / "map.safetensors").compute(), want, atol=ATOL, rtol=0)
    np.testing.assert_allclose(rd.translate_block(x[:10], folder / "map.safetensors"), want[:10], atol=ATOL, rtol=0)
    back = rd.translate_block(want[:10], folder / "map.safetensors", reverse=True)
    api.translate(folder / "single.h5", map=folder / "map.safetensors", reverse=True, output=tmp_path / "back.h5")
    np.testing.assert_allclose(back, matrix(tmp_path / "back.h5")[0][:10], atol=ATOL, rtol=0)
    assert rd.translate_block(x[:3].astype(np.float64), folder / "map.safetensors").dtype == np.float64
    with pytest.raises(DataError, match="dimension mismatch: the array has 3 dims"):
        rd.translate(np.ones((4, 3), np.float32), map=folder / "map.safetensors")
