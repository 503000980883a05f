"""Anchor strategies (random, per-class, fps, kmeans), checked against numpy and naive loops."""

import numpy as np
import pytest
import torch

from relcli.core.anchors import (
    _kmeans_centroids,
    _row_norms,
    select_fps,
    select_kmeans,
    select_per_class,
    select_random,
)
from relcli.errors import DataError
from tests.core._anchors_helpers import assert_distinct, clusters, gaussian


# --------------------------------------------------------------------------- random / per-class


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_distinct_deterministic(seed):
    a = select_random(100, 30, seed)
    assert_distinct(a, 30, 100)
    assert torch.equal(a, select_random(100, 30, seed))
    assert not torch.equal(a, select_random(100, 30, seed + 10))
    assert sorted(select_random(30, 30, seed).tolist()) == list(range(30))


def naive_per_class(labels, k, seed):
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed)).tolist()
    queues = {c: [i for i in perm if int(labels[i]) == c] for c in sorted(set(labels.tolist()))}
    out = []
    while len(out) < k:
        for c in queues:
            if queues[c] and len(out) < k:
                out.append(queues[c].pop(0))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("k", [1, 7, 40, 97])
def test_per_class_matches_naive_round_robin(seed, k):
    g = torch.Generator().manual_seed(100 + seed)
    labels = torch.cat([torch.full((n,), c) for c, n in [(5, 30), (-2, 3), (9, 50), (0, 14)]])
    labels = labels[torch.randperm(len(labels), generator=g)]
    got = select_per_class(labels, k, seed)
    assert_distinct(got, k, len(labels))
    assert got.tolist() == naive_per_class(labels, k, seed)


@pytest.mark.parametrize("seed", [0, 5])
def test_per_class_balance_is_exact(seed):
    labels = torch.randint(0, 7, (700,), generator=torch.Generator().manual_seed(seed))
    for k in (7, 30, 50, 63):
        counts = torch.bincount(labels[select_per_class(labels, k, seed)], minlength=7)
        assert int(counts.sum()) == k
        assert int(counts.max() - counts.min()) <= 1


def test_per_class_small_class_runs_out():
    labels = torch.tensor([0] * 20 + [1] * 2 + [2] * 20)
    counts = torch.bincount(labels[select_per_class(labels, 30, 0)], minlength=3)
    assert counts.tolist() == [14, 2, 14]
    assert not torch.equal(select_per_class(labels, 30, 0), select_per_class(labels, 30, 1))


def test_per_class_rejects_float_labels():
    with pytest.raises(DataError, match="integers"):
        select_per_class(torch.tensor([0.0, 1.0, 1.0]), 2, 0)


# --------------------------------------------------------------------------- fps


def naive_fps(x, k, seed):
    """Textbook FPS in numpy with full distance vectors (the same seeded start)."""
    start = int(torch.randint(len(x), (1,), generator=torch.Generator().manual_seed(seed)))
    xh = x / np.linalg.norm(x, axis=1, keepdims=True)
    chosen = [start]
    min_dist = np.full(len(x), np.inf)
    for _ in range(k - 1):
        min_dist = np.minimum(min_dist, np.maximum(0.0, 1.0 - xh @ xh[chosen[-1]]))
        masked = min_dist.copy()
        masked[chosen] = -np.inf
        chosen.append(int(np.argmax(masked)))
    return chosen


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_fps_matches_naive_loop(seed):
    x = gaussian(300, 12, seed=seed)
    got = select_fps(x, 40, seed, chunk_rows=64)
    assert_distinct(got, 40, 300)
    assert got.tolist() == naive_fps(x.numpy(), 40, seed)


def test_fps_deterministic_and_seed_dependent():
    x = gaussian(200, 8, seed=9)
    a = select_fps(x, 20, 3)
    assert torch.equal(a, select_fps(x, 20, 3))
    assert not torch.equal(a, select_fps(x, 20, 4))


@pytest.mark.parametrize("chunk_rows", [1, 17, 128, None])
def test_fps_chunk_size_independent(chunk_rows):
    x = gaussian(257, 10, seed=4)
    assert torch.equal(select_fps(x, 30, 0, chunk_rows=chunk_rows), select_fps(x, 30, 0, chunk_rows=10_000))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_fps_picks_one_per_cluster_first(seed):
    x = clusters(n_clusters=12, per_cluster=25, d=32, seed=seed)
    got = select_fps(x, 12, seed, chunk_rows=50)
    assert sorted((got // 25).tolist()) == list(range(12))


def test_fps_is_scale_invariant_cosine():
    x = gaussian(150, 6, seed=5)
    scales = torch.rand(150, 1, generator=torch.Generator().manual_seed(6), dtype=torch.float64) * 10 + 0.1
    assert torch.equal(select_fps(x, 25, 1), select_fps(x * scales, 25, 1))


def test_fps_duplicates_still_distinct():
    base = gaussian(5, 8, seed=7)
    x = base.repeat(4, 1)  # row i duplicates row i % 5
    got = select_fps(x, 12, 0)
    assert_distinct(got, 12, 20)
    assert sorted(set((got[:5] % 5).tolist())) == list(range(5))
    assert_distinct(select_fps(x, 20, 3), 20, 20)


def test_fps_float32_input():
    x = gaussian(100, 6, seed=8).float()
    got = select_fps(x, 15, 0)
    assert_distinct(got, 15, 100)
    assert torch.equal(got, select_fps(x, 15, 0, chunk_rows=7))


# --------------------------------------------------------------------------- kmeans


def naive_kmeans_indices(x, k, seed, n_iter):
    """Unchunked spherical k-means++ / Lloyd / snap, with the same seeded draws."""
    g = torch.Generator().manual_seed(seed)
    xh = x / x.norm(dim=1, keepdim=True)
    n = len(x)
    centres = [int(torch.randint(n, (1,), generator=g))]
    while len(centres) < k:
        d2 = (2 - 2 * xh @ xh[centres].T).clamp_min(0).min(dim=1).values
        d2[centres] = 0
        u = float(torch.rand((), generator=g, dtype=torch.float64))
        cumulative = torch.cumsum(d2, 0)
        if cumulative[-1] > 0:
            centres.append(int((cumulative > u * cumulative[-1]).nonzero()[0]))
        else:
            centres.append(next(i for i in range(n) if i not in centres))
    c = xh[centres]
    for _ in range(n_iter):
        assign = (xh @ c.T).argmax(dim=1)
        for j in range(k):
            total = xh[assign == j].sum(dim=0)
            if total.norm() > 0:
                c[j] = total / total.norm()
    out = []
    for j in range(k):
        sims = xh @ c[j]
        sims[out] = -np.inf
        out.append(int(sims.argmax()))
    return out, c


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmeans_matches_naive_implementation(seed):
    x = gaussian(240, 6, seed=20 + seed)
    got = select_kmeans(x, 9, seed, n_iter=10, chunk_rows=50)
    expected, centroids = naive_kmeans_indices(x, 9, seed, n_iter=10)
    assert_distinct(got, 9, 240)
    assert got.tolist() == expected
    norms = _row_norms(x, 50, "x")
    ours = _kmeans_centroids(x / norms[:, None], 9, seed, 10, 50)
    torch.testing.assert_close(ours, centroids, rtol=0, atol=1e-10)


def test_kmeans_snaps_to_nearest_real_row():
    x = gaussian(300, 5, seed=30)
    norms = _row_norms(x, None, "x")
    centroids = _kmeans_centroids(x / norms[:, None], 6, 0, 20, 300)
    got = select_kmeans(x, 6, 0)
    cos = (x / norms[:, None]) @ centroids.T
    assert got.tolist() == cos.argmax(dim=0).tolist()  # no collisions here: plain nearest rows


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_kmeans_one_anchor_per_cluster(seed):
    x = clusters(n_clusters=8, per_cluster=30, d=16, seed=40 + seed)
    got = select_kmeans(x, 8, seed, chunk_rows=64)
    assert sorted((got // 30).tolist()) == list(range(8))


def test_kmeans_deterministic_seed_dependent_chunk_independent():
    x = gaussian(400, 8, seed=50)
    a = select_kmeans(x, 12, 0)
    assert torch.equal(a, select_kmeans(x, 12, 0))
    assert not torch.equal(a, select_kmeans(x, 12, 1))
    for chunk_rows in (1, 33, None):
        assert torch.equal(a, select_kmeans(x, 12, 0, chunk_rows=chunk_rows))


def test_kmeans_duplicates_still_distinct():
    x = gaussian(3, 4, seed=60).repeat(5, 1)  # 3 distinct rows, each 5 times
    for k in (3, 5, 15):
        got = select_kmeans(x, k, 0)
        assert_distinct(got, k, 15)
    assert sorted((select_kmeans(x, 3, 1) % 3).tolist()) == [0, 1, 2]
    for chunk_rows in (1, 4):  # ties between duplicates go to the lowest row, whatever the chunks
        assert torch.equal(select_kmeans(x, 5, 0, chunk_rows=chunk_rows), select_kmeans(x, 5, 0))
