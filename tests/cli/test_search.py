"""``relcli search``: top-k neighbours by cosine or CSLS, streamed over the index, as JSON lines.

Ground truth is a brute-force NumPy float64 ranking (score descending, ties to the lower row) on
the same small files; CSLS follows the formula in ``relcli.api.search`` (as in
``relcli.core.metrics.csls_retrieval``): 2cos − r_T(q) − r_S(y).
"""

from __future__ import annotations

import importlib.metadata
import json
import zlib

import numpy as np
import pytest
import torch

from relcli import api
from relcli.core.metrics import query_indices
from relcli.encoders import ENTRY_POINT_GROUP
from relcli.io.embeddings import write_embeddings

from .conftest import assert_clean_error, invoke, ok, unit_rows


def run(*args) -> list[dict]:
    result = ok(invoke("search", *args), data=True)
    assert result.stderr == ""
    return [json.loads(line) for line in result.stdout.splitlines()]


def top_k(scores: np.ndarray, k: int) -> list[int]:
    """Columns by score descending, ties to the lower column (a stable sort)."""
    order = np.argsort(-scores, kind="stable")
    return [int(c) for c in order[:k] if np.isfinite(scores[c])]


def mean_top(sims: np.ndarray, k: int) -> np.ndarray:
    return -np.sort(-sims, axis=1)[:, :k].mean(axis=1)


def test_cosine_neighbours_of_ids_match_brute_force(data):
    y = unit_rows(data.y)
    wanted = ["item-0003", "item-0100", "item-0239"]
    records = run(data.y_h5, *[a for w in wanted for a in ("--id", w)], "-k", 5)
    assert [r["query"] for r in records] == wanted
    for record in records:
        row = data.ids.index(record["query"])
        sims = y @ y[row]
        sims[row] = -np.inf  # a row of the index does not find itself
        expected = top_k(sims, 5)
        assert [n["id"] for n in record["neighbours"]] == [data.ids[c] for c in expected]
        assert [n["rank"] for n in record["neighbours"]] == [1, 2, 3, 4, 5]
        np.testing.assert_allclose([n["score"] for n in record["neighbours"]], sims[expected], atol=2e-6)
        assert [n["label"] for n in record["neighbours"]] == [int(data.labels[c]) for c in expected]


def test_chunking_does_not_change_the_answer(data, tmp_path):
    ids_file = tmp_path / "q.txt"
    ids_file.write_text("\n".join(data.ids[::17]) + "\n")
    whole = run(data.y_h5, "--ids", ids_file, "-k", 7)
    pieces = run(data.y_h5, "--ids", ids_file, "-k", 7, "--batch-size", 13)
    assert len(whole) == len(data.ids[::17])
    assert [[n["id"] for n in r["neighbours"]] for r in whole] == [[n["id"] for n in r["neighbours"]] for r in pieces]
    np.testing.assert_allclose([[n["score"] for n in r["neighbours"]] for r in whole],
                               [[n["score"] for n in r["neighbours"]] for r in pieces], atol=2e-6)


def test_queries_from_another_file_find_their_twin_and_self_is_optional(data):
    twins = run(data.y_h5, "--queries", data.y_st, "--id", "item-0042", "-k", 3)  # another file: the same id is fair game
    assert twins[0]["neighbours"][0]["id"] == "item-0042" and twins[0]["neighbours"][0]["score"] == pytest.approx(1.0, abs=1e-6)
    same = run(data.y_h5, "--queries", data.y_h5, "--id", "item-0042", "-k", 3)  # the index itself: self left out
    assert same[0]["neighbours"][0]["id"] != "item-0042"
    with_self = run(data.y_h5, "--id", "item-0042", "-k", 3, "--include-self")
    assert with_self[0]["neighbours"][0]["id"] == "item-0042"
    assert [n["id"] for n in with_self[0]["neighbours"][1:]] == [n["id"] for n in same[0]["neighbours"][:2]]
    everything = run(data.y_h5, "--queries", data.y_st, "-k", 1)
    assert len(everything) == len(data.ids) and all(r["neighbours"][0]["id"] == r["query"] for r in everything)


@pytest.fixture(scope="module")
def noisy(data, tmp_path_factory):
    """Queries near Y (same ids): Y + noise, a file of its own."""
    rng = np.random.default_rng(5)
    q = (data.y + 0.8 * rng.standard_normal(data.y.shape)).astype(np.float32)
    return q, write_embeddings(tmp_path_factory.mktemp("noisy") / "q.h5", q, ids=data.ids)


@pytest.mark.parametrize("sample", [None, 50])
def test_csls_with_a_queries_file_matches_the_formula(data, noisy, sample):
    q, path = noisy
    qn, yn = unit_rows(q), unit_rows(data.y)
    hood = qn if sample is None else qn[query_indices(len(q), sample, 3).numpy()]
    k_n = 4
    cos = qn @ yn.T
    scores = 2 * cos - mean_top(cos, k_n)[:, None] - mean_top(yn @ hood.T, k_n)[None, :]
    picked = [0, 9, 77, 200]
    extra = [] if sample is None else ["--csls-sample", sample, "--seed", 3]
    records = run(data.y_h5, "--queries", path, *[a for p in picked for a in ("--id", data.ids[p])], "-k", 6,
                  "--similarity", "csls", "--csls-k", k_n, *extra)
    for row, record in zip(picked, records):
        expected = top_k(scores[row], 6)
        assert [n["id"] for n in record["neighbours"]] == [data.ids[c] for c in expected]
        np.testing.assert_allclose([n["score"] for n in record["neighbours"]], scores[row, expected], atol=5e-6)


def test_csls_of_index_rows_uses_the_index_without_each_row_itself(data):
    yn = unit_rows(data.y)
    k_n = 5
    cos = yn @ yn.T
    np.fill_diagonal(cos, -np.inf)
    r = mean_top(cos, k_n)  # both r_T and r_S: the index, each row left out of its own neighbourhood
    row = 11
    scores = 2 * cos[row] - r[row] - r
    records = run(data.y_h5, "--id", data.ids[row], "-k", 8, "--similarity", "csls", "--csls-k", k_n)
    expected = top_k(scores, 8)
    assert [n["id"] for n in records[0]["neighbours"]] == [data.ids[c] for c in expected]
    np.testing.assert_allclose([n["score"] for n in records[0]["neighbours"]], scores[expected], atol=5e-6)


def test_ties_go_to_the_lower_row_across_chunks_and_k_beyond_the_index(tmp_path):
    e = np.eye(4, dtype=np.float32)
    rows = np.stack([e[0], e[1], e[1], e[1], e[2], e[0] + e[1]])  # rows 1-3 identical
    path = write_embeddings(tmp_path / "ties.h5", rows, ids=["z0", "z1", "y2", "x3", "w4", "q"])
    for batch in ([], ["--batch-size", 1], ["--batch-size", 2]):
        records = run(path, "--id", "q", "-k", 2, *batch)
        assert [n["id"] for n in records[0]["neighbours"]] == ["z0", "z1"]  # z0 (row 0) and the first of the tied rows
        everything = run(path, "--id", "q", "-k", 10, *batch)[0]["neighbours"]
        assert [n["id"] for n in everything] == ["z0", "z1", "y2", "x3", "w4"]  # fewer than k: the index has 5 others
        assert [n["rank"] for n in everything] == [1, 2, 3, 4, 5]


def fake_vector(text: str) -> np.ndarray:
    return np.random.default_rng(zlib.crc32(text.encode())).standard_normal(16).astype(np.float32)


class WordEncoder:
    modality = "text"

    def __init__(self, argument, options):
        self.argument = argument

    def encode(self, texts):
        return torch.from_numpy(np.stack([fake_vector(t) for t in texts]))


def word_factory(argument, options):
    return WordEncoder(argument, options)


def test_text_queries_are_embedded_with_the_encoder(tmp_path, monkeypatch):
    original = importlib.metadata.entry_points
    ours = importlib.metadata.EntryPoints(
        [importlib.metadata.EntryPoint(name="words", value=f"{__name__}:word_factory", group=ENTRY_POINT_GROUP)])
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda **params: ours if params.get("group") == ENTRY_POINT_GROUP else original(**params))
    words = ["apple", "banana", "cherry", "query: banana"]
    path = write_embeddings(tmp_path / "words.h5", np.stack([fake_vector(w) for w in words]), ids=words)
    records = run(path, "--text", "banana", "--text", "cherry", "--encoder", "words:x", "-k", 2)
    assert [r["query"] for r in records] == ["banana", "cherry"]
    assert [r["neighbours"][0]["id"] for r in records] == ["banana", "cherry"]
    assert records[0]["neighbours"][0]["score"] == pytest.approx(1.0, abs=1e-6)
    prefixed = run(path, "--text", "banana", "--encoder", "words:x", "--prefix", "query: ", "-k", 1)
    assert prefixed[0]["neighbours"][0]["id"] == "query: banana"
    result = api.search(path, text="apple", encoder="words:x", k=1)
    assert next(result.records())["neighbours"][0]["id"] == "apple"


def test_bad_rows_and_bad_requests_are_one_line_errors(data, tmp_path):
    rows = np.asarray(data.y[:20]).copy()
    rows[4] = np.nan
    rows[9] = 0.0
    ids = data.ids[:20]
    path = write_embeddings(tmp_path / "bad.h5", rows, ids=ids, allow_nonfinite=True)
    assert_clean_error(invoke("search", path, "--id", ids[4]), 1, "NaN/Inf", repr(ids[4]), path=path)
    assert_clean_error(invoke("search", path, "--id", ids[9]), 1, "all zeros", repr(ids[9]), path=path)
    assert_clean_error(invoke("search", path, "--id", ids[0]), 1, "NaN/Inf", repr(ids[4]), "--drop-invalid", path=path)
    result = ok(invoke("search", path, "--id", ids[0], "-k", 30, "--drop-invalid"), data=True)
    found = [n["id"] for n in json.loads(result.stdout)["neighbours"]]
    assert len(found) == 17 and ids[4] not in found and ids[9] not in found and ids[0] not in found
    assert "skipped 2 row(s)" in result.stderr
    assert_clean_error(invoke("search", data.y_h5, "--id", "nope"), 1, "missing", "'nope'", path=data.y_h5)
    assert_clean_error(invoke("search", data.y_h5), 2, "no queries")
    assert_clean_error(invoke("search", data.y_h5, "--text", "hello"), 2, "--encoder")
    assert_clean_error(invoke("search", data.y_h5, "--queries", data.z_h5), 1, "dimension mismatch", "24", "16")
    assert_clean_error(invoke("search", data.y_h5, "--id", "item-0001", "--similarity", "dot"), 2, "--similarity")


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("k", [1, 3, 7, 12])
def test_chunk_top_equals_a_stable_sort_with_many_ties(seed, k):
    """Scores drawn from a few values (and -inf, a query's own row): the pick is the stable sort's
    first k (score descending, ties to the lower column), whether or not the k-th score is tied."""
    from relcli.api.search import _chunk_top

    rng = np.random.default_rng(seed)
    key = torch.from_numpy(rng.choice([0.1, 0.2, 0.3, -np.inf], size=(20, 10), p=[0.4, 0.3, 0.2, 0.1]).astype(np.float32))
    columns = torch.arange(100, 110)
    vals, rows = _chunk_top(key, columns, k)
    order = np.argsort(-key.numpy(), axis=1, kind="stable")[:, :min(k, 10)]
    np.testing.assert_array_equal(rows.numpy(), order + 100)
    np.testing.assert_array_equal(vals.numpy(), np.take_along_axis(key.numpy(), order, axis=1))
