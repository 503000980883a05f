"""The sharding recipes of examples/shards/ run as written and reproduce the single-process output.

A small synthetic corpus is translated with a saved map by ``parallel.sh`` (with ``xargs -P``; with
GNU parallel too where it is installed) and by the ``Makefile`` under ``make -j``; each merged file
must equal ``relcli translate --map`` over all rows, bit for bit. The recipes run concurrently
(they are separate processes), so the test costs about one recipe's time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from relcli import api
from relcli.cli.app import app
from relcli.io.embeddings import open_embeddings, write_embeddings

RECIPES = Path(__file__).resolve().parents[1] / "examples" / "shards"
N_ROWS, DIM, SHARDS = 301, 12, 2


def _has_shard_flag() -> bool:
    return "--shard" in CliRunner().invoke(app, ["translate", "--help"]).output


def _gnu_parallel() -> bool:
    if shutil.which("parallel") is None:
        return False
    done = subprocess.run(["parallel", "--version"], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    return "GNU parallel" in done.stdout


pytestmark = pytest.mark.skipif(not _has_shard_flag(), reason="`relcli translate --help` shows no --shard yet")


@pytest.fixture
def corpus(tmp_path):
    """x.h5 (N_ROWS rows, string ids, labels), a procrustes map fitted on 64 parallel anchors, and the
    single-process translation of x.h5 with it."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N_ROWS, DIM)).astype(np.float32)
    q, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    y = (2.0 * x @ q + 0.01 * rng.standard_normal((N_ROWS, DIM))).astype(np.float32)
    ids = [f"doc-{i}" for i in range(N_ROWS)]
    labels = rng.integers(0, 5, N_ROWS)
    write_embeddings(tmp_path / "x.h5", x, ids=ids, labels=labels)
    anchors = np.sort(rng.choice(N_ROWS, 64, replace=False))
    write_embeddings(tmp_path / "xa.h5", x[anchors], ids=[ids[i] for i in anchors])
    write_embeddings(tmp_path / "ya.h5", y[anchors], ids=[ids[i] for i in anchors])
    api.translate(tmp_path / "xa.h5", tgt_anchors=tmp_path / "ya.h5", method="procrustes",
                  save_map=tmp_path / "map.safetensors", output=tmp_path / "xa_in_y.h5")
    api.translate(tmp_path / "x.h5", map=tmp_path / "map.safetensors", output=tmp_path / "single.h5")
    return tmp_path


def _env(**extra) -> dict[str, str]:
    bin_dir = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", **extra}


def _assert_bit_identical(merged: Path, single: Path) -> None:
    with open_embeddings(merged) as got, open_embeddings(single) as want:
        assert got.shape == want.shape and got.dtype == want.dtype
        assert got.read_all().numpy().tobytes() == want.read_all().numpy().tobytes()
        assert got.ids.tolist() == want.ids.tolist()
        assert got.labels.tolist() == want.labels.tolist()
        assert got.attrs["merged"]["count"] == SHARDS


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_parallel_and_make_recipes_reproduce_the_single_process_output(corpus):
    common = {"SRC": "x.h5", "MAP": "map.safetensors", "N": str(SHARDS)}
    runs = {
        "xargs": (["bash", str(RECIPES / "parallel.sh")],
                  _env(**common, JOBS="2", OUT="parts_xargs", MERGED="merged_xargs.h5", USE_XARGS="1")),
        "make": (["make", "-j2", "-f", str(RECIPES / "Makefile"), *(f"{k}={v}" for k, v in common.items()),
                  "OUT=parts_make", "MERGED=merged_make.h5"], _env()),
    }
    if _gnu_parallel():
        runs["parallel"] = (["bash", str(RECIPES / "parallel.sh")],
                            _env(**common, JOBS="2", OUT="parts_parallel", MERGED="merged_parallel.h5"))
    started = {name: subprocess.Popen(command, cwd=corpus, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, text=True) for name, (command, env) in runs.items()}
    outputs = {name: process.communicate(timeout=300) for name, process in started.items()}
    for name, process in started.items():
        assert process.returncode == 0, f"{name}: exit {process.returncode}\n{outputs[name][1][-3000:]}"
    assert "GNU parallel not found (or USE_XARGS set)" in outputs["xargs"][1]
    for name in runs:
        parts = sorted(p.name for p in (corpus / f"parts_{name}").glob("part*.h5"))
        assert parts == [f"part{i}-of-{SHARDS}.h5" for i in range(SHARDS)], (name, parts)
        _assert_bit_identical(corpus / f"merged_{name}.h5", corpus / "single.h5")
    again = subprocess.run(["make", "-q", "-f", str(RECIPES / "Makefile"), *(f"{k}={v}" for k, v in common.items()),
                            "OUT=parts_make", "MERGED=merged_make.h5"], cwd=corpus, env=_env(), capture_output=True)
    assert again.returncode == 0, "make would rebuild an up-to-date merge"


def test_the_slurm_script_is_valid_and_says_how_to_submit(tmp_path):
    script = RECIPES / "slurm.sh"
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True).returncode == 0
    text = script.read_text()
    assert "#SBATCH" in text and "sbatch --parsable --array=0-7" in text and "slurm.sh merge" in text
    env = {k: v for k, v in _env().items() if not k.startswith("SLURM_")}
    done = subprocess.run(["bash", str(script)], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "sbatch --array" in done.stderr
    done = subprocess.run(["bash", str(script), "merge"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode != 0 and "set N" in done.stderr
