"""Shared fixtures and helpers of the bad-input tests (test_bad_inputs_*.py, DESIGN §3, §6): a
clean-failure check, a wide space with too few anchors, inputs with a NaN or an all-zero row, a
fitted head, a relative file, and command lines that read the NaN input.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from relcli.io.embeddings import write_embeddings

from .conftest import assert_clean_error, invoke, make_labels, ok, snapshot


BAD_ROW, ZERO_ROW = 5, 7  # ids item-0005, item-0007


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def fails(data, tmp_path, args, code: int, *fragments: str, path=None) -> str:
    """Run a command that must fail cleanly and leave every folder exactly as it was."""
    before = snapshot(tmp_path, data.folder)
    result = invoke(*args)
    line = assert_clean_error(result, code, *fragments, path=path)
    assert result.stdout == ""
    assert snapshot(tmp_path, data.folder) == before
    return line


@dataclass
class Wide:
    """A 64-d space with 10 anchors (too few for IRP), a 64-d head, and a labelled 32-d file."""

    x64: Path
    y64: Path
    xa10: Path
    ya10: Path
    head64: Path
    x32: Path


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Wide:
    folder = tmp_path_factory.mktemp("wide")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((100, 64)).astype(np.float32)
    y = (x @ np.linalg.qr(rng.standard_normal((64, 64)))[0]).astype(np.float32)
    ids = [f"w{i}" for i in range(100)]
    labels = make_labels(x, rng)
    w = Wide(
        x64=write_embeddings(folder / "x64.h5", x, ids=ids, labels=labels),
        y64=write_embeddings(folder / "y64.h5", y, ids=ids, labels=labels),
        xa10=folder / "xa10.h5", ya10=folder / "ya10.h5", head64=folder / "head64.safetensors",
        x32=write_embeddings(folder / "x32.h5", x[:, :32].copy(), ids=ids, labels=labels),
    )
    ok(invoke("anchors", w.x64, "-n", 10, "--strategy", "random", "-o", w.xa10))
    ok(invoke("anchors", w.y64, "--like", w.xa10, "-o", w.ya10))
    ok(invoke("stitch", "fit", w.y64, "--max-iter", 20, "-o", w.head64))
    return w


@pytest.fixture
def broken(data, tmp_path):
    """X with a NaN in row BAD_ROW (x_nan) and X with an all-zero row ZERO_ROW (x_zero)."""
    folder = tmp_path / "in"
    folder.mkdir()
    x_nan, x_zero = data.x.copy(), data.x.copy()
    x_nan[BAD_ROW, 3] = np.nan
    x_zero[ZERO_ROW] = 0
    return (
        write_embeddings(folder / "x_nan.h5", x_nan, ids=data.ids, labels=data.labels, allow_nonfinite=True),
        write_embeddings(folder / "x_zero.safetensors", x_zero, ids=data.ids, labels=data.labels),
    )


@pytest.fixture(scope="module")
def head(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("head") / "head.safetensors"
    ok(invoke("stitch", "fit", data.y_h5, "--max-iter", 50, "-o", path))
    return path


@pytest.fixture(scope="module")
def relative(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("rel") / "x_rel.h5"
    ok(invoke("project", data.x_h5, "--anchors", data.xa, "-o", path))
    return path


# ---------------------------------------------------------------------------------------------
# NaN and zero rows: command lines that read the NaN input
# ---------------------------------------------------------------------------------------------
def nan_lines(data, broken, head):
    x_nan = broken[0]
    return {
        "project": lambda o: ["project", x_nan, "--anchors", data.xa, "-o", o],
        "translate": lambda o: ["translate", "--src", x_nan, "--tgt-anchors", data.ya, "-o", o],
        "stitch-apply": lambda o: ["stitch", "apply", x_nan, "--head", head, "-o", o],
        "stitch-run": lambda o: ["stitch", "run", "--src", x_nan, "--tgt-anchors", data.ya, "--head", head, "-o", o],
    }
