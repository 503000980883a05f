"""Ctrl-C and SIGTERM at random moments: exit 130, no output, no temp file, every time (issue 11).

Each run is a real ``relcli`` process (the console script's ``relcli.cli.main``) translating a file
big enough to take a moment; the signal comes at a random time after the process says it is about
to call ``main`` (before that, the Python interpreter itself is starting: a signal then is Python's
business), from while relcli is still loading to while the output is being written. A run the
signal reaches too late has finished: exit 0 and a complete output.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from relcli.io.atomic import TEMP_SUFFIX
from relcli.io.embeddings import open_embeddings, write_embeddings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("signals")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60_000, 64)).astype(np.float32)
    y = x @ np.linalg.qr(rng.standard_normal((64, 64)))[0].astype(np.float32)
    ids = np.arange(60_000)
    write_embeddings(folder / "x.h5", x, ids=ids)
    write_embeddings(folder / "ya.h5", y[:300], ids=ids[:300])
    return folder


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("fmt", [".h5", ".safetensors"])
def test_a_signal_at_a_random_moment_leaves_no_output(inputs, tmp_path, sig, fmt):
    rng = random.Random(f"{sig}{fmt}")
    for attempt in range(4):
        out = tmp_path / f"y{attempt}{fmt}"
        args = ["translate", "--src", str(inputs / "x.h5"), "--tgt-anchors", str(inputs / "ya.h5"), "--method", "procrustes",
                "--batch-size", "2000", "-o", str(out)]
        child = subprocess.Popen(
            [sys.executable, "-c", f"import sys; import relcli.cli as c; sys.argv = ['relcli', *{args!r}]; "
             "print('ready', flush=True); c.main()"],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert child.stdout.readline() == "ready\n"
        time.sleep(rng.uniform(0.0, 3.0))
        child.send_signal(sig)
        stdout, stderr = child.communicate(timeout=120)
        temps = [p.name for p in tmp_path.iterdir() if p.name.endswith(TEMP_SUFFIX)]
        assert temps == []
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
        if child.returncode == 0:  # the signal came after the work was done
            with open_embeddings(out) as f:
                assert f.shape == (60_000, 64)
            continue
        assert child.returncode == 130, (child.returncode, stderr)
        assert not out.exists()
        assert stderr in ("", "Error: interrupted; no output was written\n"), stderr
        assert stdout == ""


def test_a_signal_after_the_outputs_are_in_place_is_ignored(tmp_path):
    """Once a step has renamed its outputs into place a signal cannot undo it: it must not turn a
    written file into an "interrupted; no output was written" (or a kill by the default action)."""
    import os

    from relcli import interrupts
    from relcli.io.atomic import atomic_output

    with interrupts.handling():
        with atomic_output(tmp_path / "done.txt") as temp:
            temp.write_text("x")
        assert interrupts.is_committed()
        os.kill(os.getpid(), signal.SIGINT)  # handled at once, in this frame: must not raise
        interrupts.check()
    with interrupts.handling():
        assert not interrupts.is_committed()  # the next step starts afresh
    assert (tmp_path / "done.txt").read_text() == "x"


def test_the_signal_handler_never_meets_a_half_loaded_module():
    """The handler reads relcli.interrupts; it is loaded with relcli.cli, before any handler is installed.
    (Loaded lazily, a SIGINT landing during its import raised AttributeError with a traceback: seen in CI.)"""
    import subprocess
    import sys

    probe = "import sys, relcli.cli; m = sys.modules.get('relcli.interrupts'); print(m is not None and hasattr(m, 'is_committed'))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "True", done.stderr[-1000:]
