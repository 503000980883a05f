"""Shared pieces of the ``relcli embed`` tests (test_embed_*.py): the sample encoders and digits,
a deterministic fake text encoder registered through the ``relcli.encoders`` entry points, and
small helpers that write inputs and check clean failures.
"""

from __future__ import annotations

import importlib.metadata
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from relcli.encoders import ENTRY_POINT_GROUP

from .conftest import assert_clean_error, invoke, snapshot


REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"
DIGITS = SAMPLE / "digits.npy"
DIGIT_LABELS = SAMPLE / "digits_labels.npy"
ENCODERS = {"mnist": SAMPLE / "encoders" / "mnist_cnn.pt", "usps": SAMPLE / "encoders" / "usps_cnn.pt"}
# The committed embeddings (made by `scripts/make_sample_data.py --embed`); they may not exist yet.
COMMITTED = {"mnist": SAMPLE / "mnist.h5", "usps": SAMPLE / "usps.safetensors"}
N_DIGITS, DIGIT_DIM = 1797, 128
# Conv kernels sum in a batch-size dependent order: ~1e-5 absolute on values up to ~10.
TOL = dict(rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# A deterministic fake text encoder, registered through the relcli.encoders entry points
# ---------------------------------------------------------------------------------------------
FAKE_DIM = 16


def ngram_bag(texts: list[str], dim: int = FAKE_DIM) -> torch.Tensor:
    """Hashed character-trigram counts (crc32, so the same in every process), plus a length cell."""
    out = torch.zeros(len(texts), dim, dtype=torch.float64)
    for row, text in enumerate(texts):
        padded = f"^{text}$"
        for i in range(len(padded) - 2):
            out[row, zlib.crc32(padded[i : i + 3].encode("utf-8")) % (dim - 1)] += 1.0
        out[row, dim - 1] = 1.0 + len(text)  # never a zero row
    return out


class NgramEncoder:
    """``ngram:MODE``: MODE '' is the plain bag; 'flaky' changes its width on the second batch,
    'flaky-after-N' once it has encoded N texts."""

    modality = "text"
    seen: list[list[str]] = []  # every batch it was given, across instances (reset per test)

    def __init__(self, mode: str):
        self.mode, self.calls, self.texts = mode, 0, 0

    def encode(self, texts):
        NgramEncoder.seen.append(list(texts))
        self.calls += 1
        done, self.texts = self.texts, self.texts + len(texts)
        if (self.mode == "flaky" and self.calls > 1) or (
            self.mode.startswith("flaky-after-") and done >= int(self.mode.rsplit("-", 1)[1])
        ):
            return ngram_bag(texts, FAKE_DIM + 3)
        return ngram_bag(texts)

    @classmethod
    def all_seen(cls) -> list[str]:
        return [t for batch in cls.seen for t in batch]


def ngram_factory(argument, options):
    return NgramEncoder(argument)


@pytest.fixture
def fake_encoder(monkeypatch):
    """Register ``ngram`` in the relcli.encoders group, as an installed plugin would be."""
    original = importlib.metadata.entry_points
    ours = importlib.metadata.EntryPoint(name="ngram", value=f"{__name__}:ngram_factory", group=ENTRY_POINT_GROUP)

    def entry_points(**params):
        if params.get("group") == ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints([ours])
        return original(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    NgramEncoder.seen = []
    return NgramEncoder


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def fails(tmp_path, args, code: int, *fragments: str, path=None) -> str:
    """A run that must fail cleanly and leave tmp_path exactly as it was (no output, no temp)."""
    before = snapshot(tmp_path)
    result = invoke(*args)
    line = assert_clean_error(result, code, *fragments, path=path)
    assert result.stdout == ""
    assert snapshot(tmp_path) == before
    return line


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return path


def longest_first(texts: list[str]) -> list[str]:
    """The order a chunk of texts reaches the encoder: by length, longest first, ties in input order."""
    return sorted(texts, key=lambda t: -len(t))


def _save(path: Path, array) -> Path:
    np.save(path, np.asarray(array))
    return path


def message_after(line: str, path: Path) -> str:
    """The problem part of 'Error: PATH: problem' (the temp path itself may contain any word)."""
    head = f"Error: {path}: "
    assert line.startswith(head), line
    return line[len(head):]


def _stdin(args, data: str | bytes):
    from .conftest import runner
    from relcli.cli.app import app

    return runner.invoke(app, [str(a) for a in args], input=data)


# ---------------------------------------------------------------------------------------------
# Tables and text lines
# ---------------------------------------------------------------------------------------------
TEXTS = ["the cat sat on the mat", "a dog, barking", "naïve café — ünïcode", "x", "tab\tinside? no: comma, inside"]
DOC_IDS = ["doc-b", "doc-a", "doc-é", "doc-10", "doc-2"]
SENTIMENT = ["pos", "neg", "neutral", "pos", "neg"]


def write_table(path: Path, columns: dict[str, list]) -> Path:
    import pandas as pd

    frame = pd.DataFrame(columns)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    else:
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


# ---------------------------------------------------------------------------------------------
# Input fixtures
# ---------------------------------------------------------------------------------------------
@pytest.fixture
def small_digits(tmp_path) -> Path:
    return _save(tmp_path / "d.npy", np.load(DIGITS)[:20])


@pytest.fixture
def table(tmp_path) -> Path:
    return write_table(tmp_path / "docs.csv", {"id": DOC_IDS, "text": TEXTS, "label": SENTIMENT})
