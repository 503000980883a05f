"""Direct translators: exact recovery of known maps, numpy references, shapes, devices, save/load."""

import numpy as np
import pytest
import torch

from relcli.core._estimator import estimator_class
from relcli.core.translate import (
    DIRECT_TRANSLATORS,
    AffineTranslator,
    DirectTranslator,
    LinearTranslator,
    OrthoLinearTranslator,
    Procrustes,
)
from relcli.core.registry import make_translator
from relcli.errors import DataError, NotFittedError, UsageError
from tests.conftest import random_orthogonal, tolerance

METHODS = list(DIRECT_TRANSLATORS)


def fit_direct_translator(method, source_anchors, target_anchors, **params):
    """Fit through the registry, as relcli does."""
    return make_translator(method, **params).fit(source_anchors, target_anchors)


def gaussian(n, d, seed, dtype=torch.float64):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def assert_close(a, b, atol):
    torch.testing.assert_close(a, b, rtol=0, atol=atol)


# --------------------------------------------------------------------------- recovery of known maps


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["procrustes", "ortho-linear"])
def test_orthogonal_methods_recover_similarity(method, seed):
    """Y = s·X·Q + t: isotropic scaling turns it into Y_s = X_s·Q, so R = Q."""
    d = 16
    x, q = gaussian(200, d, seed) + 0.5, random_orthogonal(d, seed)
    t = gaussian(1, d, seed + 100)
    y = 2.5 * x @ q + t
    tr = fit_direct_translator(method, x, y, scaling="isotropic")
    assert_close(tr.matrix_, q, 1e-5)
    x_new = gaussian(50, d, seed + 200)
    assert_close(tr.transform(x_new), 2.5 * x_new @ q + t, 1e-9)


@pytest.mark.parametrize("method", ["procrustes", "ortho-linear"])
def test_orthogonal_methods_recover_rotation_without_scaling(method):
    x, q = gaussian(100, 12, 3), random_orthogonal(12, 3)
    tr = fit_direct_translator(method, x, x @ q, scaling="none")
    assert_close(tr.matrix_, q, 1e-5)
    assert torch.equal(tr.bias_, torch.zeros(12, dtype=torch.float64))
    assert_close(tr.transform(x), x @ q, 1e-10)


@pytest.mark.parametrize("seed", [0, 1])
def test_linear_recovers_any_invertible_map(seed):
    x = gaussian(120, 10, seed)
    m = gaussian(10, 10, seed + 1) + 3 * torch.eye(10, dtype=torch.float64)
    tr = LinearTranslator(scaling="none").fit(x, x @ m)
    assert_close(tr.matrix_, m, 1e-8)
    x_new = gaussian(30, 10, seed + 2)
    assert_close(tr.transform(x_new), x_new @ m, 1e-8)
    # a per-dimension affine rescaling keeps the map linear: standard scaling recovers it too
    tr = LinearTranslator(scaling="standard").fit(x, x @ m + 4)
    assert_close(tr.transform(x_new), x_new @ m + 4, 1e-8)


def test_affine_recovers_bias():
    x = gaussian(150, 8, 5) + 2
    m, b = gaussian(8, 8, 6), gaussian(8, 1, 7).flatten()
    tr = AffineTranslator(scaling="none").fit(x, x @ m + b)
    assert_close(tr.matrix_, m, 1e-8)
    assert_close(tr.bias_, b, 1e-8)
    x_new = gaussian(20, 8, 8)
    assert_close(tr.transform(x_new), x_new @ m + b, 1e-8)
    # linear without bias cannot: the residual stays
    lin = LinearTranslator(scaling="none").fit(x, x @ m + b)
    assert (lin.transform(x_new) - (x_new @ m + b)).abs().max() > 1e-2

    # issue 9: with standard scaling (the default) the anchors are centred first, so affine is linear
    # with the same cut-off, and auto leaves it out of its candidates
    from relcli.core.selection import AUTO_CANDIDATES

    standard = AffineTranslator(rcond=1e-3).fit(x, x @ m + b)
    assert_close(standard.transform(x_new), LinearTranslator(rcond=1e-3).fit(x, x @ m + b).transform(x_new), 1e-10)
    assert "affine" not in {method for method, _ in AUTO_CANDIDATES}


def test_ortho_linear_is_nearest_orthogonal_to_least_squares():
    x, y = gaussian(60, 6, 16), gaussian(60, 6, 17)
    tr = OrthoLinearTranslator(scaling="none").fit(x, y)
    r, *_ = np.linalg.lstsq(x.numpy(), y.numpy(), rcond=None)
    u, _, vt = np.linalg.svd(r)
    np.testing.assert_allclose(tr.matrix_.numpy(), u @ vt, atol=1e-10)
    assert_close(tr.matrix_ @ tr.matrix_.T, torch.eye(6, dtype=torch.float64), 1e-10)


def test_procrustes_matches_numpy_svd_with_standard_scaling():
    x, y = gaussian(80, 6, 10) * 3 + 1, gaussian(80, 6, 11) * 0.5
    tr = Procrustes().fit(x, y)
    xn, yn = x.numpy(), y.numpy()
    xs = (xn - xn.mean(0)) / xn.std(0)
    ys = (yn - yn.mean(0)) / yn.std(0)
    u, _, vt = np.linalg.svd(xs.T @ ys)
    np.testing.assert_allclose(tr.matrix_.numpy(), u @ vt, atol=1e-10)
    np.testing.assert_allclose(tr.source_scale_.numpy(), xn.std(0), rtol=1e-12)
    np.testing.assert_allclose(tr.target_mean_.numpy(), yn.mean(0), rtol=1e-12)
    out = tr.transform(x[:5]).numpy()
    np.testing.assert_allclose(out, (xs[:5] @ u @ vt) * yn.std(0) + yn.mean(0), atol=1e-10)
    assert_close(tr.matrix_.T @ tr.matrix_, torch.eye(6, dtype=torch.float64), 1e-10)


def test_linear_matches_numpy_lstsq_full_rank():
    x, y = gaussian(90, 7, 12) * 2 - 1, gaussian(90, 5, 13)
    tr = LinearTranslator(rcond=1e-3).fit(x, y)  # a cut-off, not the cross-validated ridge
    xn, yn = x.numpy(), y.numpy()
    xs = (xn - xn.mean(0)) / xn.std(0)
    ys = (yn - yn.mean(0)) / yn.std(0)
    r, *_ = np.linalg.lstsq(xs, ys, rcond=None)
    np.testing.assert_allclose(tr.matrix_[:7, :5].numpy(), r, atol=1e-10)
    assert torch.equal(tr.matrix_[7:], torch.zeros(0, 7, dtype=torch.float64))
    assert torch.equal(tr.matrix_[:, 5:], torch.zeros(7, 2, dtype=torch.float64))


def test_isotropic_scale_formula():
    x = gaussian(40, 5, 14) * 3 + 7
    tr = Procrustes(scaling="isotropic").fit(x, x)
    xn = x.numpy()
    centred = xn - xn.mean(0)
    expected = np.sqrt((np.linalg.norm(centred, axis=1) ** 2).mean()) / np.sqrt(5)
    assert tr.source_scale_.shape == (1,)
    assert float(tr.source_scale_) == pytest.approx(expected, rel=1e-12)


def test_constant_or_nearly_dead_dimension_gets_the_rms_scale():
    """A dead unit (σ = 0) or a nearly dead one (σ < 1e-2·rms σ) is scaled like a typical one, so a
    row where it fires outside the anchors is not blown up by 1/σ."""
    x = gaussian(30, 4, 15)
    x[:, 2] = 5.0
    tr = LinearTranslator().fit(x, x)
    live = x[:, [0, 1, 3]].std(dim=0, unbiased=False)
    rms = float(torch.cat([live, torch.zeros(1, dtype=x.dtype)]).pow(2).mean().sqrt())
    assert float(tr.source_scale_[2]) == pytest.approx(rms, rel=1e-12)
    x_near = gaussian(30, 4, 16)
    x_near[:, 1] = 1e-4 * x_near[:, 1]
    scale = Procrustes().fit(x_near, x_near).source_scale_
    stds = x_near.std(dim=0, unbiased=False)
    assert float(scale[1]) == pytest.approx(float(stds.pow(2).mean().sqrt()), rel=1e-9)
    assert float(scale[0]) == pytest.approx(float(stds[0]), rel=1e-9)
    assert torch.isfinite(tr.matrix_).all()
    assert_close(tr.transform(x), x, 1e-10)
    tr = LinearTranslator(scaling="isotropic").fit(torch.ones(5, 3), torch.ones(5, 3) * 2)
    assert float(tr.source_scale_) == 1.0
    assert torch.equal(tr.transform(torch.ones(2, 3)), torch.full((2, 3), 2.0))


# --------------------------------------------------------------------------- different dimensions


@pytest.mark.parametrize("method", METHODS)
def test_embedding_into_more_dims_is_recovered(method):
    """d_X = 16 < d_Y = 24, Y = X·W with W (16×24) of orthonormal rows: every method recovers it."""
    w = random_orthogonal(24, 20)[:16]
    x = gaussian(100, 16, 21)
    tr = fit_direct_translator(method, x, x @ w, scaling="none")
    assert tr.matrix_.shape == (24, 24) and tr.bias_.shape == (24,)
    assert (tr.source_dim_, tr.target_dim_) == (16, 24)
    x_new = gaussian(10, 16, 22)
    out = tr.transform(x_new)
    assert out.shape == (10, 24)
    assert_close(out, x_new @ w, 1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_projection_to_fewer_dims(method):
    """d_X = 24 > d_Y = 16, Y = X·Wᵀ. Least squares recovers it from any spanning anchors;
    Procrustes needs whitened anchors (XᵀX ∝ I) since its R must be orthogonal."""
    w = random_orthogonal(24, 23)[:16]
    x_new = gaussian(10, 24, 25)
    x = gaussian(100, 24, 24)
    if method == "procrustes":
        x = 10.0 * random_orthogonal(100, 26)[:, :24]
    tr = fit_direct_translator(method, x, x @ w.T, scaling="none")
    out = tr.transform(x_new)
    assert out.shape == (10, 16)
    assert_close(out, x_new @ w.T, 1e-9)


@pytest.mark.parametrize("method", METHODS)
def test_dimension_mismatch_standard_scaling_runs(method):
    x, y = gaussian(60, 9, 27), gaussian(60, 13, 28)
    out = fit_direct_translator(method, x, y).transform(x[:7])
    assert out.shape == (7, 13) and torch.isfinite(out).all()
    out = fit_direct_translator(method, y, x).transform(y[:7])
    assert out.shape == (7, 9) and torch.isfinite(out).all()


# --------------------------------------------------------------------------- fewer anchors than dims


@pytest.mark.parametrize("scaling", ["none", "standard", "isotropic"])
def test_linear_with_fewer_anchors_than_dims_is_minimum_norm_and_fits(scaling):
    x, y = gaussian(10, 32, 30), gaussian(10, 20, 31)
    tr = LinearTranslator(scaling=scaling, rcond=1e-3).fit(x, y)
    assert_close(tr.transform(x), y, 1e-9)  # k < d: the anchors are fitted exactly
    if scaling == "none":
        r, *_ = np.linalg.lstsq(x.numpy(), y.numpy(), rcond=None)  # gelsd: minimum norm
        np.testing.assert_allclose(tr.matrix_[:, :20].numpy(), r, atol=1e-10)
        np.testing.assert_allclose(tr.matrix_[:, :20].numpy(), np.linalg.pinv(x.numpy()) @ y.numpy(), atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_fewer_anchors_than_dims_finite(method):
    x, y = gaussian(6, 32, 32), gaussian(6, 24, 33)
    tr = fit_direct_translator(method, x, y)
    out = tr.transform(gaussian(50, 32, 34))
    assert out.shape == (50, 24) and torch.isfinite(out).all()
    assert torch.isfinite(tr.matrix_).all()


def test_rcond_cuts_tiny_singular_values():
    x = gaussian(50, 6, 35)
    x[:, 5] = x[:, 4] + 1e-9 * gaussian(50, 1, 36).flatten()  # near-collinear columns
    y = gaussian(50, 3, 37)
    loose = LinearTranslator(scaling="none", rcond=1e-6).fit(x, y)
    tight = LinearTranslator(scaling="none", rcond=0.0).fit(x, y)
    assert loose.matrix_.norm() < 1e3 < tight.matrix_.norm()


# --------------------------------------------------------------------------- contract


@pytest.mark.parametrize("method", METHODS)
def test_device_and_dtype_follow_data(method, device, dtype):
    x = gaussian(40, 8, 40).to(device=device, dtype=dtype)
    y = (gaussian(40, 8, 40) @ random_orthogonal(8, 41) * 2).to(device=device, dtype=dtype)
    tr = fit_direct_translator(method, x, y)
    for name in ("source_mean_", "source_scale_", "target_mean_", "target_scale_", "matrix_", "bias_"):
        value = getattr(tr, name)
        assert value.device == x.device and value.dtype == dtype, name
    out = tr.transform(x)
    assert out.device == x.device and out.dtype == dtype
    reference = fit_direct_translator(method, x.cpu().double(), y.cpu().double()).transform(x.cpu().double())
    assert_close(out.cpu().double(), reference, 50 * tolerance(dtype))
    assert tr.transform(x.cpu().half()).dtype == torch.float16


@pytest.mark.parametrize("method", METHODS)
def test_deterministic_and_save_load(method):
    x, y = gaussian(50, 10, 50), gaussian(50, 12, 51)
    a = fit_direct_translator(method, x, y, scaling="isotropic", rcond=1e-8)
    b = fit_direct_translator(method, x, y, scaling="isotropic", rcond=1e-8)
    assert torch.equal(a.matrix_, b.matrix_) and torch.equal(a.bias_, b.bias_)
    tensors, extras = a.fitted_state()
    ridge = {"alpha_": 0.0, "alpha_scores_": {}} if method == "linear" else {}
    assert extras == {"source_dim_": 10, "target_dim_": 12, **ridge}
    cls = estimator_class(type(a).__name__)
    assert cls is DIRECT_TRANSLATORS[method]
    loaded = cls.from_fitted_state(a.get_params(), tensors, extras)
    assert loaded.get_params() == {"scaling": "isotropic", "rcond": 1e-8,
                                   **({"alpha": None, "objective": "auto"} if method == "linear" else {})}
    x_new = gaussian(20, 10, 52)
    assert torch.equal(loaded.transform(x_new), a.transform(x_new))


@pytest.mark.parametrize("chunk_rows", [1, 7, None])
def test_transform_chunk_independent(chunk_rows):
    tr = AffineTranslator().fit(gaussian(40, 6, 60), gaussian(40, 4, 61))
    x = gaussian(33, 6, 62)
    assert_close(tr.transform(x, chunk_rows=chunk_rows), tr.transform(x, chunk_rows=1000), 1e-12)


def test_transform_does_not_mutate_input():
    tr = Procrustes().fit(gaussian(30, 5, 63), gaussian(30, 5, 64))
    x = gaussian(10, 5, 65)
    before = x.clone()
    tr.transform(x)
    assert torch.equal(x, before)


def test_method_names_and_classes():
    assert DIRECT_TRANSLATORS == {
        "procrustes": Procrustes,
        "linear": LinearTranslator,
        "affine": AffineTranslator,
        "ortho-linear": OrthoLinearTranslator,
    }
    assert all(issubclass(c, DirectTranslator) for c in DIRECT_TRANSLATORS.values())


def test_errors():
    x, y = gaussian(20, 4, 70), gaussian(20, 6, 71)
    with pytest.raises(NotFittedError):
        Procrustes().transform(x)
    with pytest.raises(DataError, match=r"\(20, 4\).*\(19, 6\)"):
        Procrustes().fit(x, y[:19])
    with pytest.raises(UsageError, match="procrustes, linear, affine, ortho-linear"):
        fit_direct_translator("rotation", x, y)
    with pytest.raises(UsageError, match="standard, isotropic, none"):
        fit_direct_translator("linear", x, y, scaling="minmax")
    with pytest.raises(UsageError, match="option --beta does not apply to method 'linear': no method takes it"):
        fit_direct_translator("linear", x, y, beta=1.0)
    with pytest.raises(UsageError, match="option --alpha does not apply to method 'procrustes': it applies to linear"):
        fit_direct_translator("procrustes", x, y, alpha=1.0)
    with pytest.raises(UsageError, match="option --center does not apply to method 'linear': it applies to irp"):
        fit_direct_translator("linear", x, y, center=True)
    with pytest.raises(TypeError, match="base class"):
        DirectTranslator().fit(x, y)
    tr = LinearTranslator().fit(x, y)
    with pytest.raises(DataError, match=r"\(3, 5\).*4-dim"):
        tr.transform(gaussian(3, 5, 72))
    bad = x.clone()
    bad[4, 1] = float("nan")
    with pytest.raises(DataError, match=r"source anchors has NaN/Inf in 1 row\(s\) \(rows 4\)"):
        LinearTranslator().fit(bad, y)
    bad = y.clone()
    bad[[2, 9]] = float("inf")
    with pytest.raises(DataError, match=r"target anchors has NaN/Inf in 2 row\(s\) \(rows 2, 9\)"):
        LinearTranslator().fit(x, bad)
    bad[[2, 9]] = 0  # a direct map needs no direction: zero anchors are data like any other
    assert LinearTranslator().fit(x, bad).is_fitted
    with pytest.raises(DataError, match="0 rows"):
        LinearTranslator().fit(x[:0], y[:0])


def test_a_direct_translation_stays_differentiable():
    """transform writes into its output rows only when no gradient is asked of the input."""
    x = torch.randn(200, 12, dtype=torch.float64)
    y = x @ random_orthogonal(12, seed=3)
    translator = make_translator("procrustes").fit(x, y)
    rows = x[:4].clone().requires_grad_()
    with_grad = translator.transform(rows)
    with_grad.sum().backward()
    assert rows.grad is not None and rows.grad.shape == (4, 12)
    torch.testing.assert_close(with_grad.detach(), translator.transform(x[:4]), atol=1e-12, rtol=0)
