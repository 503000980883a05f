"""The pipeline of examples/Makefile on sample_data: it runs, and a second run rebuilds nothing."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_examples_makefile_runs_then_does_nothing(tmp_path):
    work = tmp_path / "repo"
    shutil.copytree(ROOT / "examples", work / "examples", ignore=shutil.ignore_patterns("out"))
    shutil.copytree(ROOT / "sample_data", work / "sample_data")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}

    first = subprocess.run(["make", "-j2", "-C", str(work / "examples")], env=env, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "relcli translate" in first.stdout and "relcli stitch apply" in first.stdout
    digits, text = (work / "examples" / "out" / "report.txt").read_text().split("\n\n")
    assert digits.startswith("digits: ") and text.startswith("text: ")
    rows = {line.split()[0]: line.split()[1:] for line in digits.splitlines()[2:]}
    assert set(rows) == {"native", "untranslated", "auto", "irp", "procrustes", "linear", "affine", "ortho-linear", "inverted"}
    accuracy = {route: float(values[1]) for route, values in rows.items()}
    assert accuracy["native"] > 0.9
    assert accuracy["untranslated"] < 0.3  # absolute stitching across encoders is near chance
    for route in ("auto", "irp", "procrustes", "linear", "inverted"):
        assert accuracy[route] > 0.8, (route, accuracy[route])
    assert accuracy["auto"] >= max(accuracy[m] for m in ("irp", "procrustes", "linear", "ortho-linear")) - 0.02
    assert (work / "examples" / "out" / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert rows["irp"] == rows["inverted"]  # project -> invert is translate --method irp

    text_rows = {line.split()[0]: line.split()[1:] for line in text.strip().splitlines()[2:]}
    assert set(text_rows) == {"native", "untranslated", "auto", "irp", "procrustes", "linear", "ortho-linear"}
    text_accuracy = {route: float(values[1]) for route, values in text_rows.items()}
    assert text_accuracy["untranslated"] < 0.2 < 0.6 < text_accuracy["native"]
    assert text_accuracy["auto"] >= 0.95 * text_accuracy["native"]  # uncentred IRP collapses here; auto must not
    assert text_accuracy["auto"] >= max(text_accuracy[m] for m in ("irp", "procrustes", "linear", "ortho-linear")) - 0.02

    second = subprocess.run(["make", "-C", str(work / "examples")], env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "relcli" not in second.stdout.replace("report.txt", "")  # nothing was rebuilt
    assert "route" in second.stdout  # the report is shown again
