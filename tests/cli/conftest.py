"""Fixtures and helpers for the CLI tests: small real embedding files with a known ground truth.

The spaces: X (N x 16, float32, string ids ``item-0000``.., int labels = argmax of 4 fixed
random projections of X); Y = 2.5 * X Q + 0.01 noise (Q a random orthogonal 16 x 16); Z = X W
+ noise, a 24-d space (W has orthonormal rows) for metrics across dimensions. Anchors are made
through the CLI itself (``relcli anchors``), as a user makes them.

Input files live in one session folder that no test writes into; every test writes its
outputs into its own ``tmp_path``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from relcli.cli.app import app
from relcli.io.embeddings import open_embeddings, write_embeddings

N, D, D_Z, K = 240, 16, 24, 32
SCALE, NOISE = 2.5, 0.01

runner = CliRunner()


def invoke(*args):
    """Run ``relcli ARGS`` in-process; stdout and stderr are kept apart (typer >= 0.26)."""
    return runner.invoke(app, [str(a) for a in args])


def ok(result, data: bool = False):
    """Assert success; a command that is not asked for data prints nothing on stdout."""
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    if not data:
        assert result.stdout == "", result.stdout
    assert "Traceback" not in result.output
    return result


def assert_clean_error(result, code: int, *fragments: str, path: Path | str | None = None) -> str:
    """Exit ``code``, one ``Error:`` line on stderr naming ``path`` and every fragment, no traceback."""
    assert result.exit_code == code, f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("Error: "), line
    assert "unexpected" not in line, line
    if path is not None:
        assert str(path) in line, line
    for fragment in fragments:
        assert fragment in line, line
    return line


@dataclass
class Loaded:
    matrix: np.ndarray
    ids: list | None
    labels: list | None
    attrs: dict
    kind: str
    format: str
    dtype: str
    reader_strings: dict
    arrays: dict


def load(path: Path, key: str | None = None) -> Loaded:
    """Everything a test checks in a file, read with relcli's own reader."""
    with open_embeddings(path, key=key) as f:
        matrix = f.read_all().float().numpy() if f.dtype == "bfloat16" else f.read_all().numpy()
        ids = None if f.ids is None else (list(f.ids) if isinstance(f.ids, list) else f.ids.tolist())
        labels = None if f.labels is None else (list(f.labels) if isinstance(f.labels, list) else f.labels.tolist())
        strings = {}
        for name in ("anchor_ids", "source_ids"):
            value = f.strings(name)
            if value is not None:
                strings[name] = list(value) if isinstance(value, list) else value.tolist()
        arrays = {}
        for name in ("space_mean", "space_std"):
            value = f.array(name)
            if value is not None:
                arrays[name] = value.double().numpy()
        return Loaded(matrix, ids, labels, dict(f.attrs), f.kind, f.format, f.dtype, strings, arrays)


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file (hidden ones too) in the folders, by name, with the SHA-256 of its bytes."""
    found = {}
    for folder in folders:
        for entry in sorted(folder.rglob("*")):
            if entry.is_file():
                found[str(entry)] = hashlib.sha256(entry.read_bytes()).hexdigest()
            else:
                found[str(entry)] = "dir"
    return found


def unit_rows(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (unit_rows(a) * unit_rows(b)).sum(axis=1)


def random_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def make_labels(x: np.ndarray, rng: np.random.Generator, n_classes: int = 4) -> np.ndarray:
    """Class = argmax of n_classes fixed random projections of x (linearly separable in X and Y)."""
    return np.argmax(x @ rng.standard_normal((x.shape[1], n_classes)), axis=1).astype(np.int64)


def make_parallel_spaces(n: int, d: int, seed: int, scale: float = SCALE, noise: float = NOISE):
    """X random normal, Y = scale * X Q + noise, string ids, labels from X (all float32)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d)).astype(np.float32)
    q = random_orthogonal(d, rng)
    y = (scale * x.astype(np.float64) @ q + noise * rng.standard_normal((n, d))).astype(np.float32)
    labels = make_labels(x.astype(np.float64), rng)
    ids = [f"item-{i:04d}" for i in range(n)]
    return x, y, q, ids, labels


@dataclass
class Data:
    folder: Path
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    q: np.ndarray
    ids: list
    labels: np.ndarray
    x_h5: Path
    x_st: Path
    x_npy: Path
    x_nolabels: Path
    y_st: Path
    y_h5: Path
    z_h5: Path
    xa: Path
    ya: Path
    xa_ids: list


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> Data:
    """The small spaces and their anchors (fps, K = 32 >= 2 d), built once per session."""
    folder = tmp_path_factory.mktemp("spaces")
    x, y, q, ids, labels = make_parallel_spaces(N, D, seed=0)
    rng = np.random.default_rng(1)
    w = random_orthogonal(D_Z, rng)[:D]  # 16 x 24, orthonormal rows
    z = (x.astype(np.float64) @ w + NOISE * rng.standard_normal((N, D_Z))).astype(np.float32)

    paths = {
        "x_h5": write_embeddings(folder / "x.h5", x, ids=ids, labels=labels),
        "x_st": write_embeddings(folder / "x.safetensors", x, ids=ids, labels=labels),
        "x_nolabels": write_embeddings(folder / "x_nolabels.h5", x, ids=ids),
        "y_st": write_embeddings(folder / "y.safetensors", y, ids=ids, labels=labels),
        "y_h5": write_embeddings(folder / "y.h5", y, ids=ids, labels=labels),
        "z_h5": write_embeddings(folder / "z.h5", z, ids=ids, labels=labels),
    }
    np.save(folder / "x.npy", x)
    xa, ya = folder / "xa.h5", folder / "ya.safetensors"
    ok(invoke("anchors", paths["x_h5"], "-n", K, "--strategy", "fps", "--seed", "0", "-o", xa))
    ok(invoke("anchors", paths["y_st"], "--like", xa, "-o", ya))
    return Data(
        folder=folder, x=x, y=y, z=z, q=q, ids=ids, labels=labels, x_npy=folder / "x.npy",
        xa=xa, ya=ya, xa_ids=load(xa).ids, **paths,
    )
