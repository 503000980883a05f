"""Fits on more anchors than fit in memory (``translate --tgt-anchors`` with a whole corpus) stream:
the method is chosen on a sample, the map fitted on sums over every pair (``relcli.api._streamfit``).
The thresholds are lowered here so that a few hundred anchors stream."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from relcli import api
from relcli.api import _streamfit, _translation

WORDS, DIM = 900, 16


@pytest.fixture
def small_stream(monkeypatch):
    """Stream above 300 anchors, choosing on a sample of 120."""
    for module in (_streamfit, _translation):
        monkeypatch.setattr(module, "STREAM_ANCHORS", 300)
        monkeypatch.setattr(module, "SAMPLE_ANCHORS", 120)


def _write(path, rows, ids):
    with h5py.File(path, "w") as f:
        f["embeddings"] = rows.astype(np.float32)
        f["ids"] = np.asarray(ids, dtype=object).astype("S")


def _dictionary_pair(tmp_path, twins):
    """English rows, their rotated noisy French translations, ``twins`` words with a second translation;
    anchors: every one of the first 600 words with all its translations."""
    rng = np.random.default_rng(5)
    english = rng.standard_normal((WORDS, DIM)) + 1.0
    rotation, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    french = english @ rotation + 0.3 * rng.standard_normal((WORDS, DIM))
    second = english[:twins] @ rotation + 0.3 * rng.standard_normal((twins, DIM))
    _write(tmp_path / "en.h5", english, [f"w{i}" for i in range(WORDS)])
    _write(tmp_path / "fr.h5", np.vstack([french, second]), [f"m{i}" for i in range(WORDS)] + [f"m{i}b" for i in range(twins)])
    pairs = [f"w{i} m{i}\n" for i in range(600)] + [f"w{i} m{i}b\n" for i in range(twins)]
    (tmp_path / "dict.txt").write_text("".join(pairs))
    (tmp_path / "ids.txt").write_text("".join(f"w{i}\n" for i in range(600)))
    api.anchors(tmp_path / "en.h5", ids=tmp_path / "ids.txt", n_anchors=600, output=tmp_path / "en_a.h5")
    api.anchors(tmp_path / "fr.h5", like=tmp_path / "en_a.h5", pairs=tmp_path / "dict.txt", output=tmp_path / "fr_a.h5")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_streamed_fit_recognises_a_dictionary_on_every_pair_not_on_its_sample(small_stream, tmp_path, seed):
    """Four words of 600 have a second translation: a sample of 120 pairs rarely holds both of one
    word's, so deciding on the sample made the objective depend on the seed."""
    _dictionary_pair(tmp_path, twins=4)
    result = api.translate(tmp_path / "en.h5", tgt_anchors=tmp_path / "fr_a.h5", src_anchors=tmp_path / "en_a.h5",
                           seed=seed, output=tmp_path / "out.h5")
    assert result.parameters["streamed"] == {"anchors": 604, "sample": 120}
    assert result.parameters["anchors"] == 604  # the target anchors, not the source anchors file's 600
    assert result.parameters["objective"] == "retrieval"


def test_a_streamed_fit_without_a_dictionary_weighs_reconstruction_and_fits_every_pair(small_stream, tmp_path):
    _dictionary_pair(tmp_path, twins=0)
    streamed = api.translate(tmp_path / "en.h5", tgt_anchors=tmp_path / "fr_a.h5", src_anchors=tmp_path / "en_a.h5",
                             method="procrustes", output=tmp_path / "streamed.h5")
    assert streamed.parameters["objective"] == "all" and streamed.parameters["streamed"]["anchors"] == 600
    with h5py.File(tmp_path / "streamed.h5") as f:
        rows = f["embeddings"][:]
    rng = np.random.default_rng(5)  # the same draw as the pair: the map fitted on every pair is the rotation's
    english = rng.standard_normal((WORDS, DIM)) + 1.0
    rotation, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    cosines = np.sum(rows * (english @ rotation), axis=1) / np.linalg.norm(rows, axis=1) / np.linalg.norm(english @ rotation, axis=1)
    assert cosines.mean() > 0.95
