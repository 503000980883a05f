"""The metrics streamed over row chunks (``relcli.core.paired``), as `evaluate` runs them on files:
any chunking and any query blocking give the one-block result, ties and samples included, and the
results agree with naive references (python loops over full matrices)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from relcli.core.evaluation import EMBEDDING_METRICS, parsed_metrics
from relcli.core.metrics import query_indices, tensor_metrics
from relcli.core.paired import TensorRows, paired_metrics
from tests.core._metrics_helpers import close, grid_pair, naive_cos, naive_jaccard, naive_retrieval, noisy_pair

NAMES = [*EMBEDDING_METRICS, "top3", "mrr@5", "jaccard@1", "jaccard@3", "csls_top3"]
SUMS = ("cosine", "mse", "cka", "jaccard@10", "jaccard@1", "jaccard@3")  # sums in another order: close
EXACT = [name for name in NAMES if name not in SUMS]  # from whole ranks: equal


def naive_csls_top(pred, ref, k_nb, k_top, queries):
    """CSLS top-k of the ``queries`` rows, r_S(r_j) over the queries' pred rows (all rows: exact CSLS;
    a sample: p_j left out of r_S(r_j), so that no row's hub holds its own match)."""
    s = naive_cos(pred, ref)
    n = len(s)
    r_t = {i: np.mean(sorted(s[i, :], reverse=True)[:k_nb]) for i in queries}
    own_out = len(queries) < n
    r_s = [np.mean(sorted([s[i, j] for i in queries if not (own_out and i == j)], reverse=True)[:k_nb]) for j in range(n)]
    hits = 0
    for i in queries:
        c = [2 * s[i, j] - r_t[i] - r_s[j] for j in range(n)]
        rank = 1 + sum(1 for j in range(n) if j != i and c[j] > c[i] and not close(c[j], c[i]))
        hits += rank <= k_top
    return hits / len(queries)


@pytest.mark.parametrize("pair", ["noisy", "ties"])
@pytest.mark.parametrize("chunk", [1, 2, 5, 13])
@pytest.mark.parametrize("query_batch", [1, 4, None])
def test_any_chunking_equals_one_block(pair, chunk, query_batch):
    pred, ref = noisy_pair(n=40, noise=1.0, seed=2) if pair == "noisy" else grid_pair(n=40, seed=3)
    wanted = parsed_metrics(NAMES)
    one_block = tensor_metrics(pred, ref, wanted, None, None, 0)
    streamed = paired_metrics(TensorRows(pred, ref, chunk), wanted, query_batch)
    assert list(streamed) == NAMES
    for name in EXACT:
        assert streamed[name] == one_block[name], name
    for name in SUMS:
        assert streamed[name] == pytest.approx(one_block[name], abs=1e-12), name


@pytest.mark.parametrize("chunk", [1, 3, 40])
def test_streamed_metrics_match_naive_references_with_a_query_sample(chunk):
    pred, ref = grid_pair(n=40, seed=5)  # many exact ties
    queries = query_indices(40, 11, seed=7).tolist()
    got = paired_metrics(TensorRows(pred, ref, chunk), parsed_metrics(["top1", "top3", "mrr", "jaccard@3", "csls_top1"]),
                         query_batch=4, query_sample=11, seed=7, csls_neighbours=3)
    expected = naive_retrieval(pred, ref, ks=(1, 3), queries=queries)
    assert got["top1"] == pytest.approx(expected["top1"], abs=1e-12)
    assert got["top3"] == pytest.approx(expected["top3"], abs=1e-12)
    assert got["mrr"] == pytest.approx(expected["mrr"], abs=1e-12)
    assert got["jaccard@3"] == pytest.approx(naive_jaccard(pred, ref, 3, queries=queries), abs=1e-12)
    assert got["csls_top1"] == pytest.approx(naive_csls_top(pred, ref, 3, 1, queries), abs=1e-12)


def test_every_row_as_query_gives_exact_csls():
    pred, ref = noisy_pair(n=30, noise=1.2, seed=9)
    got = paired_metrics(TensorRows(pred, ref, 4), parsed_metrics(["csls_top1", "csls_top5"]), query_batch=7)
    everyone = list(range(30))
    assert got["csls_top1"] == pytest.approx(naive_csls_top(pred, ref, 10, 1, everyone), abs=1e-12)
    assert got["csls_top5"] == pytest.approx(naive_csls_top(pred, ref, 10, 5, everyone), abs=1e-12)


def test_progress_reports_every_chunk_in_order():
    pred, ref = noisy_pair(n=20)
    seen = []
    paired_metrics(TensorRows(pred, ref, 6), parsed_metrics(["top1", "csls_top1"]), None, csls_neighbours=3,
                   progress=lambda what, done, total: seen.append((what, done, total)))
    assert seen == [("evaluate", d, 20) for d in (6, 12, 18, 20)]  # one pass, CSLS included


def test_a_perfect_float32_prediction_ranks_first_at_any_chunking():
    """Ranks start at 1 and the query's own column is never counted against it (its similarity comes
    from a row product, the others' from a matrix product)."""
    g = torch.Generator().manual_seed(0)
    ref = torch.randn(300, 768, generator=g)
    for chunk in (7, 300):
        got = paired_metrics(TensorRows(ref.clone(), ref, chunk), parsed_metrics(["top1", "mrr", "csls_top1"]), 64)
        assert got == {"top1": 1.0, "mrr": 1.0, "csls_top1": 1.0}


def test_a_query_sample_does_not_sink_the_right_answers_under_csls():
    """With a sample, a sampled row's own match is among the pred rows its hub is taken over, another
    row's is not: counted, it would raise exactly the right answers' hubs. Without it, CSLS from a
    sample stays near CSLS over every row (before the fix: 0.500 against 0.515 here)."""
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(3000, 16, generator=g, dtype=torch.float64)
    ref = pred + 0.9 * torch.randn(3000, 16, generator=g, dtype=torch.float64)
    wanted = parsed_metrics(["csls_top1", "top1"])
    full = paired_metrics(TensorRows(pred, ref, 3000), wanted, None)
    sampled = paired_metrics(TensorRows(pred, ref, 700), wanted, None, query_sample=1000, seed=0)
    assert sampled["csls_top1"] > sampled["top1"]
    assert abs(sampled["csls_top1"] - full["csls_top1"]) < 0.02


@pytest.mark.parametrize("chunk", [1, 7, 60])
@pytest.mark.parametrize("k", [1, 3, 25])
def test_duplicate_rows_give_the_naive_neighbour_sets(chunk, k):
    generator = torch.Generator().manual_seed(11)
    base = torch.randn(3, 6, generator=generator, dtype=torch.float64)
    rows = torch.arange(60) % 3
    pred, ref = base[rows], (base + 0.3 * torch.randn(3, 6, generator=generator, dtype=torch.float64))[rows]
    got = paired_metrics(TensorRows(pred, ref, chunk), parsed_metrics([f"jaccard@{k}"]), query_batch=8)
    assert got[f"jaccard@{k}"] == pytest.approx(naive_jaccard(pred, ref, k), abs=1e-12)


def test_duplicate_rows_keep_k_candidates_not_every_tie():
    from relcli.core.paired import _Nearest

    nearest = _Nearest(queries=5, k=3, tol=1e-6, like=torch.empty(0))
    for start in range(0, 2000, 200):  # every row at the same similarity: all tie, the first 3 win
        nearest.add(torch.full((5, 200), 0.5), start)
        assert nearest.values.shape[1] == 3
    assert nearest.sets(3).tolist() == [[0, 1, 2]] * 5


@pytest.mark.parametrize("offset", [0.0, 5.0, 3e4])
def test_cka_of_float32_rows_matches_float64_sums_at_any_chunking(offset):
    """float32 rows take float32 products (summed in float64): within 3e-7 of the float64 CKA,
    even under a large shared offset (the rows are shifted by the first rows' mean first)."""
    from relcli.core.metrics import CKASums

    generator = torch.Generator().manual_seed(4)
    x = torch.randn(3000, 32, generator=generator) * torch.logspace(0, -2, 32) + offset
    y = 2.5 * x @ torch.linalg.qr(torch.randn(32, 32, generator=generator))[0] + 0.3 * torch.randn(3000, 32, generator=generator)

    def cka(a, b, step):
        sums = CKASums()
        for start in range(0, a.shape[0], step):
            sums.add(a[start:start + step], b[start:start + step])
        return sums.value()

    truth = cka(x.double(), y.double(), 3000)
    for step in (7, 500, 3000):
        assert cka(x, y, step) == pytest.approx(truth, abs=3e-7)


@pytest.mark.parametrize("csls", [False, True])
def test_a_near_miss_inside_the_tie_window_is_decided_exactly(csls):
    """A wrong word 2e-6 closer than the right one (float32 rows, inside the 3.8e-6 window) ranks
    above it, as an exact comparison (MUSE's) has it; an exact duplicate of the right answer still
    counts for the query."""
    from relcli.core.lexicon import dictionary_ranks

    angle = 1.0
    query = torch.tensor([[1.0, 0.0, 0.0]])
    right = torch.tensor([[math.cos(angle), math.sin(angle), 0.0]])
    closer = torch.tensor([[math.cos(angle - 2e-6 / math.sin(angle)), 0.0, math.sin(angle - 2e-6 / math.sin(angle))]])
    far = torch.tensor([[0.0, 0.0, 1.0]])
    for wrong, expected in ((closer, 2), (right.clone(), 1)):
        gallery = torch.cat([right, wrong, far]).to(torch.float32)
        cos64 = torch.nn.functional.normalize(gallery.double(), dim=1) @ torch.nn.functional.normalize(query.double(), dim=1).T
        assert expected == 1 or 0 < float(cos64[1] - cos64[0]) < 3.8e-6  # inside the old window, truly above
        hubs = (lambda rows: torch.zeros(rows.shape[0], dtype=rows.dtype)) if csls else None
        ranks, csls_ranks = dictionary_ranks(query.to(torch.float32), torch.tensor([0]), torch.tensor([0]), gallery[:1],
                                             iter([(0, gallery)]), hubs=hubs)
        assert int((csls_ranks if csls else ranks)[0]) == expected


def test_evaluate_ranks_a_near_miss_below_the_closer_row():
    """The paired retrieval metrics decide near ties as the dictionary ranks do: row 1's reference is
    2e-6 closer to prediction 0 than its own reference (inside the 3.8e-6 window): rank 2, not 1."""
    angle, gap = 1.0, 2e-6 / math.sin(1.0)
    pred = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    ref = torch.tensor([[math.cos(angle), math.sin(angle), 0.0],
                        [math.cos(angle - gap), 0.0, math.sin(angle - gap)], [0.0, 1.0, 0.0]])
    got = tensor_metrics(pred, ref, parsed_metrics(["top1", "mrr"]), None, None, 0)
    assert got["top1"] == pytest.approx(2 / 3) and got["mrr"] == pytest.approx((1 / 2 + 1 + 1) / 3)
