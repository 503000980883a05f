"""The whole chain on a space with a known answer, and a real shell pipe.

X: 5000 x 64 standard normal, string ids; Y = 2.5 X Q + 0.01 noise (Q random orthogonal);
labels = argmax of 4 fixed random projections of X. With 300 fps anchors every route into Y
(IRP, Procrustes, project + invert, stitching) must recover it to the noise level.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from relcli.io.embeddings import write_embeddings

from .conftest import invoke, load, make_parallel_spaces, ok, row_cosines, unit_rows

N, D, K = 5000, 64, 300


@dataclass
class Chain:
    folder: Path
    x: np.ndarray
    y: np.ndarray
    ids: list
    labels: np.ndarray
    x_h5: Path
    y_st: Path
    xa: Path
    ya: Path


def evaluate(*args) -> dict:
    result = ok(invoke("evaluate", *args, "--format", "json"), data=True)
    assert result.stderr == ""
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> Chain:
    folder = tmp_path_factory.mktemp("e2e")
    x, y, _, _, labels = make_parallel_spaces(N, D, seed=42)
    ids = [f"doc-{i:05d}" for i in range(N)]
    x_h5 = write_embeddings(folder / "x.h5", x, ids=ids, labels=labels)
    y_st = write_embeddings(folder / "y.safetensors", y, ids=ids, labels=labels)
    xa, ya = folder / "xa.h5", folder / "ya.safetensors"
    ok(invoke("anchors", x_h5, "-n", K, "--strategy", "fps", "--seed", 0, "-o", xa))
    ok(invoke("anchors", y_st, "--like", xa, "-o", ya))
    return Chain(folder, x, y, ids, labels, x_h5, y_st, xa, ya)


def test_anchors_are_parallel(chain):
    xa, ya = load(chain.xa), load(chain.ya)
    assert xa.ids == ya.ids and len(set(xa.ids)) == K
    rows = [int(i.split("-")[1]) for i in xa.ids]
    np.testing.assert_array_equal(xa.matrix, chain.x[rows])
    np.testing.assert_array_equal(ya.matrix, chain.y[rows])


@pytest.mark.parametrize("method", ["irp", "procrustes"])
def test_translation_recovers_y(chain, tmp_path, method):
    out = tmp_path / f"y_{method}.h5"
    ok(invoke("translate", "--src", chain.x_h5, "--tgt-anchors", chain.ya, "--method", method, "-o", out))
    y_hat = load(out)
    assert y_hat.ids == chain.ids and y_hat.matrix.shape == (N, D)
    report = evaluate(out, "--reference", chain.y_st, "--metrics", "cosine,top1,mrr")
    assert report["rows"] == N
    metrics = report["metrics"]
    assert metrics["cosine"] > 0.99
    assert metrics["top1"] > 0.95
    # the reported cosine is the real one
    assert metrics["cosine"] == pytest.approx(row_cosines(y_hat.matrix, chain.y).mean(), abs=1e-6)


def test_relative_projections_of_x_and_y_agree(chain, tmp_path):
    ok(invoke("project", chain.x_h5, "--anchors", chain.xa, "-o", tmp_path / "rx.h5"))
    ok(invoke("project", chain.y_st, "--anchors", chain.ya, "-o", tmp_path / "ry.safetensors"))
    rx, ry = load(tmp_path / "rx.h5"), load(tmp_path / "ry.safetensors")
    assert rx.reader_strings["anchor_ids"] == ry.reader_strings["anchor_ids"] == load(chain.xa).ids
    # each against the exact float64 projection of its own space
    exact_x = unit_rows(chain.x) @ unit_rows(load(chain.xa).matrix).T
    exact_y = unit_rows(chain.y) @ unit_rows(load(chain.ya).matrix).T
    np.testing.assert_allclose(rx.matrix, exact_x, atol=1e-5)
    np.testing.assert_allclose(ry.matrix, exact_y, atol=1e-5)
    # and to each other: cosine is invariant to the rotation and scaling, so only the noise differs
    assert np.abs(exact_x - exact_y).max() < 1e-2
    assert np.abs(rx.matrix - ry.matrix).max() < 1e-2


def test_invert_equals_translate_irp(chain, tmp_path):
    ok(invoke("project", chain.x_h5, "--anchors", chain.xa, "-o", tmp_path / "rx.h5"))
    ok(invoke("invert", tmp_path / "rx.h5", "--anchors", chain.ya, "-o", tmp_path / "inv.h5"))
    ok(invoke("translate", "--src", chain.x_h5, "--tgt-anchors", chain.ya, "--method", "irp",
              "-o", tmp_path / "tr.safetensors"))
    inv, tr = load(tmp_path / "inv.h5"), load(tmp_path / "tr.safetensors")
    assert inv.ids == tr.ids == chain.ids
    scale = np.abs(chain.y).max()
    assert np.abs(inv.matrix - tr.matrix).max() <= 1e-4 * scale


def test_stitching_a_head_fitted_on_y(chain, tmp_path):
    head = tmp_path / "head.safetensors"
    ok(invoke("stitch", "fit", chain.y_st, "--head", "logistic", "-o", head))
    ok(invoke("translate", "--src", chain.x_h5, "--tgt-anchors", chain.ya, "-o", tmp_path / "y_hat.h5"))
    ok(invoke("stitch", "apply", chain.y_st, "--head", head, "-o", tmp_path / "p_y.h5"))
    ok(invoke("stitch", "apply", tmp_path / "y_hat.h5", "--head", head, "-o", tmp_path / "p_hat.h5"))
    on_y = evaluate(tmp_path / "p_y.h5", "--reference", chain.y_st)["metrics"]["accuracy"]
    on_hat = evaluate(tmp_path / "p_hat.h5", "--reference", chain.y_st)["metrics"]["accuracy"]
    assert on_y > 0.9  # the labels are linear in X, hence in Y
    assert abs(on_hat - on_y) <= 0.01
    # the accuracy the CLI reports is the real one
    predicted = np.asarray(load(tmp_path / "p_hat.h5").labels)
    assert on_hat == pytest.approx(np.mean(predicted == chain.labels))


@pytest.mark.slow
def test_evaluate_json_through_a_shell_pipe(chain, tmp_path):
    """stdout is pure data: the installed `relcli` piped into a JSON parser, through bash."""
    ok(invoke("translate", "--src", chain.x_h5, "--tgt-anchors", chain.ya, "-o", tmp_path / "y_hat.h5"))
    bin_dir = Path(sys.executable).parent
    relcli = bin_dir / "relcli"
    assert relcli.exists(), f"no relcli script beside {sys.executable}"
    python = shlex.quote(sys.executable)
    parse = shlex.quote("import json,sys; d=json.load(sys.stdin); print(d['rows'], d['metrics']['cosine'] > 0.99)")
    evaluate_cmd = (f"{shlex.quote(str(relcli))} evaluate --format json {shlex.quote(str(tmp_path / 'y_hat.h5'))} "
                    f"--reference {shlex.quote(str(chain.y_st))} --metrics cosine,top1")
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "RELCLI_DEVICE": "cpu"}

    done = subprocess.run(["bash", "-c", f"set -o pipefail; {evaluate_cmd} | {python} -c {parse}"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(N), "True"]
    assert "Traceback" not in done.stderr

    # a failing gate: exit 1 from relcli, yet the JSON still flows down the pipe
    gated = subprocess.run(
        ["bash", "-c", f"{evaluate_cmd} --min top1=1.5 | {python} -c {parse}; echo \"status ${{PIPESTATUS[*]}}\""],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert gated.stdout.split() == [str(N), "True", "status", "1", "0"], gated.stdout + gated.stderr
    assert gated.stderr.startswith("Error: ") and "gate failed" in gated.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y_hat.h5"]  # nothing written beside it
