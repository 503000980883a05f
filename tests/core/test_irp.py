"""Inverse relative projection (Maiorca et al. 2024): exact recovery, folding, pruning, errors."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from relcli.core._irp_cutoff import FALLBACK_RCOND, RCOND_GRID, farthest_point_subset
from relcli.core.irp import IRP, InverseRelativeProjection
from relcli.core.relative import relative_projection
from relcli.errors import DataError, NotFittedError, UsageError
from tests.conftest import random_orthogonal, tolerance

SEEDS = [0, 1, 2, 3, 4]


def spaces(seed, n=2000, d=32, k=200, scale=2.5, shift=0.0, dtype=torch.float64):
    """X random; Y = s·X·Q + t with Q orthogonal; anchors are the first k rows of both."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    q = random_orthogonal(d, seed + 1000)
    t = shift * torch.randn(d, generator=g, dtype=torch.float64)
    y = scale * x @ q + t
    return x.to(dtype), y.to(dtype), k


class Both:
    """The IRP translator (``translate``: the folded map) and the inverse relative projection
    (``transform``: relative rows) fitted on the same anchors; attributes come from the inverse,
    then the translator."""

    def __init__(self, a_y, a_x=None, target_norm=None, anchor_relative=None, **params):
        self.translator = None
        if a_x is not None:
            self.translator = IRP(**params).fit(a_x, a_y, target_norm=target_norm)
            if anchor_relative is None:
                anchor_relative = relative_projection(a_x, a_x, center=params.get("center", False))
        norm = None if params.get("center") else target_norm
        self.inverse = InverseRelativeProjection(**params).fit(a_y, anchor_relative=anchor_relative, target_norm=norm)

    def translate(self, x, chunk_rows=65536):
        return self.translator.transform(x, chunk_rows=chunk_rows)

    def transform(self, r, chunk_rows=65536):
        return self.inverse.transform(r, chunk_rows=chunk_rows)

    def __getattr__(self, name):
        if name in InverseRelativeProjection._state:
            return getattr(self.inverse, name)
        return getattr(self.translator, name)


def row_cos(a, b):
    return F.cosine_similarity(a, b, dim=1)


def unit(a):
    return a / a.norm(dim=1, keepdim=True)


def near_duplicate_anchors(seed, d=16, distinct=60, dtype=torch.float64):
    """Anchors with near-copies (tiny angle) of the first rows: pruning should keep one of each."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(distinct, d, generator=g, dtype=torch.float64)
    copies = base[:30] + 1e-4 * torch.randn(30, d, generator=g, dtype=torch.float64)
    return torch.cat([base, copies]).to(dtype)


# -- exact recovery -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_exact_recovery_of_a_scaled_rotation(seed):
    x, y, k = spaces(seed)
    irp = Both(y[:k], x[:k])
    for got in (irp.translate(x), irp.transform(relative_projection(x, x[:k]))):
        assert row_cos(got, y).min() > 0.9999
        assert torch.allclose(got.norm(dim=1), torch.full((len(x),), irp.target_norm_, dtype=x.dtype))
    assert irp.target_norm_ == pytest.approx(float(y[:k].norm(dim=1).mean()))
    assert irp.ranks_ == [32] and irp.condition_numbers_[0] < 10


@pytest.mark.parametrize("seed", SEEDS)
def test_exact_recovery_with_translation_needs_centring(seed):
    x, y, k = spaces(seed, shift=3.0)
    irp = Both(y[:k], x[:k], center=True)
    mu = y[:k].mean(dim=0)
    assert torch.allclose(irp.target_mean_, mu)
    got = irp.translate(x)
    assert row_cos(got - mu, y - mu).min() > 0.9999
    assert torch.allclose((got - mu).norm(dim=1), torch.full((len(x),), irp.target_norm_, dtype=x.dtype))
    assert irp.target_norm_ == pytest.approx(float((y[:k] - mu).norm(dim=1).mean()))
    # without centring the translation breaks the cosine geometry: recovery is visibly worse
    plain = Both(y[:k], x[:k]).translate(x)
    assert row_cos(plain - mu, y - mu).min() < 0.99


def test_target_norm_parameter_sets_every_row_norm():
    x, y, k = spaces(0)
    got = Both(y[:k], x[:k], target_norm=7.5).translate(x)
    assert torch.allclose(got.norm(dim=1), torch.full((len(x),), 7.5, dtype=x.dtype))
    with pytest.raises(DataError, match="target_norm"):
        Both(y[:k], target_norm=0.0)


def test_larger_target_dimension_via_isometric_embedding():
    """Y = X·E with E (16 × 40) orthonormal rows: cosines kept, but Y's anchors span only 16 dims.

    k ≥ d_Y anchors that span fewer directions (a degenerate target, like dead ReLU units) are
    accepted: the minimum-norm inverse reconstructs within their span, and ``ranks_`` says so.
    """
    x, _, k = spaces(1, d=16)
    e = random_orthogonal(40, 5)[:16]
    y = x @ e
    irp = Both(y[:k], x[:k], rcond=1e-3)
    assert irp.ranks_ == [16] and irp.condition_numbers_[0] > 1e6
    assert row_cos(irp.translate(x), y).min() > 0.9999


def test_smaller_target_dimension_when_source_lies_in_a_subspace():
    """X = Y·E with E (16 × 40): X lives in 16 of its 40 dims, Y is full rank."""
    _, y, k = spaces(2, d=16)
    x = y @ random_orthogonal(40, 6)[:16]
    irp = Both(y[:k], x[:k])
    assert irp.map_.shape == (40, 16)
    assert row_cos(irp.translate(x), y).min() > 0.9999


# -- folding and the hand-written solution --------------------------------------------------------


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("pruning", [(0.0, 1), (1e-6, 3), (0.05, 3)])
def test_folded_translate_equals_project_then_invert(dtype, center, pruning):
    delta, omega = pruning
    g = torch.Generator().manual_seed(3)
    a_y = near_duplicate_anchors(3, dtype=dtype) + (0.5 if center else 0.0)
    a_x = a_y @ torch.randn(16, 24, generator=g, dtype=torch.float64).to(dtype)
    x = torch.randn(300, 24, generator=g, dtype=torch.float64).to(dtype) + 0.2
    irp = Both(a_y, a_x, center=center, prune_threshold=delta, subspaces=omega, seed=4)
    folded = irp.translate(x, chunk_rows=64)
    chained = irp.transform(relative_projection(x, a_x, center=center), chunk_rows=64)
    atol = 1e-5 if dtype == torch.float32 else 1e-10
    scale = irp.target_norm_
    assert torch.allclose(folded, chained, rtol=0, atol=atol * scale)
    if delta > 0:
        assert (irp.subsets_.sum(dim=1) < len(a_y)).all()


def test_plain_inverse_equals_hand_written_pinv():
    x, y, k = spaces(4)
    irp = Both(y[:k], rcond=1e-3)
    assert irp.subsets_.shape == (1, k) and irp.subsets_.all()
    p = torch.linalg.pinv(unit(y[:k]).T, rtol=1e-3)  # (Â_Yᵀ)⁺, k × d_Y
    assert torch.allclose(irp.inverse_[0], p, atol=1e-12)
    r = relative_projection(x, x[:k])
    expected = unit(r @ p) * y[:k].norm(dim=1).mean()
    assert torch.allclose(irp.transform(r), expected, atol=1e-10)
    sv = torch.linalg.svdvals(unit(y[:k]))
    assert irp.condition_numbers_[0] == pytest.approx(float(sv[0] / sv[-1]))


def test_subspace_average_is_taken_before_row_normalisation():
    a_y = near_duplicate_anchors(5)
    irp = Both(a_y, prune_threshold=1e-3, subspaces=3, seed=1)
    r = relative_projection(torch.randn(50, 16, dtype=torch.float64), a_y)
    summed = sum(r @ irp.inverse_[s] for s in range(3)) / 3
    assert torch.allclose(irp.transform(r), unit(summed) * irp.target_norm_, atol=1e-10)
    for s in range(3):
        outside = ~irp.subsets_[s]
        assert torch.all(irp.inverse_[s][outside] == 0)
        p = torch.linalg.pinv(unit(a_y[irp.subsets_[s]]).T, rtol=1e-3)
        assert torch.allclose(irp.inverse_[s][irp.subsets_[s]], p, atol=1e-10)


# -- pruning --------------------------------------------------------------------------------------


def naive_distance(a):
    a = np.asarray(a, dtype=np.float64)
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    return 1 - np.abs(a @ a.T)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("delta", [1e-6, 1e-3, 0.3])
def test_fps_subset_is_separated_and_maximal(seed, delta):
    a = near_duplicate_anchors(seed)
    mask = farthest_point_subset(unit(a), delta, seed).numpy()
    dist = naive_distance(a)
    chosen = np.flatnonzero(mask)
    pair = dist[np.ix_(chosen, chosen)] + np.eye(len(chosen)) * 9
    assert pair.min() > delta  # no two chosen anchors within δ
    others = np.flatnonzero(~mask)
    if len(others):  # every anchor left out is within δ of the chosen set
        assert dist[np.ix_(others, chosen)].min(axis=1).max() <= delta + 1e-12


@pytest.mark.parametrize("delta", [0.0, 1e-6, 0.05])
def test_duplicates_are_never_both_chosen(delta):
    x, y, k = spaces(6, d=16, k=80)
    a_y = torch.cat([y[:k], y[:20]])  # rows 80..99 duplicate rows 0..19
    a_x = torch.cat([x[:k], x[:20]])
    irp = Both(a_y, a_x, prune_threshold=delta, subspaces=3, seed=2)
    for mask in irp.subsets_:
        assert not (mask[:20] & mask[80:]).any()
        assert mask[20:80].all() or delta > 0
    assert row_cos(irp.translate(x), y).min() > 0.9999


def test_plain_pinv_keeps_duplicates_and_still_recovers():
    x, y, k = spaces(7, d=16, k=80)
    a_y, a_x = torch.cat([y[:k], y[:20]]), torch.cat([x[:k], x[:20]])
    irp = Both(a_y, a_x)
    assert irp.subsets_.all()
    assert row_cos(irp.translate(x), y).min() > 0.9999


def test_antipodal_anchors_are_pruned_by_absolute_cosine():
    x, y, k = spaces(8, d=16, k=60)
    a_y, a_x = torch.cat([y[:k], -y[:10]]), torch.cat([x[:k], -x[:10]])
    irp = Both(a_y, a_x, prune_threshold=1e-6, subspaces=2)
    for mask in irp.subsets_:
        assert not (mask[:10] & mask[60:]).any()
    assert row_cos(irp.translate(x), y).min() > 0.9999
    assert row_cos(Both(a_y, a_x).translate(x), y).min() > 0.9999


def test_pruning_below_d_is_an_error_that_mentions_pruning():
    a = near_duplicate_anchors(0)
    with pytest.raises(DataError, match="after pruning .*lower the threshold"):
        Both(a, prune_threshold=0.9)


# -- too few anchors ------------------------------------------------------------------------------


def test_fewer_anchors_than_dimensions():
    x, y, _ = spaces(9)
    with pytest.raises(DataError) as info:
        Both(y[:20], x[:20])
    message = str(info.value)
    assert "IRP needs at least d_Y=32 target anchors, got k=20 (rank 20" in message
    assert "ideally 2·d_Y" in message and "--allow-rank-deficient" in message
    assert "\n" not in message
    irp = Both(y[:20], x[:20], allow_rank_deficient=True)
    assert irp.condition_numbers_ == [float("inf")] and irp.ranks_ == [20]
    got = irp.translate(x)
    assert torch.isfinite(got).all()
    assert torch.allclose(got.norm(dim=1), torch.full((len(x),), irp.target_norm_, dtype=x.dtype))
    # the anchors themselves are still recovered: they lie in the span that is kept
    assert row_cos(got[:20], y[:20]).min() > 0.9999


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
