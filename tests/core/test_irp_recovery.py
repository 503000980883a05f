"""Inverse relative projection (Maiorca et al. 2024): exact recovery, folding, pruning, too few anchors."""

import numpy as np
import pytest
import torch

from relcli.core._irp_cutoff import farthest_point_subset
from relcli.core.relative import relative_projection
from relcli.errors import DataError
from tests.conftest import random_orthogonal
from tests.core._irp_helpers import SEEDS, Both, near_duplicate_anchors, row_cos, spaces, unit


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
