"""Row-wise, retrieval and Jaccard metrics against independent naive implementations (python loops /
full numpy matrices)."""

import numpy as np
import pytest
import torch

from relcli.core.evaluation import compute_embedding_metrics
from relcli.core.metrics import (
    csls_retrieval,
    jaccard_at_k,
    linear_cka,
    mean_cosine,
    mse,
    query_indices,
    retrieval,
)
from relcli.errors import DataError, UsageError
from tests.conftest import random_orthogonal
from tests.core._metrics_helpers import grid_pair, naive_cos, naive_jaccard, naive_retrieval, noisy_pair


# --------------------------------------------------------------------------- row-wise metrics
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_cosine_and_mse_match_naive(seed):
    pred, ref = noisy_pair(seed=seed)
    expected_cos = float(np.mean(np.diag(naive_cos(pred, ref))))
    expected_mse = float(np.mean((pred.numpy() - ref.numpy()) ** 2))
    assert mean_cosine(pred, ref) == pytest.approx(expected_cos, abs=1e-12)
    assert mse(pred, ref) == pytest.approx(expected_mse, abs=1e-12)
    assert mean_cosine(pred, ref, chunk_rows=7) == pytest.approx(expected_cos, abs=1e-12)
    assert mse(pred, ref, chunk_rows=7) == pytest.approx(expected_mse, abs=1e-12)


def test_perfect_prediction_scores():
    pred, ref = noisy_pair()
    assert mean_cosine(ref, ref) == pytest.approx(1.0, abs=1e-12)
    assert mse(ref, ref) == 0.0
    result = retrieval(ref, ref)
    assert result == {"top1": 1.0, "top5": 1.0, "top10": 1.0, "mrr": 1.0, "mrr@10": 1.0}


def test_mse_allows_zero_rows_but_cosine_does_not():
    pred, ref = noisy_pair(n=10)
    pred[3] = 0
    assert mse(pred, ref) > 0
    with pytest.raises(DataError, match=r"all zeros.*\(rows 3\)"):
        mean_cosine(pred, ref)
    with pytest.raises(DataError, match=r"all zeros.*\(rows 3\)"):
        retrieval(pred, ref, ks=(1,))


@pytest.mark.parametrize("fn", [mean_cosine, mse, linear_cka, lambda p, r: retrieval(p, r, ks=(1,)),
                                lambda p, r: jaccard_at_k(p, r, k=3), lambda p, r: csls_retrieval(p, r, k_neighbours=3)])
def test_nan_rows_are_named(fn):
    pred, ref = noisy_pair(n=20)
    ref[17, 2] = float("nan")
    with pytest.raises(DataError, match=r"(ref|y) has NaN/Inf in 1 row\(s\) \(rows 17\)"):
        fn(pred, ref)


def test_shape_mismatches():
    pred, ref = noisy_pair(n=20)
    with pytest.raises(DataError, match="20 rows but ref has 19"):
        mean_cosine(pred, ref[:19])
    with pytest.raises(DataError, match=r"\(20, 8\).*\(20, 7\)"):
        mse(pred, ref[:, :7])


# --------------------------------------------------------------------------- retrieval
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_retrieval_matches_naive(seed):
    pred, ref = noisy_pair(n=50, noise=1.0, seed=seed)
    got = retrieval(pred, ref, ks=(1, 3, 5, 10))
    expected = naive_retrieval(pred, ref, ks=(1, 3, 5, 10))
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    assert got["top1"] < 1.0  # the noise makes the test non-trivial


def test_retrieval_ties_favour_the_query():
    pred, ref = noisy_pair(n=12)
    ref[5] = ref[2]
    ref[9] = ref[2] * 3.0  # same direction, identical cosines to every query
    pred = ref.clone()
    result = retrieval(pred, ref, ks=(1,))
    assert result["top1"] == 1.0 and result["mrr"] == 1.0
    for seed in range(3):
        pred, ref = grid_pair(seed=seed)
        got = retrieval(pred, ref, ks=(1, 5, 10))
        expected = naive_retrieval(pred, ref, ks=(1, 5, 10))
        for key in expected:
            assert got[key] == pytest.approx(expected[key], abs=1e-12), key


def test_retrieval_mrr_at_k_uses_cutoff():
    # Query 0 ranks the correct row 3rd: rank 3 -> mrr 1/3; mrr@2 drops it to 0.
    ref = torch.eye(4, dtype=torch.float64)
    pred = torch.tensor([[0.1, 0.5, 0.4, 0.0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    result = retrieval(pred, ref, ks=(1, 2, 3), mrr_ks=(2, 10))
    assert result["top1"] == 0.75 and result["top2"] == 0.75 and result["top3"] == 1.0
    assert result["mrr"] == pytest.approx((1 / 3 + 3) / 4)
    assert result["mrr@2"] == pytest.approx(3 / 4)
    assert result["mrr@10"] == pytest.approx(result["mrr"])


def test_retrieval_k_larger_than_n_is_an_error():
    pred, ref = noisy_pair(n=8)
    with pytest.raises(DataError, match="10"):
        retrieval(pred, ref)
    assert retrieval(pred, ref, ks=(8,))["top8"] == 1.0
    with pytest.raises(UsageError):
        retrieval(pred, ref, ks=(0,))


@pytest.mark.parametrize("chunk", [1, 7, 64, None])
def test_similarity_metrics_are_chunk_size_independent(chunk):
    pred, ref = noisy_pair(n=64, noise=1.0, seed=3)
    base = compute_embedding_metrics(pred, ref, chunk_rows=10_000)
    other = compute_embedding_metrics(pred, ref, chunk_rows=chunk)
    for key in base:
        assert other[key] == pytest.approx(base[key], abs=1e-6), key


@pytest.mark.parametrize("m", [1, 10, 37])
def test_query_sample_ranks_subset_among_all_rows(m):
    pred, ref = noisy_pair(n=60, noise=1.0, seed=4)
    queries = query_indices(60, m, seed=5)
    assert len(queries) == m and len(set(queries.tolist())) == m
    assert torch.equal(queries, queries.sort().values)
    assert torch.equal(queries, query_indices(60, m, seed=5))
    got = retrieval(pred, ref, ks=(1, 5), query_sample=m, seed=5)
    expected = naive_retrieval(pred, ref, ks=(1, 5), queries=queries.tolist())
    for key in expected:
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    got_j = jaccard_at_k(pred, ref, k=4, query_sample=m, seed=5)
    assert got_j == pytest.approx(naive_jaccard(pred, ref, 4, queries=queries.tolist()), abs=1e-12)


def test_query_sample_defaults():
    assert torch.equal(query_indices(10, None), torch.arange(10))
    assert torch.equal(query_indices(10, 50), torch.arange(10))
    assert not torch.equal(query_indices(100, 10, seed=0), query_indices(100, 10, seed=1))
    pred, ref = noisy_pair(n=30, noise=1.0)
    assert retrieval(pred, ref, ks=(1,), query_sample=30) == retrieval(pred, ref, ks=(1,))
    with pytest.raises(UsageError):
        query_indices(10, 0)


# --------------------------------------------------------------------------- jaccard
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("k", [1, 4, 10])
def test_jaccard_matches_naive(seed, k):
    pred, ref = noisy_pair(n=40, noise=0.8, seed=seed)
    assert jaccard_at_k(pred, ref, k=k) == pytest.approx(naive_jaccard(pred, ref, k), abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_jaccard_ties_go_to_lower_index(seed):
    pred, ref = grid_pair(n=30, seed=seed)
    for k in (1, 3, 7):
        assert jaccard_at_k(pred, ref, k=k) == pytest.approx(naive_jaccard(pred, ref, k), abs=1e-12)


def test_jaccard_tie_break_by_hand():
    # pred rows 1 and 2 are identical, so rows 0 and 3 each see a tie for their nearest
    # neighbour; lower index wins -> N1 = {1} for both. k=1 sets:
    #   pred: {1}, {2}, {1}, {1}     ref: {1}, {3}, {3}, {1}     -> Jaccard 1, 0, 0, 1.
    # Had ties gone to the higher index, rows 0 and 3 would score 0.
    pred = torch.tensor([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [-1.0, 0.1]], dtype=torch.float64)
    ref = torch.tensor([[1.0, 0.0], [1.0, 0.5], [1.0, 2.0], [1.0, 0.6]], dtype=torch.float64)
    assert jaccard_at_k(pred, ref, k=1) == pytest.approx(0.5)
    assert naive_jaccard(pred, ref, 1) == pytest.approx(0.5)
    assert jaccard_at_k(pred, ref, k=1, chunk_rows=1) == pytest.approx(0.5)


def test_jaccard_identical_spaces_and_errors():
    pred, ref = noisy_pair(n=20)
    assert jaccard_at_k(ref, ref, k=5) == 1.0
    assert jaccard_at_k(ref @ random_orthogonal(8, seed=1), ref, k=5) == 1.0
    with pytest.raises(DataError, match="k <= 19"):
        jaccard_at_k(pred, ref, k=20)
    assert 0.0 <= jaccard_at_k(pred, ref, k=19) <= 1.0


def test_cosine_and_mse_past_the_range_of_their_dtype():
    """Row dot products are taken in the rows' dtype, so the ones that leave its range (float16 rows
    of norm > 256, float32 squares past 3.4e38) are taken again another way, not returned as inf/nan."""
    rows = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    half = (rows * 200).half()
    assert mean_cosine(half, half * 1.01) == pytest.approx(1.0, abs=1e-6)
    assert mean_cosine(half.bfloat16(), half.bfloat16()) == pytest.approx(1.0, abs=1e-6)
    assert mse(rows * 3e18, -rows * 3e18) == pytest.approx(float(((6e18 * rows.double()) ** 2).mean()), rel=1e-5)
