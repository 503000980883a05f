"""Whole-space statistics, the anchor dispatcher and its errors, and the ``AnchorSelector`` estimator,
checked against numpy."""

import numpy as np
import pytest
import torch

from relcli.core.stats import SpaceStats, SpaceStatsAccumulator
from relcli.core.anchors import (
    STRATEGIES,
    AnchorSelector,
    select_anchors,
    select_fps,
    select_kmeans,
    select_per_class,
    select_random,
    space_stats,
)
from relcli.core._estimator import estimator_class
from relcli.errors import DataError, NotFittedError, UsageError
from tests.core._anchors_helpers import assert_distinct, gaussian


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
    # float32 rows are reduced in float32 (merged in float64): their own precision, ~1e-7
    assert stats.mean_norm == pytest.approx(norm_mean, rel=1e-6 if in_dtype == torch.float32 else 1e-12)
    assert stats.std_norm == pytest.approx(norm_std, rel=1e-5 if in_dtype == torch.float32 else 1e-10)


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


def test_space_stats_of_float32_rows_whose_squares_pass_float32():
    """float32 chunks are reduced in float32 unless that overflows: then in float64, as numpy does."""
    x = (gaussian(300, 5, seed=4) * 1e20).to(torch.float32)
    stats = space_stats(x, chunk_rows=64)
    mean, std, norm_mean, norm_std = numpy_stats(x.numpy())
    assert stats.mean.dtype == torch.float32
    np.testing.assert_allclose(stats.std.numpy(), std, rtol=1e-5)
    assert stats.mean_norm == pytest.approx(norm_mean, rel=1e-6)
    assert stats.std_norm == pytest.approx(norm_std, rel=1e-5)
