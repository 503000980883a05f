"""Shared data and naive references of the metric tests (test_metrics_*.py): python loops and full
numpy matrices, independent of the code under test."""

import numpy as np
import torch


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
