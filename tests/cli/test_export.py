"""``relcli export`` / ``relcli import``: Parquet, .npy + id list and JSON lines, out and back bit for bit.

The Parquet layout is checked with pyarrow and pandas themselves (and DuckDB where installed);
foreign Parquet (pandas' list<double>, other column names) is imported as users would have it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from relcli import api
from relcli.io.embeddings import write_embeddings
from relcli.io.join import read_id_list

from .conftest import N, D, assert_clean_error, invoke, load, ok, snapshot

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")


def bits(matrix: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(matrix, dtype=np.float32).view(np.uint32)


@pytest.mark.parametrize("ext", ["parquet", "npy", "jsonl"])
@pytest.mark.parametrize("source", ["x_h5", "x_npy"])
def test_round_trip_is_bit_exact(data, tmp_path, ext, source):
    path = getattr(data, source)
    exported, back = tmp_path / f"x.{ext}", tmp_path / "back.safetensors"
    result = ok(invoke("export", path, "-o", exported, "--batch-size", 100))
    assert f"wrote {N:,} x {D} rows to {exported}" in result.stderr
    ok(invoke("import", exported, "-o", back))
    original, again = load(path), load(back)
    assert again.dtype == "float32" and np.array_equal(bits(again.matrix), bits(original.matrix))
    if source == "x_h5":
        assert again.ids == data.ids and again.labels == data.labels.tolist()
    else:  # no ids: the row number is the id, and it travels as one
        assert again.ids == list(range(N)) and again.labels is None
    assert again.attrs["provenance"]["subcommand"] == "import"


def test_parquet_layout_is_what_arrow_tools_read(data, tmp_path):
    out = tmp_path / "x.parquet"
    ok(invoke("export", data.x_h5, "-o", out, "--batch-size", 100))
    handle = pq.ParquetFile(out)
    schema = handle.schema_arrow
    assert schema.names == ["id", "label", "vector"]
    assert schema.field("id").type == pa.string() and schema.field("label").type == pa.int64()
    assert schema.field("vector").type == pa.list_(pa.float32(), D)
    assert handle.metadata.num_row_groups == 3  # one per chunk of 100 rows
    assert json.loads(schema.metadata[b"relcli"])["provenance"]["subcommand"] == "export"
    frame = __import__("pandas").read_parquet(out)
    assert frame["id"].tolist() == data.ids and frame["label"].tolist() == data.labels.tolist()
    assert np.array_equal(bits(np.stack(frame["vector"].to_numpy())), bits(data.x))


def test_duckdb_reads_the_vector_column_as_floats(data, tmp_path):
    duckdb = pytest.importorskip("duckdb")
    out = tmp_path / "x.parquet"
    api.export(data.x_h5, output=out)
    assert duckdb.sql(f"SELECT typeof(vector) FROM '{out}' LIMIT 1").fetchall()[0][0] in ("FLOAT[]", f"FLOAT[{D}]")
    top = duckdb.sql(f"SELECT id FROM '{out}' ORDER BY array_cosine_similarity(vector::FLOAT[{D}], "
                     f"(SELECT vector::FLOAT[{D}] FROM '{out}' WHERE id = 'item-0007')) DESC, id LIMIT 4").fetchall()
    hits = next(api.search(data.x_h5, id="item-0007", k=3).records())["neighbours"]
    assert [r[0] for r in top] == ["item-0007"] + [n["id"] for n in hits]  # DuckDB and relcli search agree
    row = duckdb.sql(f"SELECT id, vector FROM '{out}' WHERE id = 'item-0007'").fetchall()[0]
    assert row[0] == "item-0007" and np.array_equal(bits(np.asarray(row[1])), bits(data.x[7]))


def test_npy_export_writes_an_id_list_evaluate_can_read(data, tmp_path):
    out = tmp_path / "x.npy"
    result = api.export(data.x_h5, output=out)
    assert result.files == {"output": out, "ids": tmp_path / "x.ids.txt", "labels": tmp_path / "x.labels.txt"}
    assert np.array_equal(bits(np.load(out)), bits(data.x))
    assert read_id_list(tmp_path / "x.ids.txt") == data.ids
    assert (tmp_path / "x.labels.txt").read_text().split() == [str(v) for v in data.labels.tolist()]


def test_jsonl_lines_hold_id_label_and_vector(data, tmp_path):
    out = tmp_path / "x.jsonl"
    ok(invoke("export", data.x_h5, "-o", out))
    lines = out.read_text().splitlines()
    assert len(lines) == N
    first = json.loads(lines[0])
    assert list(first) == ["id", "label", "vector"] and first["id"] == data.ids[0] and first["label"] == int(data.labels[0])
    assert np.array_equal(bits(np.asarray(first["vector"], dtype=np.float64).astype(np.float32)), bits(data.x[0]))


def test_float64_stays_float64_unless_asked(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((10, 3))
    path = write_embeddings(tmp_path / "x64.h5", x, ids=[f"r{i}" for i in range(10)])
    ok(invoke("export", path, "-o", tmp_path / "a.parquet"))
    assert pq.read_schema(tmp_path / "a.parquet").field("vector").type == pa.list_(pa.float64(), 3)
    ok(invoke("import", tmp_path / "a.parquet", "-o", tmp_path / "a.h5"))
    assert load(tmp_path / "a.h5").dtype == "float64" and np.array_equal(load(tmp_path / "a.h5").matrix, x)
    ok(invoke("export", path, "-o", tmp_path / "b.npy", "--dtype", "float32"))
    assert np.load(tmp_path / "b.npy").dtype == np.float32


def test_foreign_parquet_with_other_columns_and_variable_lists(tmp_path):
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((7, 5))
    table = pa.table({"doc_id": [f"d{i}" for i in range(7)], "topic": ["a", "b"] * 3 + ["a"],
                      "embedding": pa.array([v.tolist() for v in vectors], pa.list_(pa.float64()))})
    pq.write_table(table, tmp_path / "docs.parquet", row_group_size=3)
    out = tmp_path / "docs.h5"
    ok(invoke("import", tmp_path / "docs.parquet", "--id-column", "doc_id", "--label-column", "topic", "-o", out,
              "--batch-size", 2))
    got = load(out)
    assert got.ids == [f"d{i}" for i in range(7)] and got.labels == table["topic"].to_pylist()
    assert got.dtype == "float64" and np.array_equal(got.matrix, vectors)  # the only list column, found by itself
    ok(invoke("import", tmp_path / "docs.parquet", "--id-column", "", "--dtype", "float32", "-o", tmp_path / "f.h5"))
    assert load(tmp_path / "f.h5").ids is None and load(tmp_path / "f.h5").dtype == "float32"
    ragged = pa.table({"id": ["a", "b", "c"], "vector": pa.array([[1.0, 2.0], [3.0], [4.0, 5.0]])})
    pq.write_table(ragged, tmp_path / "ragged.parquet")
    assert_clean_error(invoke("import", tmp_path / "ragged.parquet", "-o", tmp_path / "r.h5"), 1, "another length", "'b'",
                       path=tmp_path / "ragged.parquet")
    holes = pa.table({"id": ["a", "b"], "vector": pa.array([[1.0, 2.0], None])})
    pq.write_table(holes, tmp_path / "holes.parquet")
    assert_clean_error(invoke("import", tmp_path / "holes.parquet", "-o", tmp_path / "h.h5"), 1, "no vector", "'b'")
    assert_clean_error(invoke("import", tmp_path / "docs.parquet", "--vector-column", "nope", "-o", tmp_path / "n.h5"), 2,
                       "no column 'nope'")
    assert not any(p.exists() for p in (tmp_path / "r.h5", tmp_path / "h.h5", tmp_path / "n.h5"))


def test_nan_rows_are_named_or_dropped_and_nothing_half_written(data, tmp_path):
    x = data.x[:12].copy()
    x[5, 2] = np.nan
    path = write_embeddings(tmp_path / "nan.h5", x, ids=data.ids[:12], allow_nonfinite=True)
    out = tmp_path / "out"
    out.mkdir()
    before = snapshot(out)
    for ext in ("parquet", "npy", "jsonl"):
        assert_clean_error(invoke("export", path, "-o", out / f"n.{ext}"), 1, "NaN/Inf", repr(data.ids[5]), "--drop-invalid",
                           path=path)
    assert snapshot(out) == before  # no output, no sidecar, no temp file
    result = ok(invoke("export", path, "-o", out / "n.jsonl", "--drop-invalid"))
    assert "dropped 1 row(s)" in result.stderr
    assert [json.loads(line)["id"] for line in (out / "n.jsonl").read_text().splitlines()] == data.ids[:5] + data.ids[6:12]


def test_usage_and_sidecar_errors(data, tmp_path):
    assert_clean_error(invoke("export", data.x_h5, "-o", tmp_path / "x.csv"), 2, ".parquet, .npy, .jsonl or .vec (by")
    assert_clean_error(invoke("import", data.x_h5, "-o", tmp_path / "y.h5"), 2, ".parquet, .npy, .jsonl or .vec (or .vec.gz, and word vectors as .txt or .txt.gz)")
    np.save(tmp_path / "m.npy", data.x[:4])
    (tmp_path / "m.ids.txt").write_text("a\nb\nc\n")
    assert_clean_error(invoke("import", tmp_path / "m.npy", "-o", tmp_path / "m.h5"), 1, "3 ids for the 4 rows",
                       path=tmp_path / "m.ids.txt")
    (tmp_path / "m.ids.txt").write_text("a\nb\nc\nd\n")
    ok(invoke("import", tmp_path / "m.npy", "-o", tmp_path / "m.h5"))
    assert load(tmp_path / "m.h5").ids == ["a", "b", "c", "d"]
    # a byte-order mark, CRLF and no line feed at the end, as editors write files: the same ids and integer labels
    (tmp_path / "m.ids.txt").write_bytes("\ufeffa\r\nb\r\nc\r\nd".encode())
    (tmp_path / "m.labels.txt").write_bytes("\ufeff1\n2\n3\n4".encode())
    ok(invoke("import", tmp_path / "m.npy", "-o", tmp_path / "m2.h5"))
    assert load(tmp_path / "m2.h5").ids == ["a", "b", "c", "d"] and load(tmp_path / "m2.h5").labels == [1, 2, 3, 4]
    # a CR or a line separator inside an id survives export and import (only line feeds split)
    odd = write_embeddings(tmp_path / "odd.h5", data.x[:3], ids=["a\rb", "c\u2028d", "e"])
    ok(invoke("export", odd, "-o", tmp_path / "odd.npy"))
    ok(invoke("import", tmp_path / "odd.npy", "-o", tmp_path / "odd_back.h5"))
    assert load(tmp_path / "odd_back.h5").ids == ["a\rb", "c\u2028d", "e"]
    (tmp_path / "bad.jsonl").write_text('{"id": "a", "vector": [1, 2]}\n{"id": "b", "vector": [1]}\n')
    assert_clean_error(invoke("import", tmp_path / "bad.jsonl", "-o", tmp_path / "j.h5"), 1, "line 2", path=tmp_path / "bad.jsonl")
