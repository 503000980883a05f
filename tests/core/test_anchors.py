"""Anchor strategies and whole-space statistics, checked against numpy and naive loops."""

import numpy as np
import pytest
import torch

from relcli.core.stats import SpaceStats, SpaceStatsAccumulator
from relcli.core.anchors import (
    STRATEGIES,
    AnchorSelector,
    _kmeans_centroids,
    _row_norms,
    select_anchors,
    select_fps,
    select_kmeans,
    select_per_class,
    select_random,
    space_stats,
)
from relcli.core._estimator import estimator_class
from relcli.errors import DataError, NotFittedError, UsageError


def gaussian(n, d, seed, dtype=torch.float64):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def clusters(n_clusters, per_cluster, d, seed, spread=1e-2):
    """Tight clusters around random directions; row i belongs to cluster i // per_cluster."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_clusters, d, generator=g, dtype=torch.float64)
    centres = centres / centres.norm(dim=1, keepdim=True)
    noise = spread * torch.randn(n_clusters, per_cluster, d, generator=g, dtype=torch.float64)
    return (centres[:, None, :] + noise).reshape(-1, d)


def assert_distinct(indices, k, n):
    assert indices.dtype == torch.long and indices.device.type == "cpu"
    assert indices.shape == (k,)
    assert len(set(indices.tolist())) == k
    assert 0 <= int(indices.min()) and int(indices.max()) < n


# --------------------------------------------------------------------------- statistics


def numpy_stats(x):
    a = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(a, axis=1)
    return a.mean(0), a.std(0), norms.mean(), norms.std()


@pytest.mark.parametrize("chunk_rows", [1, 7, 100, 1000, None])
@pytest.mark.parametrize("in_dtype", [torch.float32, torch.float64])
def test_space_stats_match_numpy(chunk_rows, in_dtype):
    x = (3.0 * gaussian(503, 9, seed=1) + torch.arange(9.0, dtype=torch.float64)).to(in_dtype)
    stats = space_stats(x, chunk_rows)
    mean, std, norm_mean, norm_std = numpy_stats(x.numpy())
    rtol = 1e-6 if in_dtype == torch.float32 else 1e-12
    assert stats.mean.dtype == in_dtype and stats.std.dtype == in_dtype
    assert stats.n_rows == 503
    np.testing.assert_allclose(stats.mean.numpy(), mean, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(stats.std.numpy(), std, rtol=rtol)
    assert stats.mean_norm == pytest.approx(norm_mean, rel=1e-12)
    assert stats.std_norm == pytest.approx(norm_std, rel=1e-10)


def test_space_stats_stable_under_a_large_offset():
    # Σx² − n·m² would lose every digit of a unit variance under a 1e8 offset.
    x = gaussian(2000, 4, seed=2) + 1e8
    stats = space_stats(x, chunk_rows=33)
    mean, std, norm_mean, norm_std = numpy_stats(x.numpy())
    np.testing.assert_allclose(stats.std.numpy(), std, rtol=1e-6)
    assert stats.std_norm == pytest.approx(norm_std, rel=1e-5)


def test_accumulator_float16_chunks_give_float32_and_mixed_give_float64():
    acc = SpaceStatsAccumulator().update(gaussian(10, 3, 0).half())
    assert acc.result().mean.dtype == torch.float32
    acc.update(gaussian(5, 3, 1))
    assert acc.result().mean.dtype == torch.float64
    assert acc.result().n_rows == 15


def test_accumulator_errors():
    with pytest.raises(DataError, match="empty"):
        SpaceStatsAccumulator().result()
    with pytest.raises(DataError, match="empty"):
        SpaceStatsAccumulator().update(torch.zeros(0, 3)).result()
    acc = SpaceStatsAccumulator().update(gaussian(10, 3, 0))
    with pytest.raises(DataError, match="3"):
        acc.update(gaussian(4, 5, 0))
    bad = gaussian(6, 3, 0)
    bad[2, 1] = float("nan")
    with pytest.raises(DataError, match=r"\(rows 12\)"):  # global row index: 10 earlier rows + 2
        acc.update(bad)


def test_space_stats_zero_rows_allowed():
    x = torch.zeros(4, 3, dtype=torch.float64)
    stats = space_stats(x)
    assert stats.mean_norm == 0.0 and stats.std_norm == 0.0
    assert torch.equal(stats.std, torch.zeros(3, dtype=torch.float64))


def test_space_stats_round_trip_through_parts():
    stats = space_stats(gaussian(20, 5, 3))
    again = SpaceStats.from_parts(stats.to_dict(), **{k.removeprefix("space_"): v for k, v in stats.tensors().items()})
    assert again.to_dict() == stats.to_dict()
    assert torch.equal(again.mean, stats.mean) and torch.equal(again.std, stats.std)
    import json

    assert json.loads(json.dumps(stats.to_dict())) == stats.to_dict()


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


# --------------------------------------------------------------------------- dispatcher, errors


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_select_anchors_dispatches(strategy):
    x = gaussian(80, 5, seed=70)
    labels = torch.arange(80) % 4
    got = select_anchors(strategy, 10, x=x, labels=labels, seed=2)
    assert_distinct(got, 10, 80)
    direct = {
        "random": lambda: select_random(80, 10, 2),
        "per-class": lambda: select_per_class(labels, 10, 2),
        "fps": lambda: select_fps(x, 10, 2),
        "kmeans": lambda: select_kmeans(x, 10, 2),
    }[strategy]()
    assert torch.equal(got, direct)


def test_select_anchors_errors():
    x = gaussian(10, 3, seed=0)
    with pytest.raises(DataError, match="asked for 11 anchors but the space has only 10 rows"):
        select_anchors("fps", 11, x=x)
    with pytest.raises(DataError, match="only 10 rows"):
        select_random(10, 11, 0)
    with pytest.raises(UsageError, match="random, per-class, fps, kmeans"):
        select_anchors("bogus", 3, x=x)
    with pytest.raises(UsageError, match="labels"):
        select_anchors("per-class", 3, x=x)
    with pytest.raises(UsageError, match="needs the embeddings"):
        select_anchors("kmeans", 3, n_rows=10)
    with pytest.raises(UsageError, match="positive"):
        select_anchors("random", 0, n_rows=10)
    with pytest.raises(DataError, match="disagree"):
        select_anchors("per-class", 3, x=x, labels=torch.arange(9))
    assert_distinct(select_anchors("random", 4, n_rows=10), 4, 10)


@pytest.mark.parametrize("select", [select_fps, select_kmeans])
def test_bad_rows_are_named(select):
    x = gaussian(20, 4, seed=1)
    x[3, 0] = float("nan")
    x[11] = float("inf")
    with pytest.raises(DataError, match=r"NaN/Inf in 2 row\(s\) \(rows 3, 11\)"):
        select(x, 5, 0)
    x = gaussian(20, 4, seed=1)
    x[7] = 0
    with pytest.raises(DataError, match=r"all zeros \(no direction\) in 1 row\(s\) \(rows 7\)"):
        select(x, 5, 0)


# --------------------------------------------------------------------------- estimator


def test_anchor_selector_fit_transform_save_load():
    x = gaussian(120, 6, seed=80) * 2 + 1
    sel = AnchorSelector(15, strategy="fps", seed=3).fit(x)
    assert torch.equal(sel.indices_, select_fps(x, 15, 3))
    assert torch.equal(sel.transform(x), x[sel.indices_])
    stats = space_stats(x)
    assert torch.equal(sel.space_mean_, stats.mean) and torch.equal(sel.space_std_, stats.std)
    assert sel.stats.to_dict() == stats.to_dict() == {"n_rows": 120, "mean_norm": sel.mean_norm_, "std_norm": sel.std_norm_}

    tensors, extras = sel.fitted_state()
    assert set(tensors) == {"indices_", "space_mean_", "space_std_"}
    assert set(extras) == {"mean_norm_", "std_norm_", "n_rows_"}
    loaded = estimator_class("AnchorSelector").from_fitted_state(sel.get_params(), tensors, extras)
    assert torch.equal(loaded.transform(x), sel.transform(x))
    assert loaded.stats.to_dict() == sel.stats.to_dict()


def test_anchor_selector_per_class_and_errors():
    x = gaussian(60, 4, seed=81)
    labels = torch.arange(60) % 3
    sel = AnchorSelector(9, strategy="per-class", seed=1).fit(x, labels)
    assert torch.bincount(labels[sel.indices_]).tolist() == [3, 3, 3]
    with pytest.raises(NotFittedError):
        AnchorSelector(3).transform(x)
    with pytest.raises(UsageError):
        AnchorSelector(3, strategy="per-class").fit(x)
    with pytest.raises(DataError, match="60"):
        sel.transform(x[:50])


def test_anchor_selector_keeps_device_and_dtype(device, dtype):
    x = gaussian(90, 5, seed=82).to(device=device, dtype=dtype)
    for strategy in ("fps", "kmeans"):
        sel = AnchorSelector(7, strategy=strategy, seed=0).fit(x)
        assert sel.indices_.device.type == "cpu"
        assert sel.space_mean_.device == x.device and sel.space_mean_.dtype == dtype
        out = sel.transform(x)
        assert out.device == x.device and out.dtype == dtype
        cpu = AnchorSelector(7, strategy=strategy, seed=0).fit(x.cpu().double())
        if strategy == "fps":  # the same random start and no near-ties on every device
            assert torch.equal(sel.indices_, cpu.indices_)
