"""The shared linear algebra (``relcli.core._linalg``): every fast route equals the SVD's closed form.

The Gram routes (eigh of AᵀA or AAᵀ in float64) must give the truncated pseudo-inverse A⁺_c of a
float64 SVD, the same singular values, the same kept rank and, in the IRP inverse, the same condition
numbers, on well-conditioned, ill-conditioned, rank-deficient (k < D) and zero-padded (d_X ≠ d_Y)
inputs, in float64 and float32; the polar factors of the translators stay orthogonal.
"""

from __future__ import annotations

import pytest
import torch

from relcli.core._irp_cutoff import RCOND_GRID, select_rcond
from relcli.core._linalg import GRAM_MIN_RCOND, Spectrum, gram_solve, pinv_solve
from relcli.core._scoring import Gallery, fold_indices, mean_scores
from relcli.core.irp import IRP, _pinv_transpose
from relcli.core.registry import make_translator


def with_spectrum(k, d, kappa, seed, dtype=torch.float64, rank=None):
    """U diag(σ) Vᵀ (k × d) with σ log-spaced from 1 to 1/kappa; ``rank``: only the first σ non-zero."""
    g = torch.Generator().manual_seed(seed)
    n = min(k, d)
    u, _ = torch.linalg.qr(torch.randn(k, n, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(d, n, generator=g, dtype=torch.float64))
    sigma = torch.logspace(0, -torch.log10(torch.tensor(float(kappa))).item(), n, dtype=torch.float64)
    if rank is not None:
        sigma[rank:] = 0
    return ((u * sigma) @ v.T).to(dtype)


def padded(k, d_small, d, seed, dtype=torch.float64):
    """Rows of d_small live dimensions, zero-padded to d (what the direct translators fit on when d_X ≠ d_Y)."""
    a = with_spectrum(k, d_small, 30.0, seed, dtype)
    return torch.nn.functional.pad(a, (0, d - d_small))


#: (name, matrix): every kind of input a pseudo-inverse meets
CASES = [
    ("well conditioned, k > D", lambda dt: with_spectrum(120, 40, 10.0, 1, dt)),
    ("ill conditioned, k > D", lambda dt: with_spectrum(120, 40, 1e6, 2, dt)),
    ("k = D", lambda dt: with_spectrum(40, 40, 100.0, 3, dt)),
    ("rank deficient, k < D", lambda dt: with_spectrum(25, 60, 100.0, 4, dt)),
    ("rank deficient, k > D", lambda dt: with_spectrum(120, 40, 10.0, 5, dt, rank=30)),
    ("zero padded, d_X < d_Y", lambda dt: padded(120, 30, 48, 6, dt)),
    ("zero padded, k < D", lambda dt: padded(20, 30, 48, 7, dt)),
]
CUTS = [GRAM_MIN_RCOND, 1e-3, 3e-2, 0.3]


def reference_pinvs(a):
    """c ↦ A⁺_c by one float64 SVD of A, keeping σ > c·σ_max: the closed form every route must give."""
    u, sigma, vh = torch.linalg.svd(a.to(torch.float64), full_matrices=False)

    def pinv(rcond):
        keep = sigma > rcond * sigma[0]
        return vh[keep].T @ (u[:, keep] / sigma[keep]).T
    return pinv


def reference_pinv(a, rcond):
    return reference_pinvs(a)(rcond)


def relative(a, b):
    return float((a.to(torch.float64) - b.to(torch.float64)).abs().max() / b.to(torch.float64).abs().max())


# --------------------------------------------------------------------------- the Gram routes


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_gram_route_equals_the_svd_closed_form(name, make, dtype):
    a = make(dtype)
    k, d = a.shape
    b = torch.randn(k, 7, generator=torch.Generator().manual_seed(0), dtype=dtype)
    spectrum = Spectrum.of(a, GRAM_MIN_RCOND)
    assert spectrum.route == ("right" if k >= d else "left")
    exact = torch.linalg.svdvals(a.to(torch.float64))
    assert spectrum.sigma.shape == exact.shape
    assert relative(spectrum.sigma, exact) < 1e-7  # σ to ~√eps·σ_max at worst (zero σ)
    solutions, pinv = spectrum.solutions(b, CUTS), reference_pinvs(a)
    for rcond, solution in zip(CUTS, solutions):
        reference = pinv(rcond)
        assert int(spectrum.kept(rcond).sum()) == int((exact > rcond * exact[0]).sum())
        assert relative(solution, reference @ b.to(torch.float64)) < 1e-7
        assert relative(pinv_solve(a, b, rcond), reference @ b.to(torch.float64)) < 1e-7
        assert relative(spectrum.pinv_t(rcond), reference.T) < 1e-7
        assert torch.equal(spectrum.solve(b, rcond), solution) or relative(spectrum.solve(b, rcond), solution) < 1e-12


@pytest.mark.parametrize("name,make", CASES, ids=[c[0] for c in CASES])
def test_svd_route_below_the_gram_cut_off_is_the_plain_svd(name, make):
    a = make(torch.float64)
    b = torch.randn(a.shape[0], 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for rcond in (0.0, 1e-7, GRAM_MIN_RCOND / 2):
        spectrum = Spectrum.of(a, rcond)
        assert spectrum.route == "svd"
        assert torch.equal(spectrum.sigma, torch.linalg.svd(a, full_matrices=False).S)
        assert relative(spectrum.solve(b, rcond), reference_pinv(a, rcond) @ b) < 1e-10
    f32 = Spectrum.of(a.float(), 1e-6)  # the SVD route stays in the rows' dtype
    assert f32.route == "svd" and f32.sigma.dtype == torch.float32


@pytest.mark.parametrize("name,make", [c for c in CASES if c[1](torch.float64).shape[0] >= c[1](torch.float64).shape[1]],
                         ids=[c[0] for c in CASES if c[1](torch.float64).shape[0] >= c[1](torch.float64).shape[1]])
def test_gram_solve_from_sums_equals_the_solve_from_rows(name, make):
    a = make(torch.float64)
    b = torch.randn(a.shape[0], 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    pinv = reference_pinvs(a)
    for rcond in CUTS:
        assert relative(gram_solve(a.T @ a, a.T @ b, rcond), pinv(rcond) @ b) < 1e-7
    with pytest.raises(TypeError, match="right Gram route"):
        Spectrum.of(a, 0.0).solve_cross(a.T @ b, 0.1)


def test_solutions_share_one_projection_and_follow_the_order_asked():
    a = with_spectrum(90, 30, 1e5, 8)
    b = torch.randn(90, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    spectrum = Spectrum.of(a, 1e-4)
    cuts, pinv = (0.3, 1e-4, 1e-2, 0.3, 0.99), reference_pinvs(a)  # unordered, repeated, one that keeps only σ_max
    for rcond, solution in zip(cuts, spectrum.solutions(b, cuts)):
        assert relative(solution, pinv(rcond) @ b) < 1e-8
    assert int(spectrum.kept(0.99).sum()) == 1


def test_smallest_singular_value_falls_back_to_the_svd_for_ill_conditioned_float64_rows():
    """A condition number is reported from σ_min: float64 rows whose Gram cannot resolve it take the SVD."""
    well, ill = with_spectrum(100, 30, 1e3, 9), with_spectrum(100, 30, 1e8, 10)
    assert Spectrum.of(well, 1e-3, smallest=True).route == "right"
    assert Spectrum.of(ill, 1e-3).route == "right"  # the pseudo-inverse alone does not need σ_min
    spectrum = Spectrum.of(ill, 1e-3, smallest=True)
    assert spectrum.route == "svd"
    assert spectrum.sigma_min == pytest.approx(1e-8, rel=1e-6)
    # float32 rows: the float64 Gram resolves σ_min at least as well as a float32 SVD would
    f32 = with_spectrum(100, 30, 1e5, 11, torch.float32)
    spectrum = Spectrum.of(f32, 1e-3, smallest=True)
    exact = torch.linalg.svdvals(f32.double())
    assert spectrum.route == "right" and spectrum.sigma_min == pytest.approx(float(exact[-1]), rel=1e-4)
    # below the Gram's round-off σ_min is 0, not noise
    dead = with_spectrum(100, 30, 10.0, 12, torch.float32, rank=28)
    assert Spectrum.of(dead, 1e-3, smallest=True).sigma_min == 0.0


# --------------------------------------------------------------------------- IRP


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("shape,kappa", [((150, 40), 20.0), ((150, 40), 3e3), ((30, 40), 50.0)])
def test_irp_inverse_and_condition_numbers_equal_the_svd(shape, kappa, dtype):
    unit = with_spectrum(*shape, kappa, 13, torch.float64)
    unit = (unit / unit.norm(dim=1, keepdim=True)).to(dtype)
    exact = torch.linalg.svdvals(unit.double())
    for rcond in (1e-3, 0.1):
        p, condition, kept_condition, rank = _pinv_transpose(unit, rcond, True, "")
        assert p.dtype == dtype
        assert relative(p, reference_pinv(unit, rcond).T) < (1e-9 if dtype == torch.float64 else 1e-6)
        keep = exact > rcond * exact[0]
        assert rank == int(keep.sum())
        assert kept_condition == pytest.approx(float(exact[0] / exact[keep][-1]), rel=1e-7)
        if shape[0] >= shape[1]:
            assert condition == pytest.approx(float(exact[0] / exact[-1]), rel=1e-6)
        else:
            assert condition == float("inf")


def test_irp_condition_of_dead_target_dimensions_is_infinite_not_noise():
    g = torch.Generator().manual_seed(14)
    y = torch.randn(300, 40, generator=g)
    y[:, 5] = 1e-33 * torch.randn(300, generator=g)
    y[:, 17] = 1e-33
    irp = IRP(rcond=1e-3).fit(torch.randn(300, 30, generator=g), y)
    assert irp.condition_numbers_ == [float("inf")] and irp.ranks_ == [38]
    assert irp.kept_condition_numbers_[0] < 1e3


def test_select_rcond_equals_its_svd_closed_form():
    """The cut-off's cross-validation scores: one decomposition per fold, each cut-off as if by its own SVD."""
    g = torch.Generator().manual_seed(15)
    z = torch.randn(160, 12, generator=g, dtype=torch.float64)
    x = z @ torch.randn(12, 30, generator=g, dtype=torch.float64) + 0.05 * torch.randn(160, 30, generator=g, dtype=torch.float64)
    y = z @ torch.randn(12, 24, generator=g, dtype=torch.float64) + 0.05 * torch.randn(160, 24, generator=g, dtype=torch.float64) + 2
    unit_x, unit_y = x / x.norm(dim=1, keepdim=True), y / y.norm(dim=1, keepdim=True)
    relative_rows = unit_x @ unit_x.T
    best, scores = select_rcond(relative_rows, unit_y, seed=3)
    gallery, expected = Gallery(unit_y), {c: [] for c in RCOND_GRID}
    for held in fold_indices(160, 5, 3):
        kept = torch.ones(160, dtype=torch.bool)
        kept[held] = False
        pinv = reference_pinvs(unit_y[kept])
        for c in RCOND_GRID:
            predicted = relative_rows[held][:, kept] @ pinv(c).T
            expected[c].append(gallery.scores(predicted / predicted.norm(dim=1, keepdim=True), held))
    for c in RCOND_GRID:
        for key, value in mean_scores(expected[c]).items():
            assert scores[f"{c:g}"][key] == pytest.approx(value, abs=1e-9), (c, key)
    assert best == max(RCOND_GRID, key=lambda c: (round(scores[f"{c:g}"]["score"], 12), -c))


# --------------------------------------------------------------------------- polar factors


@pytest.mark.parametrize("method", ["procrustes", "ortho-linear"])
@pytest.mark.parametrize("k,d_x,d_y", [(200, 24, 24), (15, 24, 24), (200, 16, 24), (200, 24, 16), (10, 16, 24)])
def test_polar_factor_is_orthogonal(method, k, d_x, d_y):
    g = torch.Generator().manual_seed(16)
    x = torch.randn(k, d_x, generator=g, dtype=torch.float64)
    y = x[:, :min(d_x, d_y)] @ torch.randn(min(d_x, d_y), d_y, generator=g, dtype=torch.float64) + 0.1 * torch.randn(k, d_y, generator=g, dtype=torch.float64)
    q = make_translator(method).fit(x, y).matrix_
    assert q.shape == (max(d_x, d_y),) * 2
    assert torch.allclose(q.T @ q, torch.eye(q.shape[0], dtype=q.dtype), atol=1e-12)


def test_ortho_linear_is_the_polar_factor_of_the_svd_pseudo_inverse_where_it_is_defined():
    """R = X_s⁺Y_s by the Gram route; UVᵀ agrees with the SVD route's on R's row space (elsewhere, where
    R is rank deficient, any orthogonal completion is as right as another)."""
    g = torch.Generator().manual_seed(17)
    x = torch.randn(300, 32, generator=g, dtype=torch.float64) @ with_spectrum(32, 32, 3e3, 18)
    y = torch.randn(300, 24, generator=g, dtype=torch.float64)
    tr = make_translator("ortho-linear").fit(x, y)
    xs = (x - x.mean(0)) / tr.source_scale_
    ys = torch.nn.functional.pad((y - y.mean(0)) / tr.target_scale_, (0, 8))
    r = reference_pinv(xs, tr.rcond_) @ ys
    u, sigma, vh = torch.linalg.svd(r)
    defined = u[:, sigma > 1e-9 * sigma[0]].T
    assert relative(defined @ tr.matrix_, defined @ (u @ vh)) < 1e-9
