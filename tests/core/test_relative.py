"""Relative projection: naive loops, closed forms and invariances (Moschella 2023, Cannistraci 2024)."""

import math

import numpy as np
import pytest
import torch

from relcli.core.relative import (
    AGGREGATIONS,
    SIMILARITIES,
    STANDARDIZE_EPS,
    RelativeProjector,
    relative_projection,
)
from relcli.errors import DataError, NotFittedError, UsageError
from tests.conftest import random_orthogonal, tolerance

SEEDS = [0, 1, 2, 3, 4]


def make(seed, n=40, k=12, d=9, dtype=torch.float64, offset=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=dtype) + offset
    a = torch.randn(k, d, generator=g, dtype=dtype) + offset
    return x, a


# -- independent reference: numpy, one anchor at a time -----------------------------------------


def naive_block(x, a, name, center=False):
    x, a = np.asarray(x, dtype=np.float64), np.asarray(a, dtype=np.float64)
    if center:
        mu = a.mean(axis=0)
        x, a = x - mu, a - mu
    out = np.empty((x.shape[0], a.shape[0]))
    for j in range(a.shape[0]):
        diff = x - a[j]
        if name in ("cosine", "angular"):
            cos = (x @ a[j]) / (np.sqrt((x * x).sum(1)) * math.sqrt((a[j] * a[j]).sum()))
            out[:, j] = cos if name == "cosine" else np.arccos(np.clip(cos, -1, 1)) / math.pi
        elif name == "euclidean":
            out[:, j] = np.sqrt((diff * diff).sum(1))
        elif name == "l1":
            out[:, j] = np.abs(diff).sum(1)
        else:
            out[:, j] = np.abs(diff).max(1)
    return out


def naive_standardize(r):
    mean = r.mean(axis=1, keepdims=True)
    var = ((r - mean) ** 2).mean(axis=1, keepdims=True)  # biased
    return (r - mean) / np.sqrt(var + STANDARDIZE_EPS)


def naive_product(x, a, names, aggregate, center=False, standardize=True):
    blocks = [naive_block(x, a, n, center) for n in names]
    if standardize:
        blocks = [naive_standardize(b) for b in blocks]
    return np.concatenate(blocks, axis=1) if aggregate == "concat" else sum(blocks)


# -- values ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("center", [False, True])
@pytest.mark.parametrize("name", SIMILARITIES)
def test_every_similarity_matches_naive_loop(name, center):
    x, a = make(0, offset=0.5)
    got = relative_projection(x, a, similarities=(name,), center=center)
    assert got.shape == (40, 12)
    np.testing.assert_allclose(got.numpy(), naive_block(x, a, name, center), rtol=1e-10, atol=1e-10)


def test_similarity_may_be_a_single_string():
    x, a = make(1)
    assert torch.equal(relative_projection(x, a, "l1"), relative_projection(x, a, ("l1",)))


@pytest.mark.parametrize("aggregate", AGGREGATIONS)
@pytest.mark.parametrize("names", [("cosine", "euclidean"), ("l1", "cosine", "linf", "angular")])
def test_product_of_invariances_matches_naive(names, aggregate):
    x, a = make(2)
    got = relative_projection(x, a, similarities=names, aggregate=aggregate)
    width = 12 * len(names) if aggregate == "concat" else 12
    assert got.shape == (40, width)
    np.testing.assert_allclose(got.numpy(), naive_product(x, a, names, aggregate), atol=1e-9)


def test_concat_blocks_are_standardised_per_row_in_given_order():
    x, a = make(3)
    got = relative_projection(x, a, similarities=("euclidean", "cosine"))
    eu, cos = got[:, :12], got[:, 12:]
    for block, name in ((eu, "euclidean"), (cos, "cosine")):
        np.testing.assert_allclose(block.numpy(), naive_standardize(naive_block(x, a, name)), atol=1e-10)
        assert torch.allclose(block.mean(dim=1), torch.zeros(40, dtype=x.dtype), atol=1e-12)
        # biased variance of a standardised row is var / (var + eps) ≈ 1
        assert torch.all((block.var(dim=1, unbiased=False) - 1).abs() < 1e-3)


def test_standardize_flag_overrides_default():
    x, a = make(4)
    single = relative_projection(x, a, "cosine", standardize=True)
    np.testing.assert_allclose(single.numpy(), naive_standardize(naive_block(x, a, "cosine")), atol=1e-10)
    raw = relative_projection(x, a, ("cosine", "l1"), aggregate="sum", standardize=False)
    expected = naive_block(x, a, "cosine") + naive_block(x, a, "l1")
    np.testing.assert_allclose(raw.numpy(), expected, atol=1e-10)


@pytest.mark.parametrize("seed", SEEDS)
def test_angular_is_arccos_of_cosine_over_pi(seed):
    x, a = make(seed)
    cos = relative_projection(x, a, "cosine")
    ang = relative_projection(x, a, "angular")
    assert torch.allclose(ang, torch.arccos(cos.clamp(-1, 1)) / math.pi, atol=1e-12)
    assert ang.min() >= 0 and ang.max() <= 1
    # a row equal to an anchor is at angle 0
    assert relative_projection(a[:1], a, "angular")[0, 0].abs() < 1e-6


# -- invariances (property tests over seeds) ------------------------------------------------------


@pytest.mark.parametrize("seed", SEEDS)
def test_cosine_invariant_to_rotation_reflection_and_scaling(seed):
    x, a = make(seed)
    base = relative_projection(x, a)
    q = random_orthogonal(9, seed + 100)
    reflection = torch.eye(9, dtype=torch.float64)
    reflection[seed % 9, seed % 9] = -1
    for m in (q, reflection, q @ reflection):
        assert torch.allclose(relative_projection(x @ m, a @ m), base, atol=1e-12)
    assert torch.allclose(relative_projection(3.7 * x, 3.7 * a), base, atol=1e-12)
    # scaling x alone (per row, positive) does not change cosine either
    assert torch.allclose(relative_projection(x * torch.rand(40, 1, dtype=x.dtype).add(0.1), a), base, atol=1e-12)


@pytest.mark.parametrize("seed", SEEDS)
def test_cosine_translation_invariance_needs_centring(seed):
    x, a = make(seed)
    t = torch.randn(9, generator=torch.Generator().manual_seed(seed + 7), dtype=x.dtype) * 3
    centred = relative_projection(x, a, center=True)
    assert torch.allclose(relative_projection(x + t, a + t, center=True), centred, atol=1e-10)
    plain = relative_projection(x, a)
    assert (relative_projection(x + t, a + t) - plain).abs().max() > 1e-2


@pytest.mark.parametrize("seed", SEEDS)
def test_euclidean_invariant_to_rotation_and_translation(seed):
    x, a = make(seed)
    base = relative_projection(x, a, "euclidean")
    q = random_orthogonal(9, seed + 200)
    t = torch.randn(9, generator=torch.Generator().manual_seed(seed), dtype=x.dtype) * 5
    assert torch.allclose(relative_projection(x @ q + t, a @ q + t, "euclidean"), base, atol=1e-10)
    # but not to isotropic scaling
    assert not torch.allclose(relative_projection(2 * x, 2 * a, "euclidean"), base)


@pytest.mark.parametrize("name", ["l1", "linf"])
@pytest.mark.parametrize("seed", SEEDS)
def test_l1_linf_invariant_to_permutation_and_translation(seed, name):
    x, a = make(seed)
    base = relative_projection(x, a, name)
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(seed))
    t = torch.randn(9, generator=torch.Generator().manual_seed(seed + 1), dtype=x.dtype) * 5
    assert torch.allclose(relative_projection(x[:, perm] + t, a[:, perm] + t, name), base, atol=1e-10)
    # L1 is not rotation invariant
    q = random_orthogonal(9, seed + 300)
    assert not torch.allclose(relative_projection(x @ q, a @ q, name), base, atol=1e-3)


@pytest.mark.parametrize("seed", SEEDS)
def test_product_keeps_shared_invariance(seed):
    """cosine (centred) + euclidean are both invariant to rotations + translations."""
    x, a = make(seed)
    names = ("cosine", "euclidean")
    base = relative_projection(x, a, names, center=True)
    q = random_orthogonal(9, seed + 400)
    t = torch.full((9,), 2.5, dtype=x.dtype)
    assert torch.allclose(relative_projection(x @ q + t, a @ q + t, names, center=True), base, atol=1e-9)


# -- numerics -------------------------------------------------------------------------------------


def test_euclidean_is_accurate_for_near_duplicates_far_from_origin():
    """The ‖x‖²+‖a‖²−2x·a expansion alone loses every digit here; the result must not."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(50, 64, generator=g) + 100
    x = torch.randn(300, 64, generator=g) + 100
    x[:50] = a + 1e-3 * torch.randn(50, 64, generator=g)
    x[50:100] = a  # exact duplicates: distance 0
    got = relative_projection(x, a, "euclidean", chunk_rows=128).double()
    ref = torch.from_numpy(naive_block(x.double(), a.double(), "euclidean"))
    assert torch.all(got[50:100].diagonal() == 0)
    rel = (got - ref).abs() / ref.clamp_min(1e-30)
    assert rel[ref > 0].max() < 1e-5


@pytest.mark.parametrize("names", [("cosine",), ("angular",), ("euclidean",), ("l1", "linf"), ("cosine", "euclidean")])
def test_chunk_size_independent(names, dtype):
    x, a = make(5, n=37, dtype=dtype, offset=1.0)
    full = relative_projection(x, a, names, center=True, chunk_rows=None)
    for chunk in (1, 5, 16, 1000):
        got = relative_projection(x, a, names, center=True, chunk_rows=chunk)
        assert torch.allclose(got, full, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-12)


@pytest.mark.parametrize("names", [("cosine",), ("euclidean", "l1", "angular", "linf")])
def test_device_dtype_grid(device, dtype, names):
    x64, a64 = make(6, offset=0.3)
    ref = relative_projection(x64, a64, names, center=True)
    x, a = x64.to(device, dtype), a64.to(device, dtype)
    got = relative_projection(x, a, names, center=True)
    assert got.device.type == device.type and got.dtype == dtype
    scale = 10 if len(names) > 1 else 1  # standardisation amplifies round-off a little
    assert torch.allclose(got.cpu().double(), ref, atol=scale * tolerance(dtype))
    # anchors in another dtype follow x
    assert relative_projection(x, a64.to(device), names, center=True).dtype == dtype


def test_inputs_not_mutated():
    x, a = make(7)
    x0, a0 = x.clone(), a.clone()
    relative_projection(x, a, ("cosine", "euclidean", "l1"), center=True)
    relative_projection(x, a)
    assert torch.equal(x, x0) and torch.equal(a, a0)


def test_integer_input_is_promoted():
    x = torch.tensor([[1, 2], [3, 4]])
    a = torch.tensor([[1, 0], [0, 1]])
    got = relative_projection(x, a)
    assert got.dtype == torch.float32
    assert torch.allclose(got[0], torch.tensor([1, 2]) / math.sqrt(5))


# -- errors ---------------------------------------------------------------------------------------


def test_unknown_similarity_and_aggregation_name_the_valid_ones():
    x, a = make(0)
    with pytest.raises(UsageError, match="unknown similarity 'dot'.*cosine, angular, euclidean, l1, linf"):
        relative_projection(x, a, ("cosine", "dot"))
    with pytest.raises(UsageError, match="unknown aggregation 'mean'.*concat, sum"):
        relative_projection(x, a, ("cosine", "l1"), aggregate="mean")
    with pytest.raises(UsageError):
        relative_projection(x, a, ())


def test_dimension_mismatch_names_both_shapes():
    with pytest.raises(DataError, match=r"\(40, 9\).*\(12, 8\)"):
        relative_projection(torch.randn(40, 9), torch.randn(12, 8))
    with pytest.raises(DataError, match="2-D"):
        relative_projection(torch.randn(9), torch.randn(12, 9))


@pytest.mark.parametrize("name", ["cosine", "angular"])
def test_zero_row_is_an_error_for_directional_similarities(name):
    x, a = make(0)
    x[13] = 0
    with pytest.raises(DataError, match=r"all zeros \(no direction\) in 1 row\(s\) \(rows 13\)"):
        relative_projection(x, a, name, chunk_rows=5)  # row index is global, not per chunk
    with pytest.raises(DataError, match="all zeros"):
        relative_projection(x, a, (name, "euclidean"))


def test_zero_row_is_fine_for_distances():
    x, a = make(0)
    x[3] = 0
    got = relative_projection(x, a, "euclidean")
    assert torch.allclose(got[3], a.norm(dim=1), atol=1e-12)


def test_row_equal_to_anchor_mean_is_zero_after_centring():
    x, a = make(0)
    x[7] = a.mean(dim=0)
    relative_projection(x, a)  # fine without centring
    with pytest.raises(DataError, match=r"after centring.*\(rows 7\)"):
        relative_projection(x, a, center=True)


@pytest.mark.parametrize("name", SIMILARITIES)
@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nan_row_is_an_error_never_a_silent_nan(name, bad):
    x, a = make(0)
    x[21, 4] = bad
    with pytest.raises(DataError, match=r"NaN/Inf in 1 row\(s\) \(rows 21\)"):
        relative_projection(x, a, name, chunk_rows=8)
    a[2, 0] = bad
    with pytest.raises(DataError, match="anchors has NaN/Inf"):
        relative_projection(x[:5], a, name)


def test_zero_anchor_is_an_error_for_cosine():
    x, a = make(0)
    a[4] = 0
    with pytest.raises(DataError, match=r"anchors has all zeros \(no direction\) in 1 row\(s\) \(rows 4\)"):
        relative_projection(x, a)
    relative_projection(x, a, "l1")  # distances do not need a direction


# -- estimator ------------------------------------------------------------------------------------


def test_projector_matches_function_and_round_trips():
    x, a = make(8)
    names = ("cosine", "linf")
    proj = RelativeProjector(similarities=names, aggregate="sum", center=True).fit(a)
    assert torch.equal(proj.anchors_, a)
    assert torch.allclose(proj.anchor_mean_, a.mean(dim=0))
    expected = relative_projection(x, a, names, aggregate="sum", center=True)
    assert torch.allclose(proj.transform(x, chunk_rows=7), expected, atol=1e-12)

    tensors, extras = proj.fitted_state()
    params = {**proj.get_params(), "similarities": list(names)}  # as after a JSON round trip
    loaded = RelativeProjector.from_fitted_state(params, tensors, extras)
    assert torch.equal(loaded.transform(x), proj.transform(x))


def test_projector_checks_before_and_at_fit():
    with pytest.raises(NotFittedError):
        RelativeProjector().transform(torch.randn(3, 4))
    with pytest.raises(UsageError):
        RelativeProjector(similarities=("cos",)).fit(torch.randn(3, 4))
    a = torch.tensor([[0, 0, 0, 0], [1, 2, 3, 4], [3, -2, 1, 0], [2, 2, -1, 5], [-2, 1, 1, 3]], dtype=torch.float64)
    a[0] = a[1:].mean(dim=0)  # exact in binary, so row 0 is exactly the mean of all rows
    with pytest.raises(DataError, match="after centring"):
        RelativeProjector(center=True).fit(a)
