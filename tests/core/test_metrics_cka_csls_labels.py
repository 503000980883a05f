"""CKA, CSLS, label metrics, the metric registry and the device x dtype grid, against independent naive
implementations (python loops / full numpy matrices)."""

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
    retrieval,
)
from relcli.errors import DataError, UsageError
from tests.conftest import random_orthogonal, tolerance
from tests.core._metrics_helpers import close, grid_pair, naive_cos, naive_jaccard, naive_retrieval, noisy_pair


# --------------------------------------------------------------------------- naive references
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


@pytest.mark.parametrize("magnitude", [1e-24, 1e-30, 1e19, 1e30])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cka_of_tiny_or_huge_values_is_that_of_the_same_rows_near_one(magnitude, dtype):
    """CKA is scale invariant: float32 rows of 1e-24 gave 4e15 (products underflowed), rows of 1e19
    'constant over rows' (overflow). The rows are brought near 1 before the products."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 16, generator=g, dtype=torch.float64)
    y = x @ random_orthogonal(16, seed=1)
    if dtype == torch.float32 and not 1e-37 < magnitude < 1e37:
        pytest.skip("not a float32 value")
    small = (x * magnitude).to(dtype)
    value = linear_cka(small, y.to(dtype), chunk_rows=64)
    assert value == pytest.approx(1.0, abs=1e-6) and value <= 1.0
    assert linear_cka(small, (y * magnitude).to(dtype)) == pytest.approx(1.0, abs=1e-6)


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
