"""``evaluate --pairs``: word translation scored as MUSE scores it (bilingual lexicon induction): each
translated source word of a dictionary ranked among every reference row, any translation a hit."""

from __future__ import annotations

import numpy as np
import pytest

from relcli.io.embeddings import write_embeddings

from ._commands_helpers import evaluate_json
from .conftest import assert_clean_error, invoke, ok

N_SOURCE, N_TARGET, DIM = 90, 70, 12


@pytest.fixture
def words(tmp_path):
    """Translated English words (ids en*) and the French vocabulary (fr*); en i means fr (i mod 70),
    with noise enough that some are missed; a dictionary with a second translation for some words,
    a pair with an unknown word on each side, and words the dictionary does not list."""
    rng = np.random.default_rng(0)
    fr = rng.standard_normal((N_TARGET, DIM)).astype(np.float32)
    en = (fr[np.arange(N_SOURCE) % N_TARGET] + 0.9 * rng.standard_normal((N_SOURCE, DIM))).astype(np.float32)
    en_path = write_embeddings(tmp_path / "en_in_fr.h5", en, ids=[f"en{i}" for i in range(N_SOURCE)])
    fr_path = write_embeddings(tmp_path / "fr.safetensors", fr, ids=[f"fr{i}" for i in range(N_TARGET)])
    pairs = [(f"en{i}", f"fr{i % N_TARGET}") for i in range(0, N_SOURCE, 2)]
    pairs += [(f"en{i}", f"fr{(i * 5 + 1) % N_TARGET}") for i in range(0, N_SOURCE, 6)]  # many-to-many
    pairs += [("en-unknown", "fr1"), ("en2", "fr-unknown")]
    dictionary = tmp_path / "en-fr.txt"
    dictionary.write_text("".join(f"{a} {b}\n" for a, b in pairs))
    return en, fr, en_path, fr_path, dictionary, pairs


def naive_ranks(en, fr, pairs, csls=False, neighbours=10):
    """rank = 1 + #{reference rows that are no right answer, scored above the best right answer}, by
    cosine, or with ``csls`` as MUSE ranks: 2cos(p_q, r_j) − r_S(r_j), r_S(r_j) = the mean of r_j's 10
    largest cosines to every translated row (r_T(p_q) is the same for every j)."""
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    scores = unit(en.astype(np.float64)) @ unit(fr.astype(np.float64)).T
    if csls:
        scores = 2 * scores - np.sort(scores, axis=0)[-neighbours:].mean(axis=0)[None, :]
    answers: dict[int, set[int]] = {}
    for a, b in pairs:
        if a.startswith("en") and a[2:].isdigit() and b[2:].isdigit():
            answers.setdefault(int(a[2:]), set()).add(int(b[2:]))
    ranks = {}
    for q, right in answers.items():
        best = max(scores[q, t] for t in right)
        ranks[q] = 1 + sum(1 for j in range(len(fr)) if j not in right and scores[q, j] > best)
    return ranks


@pytest.mark.parametrize(("batch", "query_batch"), [("100000", "4096"), ("4", "3")])
def test_csls_ranks_with_the_hubness_of_every_translated_row(words, batch, query_batch, tmp_path):
    en, fr, en_path, fr_path, dictionary, pairs = words
    csls = naive_ranks(en, fr, pairs, csls=True)
    nearest = naive_ranks(en, fr, pairs)
    assert csls != nearest  # the hubness changes some ranks: a test that can tell CSLS from plain cosine
    report = evaluate_json("-q", en_path, "--reference", fr_path, "--pairs", dictionary, "--batch-size", batch,
                           "--query-batch", query_batch, "--metrics", "top1,csls_top1,csls_top5")
    ranks = np.array(list(csls.values()))
    assert report["metrics"]["csls_top1"] == pytest.approx(np.mean(ranks == 1))
    assert report["metrics"]["csls_top5"] == pytest.approx(np.mean(ranks <= 5))
    assert report["metrics"]["top1"] == pytest.approx(np.mean(np.array(list(nearest.values())) == 1))
    chosen = [f"en{i}" for i in range(0, 30, 2)]  # --ids picks the queries; the hubness still counts every row
    (tmp_path / "some.txt").write_text("\n".join(chosen) + "\n")
    some = evaluate_json("-q", en_path, "--reference", fr_path, "--pairs", dictionary, "--ids", tmp_path / "some.txt",
                         "--metrics", "csls_top1")
    assert some["metrics"]["csls_top1"] == pytest.approx(np.mean([csls[int(w[2:])] == 1 for w in chosen]))
    few = write_embeddings(tmp_path / "few.h5", en[:9], ids=[f"en{i}" for i in range(9)])
    assert_clean_error(invoke("evaluate", few, "--reference", fr_path, "--pairs", dictionary, "--metrics", "csls_top1"), 1,
                       "CSLS needs at least 10 translated rows", path=few)


@pytest.mark.parametrize(("batch", "query_batch"), [("100000", "4096"), ("4", "3")])
def test_ranks_among_the_whole_vocabulary_with_any_translation_a_hit(words, batch, query_batch):
    en, fr, en_path, fr_path, dictionary, pairs = words
    ranks = np.array(list(naive_ranks(en, fr, pairs).values()))
    assert 0.2 < np.mean(ranks == 1) < 0.9  # a test that can tell right from wrong
    report = evaluate_json("-q", en_path, "--reference", fr_path, "--pairs", dictionary, "--batch-size", batch,
                           "--query-batch", query_batch, "--metrics", "top1,top5,mrr,mrr@3")
    assert report["rows"] == len(ranks) == N_SOURCE // 2 and report["pairs"] == str(dictionary)
    got = report["metrics"]
    assert got["top1"] == pytest.approx(np.mean(ranks == 1))
    assert got["top5"] == pytest.approx(np.mean(ranks <= 5))
    assert got["mrr"] == pytest.approx(np.mean(1 / ranks))
    assert got["mrr@3"] == pytest.approx(np.mean(np.where(ranks <= 3, 1 / ranks, 0)))


def test_ids_sample_gates_and_details(words, tmp_path):
    en, fr, en_path, fr_path, dictionary, pairs = words
    chosen = [f"en{i}" for i in range(0, 30, 2)]
    (tmp_path / "some.txt").write_text("\n".join(chosen) + "\n")
    ranks = naive_ranks(en, fr, pairs)
    report = evaluate_json("-q", en_path, "--reference", fr_path, "--pairs", dictionary, "--ids", tmp_path / "some.txt")
    assert report["rows"] == len(chosen) and list(report["metrics"]) == ["top1", "top5", "top10", "mrr"]
    assert report["metrics"]["top1"] == pytest.approx(np.mean([ranks[int(w[2:])] == 1 for w in chosen]))
    sampled = evaluate_json("-q", en_path, "--reference", fr_path, "--pairs", dictionary, "--query-sample", "7")
    assert sampled["rows"] == sampled["query_sample"] == 7
    result = invoke("evaluate", en_path, "--reference", fr_path, "--pairs", dictionary, "--min", "top1=0.99", "-v")
    assert result.exit_code == 1 and "gate failed: top1 = " in result.stderr
    assert f"{len(pairs) - 2} of the {len(pairs)} pairs of en-fr.txt have both ids: {N_SOURCE // 2} source words" in result.stderr


def test_usage_and_data_errors_name_the_file(words, tmp_path):
    en, fr, en_path, fr_path, dictionary, pairs = words
    assert_clean_error(invoke("evaluate", en_path, "--reference", fr_path, "--pairs", dictionary, "--metrics", "cosine"), 2,
                       "with --pairs evaluate ranks words among the whole reference")
    other = tmp_path / "other.txt"
    other.write_text("zz1 yy1\n")
    assert_clean_error(invoke("evaluate", en_path, "--reference", fr_path, "--pairs", other), 1, "none of its 1 pairs",
                       path=other)
    wide = write_embeddings(tmp_path / "wide.h5", np.ones((3, DIM + 1), np.float32), ids=["en0", "en2", "en4"])
    assert_clean_error(invoke("evaluate", wide, "--reference", fr_path, "--pairs", dictionary), 1, "translate the words",
                       path=wide)
    assert_clean_error(invoke("evaluate", en_path, "--reference", fr_path, "--pairs", dictionary, "--metrics", "top71"), 1,
                       "top71 needs at least 71 rows", path=fr_path)
    ok(invoke("evaluate", en_path, "--reference", fr_path, "--pairs", dictionary, "--metrics", "top70"), data=True)


def test_drop_invalid_leaves_out_rows_that_cannot_be_ranked_and_missing_words_are_warned(words, tmp_path):
    """A reference word with no vector (all zeros, as a padding token) fails the evaluation unless
    --drop-invalid, which never ranks it; a translated word with NaN is left out of the queries and
    of the hubness. Pairs naming a word a file lacks are counted in a warning, without -v."""
    en, fr, en_path, fr_path, dictionary, pairs = words
    fr_bad, en_bad = fr.copy(), en.copy()
    fr_bad[5] = 0.0  # fr5: the translation of en5 and en75, which then have no usable pair
    en_bad[4] = np.nan  # en4: a query of the dictionary
    fr_path2 = write_embeddings(tmp_path / "fr_bad.h5", fr_bad, ids=[f"fr{i}" for i in range(N_TARGET)])
    en_path2 = write_embeddings(tmp_path / "en_bad.h5", en_bad, ids=[f"en{i}" for i in range(N_SOURCE)],
                                allow_nonfinite=True)
    assert_clean_error(invoke("evaluate", en_path, "--reference", fr_path2, "--pairs", dictionary), 1, "'fr5'",
                       "use --drop-invalid", path=fr_path2)
    result = invoke("evaluate", en_path2, "--reference", fr_path2, "--pairs", dictionary, "--drop-invalid", "--format",
                    "json", "--metrics", "top1,csls_top1")
    ok(result, data=True)
    assert "left out 1 row(s) (ids 'fr5') of fr_bad.h5" in result.stderr
    assert "left out 1 row(s) (ids 'en4') of en_bad.h5" in result.stderr
    assert "2 of the " + str(len(pairs)) + " pairs of en-fr.txt name a word" in result.stderr
    headed = tmp_path / "en-fr.txt"
    headed.write_text("#source target\n" + dictionary.read_text())  # a header: a '#' pair that matches nothing
    again = ok(invoke("evaluate", en_path2, "--reference", fr_path2, "--pairs", headed, "--drop-invalid", "--format",
                      "json", "--metrics", "top1"), data=True)
    assert "2 of the " + str(len(pairs) + 1) + " pairs of en-fr.txt name a word" in again.stderr  # not 3
    kept_fr = [i for i in range(N_TARGET) if i != 5]
    kept_pairs = [(a, b) for a, b in pairs if a != "en4" and b != "fr5"]
    renamed = [(a, f"fr{kept_fr.index(int(b[2:]))}") if b[2:].isdigit() and int(b[2:]) != 5 else (a, b) for a, b in kept_pairs]
    en_rows = [i for i in range(N_SOURCE) if i != 4]  # the hubness: every usable translated row
    nearest = naive_ranks(en, fr[kept_fr], renamed)
    csls = naive_ranks(en[en_rows], fr[kept_fr], [(f"en{en_rows.index(int(a[2:]))}", b) for a, b in renamed
                                                   if a[2:].isdigit()], csls=True)
    report = __import__("json").loads(result.stdout)
    assert report["rows"] == len(nearest) == len(csls)
    assert report["metrics"]["top1"] == pytest.approx(np.mean(np.array(list(nearest.values())) == 1))
    assert report["metrics"]["csls_top1"] == pytest.approx(np.mean(np.array(list(csls.values())) == 1))


def test_rows_after_a_left_out_reference_row_keep_their_pairs(tmp_path):
    """Reference rows after a dropped one are renumbered: each pair must still point at its own row
    (en0's translation fr1 ranks 2nd, behind fr2, which is closer; pointing at fr2 would rank it 1st)."""
    v = np.array([1.0, 0.0, 0.0, 0.0], np.float32)
    fr = np.array([[0, 0, 0, 0], [1, 0.5, 0, 0], [1, 0.1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 1, 0, 0]], np.float32)
    en_path = write_embeddings(tmp_path / "en.h5", np.stack([v, fr[3], fr[4]]), ids=["en0", "en1", "en2"])
    fr_path = write_embeddings(tmp_path / "fr.h5", fr, ids=[f"fr{i}" for i in range(6)])
    (tmp_path / "d.txt").write_text("en0 fr1\nen1 fr3\nen2 fr4\n")
    result = invoke("evaluate", en_path, "--reference", fr_path, "--pairs", tmp_path / "d.txt", "--drop-invalid",
                    "--metrics", "mrr", "--format", "json")
    assert __import__("json").loads(ok(result, data=True).stdout)["metrics"]["mrr"] == pytest.approx((1 / 2 + 1 + 1) / 3)
