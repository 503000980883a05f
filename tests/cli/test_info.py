"""``relcli info`` through typer's CliRunner: good files, bad files, exit codes (DESIGN §6).

A handled error is exit 1 (data/runtime) or 2 (usage), one line on stderr that names the file
and the problem, nothing on stdout, no traceback, and never the catch-all "unexpected" message.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

from relcli.cli.app import app
from relcli.errors import FileFormatError
from relcli.io.embeddings import write_embeddings

runner = CliRunner()


def info(*args) -> "object":
    return runner.invoke(app, ["info", *map(str, args)])


def assert_clean_error(result, code: int, path: Path, *fragments: str) -> None:
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    assert "Traceback" not in result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and "unexpected" not in lines[0]
    assert str(path) in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def h5(path: Path, **datasets) -> Path:
    with h5py.File(path, "w") as f:
        for name, value in datasets.items():
            f[name.replace("__", "/")] = value
    return path


def raw_safetensors(path: Path, header, data: bytes = b"") -> Path:
    encoded = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    return path


@pytest.fixture
def big_files(tmp_path):
    """A relcli HDF5 and safetensors file of 20000 x 32 float32 (about 2.5 MB each)."""
    m = np.random.default_rng(0).standard_normal((20000, 32)).astype(np.float32)
    paths = tmp_path / "big.h5", tmp_path / "big.safetensors"
    for path in paths:
        write_embeddings(path, m, ids=[f"i{k}" for k in range(20000)])
    return paths


# ---------------------------------------------------------------------------------------------
# good files
# ---------------------------------------------------------------------------------------------
def test_json_prints_one_object_per_file_and_nothing_else(tmp_path):
    m = np.arange(30, dtype=np.float32).reshape(10, 3)
    prov = {"relcli_version": "0.1.0", "subcommand": "anchors", "parameters": {"n": 10}, "inputs": [], "created_utc": "t"}
    write_embeddings(
        tmp_path / "a.h5", m, ids=[f"w{i}" for i in range(10)], labels=np.arange(10) % 3,
        attrs={"kind": "anchors", "provenance": prov, "note": {"x": [1, 2]}}, arrays={"space_mean": np.zeros(3)},
    )
    write_embeddings(tmp_path / "b.safetensors", torch.from_numpy(m).to(torch.bfloat16), ids=np.arange(100, 110),
                     labels=["x", "y"] * 5)
    np.save(tmp_path / "c.npy", m.astype(np.float64))
    result = info(tmp_path / "a.h5", tmp_path / "b.safetensors", tmp_path / "c.npy", "--format", "json")
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert len(lines) == 3 and result.stdout.endswith("\n")
    a, b, c = map(json.loads, lines)
    assert all(isinstance(x, dict) for x in (a, b, c))
    assert (a["path"], a["format"], a["kind"], a["key"], a["rows"], a["dims"], a["dtype"]) == (
        str(tmp_path / "a.h5"), "hdf5", "anchors", "embeddings", 10, 3, "float32")
    assert a["ids"] == {"type": "string", "examples": ["w0", "w1", "w2"]}
    assert a["labels"] == {"type": "int64", "classes": 3, "examples": [0, 1, 2]}
    assert a["provenance"] == prov and a["metadata"]["note"] == {"x": [1, 2]}
    assert a["arrays"]["space_mean"] == {"shape": [3], "dtype": "float64"}
    assert a["size_bytes"] == (tmp_path / "a.h5").stat().st_size
    assert (b["format"], b["dtype"], b["rows"], b["kind"]) == ("safetensors", "bfloat16", 10, "embeddings")
    assert b["ids"] == {"type": "int64", "examples": [100, 101, 102]}
    assert b["labels"]["classes"] == 2 and b["arrays"]["ids"] == {"shape": [10], "dtype": "int64"}
    assert (c["format"], c["dtype"], c["ids"], c["labels"], c["provenance"]) == ("npy", "float64", None, None, None)


def test_table_goes_to_stdout(big_files):
    result = info(*big_files)
    assert result.exit_code == 0 and result.stderr == ""
    for path in big_files:
        assert path.name in result.stdout  # the title may wrap long paths
    assert "20,000 x 32 float32" in result.stdout


def test_key_picks_a_matrix(tmp_path):
    path = h5(tmp_path / "two.h5", a=np.ones((4, 3)), g__b=np.ones((6, 2), dtype=np.float32))
    assert_clean_error(info(path), 2, path, "several 2-D arrays", "--key")
    for key, rows, dims in (("a", 4, 3), ("g/b", 6, 2)):
        result = info(path, "--key", key, "--format", "json")
        assert result.exit_code == 0 and result.stderr == ""
        summary = json.loads(result.stdout)
        assert (summary["key"], summary["rows"], summary["dims"]) == (key, rows, dims)


def test_second_file_failing_keeps_the_first_result_on_stdout(tmp_path):
    good = tmp_path / "good.h5"
    write_embeddings(good, torch.ones(2, 2))
    result = info(good, tmp_path / "missing.h5", "--format", "json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["path"] == str(good)
    assert result.stderr.startswith("Error: ") and "missing.h5" in result.stderr


def test_quiet_still_reports_errors_and_debug_shows_the_exception(tmp_path):
    missing = tmp_path / "missing.h5"
    assert_clean_error(info(missing, "-q"), 1, missing, "no such file")
    result = info(missing, "--debug")
    assert isinstance(result.exception, FileFormatError)


# ---------------------------------------------------------------------------------------------
# bad files
# ---------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    assert_clean_error(info(tmp_path / "nope.h5"), 1, tmp_path / "nope.h5", "no such file")


def test_folder(tmp_path):
    (tmp_path / "d.h5").mkdir()
    assert_clean_error(info(tmp_path / "d.h5"), 1, tmp_path / "d.h5", "folder")


@pytest.mark.parametrize("name", ["blob", "blob.h5", "blob.hdf5", "blob.safetensors", "blob.npy", "blob.bin"])
@pytest.mark.parametrize("content", ["random", "text", "empty", "short"])
def test_neither_format(name, content, tmp_path):
    path = tmp_path / name
    path.write_bytes({
        "random": np.random.default_rng(7).bytes(4096),
        "text": b"id\tvector\nfoo\t0.1 0.2 0.3\n" * 20,
        "empty": b"",
        "short": b"\x89HD",
    }[content])
    assert_clean_error(info(path), 1, path)


@pytest.mark.parametrize("fraction", [0.5, 0.1, 0.001])
def test_truncated_hdf5(big_files, fraction, tmp_path):
    cut = tmp_path / "cut.h5"
    data = big_files[0].read_bytes()
    cut.write_bytes(data[: int(len(data) * fraction)])
    assert_clean_error(info(cut), 1, cut)


def test_truncated_safetensors_header(big_files, tmp_path):
    data = big_files[1].read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    for stop in (4, 8, 20, 8 + header_len // 2, 8 + header_len - 1):
        cut = tmp_path / f"cut{stop}.safetensors"
        cut.write_bytes(data[:stop])
        assert_clean_error(info(cut), 1, cut, "safetensors")


def test_truncated_safetensors_data(big_files, tmp_path):
    data = big_files[1].read_bytes()
    for stop in (len(data) // 2, len(data) - 1):
        cut = tmp_path / f"cut{stop}.safetensors"
        cut.write_bytes(data[:stop])
        assert_clean_error(info(cut), 1, cut, "truncated")


def test_truncated_npy(tmp_path):
    np.save(tmp_path / "m.npy", np.ones((100, 10)))
    cut = tmp_path / "cut.npy"
    cut.write_bytes((tmp_path / "m.npy").read_bytes()[:500])
    assert_clean_error(info(cut), 1, cut, "truncated")


def test_no_two_dimensional_array(tmp_path):
    path = h5(tmp_path / "flat.h5", a=np.arange(5.0), b=np.arange(3))
    assert_clean_error(info(path), 1, path, "no 2-D array")
    st = tmp_path / "flat.safetensors"
    save_file({"v": torch.ones(5)}, str(st))
    assert_clean_error(info(st), 1, st, "no 2-D array")
    np.save(tmp_path / "flat.npy", np.arange(4.0))
    assert_clean_error(info(tmp_path / "flat.npy"), 1, tmp_path / "flat.npy", "1-D")


@pytest.mark.parametrize("key,ndim", [("vec", "1-D"), ("cube", "3-D")])
def test_key_naming_a_non_matrix(key, ndim, tmp_path):
    path = h5(tmp_path / "x.h5", emb=np.ones((4, 3)), vec=np.ones(4), cube=np.ones((2, 3, 4)))
    assert_clean_error(info(path, "--key", key), 1, path, ndim, key)
    st = tmp_path / "x.safetensors"
    save_file({"emb": torch.ones(4, 3), "vec": torch.ones(4), "cube": torch.ones(2, 3, 4)}, str(st))
    assert_clean_error(info(st, "--key", key), 1, st, ndim, key)


def test_key_naming_nothing_is_a_usage_error(tmp_path):
    path = h5(tmp_path / "x.h5", emb=np.ones((4, 3)))
    assert_clean_error(info(path, "--key", "nosuch"), 2, path, "nosuch")


def test_ids_length_differs_from_rows(tmp_path):
    path = h5(tmp_path / "x.h5", embeddings=np.ones((5, 2)), ids=np.array(["a", "b", "c", "d"], dtype=object).astype(h5py.string_dtype()))
    assert_clean_error(info(path), 1, path, "4 ids for 5 rows")
    st = tmp_path / "x.safetensors"
    save_file({"embeddings": torch.ones(5, 2), "ids": torch.arange(6)}, str(st))
    assert_clean_error(info(st), 1, st, "6 ids for 5 rows")
    labels = h5(tmp_path / "l.h5", embeddings=np.ones((5, 2)), labels=np.arange(3))
    assert_clean_error(info(labels), 1, labels, "3 labels for 5 rows")


def test_duplicate_ids(tmp_path):
    path = h5(tmp_path / "x.h5", embeddings=np.ones((4, 2)), ids=np.array([b"a", b"b", b"a", b"c"]))
    assert_clean_error(info(path), 1, path, "duplicate id 'a'", "rows 0 and 2")
    st = tmp_path / "x.safetensors"
    save_file({"embeddings": torch.ones(4, 2), "ids": torch.tensor([3, 1, 2, 1])}, str(st))
    assert_clean_error(info(st), 1, st, "duplicate id", "rows 1 and 3")


def test_duplicate_int_id_is_named_plainly(tmp_path):
    st = tmp_path / "x.safetensors"
    save_file({"embeddings": torch.ones(4, 2), "ids": torch.tensor([3, 1, 2, 1])}, str(st))
    assert_clean_error(info(st), 1, st, "duplicate id 1 at rows 1 and 3")


def test_ids_of_a_bad_type(tmp_path):
    path = h5(tmp_path / "x.h5", embeddings=np.ones((2, 2)), ids=np.zeros(2))
    assert_clean_error(info(path), 1, path, "'ids' must hold strings or integers")
    path = h5(tmp_path / "y.h5", embeddings=np.ones((2, 2)), ids=np.zeros((2, 1), dtype=np.int64))
    assert_clean_error(info(path), 1, path, "1-D")


def test_string_matrix(tmp_path):
    path = h5(tmp_path / "s.h5", embeddings=np.array([["a", "b"]], dtype=object).astype(h5py.string_dtype()))
    assert_clean_error(info(path), 1, path, "dtype")


def test_bad_safetensors_entries(tmp_path):
    entry = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}
    cases = {
        "list.safetensors": [1, 2],
        "dtype.safetensors": {"embeddings": {**entry, "dtype": "F8_E4M3", "data_offsets": [0, 4]}},
        "size.safetensors": {"embeddings": {**entry, "data_offsets": [0, 12]}},
        "nokeys.safetensors": {"embeddings": {"dtype": "F32"}},
    }
    for name, header in cases.items():
        path = raw_safetensors(tmp_path / name, header, b"\0" * 16)
        assert_clean_error(info(path), 1, path, "safetensors")


@pytest.mark.parametrize("header", [
    {"__metadata__": [1], "embeddings": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}},
    {"embeddings": {"dtype": "F32", "shape": [2, 2], "data_offsets": ["0", "16"]}},
], ids=["metadata-list", "offsets-str"])
def test_malformed_safetensors_header_is_a_clean_error(header, tmp_path):
    path = raw_safetensors(tmp_path / "bad.safetensors", header, b"\0" * 16)
    assert_clean_error(info(path), 1, path)


def test_ids_group_is_a_clean_error(tmp_path):
    path = tmp_path / "g.h5"
    with h5py.File(path, "w") as f:
        f["embeddings"] = np.ones((2, 2))
        f.create_group("ids")
    assert_clean_error(info(path), 1, path, "ids")


def test_array_valued_relcli_attribute(tmp_path):
    path = tmp_path / "a.h5"
    with h5py.File(path, "w") as f:
        f["embeddings"] = np.ones((2, 2))
        f.attrs["relcli.stats"] = np.arange(3)
    result = info(path, "--format", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["metadata"]["stats"] == [0, 1, 2]
