"""Shell habits: completion scripts, environment defaults, `-` for standard input (issue 11, item 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import assert_clean_error, invoke

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_script_for_each_shell(shell):
    env = {**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    result = subprocess.run([sys.executable, "-m", "relcli", "--show-completion", shell], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "relcli" in result.stdout and "_RELCLI_COMPLETE" in result.stdout


def test_batch_size_comes_from_the_environment(data, tmp_path, monkeypatch):
    monkeypatch.setenv("RELCLI_BATCH_SIZE", "0")
    out = tmp_path / "y.h5"
    assert_clean_error(invoke("translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "--method", "procrustes", "-o", out),
                       2, "RELCLI_BATCH_SIZE")
    assert not out.exists()
