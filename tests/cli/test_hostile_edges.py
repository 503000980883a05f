"""Inputs and options at the edges that an audit found slipping past the error discipline: each is
one clean line and no output now (or, where the input is legitimate, a right answer)."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from relcli.io.embeddings import write_embeddings

from .conftest import assert_clean_error, invoke, load, ok


@pytest.mark.parametrize(("text", "fragments"), [
    ('{"id": "a", "vector": ' + "[" * 5000 + "1" + "]" * 5000 + "}\n", ["line 1 is nested too deep"]),
    ('{"id": "a", "vector": [[1, 2], [3, 4]]}\n', ["'vector' holds values that are not numbers", "'a'"]),
    ('{"id": "a", "vector": [1, 2]}\n{"id": "b", "vector": [true, 2]}\n', ["not numbers", "'b'"]),
    ('{"id": "a", "vector": [1, 2]}\n{"id": "b", "vector": ["1", 2]}\n', ["not numbers", "'b'"]),
])
def test_json_lines_whose_vectors_are_not_numbers(tmp_path, text, fragments):
    path = tmp_path / "x.jsonl"
    path.write_text(text)
    assert_clean_error(invoke("import", path, "-o", tmp_path / "x.h5"), 1, *fragments, path=path)
    assert not (tmp_path / "x.h5").exists()


def test_json_lines_ids_past_int64_stay_text_and_true_in_an_id_is_no_bool(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"id": 123456789012345678901234567890, "vector": [1, 2]}\n{"id": 2, "vector": [3, 4.5]}\n'
                    '{"id": "true", "vector": [5, 6]}\n')
    ok(invoke("import", path, "-o", tmp_path / "x.h5"))
    got = load(tmp_path / "x.h5")
    assert got.ids == ["123456789012345678901234567890", "2", "true"]
    assert got.matrix.tolist() == [[1, 2], [3, 4.5], [5, 6]]


def test_a_k_past_every_row(data, tmp_path):
    """mrr@k with k past int64 is mrr; search -k past the index returns every other row."""
    report = json.loads(ok(invoke("evaluate", data.x_h5, "--reference", data.x_h5, "--metrics",
                                  "mrr,mrr@99999999999999999999999", "--format", "json"), data=True).stdout)
    assert report["metrics"]["mrr@99999999999999999999999"] == report["metrics"]["mrr"]
    rows = load(data.x_h5).matrix.shape[0]
    found = ok(invoke("search", data.x_h5, "--id", load(data.x_h5).ids[0], "-k", "100000000000"), data=True)
    assert len(json.loads(found.stdout)["neighbours"]) == rows - 1


def test_an_allocation_that_cannot_succeed_is_out_of_memory_not_an_internal_error(data, tmp_path):
    line = assert_clean_error(invoke("stitch", "fit", data.x_h5, "--head", "mlp", "--hidden", "2000000000",
                                     "--epochs", "1", "-o", tmp_path / "head.safetensors"), 1, "out of memory")
    assert "GiB asked for" in line and "internal error" not in line
    assert not (tmp_path / "head.safetensors").exists()


def test_vectors_of_no_numbers_are_not_exported(tmp_path):
    path = tmp_path / "empty_rows.h5"
    with h5py.File(path, "w") as handle:
        handle["embeddings"] = np.zeros((5, 0), np.float32)
    for out in ("x.parquet", "x.vec", "x.jsonl", "x.npy"):
        assert_clean_error(invoke("export", path, "-o", tmp_path / out), 1, "0 dimensions", path=path)
        assert not (tmp_path / out).exists()


def test_anchors_that_are_all_one_vector_and_a_min_score_out_of_range(data, tmp_path):
    """Constant target anchors tie everywhere: the estimate would read as perfect (ties count for
    the truth); an error says there is nothing to learn. --min-score outside the score's range is a
    usage error, not a gate that can never pass."""
    anchors = load(data.ya)
    constant = write_embeddings(tmp_path / "const.h5", np.ones_like(anchors.matrix), ids=anchors.ids)
    assert_clean_error(invoke("translate", "--src", data.x_h5, "--tgt-anchors", constant, "-o", tmp_path / "out.h5"), 1,
                       "target anchors are all one vector")
    assert not (tmp_path / "out.h5").exists()
    assert_clean_error(invoke("translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "--min-score", "1.5", "-o",
                              tmp_path / "out.h5"), 2, "--min-score must be in [-1, 1]")
    assert not (tmp_path / "out.h5").exists()


def test_parquet_ids_are_integers_text_or_utf8_bytes(tmp_path):
    """One rule for Parquet id and label columns (import and direct reads): integers, strings, or
    bytes read as UTF-8 (as HDF5 byte strings are); floats, and bytes that are not UTF-8, are refused
    (they became the text "1.5" or "b'\\xff'")."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    vectors = pa.array([[1.0, 2.0], [3.0, 4.0]], type=pa.list_(pa.float32(), 2))
    cases = {"bytes": ({"id": pa.array([b"a", "é".encode()], pa.binary())}, None),
             "latin": ({"id": pa.array([b"a", b"\xff"], pa.binary())}, "holds bytes that are not UTF-8 text"),
             "floats": ({"id": pa.array([1.5, 2.0])}, "must hold strings or integers, got double"),
             "labels": ({"id": ["x", "y"], "label": pa.array([0.5, 1.0])}, "'label' must hold strings or integers")}
    for name, (columns, fragment) in cases.items():
        path = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({**columns, "vector": vectors}), path)
        out = tmp_path / f"{name}.h5"
        if fragment is None:
            ok(invoke("import", path, "-o", out))
            assert load(out).ids == ["a", "é"]
        else:
            assert_clean_error(invoke("import", path, "-o", out), 1, fragment, path=path)
            assert not out.exists()


def _relcli_process(*args, **kwargs):
    import subprocess
    import sys

    return subprocess.Popen([sys.executable, "-m", "relcli", *map(str, args)], stderr=subprocess.PIPE, **kwargs)


@pytest.mark.skipif(not __import__("os").path.exists("/dev/full"), reason="needs /dev/full")
def test_a_full_disk_under_stdout_is_named(data):
    with open("/dev/full", "w") as full:
        process = _relcli_process("info", data.x_h5, stdout=full)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1
    assert stderr.decode().strip() == "Error: <stdout>: No space left on device"


def test_a_reader_that_goes_away_stops_the_command_quietly(data):
    """`relcli info ... | head -1`: no error line, no traceback, exit 1 (as rich's tables do; the same
    boundary serves `search`'s JSON lines)."""
    import subprocess

    process = _relcli_process("info", data.x_h5, data.y_h5, stdout=subprocess.PIPE)
    process.stdout.read(1)
    process.stdout.close()
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 1 and stderr == b"", stderr


@pytest.mark.parametrize("method, advice", [("auto", "try more anchors"), ("procrustes", "try --method auto, more anchors or --center")])
def test_a_translation_between_unrelated_spaces_is_warned_with_advice_that_fits(tmp_path, method, advice):
    rng = np.random.default_rng(0)
    ids = np.arange(300)
    x, y = tmp_path / "x.h5", tmp_path / "y.h5"
    write_embeddings(x, rng.standard_normal((300, 16)).astype(np.float32), ids=ids)
    write_embeddings(y, rng.standard_normal((300, 16)).astype(np.float32), ids=ids)
    result = ok(invoke("translate", "--src", x, "--tgt-anchors", y, "--method", method, "-o", tmp_path / "out.h5"))
    warning = [line for line in result.stderr.splitlines() if "looks poor" in line]
    assert len(warning) == 1 and warning[0].endswith(advice) and (advice != "try more anchors" or "--method" not in warning[0])


def test_too_few_anchors_for_an_estimate_fail_the_gate_and_confidence_and_write_nothing(data, tmp_path):
    """With 3 anchors nothing can be held out: --min-score has nothing to check (it passed before,
    exit 0 with the file written) and --confidence nothing to agree on (it wrote zeros)."""
    few = write_embeddings(tmp_path / "ya3.h5", data.y[:3], ids=data.ids[:3])
    out = tmp_path / "out"
    out.mkdir()
    for extra, fragment in ((["--min-score", "0.1"], "no quality estimate to check --min-score against"),
                            (["--confidence"], "--confidence needs the cross-validation's fold models")):
        result = invoke("translate", "--src", data.x_h5, "--tgt-anchors", few, *extra, "-o", out / "t.h5",
                        "--save-map", out / "m.safetensors")
        assert_clean_error(result, 1, "3 anchors are too few", fragment, "nothing was written", path=few)
    head = tmp_path / "head.safetensors"
    ok(invoke("stitch", "fit", data.y_h5, "-o", head))
    assert_clean_error(invoke("stitch", "run", "--src", data.x_h5, "--tgt-anchors", few, "--head", head, "--min-score",
                              "0.1", "-o", out / "p.h5"), 1, "no quality estimate to check --min-score against")
    assert sorted(p.name for p in out.iterdir()) == []
