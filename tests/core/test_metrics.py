"""Metrics against independent naive implementations (python loops / full numpy matrices)."""

import math

import numpy as np
import pytest
import torch

from relcli.core.evaluation import (
    EMBEDDING_METRICS,
    LABEL_METRICS,
    LOWER_IS_BETTER,
    METRIC_DOCS,
    compute_embedding_metrics,
    compute_label_metrics,
)
from relcli.core.metrics import (
    accuracy,
    csls_retrieval,
    jaccard_at_k,
    linear_cka,
    macro_f1,
    mean_cosine,
    mse,
    query_indices,
    retrieval,
)
from relcli.errors import DataError, UsageError
from tests.conftest import random_orthogonal, tolerance


# --------------------------------------------------------------------------- data
def noisy_pair(n=60, d=8, noise=0.6, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(n, d, generator=g, dtype=torch.float64)
    pred = ref + noise * torch.randn(n, d, generator=g, dtype=torch.float64)
    return pred.to(dtype), ref.to(dtype)


def grid_pair(n=40, d=3, seed=0):
    """Rows from {-1, 0, 1}^d without zero rows: many exact duplicates and tied cosines."""
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < 2 * n:
        v = rng.integers(-1, 2, size=d)
        if v.any():
            rows.append(v)
    rows = np.array(rows, dtype=np.float64)
    return torch.from_numpy(rows[:n]), torch.from_numpy(rows[n:])


# --------------------------------------------------------------------------- naive references
def naive_cos(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.array([[float(np.dot(a[i], b[j])) for j in range(len(b))] for i in range(len(a))])


def close(a, b, tol=1e-9):
    return abs(a - b) <= tol


def naive_ranks(pred, ref, queries=None):
    s = naive_cos(pred, ref)
    n = len(s)
    queries = range(n) if queries is None else queries
    return [1 + sum(1 for j in range(n) if j != i and s[i, j] > s[i, i] and not close(s[i, j], s[i, i])) for i in queries]


def naive_retrieval(pred, ref, ks, mrr_k=10, queries=None):
    ranks = naive_ranks(pred, ref, queries)
    out = {f"top{k}": sum(r <= k for r in ranks) / len(ranks) for k in ks}
    out["mrr"] = sum(1 / r for r in ranks) / len(ranks)
    out[f"mrr@{mrr_k}"] = sum(1 / r if r <= mrr_k else 0 for r in ranks) / len(ranks)
    return out


def naive_knn(s, i, k):
    others = [j for j in range(len(s)) if j != i]
    return set(sorted(others, key=lambda j: (-round(s[i, j], 9), j))[:k])


def naive_jaccard(pred, ref, k, queries=None):
    sp, sr = naive_cos(pred, pred), naive_cos(ref, ref)
    queries = range(len(sp)) if queries is None else queries
    values = []
    for i in queries:
        a, b = naive_knn(sp, i, k), naive_knn(sr, i, k)
        values.append(len(a & b) / len(a | b))
    return sum(values) / len(values)


def naive_cka_gram(x, y):
    """Gram (HSIC) form, independent of the feature form the code uses."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h
    return float(np.sum(k * l) / math.sqrt(np.sum(k * k) * np.sum(l * l)))


def naive_csls_top(pred, ref, k_nb, k_top):
    s = naive_cos(pred, ref)
    n = len(s)
    r_t = [np.mean(sorted(s[i, :], reverse=True)[:k_nb]) for i in range(n)]
    r_s = [np.mean(sorted(s[:, j], reverse=True)[:k_nb]) for j in range(n)]
    hits = 0
    for i in range(n):
        c = [2 * s[i, j] - r_t[i] - r_s[j] for j in range(n)]
        rank = 1 + sum(1 for j in range(n) if j != i and c[j] > c[i] and not close(c[j], c[i]))
        hits += rank <= k_top
    return hits / n


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


# --------------------------------------------------------------------------- CKA
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cka_matches_gram_form(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(50, 6, generator=g, dtype=torch.float64)
    y = x @ torch.randn(6, 9, generator=g, dtype=torch.float64) + 0.5 * torch.randn(50, 9, generator=g, dtype=torch.float64)
    assert linear_cka(x, y) == pytest.approx(naive_cka_gram(x, y), abs=1e-10)
    assert linear_cka(x, y, chunk_rows=7) == pytest.approx(naive_cka_gram(x, y), abs=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cka_invariances_and_symmetry(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(80, 7, generator=g, dtype=torch.float64) * torch.linspace(0.5, 3, 7, dtype=torch.float64)
    y = torch.randn(80, 5, generator=g, dtype=torch.float64)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
    q = random_orthogonal(7, seed=seed)
    assert linear_cka(x, 3.7 * x @ q + 1e6) == pytest.approx(1.0, abs=1e-9)  # rotation, scale, shift
    assert linear_cka(x, y) == pytest.approx(linear_cka(y, x), abs=1e-14)
    assert linear_cka(x, x * torch.linspace(1, 5, 7, dtype=torch.float64)) < 0.99  # anisotropic scaling


def test_cka_independent_spaces_small():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3000, 8, generator=g, dtype=torch.float64)
    y = torch.randn(3000, 8, generator=g, dtype=torch.float64)
    assert linear_cka(x, y) < 0.02


def test_cka_errors():
    x = torch.randn(10, 3, dtype=torch.float64)
    with pytest.raises(DataError, match="constant"):
        linear_cka(x, torch.ones(10, 4, dtype=torch.float64))
    with pytest.raises(DataError, match="rows"):
        linear_cka(x, x[:9])


# --------------------------------------------------------------------------- CSLS
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k_nb", [1, 3, 10])
def test_csls_matches_naive(seed, k_nb):
    pred, ref = noisy_pair(n=40, noise=1.0, seed=seed)
    got = csls_retrieval(pred, ref, k_neighbours=k_nb, ks=(1, 3))
    assert got["csls_top1"] == pytest.approx(naive_csls_top(pred, ref, k_nb, 1), abs=1e-12)
    assert got["csls_top3"] == pytest.approx(naive_csls_top(pred, ref, k_nb, 3), abs=1e-12)
    assert csls_retrieval(pred, ref, k_neighbours=k_nb, ks=(1, 3), chunk_rows=3) == got


def test_csls_with_ties_and_errors():
    pred, ref = grid_pair(n=30, seed=1)
    assert csls_retrieval(pred, ref, k_neighbours=3)["csls_top1"] == pytest.approx(naive_csls_top(pred, ref, 3, 1))
    with pytest.raises(DataError):
        csls_retrieval(pred[:5], ref[:5], k_neighbours=10)
    with pytest.raises(DataError):
        csls_retrieval(pred[:5], ref[:5], k_neighbours=2, ks=(6,))


# --------------------------------------------------------------------------- label metrics
def test_label_metrics_by_hand():
    true = torch.tensor([0, 0, 1, 1, 2])
    pred = torch.tensor([0, 1, 1, 1, 3])
    # F1: class0 2/(2+0+1), class1 4/(4+1+0), class2 0, class3 0 -> mean 11/30.
    assert macro_f1(pred, true) == pytest.approx(11 / 30)
    assert accuracy(pred, true) == pytest.approx(3 / 5)
    assert macro_f1(true, true) == 1.0
    assert compute_label_metrics([5, 5, 9], [5, 9, 9]) == {"accuracy": pytest.approx(2 / 3), "macro_f1": pytest.approx(2 / 3)}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macro_f1_matches_loop(seed):
    rng = np.random.default_rng(seed)
    true = rng.integers(0, 6, size=200)
    pred = np.where(rng.random(200) < 0.6, true, rng.integers(0, 7, size=200))
    f1s = []
    for c in sorted(set(true) | set(pred)):
        tp = sum(1 for p, t in zip(pred, true) if p == c and t == c)
        fp = sum(1 for p, t in zip(pred, true) if p == c and t != c)
        fn = sum(1 for p, t in zip(pred, true) if p != c and t == c)
        f1s.append(2 * tp / (2 * tp + fp + fn))
    assert macro_f1(torch.from_numpy(pred), torch.from_numpy(true)) == pytest.approx(sum(f1s) / len(f1s), abs=1e-12)


def test_label_metric_errors():
    with pytest.raises(DataError, match="3 entries.*2"):
        accuracy([1, 2, 3], [1, 2])
    with pytest.raises(DataError, match="integer"):
        macro_f1(torch.tensor([1.0, 2.0]), torch.tensor([1, 2]))
    with pytest.raises(UsageError, match="accuracy, macro_f1"):
        compute_label_metrics([1], [1], names=["f1"])


# --------------------------------------------------------------------------- registry
def test_registry_documents_every_metric():
    assert EMBEDDING_METRICS == ("cosine", "mse", "top1", "top5", "top10", "mrr", "mrr@10", "jaccard@10", "cka", "csls_top1")
    assert LABEL_METRICS == ("accuracy", "macro_f1")
    assert set(METRIC_DOCS) == set(EMBEDDING_METRICS) | set(LABEL_METRICS)
    assert all(doc and "\n" not in doc for doc in METRIC_DOCS.values())
    assert LOWER_IS_BETTER == {"mse"}


def test_compute_embedding_metrics_matches_functions():
    pred, ref = noisy_pair(n=40, noise=1.0, seed=6)
    got = compute_embedding_metrics(pred, ref)
    assert list(got) == list(EMBEDDING_METRICS)
    assert all(type(v) is float for v in got.values())
    expected = {
        "cosine": mean_cosine(pred, ref),
        "mse": mse(pred, ref),
        **retrieval(pred, ref),
        "jaccard@10": jaccard_at_k(pred, ref, k=10),
        "cka": linear_cka(pred, ref),
        **csls_retrieval(pred, ref),
    }
    for key in EMBEDDING_METRICS:
        assert got[key] == pytest.approx(expected[key], abs=1e-12), key
    subset = compute_embedding_metrics(pred, ref, names=["mrr", "top3", "jaccard@4", "csls_top2"])
    assert list(subset) == ["mrr", "top3", "jaccard@4", "csls_top2"]
    assert subset["top3"] == pytest.approx(naive_retrieval(pred, ref, ks=(3,))["top3"])
    assert subset["jaccard@4"] == pytest.approx(naive_jaccard(pred, ref, 4))
    assert subset["csls_top2"] == pytest.approx(naive_csls_top(pred, ref, 10, 2))


def test_compute_embedding_metrics_errors():
    pred, ref = noisy_pair(n=8)
    with pytest.raises(UsageError, match="unknown metric 'cosin'.*cosine, mse, top1"):
        compute_embedding_metrics(pred, ref, names=["cosin"])
    with pytest.raises(UsageError):
        compute_embedding_metrics(pred, ref, names=["top0"])
    with pytest.raises(DataError, match="top10"):
        compute_embedding_metrics(pred, ref, names=["top10"])
    # Only what is asked is computed: metrics impossible for n=8 are not touched.
    assert set(compute_embedding_metrics(pred, ref, names=["cosine", "top1"])) == {"cosine", "top1"}


# --------------------------------------------------------------------------- device x dtype
def test_device_dtype_grid(device, dtype):
    pred, ref = noisy_pair(n=48, noise=0.5, seed=7)
    expected = compute_embedding_metrics(pred, ref, names=list(EMBEDDING_METRICS))
    pred_d, ref_d = pred.to(device, dtype), ref.to(device, dtype)
    got = compute_embedding_metrics(pred_d, ref_d, chunk_rows=16)
    tol = 10 * tolerance(dtype)
    for key in EMBEDDING_METRICS:
        assert type(got[key]) is float
        assert got[key] == pytest.approx(expected[key], abs=tol), key
    labels = compute_label_metrics(torch.tensor([1, 2, 2], device=device), torch.tensor([1, 2, 3], device=device))
    assert labels["accuracy"] == pytest.approx(2 / 3)
    # Inputs are not mutated.
    assert torch.equal(pred_d.cpu().double(), pred.to(dtype).double())
    # Mixed dtypes/devices: ref follows pred.
    assert mean_cosine(pred_d, ref) == pytest.approx(expected["cosine"], abs=tol)
