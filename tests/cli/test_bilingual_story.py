"""The bilingual job end to end, as a user with fastText vectors and a MUSE dictionary runs it: import
two `.vec` files, draw anchors among the words the training dictionary pairs, take their partners,
translate the whole English vocabulary into the French space, and score word translation on a
held-out dictionary (`evaluate --pairs`)."""

from __future__ import annotations

import gzip

import numpy as np

from ._commands_helpers import evaluate_json
from relcli.io.kinds import load_estimator

from .conftest import assert_clean_error, invoke, load, ok

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


def test_a_many_to_many_dictionary_is_scored_for_retrieval_and_says_so(tmp_path):
    """A word with two translations among the anchors makes `auto` score retrieval alone (issue 9: the
    ridge map that R² favours loses word-translation precision); the line says why, provenance records
    it, `--objective all` restores the weighing, and a saved map takes no objective."""
    rng = np.random.default_rng(2)
    english = rng.standard_normal((WORDS, DIM))
    rotation, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    french = np.vstack([english @ rotation, english[:60] @ rotation]) + 0.05 * rng.standard_normal((WORDS + 60, DIM))
    (tmp_path / "en.vec").write_bytes(_vec(english, [f"w{i}" for i in range(WORDS)]))
    (tmp_path / "fr.vec").write_bytes(_vec(french, [f"mot_{i}" for i in range(WORDS)] + [f"mot_{i}b" for i in range(60)]))
    pairs = [(f"w{i}", f"mot_{i}") for i in range(300)] + [(f"w{i}", f"mot_{i}b") for i in range(60)]
    (tmp_path / "dict.txt").write_text("".join(f"{a} {b}\n" for a, b in pairs))
    for name in ("en", "fr"):
        ok(invoke("import", tmp_path / f"{name}.vec", "-o", tmp_path / f"{name}.h5"))
    (tmp_path / "ids.txt").write_text("".join(f"w{i}\n" for i in range(300)))
    ok(invoke("anchors", tmp_path / "en.h5", "--ids", tmp_path / "ids.txt", "-n", 300, "-o", tmp_path / "en_a.h5"))
    ok(invoke("anchors", tmp_path / "fr.h5", "--like", tmp_path / "en_a.h5", "--pairs", tmp_path / "dict.txt",
              "-o", tmp_path / "fr_a.h5"))
    fit = ["translate", "--src", tmp_path / "en.h5", "--src-anchors", tmp_path / "en_a.h5", "--tgt-anchors", tmp_path / "fr_a.h5"]
    said = invoke(*fit, "--save-map", tmp_path / "map.safetensors", "-o", tmp_path / "out.h5")
    ok(said)
    ok(invoke(*fit, "--method", "linear", "--save-map", tmp_path / "linear.safetensors", "-o", tmp_path / "linear.h5"))
    for reverse in (False, True):  # the map back is tuned for the same objective
        assert load_estimator(tmp_path / "linear.safetensors", "translator", reverse=reverse)[0].objective == "retrieval"
    assert "estimated held-out retrieval score" in said.stderr and "several different target anchors (a dictionary" in said.stderr
    parameters = load(tmp_path / "out.h5").attrs["provenance"]["parameters"]
    assert parameters["objective"] == "retrieval" and parameters["selection"]["objective"] == "retrieval"
    weighed = invoke(*fit, "--objective", "all", "-o", tmp_path / "all.h5")
    ok(weighed)
    assert "retrieval" not in weighed.stderr.split("estimated held-out")[1].split("(")[0]
    assert load(tmp_path / "all.h5").attrs["provenance"]["parameters"]["objective"] == "all"
    refused = invoke("translate", "--src", tmp_path / "en.h5", "--map", tmp_path / "map.safetensors", "--objective",
                     "retrieval", "-o", tmp_path / "again.h5")
    assert_clean_error(refused, 2, "--objective", "applies a saved map")
    assert not (tmp_path / "again.h5").exists()
