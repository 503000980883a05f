"""Inverse relative projection (Maiorca et al. 2024): the estimator contract, errors, and the rcond cut-off."""

import json

import pytest
import torch

from relcli.core._irp_cutoff import FALLBACK_RCOND, RCOND_GRID
from relcli.core.irp import IRP, InverseRelativeProjection
from relcli.core.relative import relative_projection
from relcli.errors import DataError, NotFittedError, UsageError
from tests.conftest import random_orthogonal, tolerance
from tests.core._irp_helpers import Both, near_duplicate_anchors, row_cos, spaces, unit


# -- estimator contract ---------------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_outputs():
    x, y, k = spaces(10, shift=1.0)
    irp = Both(y[:k], x[:k], center=True, prune_threshold=0.01, subspaces=2, seed=3)
    tensors, extras = irp.translator.fitted_state()
    extras = json.loads(json.dumps(extras))  # as through file metadata
    params = json.loads(json.dumps(irp.get_params()))
    loaded = IRP.from_fitted_state(params, tensors, extras)
    assert torch.equal(loaded.transform(x), irp.translate(x))
    tensors, extras = irp.inverse.fitted_state()
    loaded = InverseRelativeProjection.from_fitted_state(params, tensors, json.loads(json.dumps(extras)))
    r = relative_projection(x, x[:k], center=True)
    assert torch.equal(loaded.transform(r), irp.transform(r))


def test_same_seed_is_bit_identical_and_seeds_differ():
    a_y = near_duplicate_anchors(11)
    a_x = a_y @ random_orthogonal(16, 12)
    x = torch.randn(100, 16, dtype=torch.float64)
    first = Both(a_y, a_x, prune_threshold=1e-3, subspaces=4, seed=5)
    again = Both(a_y, a_x, prune_threshold=1e-3, subspaces=4, seed=5)
    assert torch.equal(first.subsets_, again.subsets_)
    assert torch.equal(first.translate(x), again.translate(x))
    # different subspaces really are different subsets (FPS starts differ)
    assert len({tuple(m.tolist()) for m in first.subsets_}) > 1


def test_more_subspaces_than_anchors_is_a_usage_error_before_any_pruning():
    """FPS from k starting anchors gives at most k subsets: ω = 10⁹ must fail at once, not run 10⁹ FPS."""
    a_y = near_duplicate_anchors(11)
    with pytest.raises(UsageError, match=f"subspaces=1000000000 is more than the {a_y.shape[0]} target anchors"):
        InverseRelativeProjection(prune_threshold=1e-3, subspaces=10**9).fit(a_y)
    InverseRelativeProjection(prune_threshold=1e-3, subspaces=a_y.shape[0]).fit(a_y)


def test_subspaces_up_to_the_anchors_are_cross_validated_on_smaller_folds():
    """ω = 22 of 25 anchors is allowed; the folds (20 anchors) average over at most their own count
    instead of failing with a message about 20 anchors the user never gave."""
    from relcli.core.selection import select_translator

    a_y = near_duplicate_anchors(11)[:25]
    a_x = a_y @ random_orthogonal(a_y.shape[1], 12)
    selection = select_translator(a_x, a_y, "irp", {"prune_threshold": 1e-3, "subspaces": 22})
    assert selection.chosen.error is None and selection.estimate["score"] > 0.5


def test_chunk_size_independent(dtype):
    x, y, k = spaces(13, n=300, dtype=dtype, shift=1.0)
    irp = Both(y[:k], x[:k], center=True)
    r = relative_projection(x, x[:k], center=True)
    atol = 1e-6 * irp.target_norm_ if dtype == torch.float32 else 1e-12
    for chunk in (1, 17, 1000):
        assert torch.allclose(irp.translate(x, chunk_rows=chunk), irp.translate(x, chunk_rows=None), atol=atol)
        assert torch.allclose(irp.transform(r, chunk_rows=chunk), irp.transform(r, chunk_rows=None), atol=atol)


def test_device_dtype_grid(device, dtype):
    x64, y64, k = spaces(14, n=400, shift=1.0)
    ref = Both(y64[:k], x64[:k], center=True).translate(x64)
    x, y = x64.to(device, dtype), y64.to(device, dtype)
    irp = Both(y[:k], x[:k], center=True)
    assert irp.inverse_.device.type == device.type and irp.inverse_.dtype == dtype
    for got in (irp.translate(x), irp.transform(relative_projection(x, x[:k], center=True))):
        assert got.device.type == device.type and got.dtype == dtype
        assert torch.allclose(got.cpu().double(), ref, atol=10 * tolerance(dtype) * irp.target_norm_)
    # state fitted in float64 follows float32 input
    assert Both(y64[:k], x64[:k]).translate(x).dtype == dtype


def test_inputs_not_mutated():
    x, y, k = spaces(15, n=100, shift=1.0)
    a_x, a_y, x0 = x[:k].clone(), y[:k].clone(), x.clone()
    Both(a_y, a_x, center=True, prune_threshold=0.01, subspaces=2).translate(x)
    assert torch.equal(a_x, x[:k]) and torch.equal(a_y, y[:k]) and torch.equal(x, x0)


# -- errors ---------------------------------------------------------------------------------------


def test_shape_errors_name_both_shapes():
    x, y, k = spaces(16, n=300)
    with pytest.raises(DataError, match=r"\(199, 32\).*\(200, 32\)"):
        Both(y[:k], x[: k - 1])
    irp = Both(y[:k], x[:k])
    with pytest.raises(DataError, match=r"\(300, 150\).*200 anchors"):
        irp.transform(torch.randn(300, 150, dtype=x.dtype))
    with pytest.raises(DataError, match=r"\(300, 31\).*32-dim source anchors"):
        irp.translate(x[:, :31])


def test_fit_comes_first_and_a_failed_fit_leaves_nothing_fitted():
    x, y, k = spaces(17, n=300)
    with pytest.raises(NotFittedError):
        IRP().transform(torch.randn(3, 32))
    with pytest.raises(NotFittedError):
        InverseRelativeProjection().transform(torch.randn(3, 200))
    for estimator, fit in ((IRP(), lambda e, n: e.fit(x[:n], y[:n])), (InverseRelativeProjection(), lambda e, n: e.fit(y[:n]))):
        with pytest.raises(DataError, match="at least d_Y=32"):
            fit(estimator, 20)  # too few anchors: fails after choosing its cut-off
        assert not estimator.is_fitted and not hasattr(estimator, "rcond_")
        with pytest.raises(NotFittedError):
            estimator.transform(torch.randn(3, 32 if isinstance(estimator, IRP) else 20))
        fit(estimator, k)
        assert estimator.is_fitted
        with pytest.raises(DataError):
            fit(estimator, 20)  # a failed refit keeps the earlier fit whole
        assert estimator.is_fitted and estimator.ranks_ == [32]


@pytest.mark.parametrize(
    "params", [dict(rcond=-1), dict(rcond=1.0), dict(prune_threshold=1.5), dict(subspaces=0), dict(subspaces=1.5)]
)
def test_bad_parameters_are_usage_errors(params):
    with pytest.raises(UsageError):
        InverseRelativeProjection(**params).fit(torch.randn(10, 3))
    with pytest.raises(UsageError):
        IRP(**params).fit(torch.randn(10, 3), torch.randn(10, 3))


def test_zero_and_nan_rows_are_errors_not_nan():
    x, y, k = spaces(18, n=300)
    irp = Both(y[:k], x[:k])
    r = relative_projection(x, x[:k])
    r[5] = 0
    with pytest.raises(DataError, match=r"all zeros \(no direction\) in 1 row\(s\) \(rows 5\)"):
        irp.transform(r, chunk_rows=4)
    # a row orthogonal to every target anchor direction reconstructs to (numerical) zero
    u, _, _ = torch.linalg.svd(irp.inverse_[0], full_matrices=True)
    r = relative_projection(x[:10], x[:k])
    r[7] = u[:, -1]  # in the left null space of P
    with pytest.raises(DataError, match=r"a reconstruction of zero .* in 1 row\(s\) \(rows 7\)"):
        irp.transform(r)
    r[7] = float("nan")
    with pytest.raises(DataError, match=r"NaN/Inf in 1 row\(s\) \(rows 7\)"):
        irp.transform(r)
    xs = x[:10].clone()
    xs[3] = 0
    with pytest.raises(DataError, match=r"x has all zeros \(no direction\) in 1 row\(s\) \(rows 3\)"):
        irp.translate(xs)
    xs[3, 0] = float("inf")
    with pytest.raises(DataError, match=r"x has NaN/Inf"):
        irp.translate(xs)


def test_bad_anchors_are_errors():
    _, y, k = spaces(19, n=300)
    a = y[:k].clone()
    a[9] = float("nan")
    with pytest.raises(DataError, match="target anchors has NaN/Inf"):
        Both(a)
    a[9] = 0
    with pytest.raises(DataError, match=r"target anchors has all zeros \(no direction\) in 1 row\(s\) \(rows 9\)"):
        Both(a)
    b = torch.tensor([[0.0, 0], [1, 2], [-1, -2], [3, 1], [-3, -1]])  # row 0 is the mean
    with pytest.raises(DataError, match="after centring"):
        Both(b, center=True)


def test_rcond_is_relative_to_the_largest_singular_value():
    g = torch.Generator().manual_seed(20)
    a = torch.randn(200, 8, generator=g, dtype=torch.float64)
    a[:, -1] *= 1e-2  # one weak direction
    sv = torch.linalg.svdvals(unit(a))
    ratio = float(sv[-1] / sv[0])
    assert sv[0] > 3  # so an absolute cut-off would decide differently
    assert Both(a, rcond=0.7 * ratio).ranks_ == [8]
    irp = Both(a, rcond=1.4 * ratio)  # a cut-off that drops a direction regularises; not an error
    assert irp.ranks_ == [7] and irp.condition_numbers_[0] == pytest.approx(1 / ratio)


# -- rcond="auto" ---------------------------------------------------------------------------------


def test_auto_rcond_is_exact_on_noiseless_spaces_and_scores_every_candidate():
    x, y, k = spaces(31)
    irp = Both(y[:k], x[:k])
    assert irp.rcond == "auto" and set(irp.rcond_scores_) == {f"{c:g}" for c in RCOND_GRID}
    assert irp.rcond_ == min(c for c in RCOND_GRID if irp.rcond_scores_[f"{c:g}"]["score"] == max(
        v["score"] for v in irp.rcond_scores_.values()))
    assert row_cos(irp.translate(x), y).min() > 0.9999


def test_auto_rcond_prefers_a_regularising_cut_off_when_weak_directions_are_noise():
    """Target = X·Q but the source carries 8 extra weak, noisy dims the target does not have:
    only a cut-off that drops them reconstructs held-out anchors well; auto must not pick 1e-4."""
    g = torch.Generator().manual_seed(32)
    signal = torch.randn(3000, 24, generator=g, dtype=torch.float64)
    y = signal @ random_orthogonal(24, 33)
    noise_dims = 0.05 * torch.randn(3000, 8, generator=g, dtype=torch.float64)
    target_noise = 0.3 * torch.randn(3000, 24, generator=g, dtype=torch.float64)
    y_noisy = y + target_noise
    x = torch.cat([signal, noise_dims], dim=1)
    k = 60  # few anchors: the small singular directions of the noisy target are unreliable
    auto = Both(y_noisy[:k], x[:k])
    tiny = Both(y_noisy[:k], x[:k], rcond=1e-4)
    chosen = auto.rcond_scores_[f"{auto.rcond_:g}"]["score"]
    assert chosen >= auto.rcond_scores_["0.0001"]["score"]
    assert row_cos(auto.translate(x[k:]), y[k:]).mean() >= row_cos(tiny.translate(x[k:]), y[k:]).mean() - 1e-9


def test_auto_rcond_from_given_anchor_relative_rows_matches_source_anchors():
    x, y, k = spaces(34)
    relative = relative_projection(x[:k], x[:k])
    from_relative = Both(y[:k], anchor_relative=relative)
    from_source = Both(y[:k], x[:k])
    assert from_relative.rcond_ == from_source.rcond_
    for cut, scores in from_source.rcond_scores_.items():
        assert from_relative.rcond_scores_[cut] == pytest.approx(scores)
    with pytest.raises(DataError, match="anchor_relative must be"):
        Both(y[:k], anchor_relative=relative[:, :5])


def test_auto_rcond_without_anything_to_validate_on_falls_back():
    _, y, k = spaces(35)
    irp = Both(y[:k])
    assert irp.rcond_ == FALLBACK_RCOND and irp.rcond_scores_ == {}
    with pytest.raises(UsageError, match="rcond must be 'auto' or a number"):
        Both(y[:k], rcond="best")
