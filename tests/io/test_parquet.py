"""Parquet datasets as embedding files: ``ParquetReader`` / ``ParquetWriter`` and the Spark recipe.

Until ``relcli.io.embeddings`` dispatches to them, the ``parquet`` fixture adds that dispatch (the
lines given to its owner) with monkeypatch; it does nothing once the real dispatch is there.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

pa = pytest.importorskip("pyarrow", reason="relcli[parquet] is not installed (pip install 'relcli[parquet]')")
import pyarrow.parquet as pq  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from relcli import api  # noqa: E402
from relcli.cli.app import app  # noqa: E402
from relcli.errors import DataError, FileFormatError, UsageError  # noqa: E402
from relcli.io import parquet  # noqa: E402
from relcli.io.embeddings import EmbeddingWriter, write_embeddings  # noqa: E402
from relcli.io.parquet import ParquetReader, ParquetWriter, is_parquet_dataset  # noqa: E402

README = Path(__file__).resolve().parents[2] / "examples" / "shards" / "README.md"


@pytest.fixture
def dispatch(monkeypatch):
    """relcli.io.embeddings' dispatch of .parquet files and folders (see the module docstring)."""
    from relcli.errors import OutputError
    from relcli.io import atomic, embeddings

    if ".parquet" in atomic.WRITABLE_SUFFIXES:
        return
    monkeypatch.setitem(atomic.WRITABLE_SUFFIXES, ".parquet", "parquet")
    open_embeddings = embeddings.open_embeddings

    def open_any(path, key=None):
        if is_parquet_dataset(Path(path)):
            return ParquetReader(Path(path), key)
        return open_embeddings(path, key=key)

    open_format = embeddings.EmbeddingWriter._open_format

    def open_format_any(self, dim):
        if self.format != "parquet":
            return open_format(self, dim)
        self.dim = dim
        try:
            self._format_writer = ParquetWriter(self._temp, dim, self.dtype, self.n_rows, self.path)
        except OSError as exc:
            raise OutputError(atomic.describe_os_error(exc), self.path) from None

    sniff_format = embeddings.sniff_format

    def sniff_any(path):
        return "parquet" if is_parquet_dataset(Path(path)) else sniff_format(path)

    monkeypatch.setattr(embeddings, "sniff_format", sniff_any)
    monkeypatch.setattr(embeddings, "open_embeddings", open_any)
    monkeypatch.setattr(embeddings.EmbeddingWriter, "_open_format", open_format_any)


def bits(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array).tobytes()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
@pytest.mark.parametrize("string_ids", [True, False])
def test_write_then_read_is_exact(dtype, string_ids, dispatch, tmp_path, monkeypatch):
    monkeypatch.setattr(parquet, "ROW_GROUP_BYTES", 200)  # many row groups
    rng = np.random.default_rng(0)
    x = rng.standard_normal((57, 5)).astype(dtype)
    x[3, 1], x[4, 2] = -0.0, np.finfo(dtype).tiny / 2  # signed zero and a subnormal survive
    ids = [f"id-{i}" for i in range(57)] if string_ids else list(range(1000, 1057))
    labels = ["cat", "dog", "emu"] * 19
    confidence = rng.random(57).astype(np.float32)
    path = tmp_path / "x.parquet"
    with EmbeddingWriter(path, None, 5, dtype, ids=ids, labels=labels, attrs={"kind": "anchors", "note": {"a": [1]}},
                         arrays={"confidence": confidence, "space_mean": np.ones(5, np.float32)},
                         id_arrays={"anchor_ids": ["p", "q"]}) as writer:
        for start in range(0, 57, 10):
            writer.write(x[start:start + 10])
    assert [p.name for p in tmp_path.iterdir()] == ["x.parquet"]  # no temp or spill file left
    assert pq.ParquetFile(path).num_row_groups > 1
    with ParquetReader(path, None) as reader:
        assert reader.shape == (57, 5) and reader.dtype == dtype and reader.kind == "anchors"
        assert bits(reader.read_all().numpy()) == bits(x)
        assert reader.ids.tolist() == ids and reader.labels.tolist() == labels
        assert reader.attrs["note"] == {"a": [1]} and reader.attrs["format"] == 1
        assert reader.array("confidence").numpy().tolist() == confidence.tolist()
        assert reader.array("space_mean").numpy().tolist() == [1.0] * 5
        assert reader.strings("anchor_ids").tolist() == ["p", "q"]
        shapes = reader.array_shapes()
        assert shapes["vector"] == ([57, 5], dtype) and shapes["ids"][0] == [57] and shapes["anchor_ids"] == ([2], "string")
        for start, stop in [(0, 1), (3, 40), (39, 57), (10, 10), (56, 57), (0, 57)]:  # across row groups
            assert bits(reader._read_slice(start, stop).numpy()) == bits(x[start:stop])
        order = rng.permutation(57)[:20]
        assert bits(reader.read_rows(order).numpy()) == bits(x[order])


def test_a_spark_style_folder_reads_in_name_order(tmp_path):
    folder = tmp_path / "corpus"
    (folder / "sub").mkdir(parents=True)
    x = np.arange(60, dtype=np.float32).reshape(20, 3)
    cuts = {"part-00000-a.snappy.parquet": (0, 7), "part-00001-b.snappy.parquet": (7, 15), "sub/part-00002.parquet": (15, 20)}
    for name, (a, b) in cuts.items():
        table = pa.table({"id": [f"r{i}" for i in range(a, b)], "vector": pa.array(x[a:b].tolist(), type=pa.list_(pa.float32())),
                          "other": list(range(a, b))})
        pq.write_table(table, folder / name, row_group_size=3)
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-00000-a.snappy.parquet.crc").write_text("junk")
    (folder / "_temporary").mkdir()
    (folder / "_temporary" / "part-9.parquet").write_text("junk")
    assert is_parquet_dataset(folder) and not is_parquet_dataset(tmp_path / "nothing")
    with ParquetReader(folder, None) as reader:
        assert reader.key == "vector" and reader.shape == (20, 3) and reader.kind == "embeddings"
        assert bits(reader.read_all().numpy()) == bits(x)
        assert reader.ids.tolist() == [f"r{i}" for i in range(20)] and reader.labels is None
        assert reader.array("other").numpy().tolist() == list(range(20))
        assert bits(reader._read_slice(5, 17).numpy()) == bits(x[5:17])


def test_bad_datasets_are_named(tmp_path):
    def write(name, **columns):
        pq.write_table(pa.table(columns), tmp_path / name)
        return tmp_path / name

    ragged = write("ragged.parquet", embedding=pa.array([[1.0, 2.0], [1.0, 2.0], [3.0]], type=pa.list_(pa.float32())))
    with ParquetReader(ragged, None) as reader, pytest.raises(FileFormatError, match="row 2 has 1 values, the first row 2"):
        reader.read_all()
    null = write("null.parquet", embedding=pa.array([[1.0, 2.0], None], type=pa.list_(pa.float32())))
    with ParquetReader(null, None) as reader, pytest.raises(FileFormatError, match=r"null\.parquet: row 1 has no vector"):
        reader.read_all()
    with pytest.raises(FileFormatError, match="has no vector column"):
        ParquetReader(write("none.parquet", id=[1, 2]), None)
    two = write("two.parquet", a=pa.array([[1.0]]), b=pa.array([[2.0]]))
    with pytest.raises(UsageError, match="several vector columns .* --key"):
        ParquetReader(two, None)
    with ParquetReader(two, "b") as reader:
        assert reader.read_all().tolist() == [[2.0]]
    with pytest.raises(FileFormatError, match="lists of string, not numbers"):
        ParquetReader(write("text.parquet", embedding=pa.array([["a"]])), None)
    with pytest.raises(FileFormatError, match="duplicate id"):
        ParquetReader(write("dup.parquet", id=[1, 1], embedding=pa.array([[1.0], [2.0]])), None)
    folder = tmp_path / "mixed"
    folder.mkdir()
    pq.write_table(pa.table({"embedding": pa.array([[1.0, 2.0]], type=pa.list_(pa.float32(), 2))}), folder / "a.parquet")
    pq.write_table(pa.table({"vector": pa.array([[1.0, 2.0]], type=pa.list_(pa.float32(), 2))}), folder / "b.parquet")
    with pytest.raises(FileFormatError, match=r"b\.parquet: has no column 'embedding'"):
        ParquetReader(folder, None)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileFormatError, match="folder without .parquet files"):
        ParquetReader(empty, None)
    (tmp_path / "fake.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(FileFormatError, match="cannot read Parquet"):
        ParquetReader(tmp_path / "fake.parquet", None)


def test_the_writer_refuses_what_parquet_cannot_hold_and_cleans_up(dispatch, tmp_path):
    with pytest.raises(UsageError, match="bfloat16"):
        ParquetWriter(tmp_path / "t", 3, "bfloat16", None, tmp_path / "x.parquet")
    bad = np.ones((4, 3), np.float32)
    bad[2, 0] = np.nan
    with pytest.raises(DataError):
        write_embeddings(tmp_path / "x.parquet", bad)
    assert list(tmp_path.iterdir()) == []
    writer = ParquetWriter(tmp_path / ".x.parquet.1.a.relcli-tmp", 3, "float32", None, tmp_path / "x.parquet")
    writer.append(np.ones((2, 3), np.float32))
    assert [p.name for p in tmp_path.iterdir()] == [".x.parquet.1.a.rows.relcli-tmp"]
    writer.abort()
    assert list(tmp_path.iterdir()) == []


def test_commands_read_and_write_parquet(dispatch, tmp_path):
    """translate --map from and to Parquet equals the HDF5 run; merge, info and evaluate read it."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((80, 6)).astype(np.float32)
    y = (x @ np.linalg.qr(rng.standard_normal((6, 6)))[0]).astype(np.float32)
    ids = [f"w{i}" for i in range(80)]
    write_embeddings(tmp_path / "x.h5", x, ids=ids, labels=np.arange(80) % 4)
    write_embeddings(tmp_path / "x.parquet", x, ids=ids, labels=np.arange(80) % 4)
    write_embeddings(tmp_path / "y.h5", y, ids=ids)
    api.translate(tmp_path / "x.h5", tgt_anchors=tmp_path / "y.h5", method="procrustes", save_map=tmp_path / "m.safetensors",
                  output=tmp_path / "fit.h5")
    api.translate(tmp_path / "x.h5", map=tmp_path / "m.safetensors", output=tmp_path / "want.h5")
    runner = CliRunner()
    done = runner.invoke(app, ["translate", "--src", str(tmp_path / "x.parquet"), "--map", str(tmp_path / "m.safetensors"),
                               "-o", str(tmp_path / "got.parquet")])
    assert done.exit_code == 0, done.output
    for i in range(2):
        api.translate(tmp_path / "x.parquet", map=tmp_path / "m.safetensors", shard=f"{i}/2", output=tmp_path / f"p{i}.parquet")
    done = runner.invoke(app, ["merge", str(tmp_path / "p1.parquet"), str(tmp_path / "p0.parquet"), "-o", str(tmp_path / "merged.h5")])
    assert done.exit_code == 0 and "not all HDF5" in done.stderr, done.output
    from relcli.io.embeddings import open_embeddings

    with open_embeddings(tmp_path / "want.h5") as want:
        for name in ("got.parquet", "merged.h5"):
            with open_embeddings(tmp_path / name) as got:
                assert bits(got.read_all().numpy()) == bits(want.read_all().numpy()), name
                assert got.ids.tolist() == ids and got.labels.tolist() == want.labels.tolist()
    done = runner.invoke(app, ["info", str(tmp_path / "got.parquet")])
    assert done.exit_code == 0 and "parquet" in done.stdout
    done = runner.invoke(app, ["evaluate", str(tmp_path / "got.parquet"), "--reference", str(tmp_path / "want.h5"),
                               "--metrics", "mse", "--format", "json"])
    assert done.exit_code == 0 and '"mse": 0.0' in done.stdout, done.output


def _readme_python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def _spark_recipe(tmp_path: Path):
    """A map, a reference translation, and the recipe's batch function bound to that map."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((50, 6)).astype(np.float32)
    ids = [f"s{i}" for i in range(50)]
    write_embeddings(tmp_path / "x.h5", x, ids=ids)
    write_embeddings(tmp_path / "y.h5", (2 * x[:, ::-1]).copy(), ids=ids)
    api.translate(tmp_path / "x.h5", tgt_anchors=tmp_path / "y.h5", method="linear", save_map=tmp_path / "m.safetensors",
                  output=tmp_path / "fit.h5")
    api.translate(tmp_path / "x.h5", map=tmp_path / "m.safetensors", output=tmp_path / "want.h5")
    from relcli.io.embeddings import open_embeddings

    with open_embeddings(tmp_path / "want.h5") as reader:
        want = reader.read_all().numpy()
    function = next(b for b in _readme_python_blocks() if "def translate_batches" in b)
    namespace: dict = {}
    exec(compile(function, str(README), "exec"), namespace)  # noqa: S102 - our own README
    namespace["MAP"] = str(tmp_path / "m.safetensors")
    return x, ids, want, namespace


def test_the_spark_recipes_batch_function_works_on_pandas_batches(tmp_path):
    """The README's mapInPandas function, run on the pandas batches Spark would hand it."""
    import pandas as pd

    x, ids, want, namespace = _spark_recipe(tmp_path)
    column = pd.Series(list(x), dtype=object)  # array<float> arrives as one NumPy array per row
    batches = [pd.DataFrame({"id": ids[a:b], "vector": column[a:b].to_numpy()}) for a, b in [(0, 0), (0, 20), (20, 50)]]
    out = pd.concat(list(namespace["translate_batches"](iter(batches))), ignore_index=True)
    np.testing.assert_allclose(np.stack(out["vector"].to_numpy()), want, atol=1e-5, rtol=0)
    assert out["id"].tolist() == ids


def test_the_spark_recipe_on_a_local_spark_session(tmp_path, monkeypatch):
    """Both README blocks as written, on local Spark (where pyspark and Java are installed)."""
    pytest.importorskip("pyspark", reason="pyspark is not installed")
    import shutil

    if shutil.which("java") is None and "JAVA_HOME" not in __import__("os").environ:
        pytest.skip("Spark needs Java")
    x, ids, want, namespace = _spark_recipe(tmp_path)
    (tmp_path / "corpus").mkdir()
    pq.write_table(pa.table({"id": ids, "vector": pa.array(x.tolist(), type=pa.list_(pa.float32()))}),
                   tmp_path / "corpus" / "part-00000.parquet")
    monkeypatch.chdir(tmp_path)
    wiring = next(b for b in _readme_python_blocks() if "mapInPandas(translate_batches" in b)
    try:
        exec(compile(wiring, str(README), "exec"), namespace)  # noqa: S102 - our own README
    finally:
        if "spark" in namespace:
            namespace["spark"].stop()
    with ParquetReader(tmp_path / "corpus_in_y", None) as reader:
        order = np.argsort(np.asarray(reader.ids.tolist(), dtype=object).astype(str))
        got = reader.read_all().numpy()[order]
        assert sorted(reader.ids.tolist()) == sorted(ids)
    reference = np.argsort(np.asarray(ids, dtype=str))
    np.testing.assert_allclose(got, want[reference], atol=1e-5, rtol=0)
