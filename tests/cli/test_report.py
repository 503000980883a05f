"""``relcli report``: the picture is drawn with the panels its inputs allow, and says which it left out.

Panels are checked by their axes titles (``Report.panels``), the file by its PNG/SVG/HTML header and
size; the numbers drawn (mean norms, similarity correlation, anchor rank) against NumPy.
"""

from __future__ import annotations

import base64
import re
import struct
import sys

import numpy as np
import pytest

from relcli import api
from relcli.core.selection import Candidate, Selection
from relcli.io.embeddings import write_embeddings

from .conftest import D, N, assert_clean_error, invoke, ok, snapshot

pytest.importorskip("matplotlib")

NORMS = "Row norms: translated vs reference"
SPECTRA = "Anchor singular spectra (rows L2-normalised)"
METHODS = "Method scores on held-out anchors (translate --method auto)"
HEAT = [f"Cosine similarities: translated ({{m}} rows)", f"Cosine similarities: reference ({{m}} rows)"]
PNG = b"\x89PNG\r\n\x1a\n"


def png_size(blob: bytes) -> tuple[int, int]:
    assert blob[:8] == PNG and blob[12:16] == b"IHDR"
    return struct.unpack(">II", blob[16:24])


@pytest.fixture(scope="module")
def translated(data, tmp_path_factory):
    """A real `relcli translate` output (procrustes: one cross-validated candidate) and a file whose
    translation metadata records an `auto` selection of three candidates, one of them failed."""
    folder = tmp_path_factory.mktemp("report")
    real = folder / "y_hat.h5"
    ok(invoke("translate", "--src", data.x_h5, "--src-anchors", data.xa, "--tgt-anchors", data.ya, "--method", "procrustes",
              "-o", real))
    scores = lambda s: {"score": s, "mrr": s, "top1": s, "recall10": s, "cosine": s, "spread": 0.01}  # noqa: E731
    candidates = [Candidate("irp", {"center": False, "allow_rank_deficient": True}, scores(0.41)),
                  Candidate("procrustes", {}, scores(0.83)),
                  Candidate("ortho-linear", {}, error="singular anchors")]
    record = Selection(None, candidates[1], candidates).record()
    info = {"method": "procrustes", "requested": "auto", "estimate": record["estimate"], "selection": record}
    auto = write_embeddings(folder / "auto.h5", data.y * 1.1, ids=data.ids, labels=data.labels,
                            attrs={"kind": "embeddings", "translation": info})
    return real, auto


def test_every_panel_when_every_input_is_given(data, translated, tmp_path):
    real, _ = translated
    out = tmp_path / "report.png"
    result = ok(invoke("report", real, "--reference", data.y_h5, "--src-anchors", data.xa, "--tgt-anchors", data.ya,
                       "--sample", 40, "--dpi", 50, "-o", out))
    assert f"wrote {out} (5 panels" in result.stderr and "left out" not in result.stderr
    blob = out.read_bytes()
    assert png_size(blob) == (13 * 50, int((4.6 * 3 + 0.8) * 50)) and len(blob) > 20_000
    report = api.report(real, output=tmp_path / "again.png", reference=data.y_h5, src_anchors=data.xa, tgt_anchors=data.ya,
                        sample=40, dpi=50)
    assert report.panels == [NORMS, SPECTRA, METHODS, *(t.format(m=40) for t in HEAT)] and report.omitted == {}
    assert (tmp_path / "again.png").read_bytes() == blob  # same inputs, same bytes
    assert report.scores["method_scores"].keys() == {"procrustes"}
    assert report.scores["source_anchors_rank"] == D and report.scores["target_anchors_rank"] == D


def test_the_numbers_drawn_are_the_files_numbers(data, translated, tmp_path):
    _, auto = translated
    report = api.report(auto, output=tmp_path / "r.png", reference=data.y_st, sample=30, dpi=30)
    norms, reference = np.linalg.norm(data.y * 1.1, axis=1), np.linalg.norm(data.y, axis=1)
    assert report.scores["mean_norm"] == pytest.approx(norms.mean(), rel=1e-5)
    assert report.scores["norm_ratio"] == pytest.approx(norms.mean() / reference.mean(), rel=1e-5)
    assert report.scores["similarity_correlation"] == pytest.approx(1.0, abs=1e-9)  # a rescaled copy: same angles
    assert report.scores["method_scores"] == {"irp (allow_rank_deficient)": 0.41, "procrustes": 0.83, "ortho-linear": None}
    assert "spectra" in report.omitted and set(report.omitted) == {"spectra"}


def test_panels_without_inputs_are_left_out_and_said(data, translated, tmp_path):
    out = tmp_path / "plain.png"
    result = ok(invoke("report", data.x_h5, "-o", out, "--dpi", 30))
    assert "left out heatmaps: no --reference given" in result.stderr
    assert "left out spectra: no --src-anchors/--tgt-anchors given" in result.stderr
    assert "left out methods: not made by relcli translate" in result.stderr
    assert out.read_bytes()[:8] == PNG
    report = api.report(data.x_h5, output=tmp_path / "p.png", dpi=30)
    assert report.panels == ["Row norms: translated"] and set(report.omitted) == {"heatmaps", "spectra", "methods"}


def test_html_embeds_the_png_and_svg_is_svg(data, translated, tmp_path):
    _, auto = translated
    page = tmp_path / "r.html"
    report = api.report(auto, output=page, reference=data.y_h5, tgt_anchors=data.ya, sample=20, dpi=30)
    text = page.read_text()
    assert report.format == "html" and text.startswith("<!DOCTYPE html>")
    blob = base64.b64decode(re.search(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text).group(1))
    assert blob[:8] == PNG and png_size(blob)[0] == 13 * 30
    assert all(title in text for title in report.panels) and "no --src-anchors" not in text  # one side is enough
    svg = tmp_path / "r.svg"
    ok(invoke("report", auto, "-o", svg))
    head = svg.read_text()[:400]
    assert head.startswith("<?xml") and "<svg" in head


def test_missing_matplotlib_is_a_one_line_usage_error(data, tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    before = snapshot(tmp_path)
    assert_clean_error(invoke("report", data.x_h5, "-o", tmp_path / "r.png"), 2, "pip install 'relcli[plot]'")
    assert snapshot(tmp_path) == before


def test_bad_requests(data, tmp_path):
    assert_clean_error(invoke("report", data.x_h5, "-o", tmp_path / "r.pdf"), 2, ".png, .svg or .html")
    assert_clean_error(invoke("report", data.x_h5, "--reference", data.z_h5, "-o", tmp_path / "r.png"), 1,
                       "dimension mismatch", path=data.z_h5)
    few = write_embeddings(tmp_path / "few.h5", data.y[:5], ids=["a", "b", "c", "d", "e"])
    assert_clean_error(invoke("report", few, "--reference", data.y_h5, "-o", tmp_path / "r.png"), 1, "missing", "'a'",
                       path=data.y_h5)
    assert not (tmp_path / "r.png").exists()
    assert N == len(data.ids)
