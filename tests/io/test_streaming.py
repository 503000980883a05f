"""Streaming: chunked reads equal the whole, read_rows equals fancy indexing, chunked writes
equal one write (DESIGN §3 "Streaming"), for HDF5, safetensors and .npy."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from relcli.errors import DataError
from relcli.io.embeddings import EmbeddingWriter, open_embeddings, write_embeddings

N, D = 1000, 16
FORMATS = ["hdf5", "safetensors", "npy"]
EXT = {"hdf5": ".h5", "safetensors": ".safetensors", "npy": ".npy"}


def reference(dtype=np.float32) -> np.ndarray:
    return np.random.default_rng(42).standard_normal((N, D)).astype(dtype)


@pytest.fixture(params=FORMATS)
def stored(request, tmp_path):
    """(path, matrix) of a 1000 x 16 file in each format, larger than one HDF5 chunk of rows."""
    m = reference()
    path = tmp_path / f"m{EXT[request.param]}"
    if request.param == "npy":
        np.save(path, m)
    else:
        write_embeddings(path, m)
    return path, m


@pytest.mark.parametrize("batch", [1, 7, 64, 999, 1000, 1001, 4096])
def test_chunks_concatenate_to_the_whole(stored, batch):
    path, m = stored
    with open_embeddings(path) as f:
        starts, chunks = zip(*f.iter_chunks(batch))
        whole = f.read_all()
    sizes = [c.shape[0] for c in chunks]
    assert list(starts) == list(range(0, N, batch))
    assert all(s == min(batch, N - start) for s, start in zip(sizes, starts))
    assert all(isinstance(c, torch.Tensor) and c.device.type == "cpu" and c.dtype == torch.float32 for c in chunks)
    np.testing.assert_array_equal(torch.cat(chunks).numpy(), m)
    np.testing.assert_array_equal(whole.numpy(), m)


def test_chunks_are_independent_copies(stored):
    path, m = stored
    with open_embeddings(path) as f:
        first = next(iter(f.iter_chunks(10)))[1]
        first.fill_(123.0)
        np.testing.assert_array_equal(f.read_rows([0, 1]).numpy(), m[:2])


@pytest.mark.parametrize("seed", range(6))
def test_read_rows_equals_fancy_indexing(stored, seed):
    path, m = stored
    rng = np.random.default_rng(seed)
    index = rng.integers(0, N, size=int(rng.integers(1, 300)))
    index = np.concatenate([index, [N - 1, 0, N - 1], np.arange(500, 520)[::-1], np.arange(40, 60)])
    rng.shuffle(index)
    with open_embeddings(path) as f:
        rows = f.read_rows(index.tolist())
        assert rows.shape == (len(index), D)
        np.testing.assert_array_equal(rows.numpy(), m[index])
        np.testing.assert_array_equal(f.read_rows(np.array([5])).numpy(), m[[5]])
        np.testing.assert_array_equal(f.read_rows([7, 7, 7]).numpy(), m[[7, 7, 7]])
        assert f.read_rows([]).shape == (0, D)


@pytest.mark.parametrize("runs", [[(0, N)], [(3, 90)], [(0, 40), (41, 90), (700, 990)], [(i, i + 1) for i in range(0, 60, 3)]])
def test_read_rows_of_sorted_runs(stored, runs):
    """Sorted, distinct rows (a chunk of a join) are read run by run where runs are long, row by
    row where they are short, and come back without a gather: the same rows either way."""
    path, m = stored
    index = np.concatenate([np.arange(a, min(b, N)) for a, b in runs])
    with open_embeddings(path) as f:
        np.testing.assert_array_equal(f.read_rows(index).numpy(), m[index])


def test_read_rows_out_of_range(stored):
    path, _ = stored
    with open_embeddings(path) as f:
        for bad in ([N], [0, -1], [2, N + 5]):
            with pytest.raises(DataError, match="out of range"):
                f.read_rows(bad)


@pytest.mark.parametrize("fmt", ["hdf5", "safetensors"])
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("seed", range(3))
def test_chunked_write_equals_one_write(fmt, dtype, seed, tmp_path):
    m = reference(dtype)
    ids = [f"row{i}" for i in range(N)]
    once, chunked = tmp_path / f"once{EXT[fmt]}", tmp_path / f"chunked{EXT[fmt]}"
    write_embeddings(once, m, ids=ids, attrs={"kind": "anchors"})
    rng = np.random.default_rng(seed)
    cuts = np.sort(np.concatenate([[0, 0, N, N], rng.integers(0, N, size=12)]))  # includes empty chunks
    with EmbeddingWriter(chunked, N, D, dtype, ids=ids, attrs={"kind": "anchors"}) as writer:
        for i, (start, stop) in enumerate(zip(cuts[:-1], cuts[1:])):
            block = m[start:stop]
            writer.write(torch.from_numpy(block) if i % 2 else block)  # torch and numpy chunks alike
    with open_embeddings(once) as a, open_embeddings(chunked) as b:
        assert (a.shape, a.dtype, a.ids.tolist(), a.attrs) == (b.shape, b.dtype, b.ids.tolist(), b.attrs)
        np.testing.assert_array_equal(b.read_all().numpy(), m)
    if fmt == "safetensors":  # preallocated then filled: byte-identical to a one-shot write
        assert chunked.read_bytes() == once.read_bytes()


@pytest.mark.parametrize("span_rows", [5, 64, 8192])
@pytest.mark.parametrize("every", [2, 3, 7, 9, 40])
def test_read_rows_of_sorted_rows_spread_over_a_span(stored, monkeypatch, span_rows, every):
    """Rows one in `every` of their span (an `--ids` list of a fraction of a file): HDF5 reads the span
    in slices and keeps them where they are dense, row by row where not; the same rows either way."""
    from relcli.io import hdf5

    monkeypatch.setattr(hdf5, "SPAN_ROWS", span_rows)
    path, m = stored
    index = np.arange(3, N, every)
    index = index[np.random.default_rng(every).random(len(index)) < 0.9]
    with open_embeddings(path) as f:
        np.testing.assert_array_equal(f.read_rows(index).numpy(), m[index])
        np.testing.assert_array_equal(f.read_rows(index[::-1].copy()).numpy(), m[index[::-1]])


@pytest.mark.parametrize(("dtype", "source", "tiny"), [
    ("float32", np.float64, 1e-50),  # a .vec row of 1e-50s, parsed as doubles
    ("float16", np.float32, 1e-9),
    ("float16", torch.bfloat16, 1e-9),  # bfloat16 reaches 1e-38; float16 stops near 6e-8
])
def test_a_row_that_only_conversion_makes_all_zeros_is_refused_like_an_overflow(tmp_path, dtype, source, tiny):
    from relcli.errors import RowsError

    rows = [[1.0, 2.0], [tiny, -tiny], [0.0, 0.0], [tiny, 1.0]]
    chunk = torch.tensor(rows, dtype=source) if source is torch.bfloat16 else np.asarray(rows, dtype=source)
    suffix = ".safetensors" if dtype == "bfloat16" else ".h5"
    with pytest.raises(RowsError) as raised:
        with EmbeddingWriter(tmp_path / f"x{suffix}", None, 2, dtype) as writer:
            writer.write(chunk)
    # row 1 lost its direction; row 2 had none to lose, row 3 keeps its 1.0
    assert raised.value.positions == [1] and raised.value.problem.startswith(f"all zeros after conversion to {dtype}")
    assert not (tmp_path / f"x{suffix}").exists()
