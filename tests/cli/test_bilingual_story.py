"""The bilingual job end to end, as a user with fastText vectors and a MUSE dictionary runs it: import
two `.vec` files, draw anchors among the words the training dictionary pairs, take their partners,
translate the whole English vocabulary into the French space, and score word translation on a
held-out dictionary (`evaluate --pairs`)."""

from __future__ import annotations

import gzip

import numpy as np

from ._commands_helpers import evaluate_json
from .conftest import invoke, load, ok

WORDS, DIM = 400, 24


def _vec(rows: np.ndarray, words: list[str]) -> bytes:
    """fastText's text layout: a header, then the word and its numbers, a space at the end of each line."""
    lines = [f"{len(words)} {rows.shape[1]}\n"]
    lines += [f"{w} {' '.join(f'{v:.5f}' for v in row)} \n" for w, row in zip(words, rows)]
    return "".join(lines).encode()


def test_vec_files_and_a_muse_dictionary_through_anchors_translate_and_evaluate(tmp_path):
    rng = np.random.default_rng(1)
    english = rng.standard_normal((WORDS, DIM))
    rotation, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    order = rng.permutation(WORDS)  # the French vocabulary lists its words in another order
    french = (english @ rotation + 0.05 * rng.standard_normal((WORDS, DIM)))[order]
    en_words = [f"w{i}" for i in range(WORDS)]
    fr_words = [f"mot_{i}" for i in order]  # fr word j is the translation of en word order[j]
    (tmp_path / "wiki.en.vec").write_bytes(_vec(english, en_words))
    (tmp_path / "wiki.fr.vec.gz").write_bytes(gzip.compress(_vec(french, fr_words)))
    train = [(f"w{i}", f"mot_{i}") for i in range(300)] + [("w5", "mot_6"), ("unknown", "mot_1")]
    test = [(f"w{i}", f"mot_{i}") for i in range(300, WORDS)]
    (tmp_path / "en-fr.0-300.txt").write_text("".join(f"{a} {b}\n" for a, b in train))
    (tmp_path / "en-fr.300-400.txt").write_text("".join(f"{a}\t{b}\n" for a, b in test))

    ok(invoke("import", tmp_path / "wiki.en.vec", "-o", tmp_path / "en.h5"))
    ok(invoke("import", tmp_path / "wiki.fr.vec.gz", "-o", tmp_path / "fr.h5"))
    ok(invoke("anchors", tmp_path / "en.h5", "-n", 120, "--pairs", tmp_path / "en-fr.0-300.txt", "--target", tmp_path / "fr.h5",
              "-o", tmp_path / "en_a.h5"))
    assert set(load(tmp_path / "en_a.h5").ids) <= {a for a, _ in train}
    ok(invoke("anchors", tmp_path / "fr.h5", "--like", tmp_path / "en_a.h5", "--pairs", tmp_path / "en-fr.0-300.txt",
              "-o", tmp_path / "fr_a.h5"))
    ok(invoke("translate", "--src", tmp_path / "en.h5", "--src-anchors", tmp_path / "en_a.h5", "--tgt-anchors",
              tmp_path / "fr_a.h5", "-o", tmp_path / "en_in_fr.h5"))
    report = evaluate_json(tmp_path / "en_in_fr.h5", "--reference", tmp_path / "fr.h5", "--pairs",
                           tmp_path / "en-fr.300-400.txt")
    assert report["rows"] == len(test)
    assert report["metrics"]["top1"] >= 0.95  # a rotation and a little noise: held-out words found
    ok(invoke("export", tmp_path / "en_in_fr.h5", "-o", tmp_path / "en_in_fr.vec"))
    assert (tmp_path / "en_in_fr.vec").read_text().split("\n", 1)[0].split() == [str(WORDS), str(DIM)]
