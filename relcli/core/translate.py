"""Direct latent-space translation fitted on parallel anchors (Maiorca et al. 2023,
"Latent space translation via semantic alignment", §3).

Pipeline, DESIGN §5: scale both anchor sets (centre, then divide by a scale), zero-pad the
smaller dimension to D = max(d_X, d_Y), fit a D×D map R (and a bias b) with one of the methods
below, and translate any x as y = crop_{d_Y}(((x − μ_X)/σ_X) R + b)·σ_Y + μ_Y.

Fitting runs in float64 whatever the anchors' dtype; the learned state is stored in the
anchors' (promoted) dtype on their device, and ``transform`` follows its input's device and
dtype.

Each translator also fits from streamed sums of a large anchor set (``fit_moments``).
"""

from __future__ import annotations

import torch

from relcli.core import registry
from relcli.core._common import DEFAULT_CHUNK_ROWS, check_rows, compute_dtype, row_chunks
from relcli.core._linalg import _polar, gram_solve, pinv_solve
from relcli.core._translator import Translator, check_fit_size, check_parallel
from relcli.core._ridge import ridge_loo, ridge_solve
from relcli.core._scoring import check_objective
from relcli.core.stats import guarded_scale
from relcli.errors import DataError, FileFormatError, UsageError

SCALINGS = tuple(registry.SCALINGS)
#: what ``rcond="auto"`` means for the direct methods (measured on sample_data: 1e-6 let nearly
#: dead source units dominate the least-squares map, CKA 0.02).
DEFAULT_RCOND = 1e-3


def _scaling(a: torch.Tensor, scaling: str, guard_dead: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(μ, σ) of anchors a (k×d), float64.

    standard: μ = mean, σ_j = population std of dim j; isotropic: μ = mean,
    σ = sqrt(Σ‖a_i − μ‖² / k) / sqrt(d) (one scalar: angles survive); none: μ = 0, σ = 1.
    With ``guard_dead`` (the source side), a dimension that hardly varies over the anchors — a
    nearly dead unit, common in ReLU encoders — gets a typical scale (``guarded_scale``): dividing by
    its own σ_j would blow a row up by 100× and more wherever that unit fires outside the anchors.
    The target side keeps its own
    σ_j, so that a unit that hardly varies in the target does not start varying in the output
    (measured on sample_data: guarding the target too cost up to 21 points of stitching accuracy).
    A scale of 0 left (constant target dimension, identical anchors) is replaced by 1.
    """
    k, d = a.shape
    if scaling == "none":
        return torch.zeros(d, dtype=a.dtype, device=a.device), torch.ones(d, dtype=a.dtype, device=a.device)
    mean = a.mean(dim=0)
    centred = a - mean
    if scaling == "standard":
        scale = centred.pow(2).mean(dim=0).sqrt()
        if guard_dead:
            scale = guarded_scale(scale, mean)
    else:
        scale = (centred.pow(2).sum() / (k * d)).sqrt().reshape(1)
    return mean, torch.where(scale > 0, scale, torch.ones_like(scale))


def _pad(a: torch.Tensor, dim: int) -> torch.Tensor:
    return torch.nn.functional.pad(a, (0, dim - a.shape[1]))


class DirectTranslator(Translator):
    """Base of the direct translators: scaling, padding, transform. Subclasses fit R and b.

    ``rcond``: singular-value cut-off of the least-squares methods relative to the largest,
    or ``"auto"`` (DEFAULT_RCOND). Learned state: ``source_mean_``/``source_scale_``,
    ``target_mean_``/``target_scale_`` (d, or (1,) for isotropic scaling), ``matrix_`` (D×D),
    ``bias_`` (D), ``source_dim_``, ``target_dim_``.
    """

    _abstract = True
    _state = {
        "source_mean_": "tensor1", "source_scale_": "tensor1", "target_mean_": "tensor1", "target_scale_": "tensor1",
        "matrix_": "tensor2", "bias_": "tensor1", "source_dim_": "int", "target_dim_": "int",
    }

    def __init__(self, scaling: str = "standard", rcond: float | str = "auto"):
        self.scaling = scaling
        self.rcond = rcond

    def _check_params(self) -> None:
        if self.scaling not in SCALINGS:
            raise UsageError(f"unknown scaling {self.scaling!r}; choose one of: {', '.join(SCALINGS)}")
        if self.rcond != "auto" and not (
            isinstance(self.rcond, (int, float)) and not isinstance(self.rcond, bool) and 0.0 <= self.rcond < 1.0
        ):
            raise UsageError(f"rcond must be 'auto' or a number in [0, 1), got {self.rcond!r}")

    def _check_state(self) -> None:
        d_x, d_y, dim = self.source_dim_, self.target_dim_, self.matrix_.shape[0]
        if min(d_x, d_y) < 1 or tuple(self.matrix_.shape) != (max(d_x, d_y),) * 2 or self.bias_.shape[0] != dim:
            raise FileFormatError(
                f"{type(self).__name__} state does not fit together: matrix_ {list(self.matrix_.shape)}, "
                f"bias_ {list(self.bias_.shape)}, source_dim_ {d_x}, target_dim_ {d_y}"
            )
        for name, size in (("source_mean_", d_x), ("source_scale_", d_x), ("target_mean_", d_y), ("target_scale_", d_y)):
            value = getattr(self, name)
            if value.shape[0] not in (size, 1) or name.endswith("scale_") and not bool((value > 0).all()):
                raise FileFormatError(f"{type(self).__name__} state {name} has shape {list(value.shape)} or a scale <= 0")

    @property
    def rcond_(self) -> float:
        """The cut-off used: ``rcond``, with "auto" resolved."""
        return DEFAULT_RCOND if self.rcond == "auto" else float(self.rcond)

    def diagnostics(self) -> dict:
        return {**super().diagnostics(), "rcond_chosen": self.rcond_}

    def _solve(self, xs: torch.Tensor, ys: torch.Tensor, to_target, gallery) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(R, b, extra learned state) for standardised padded anchors; ``to_target`` undoes the
        target scaling of predictions, to score them against ``gallery`` (the target anchors)."""
        raise TypeError(f"{type(self).__name__} is a base class: use one of {', '.join(DIRECT_TRANSLATORS)}")

    def fit(self, source_anchors: torch.Tensor, target_anchors: torch.Tensor, target_norm: float | None = None):
        """Fit on parallel anchors: row i of ``source_anchors`` (k×d_X) ↔ row i of ``target_anchors`` (k×d_Y)."""
        self._check_params()
        xa, ya = check_parallel(source_anchors, target_anchors)
        check_rows(xa, "source anchors", allow_zero=True)
        check_rows(ya, "target anchors", allow_zero=True)
        dtype = torch.promote_types(xa.dtype, ya.dtype)
        xa, ya = xa.to(torch.float64), ya.to(torch.float64)
        d_x, d_y = xa.shape[1], ya.shape[1]
        dim = max(d_x, d_y)
        mu_x, sigma_x = _scaling(xa, self.scaling, guard_dead=True)
        mu_y, sigma_y = _scaling(ya, self.scaling)
        matrix, bias, extra = self._solve(
            _pad((xa - mu_x) / sigma_x, dim), _pad((ya - mu_y) / sigma_y, dim),
            lambda ys_hat: ys_hat[:, :d_y] * sigma_y + mu_y, ya,
        )
        self._set_state(
            source_mean_=mu_x.to(dtype), source_scale_=sigma_x.to(dtype),
            target_mean_=mu_y.to(dtype), target_scale_=sigma_y.to(dtype),
            matrix_=matrix.to(dtype), bias_=bias.to(dtype), source_dim_=d_x, target_dim_=d_y, **extra,
        )
        return self

    def fit_moments(self, moments, target_norm: float | None = None):
        """The ``fit`` of the moments: the anchors' centring and scaling follow from the sums, then
        ``_solve_moments`` gets S_XX = D_X⁻¹ X_cᵀX_c D_X⁻¹ and S_XY = D_X⁻¹ X_cᵀY_c D_Y⁻¹."""
        self._check_params()
        n, d_x, d_y = moments.n, moments.sum_x.shape[0], moments.sum_y.shape[0]
        check_fit_size(n, d_x, d_y)
        dtype = torch.float64
        if self.scaling == "none":
            mu_x, mu_y = moments.sum_x.new_zeros(d_x), moments.sum_y.new_zeros(d_y)
            sigma_x, sigma_y = moments.sum_x.new_ones(d_x), moments.sum_y.new_ones(d_y)
            cxx, cxy = moments.xx, moments.xy
        else:
            mu_x, mu_y = moments.mean_x, moments.mean_y
            var_x, var_y = moments.variances()
            if self.scaling == "standard":
                sigma_x, sigma_y = guarded_scale(var_x.sqrt(), mu_x), var_y.sqrt()
            else:
                sigma_x, sigma_y = (var_x.sum() / d_x).sqrt().reshape(1), (var_y.sum() / d_y).sqrt().reshape(1)
            sigma_x = torch.where(sigma_x > 0, sigma_x, torch.ones_like(sigma_x))
            sigma_y = torch.where(sigma_y > 0, sigma_y, torch.ones_like(sigma_y))
            cxx, cxy = moments.centred()
        sx, sy = sigma_x.expand(d_x), sigma_y.expand(d_y)
        sxx = cxx / sx[:, None] / sx[None, :]
        sxy = cxy / sx[:, None] / sy[None, :]
        # the anchors' standardised means: zero once centred, the raw means when not scaled
        means = (moments.mean_x, moments.mean_y) if self.scaling == "none" else (mu_x.new_zeros(d_x), mu_y.new_zeros(d_y))
        matrix, bias, extra = self._solve_moments(sxx, sxy, n, means)
        dim = max(d_x, d_y)
        padded = matrix.new_zeros(dim, dim)
        padded[:d_x, :d_y] = matrix
        self._set_state(
            source_mean_=mu_x.to(dtype), source_scale_=sigma_x.to(dtype), target_mean_=mu_y.to(dtype),
            target_scale_=sigma_y.to(dtype), matrix_=padded, bias_=torch.nn.functional.pad(bias, (0, dim - d_y)),
            source_dim_=d_x, target_dim_=d_y, **extra,
        )
        return self

    def frozen(self) -> "DirectTranslator":
        return type(self)(scaling=self.scaling, rcond=self.rcond_)

    def _solve_moments(self, sxx, sxy, n, means) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """(R (d_X × d_Y), b (d_Y), extra state) from the standardised sums; ``means`` the standardised
        anchor means (zero unless scaling is none)."""
        raise TypeError(f"{type(self).__name__} is a base class: use one of {', '.join(DIRECT_TRANSLATORS)}")

    def transform(self, x: torch.Tensor, chunk_rows: int | None = DEFAULT_CHUNK_ROWS) -> torch.Tensor:
        """y = crop_{d_Y}(pad_D((x − μ_X)/σ_X) R + b)·σ_Y + μ_Y = x W + c, row chunk by row chunk.

        The scalings fold into the map (``affine_form``), so a chunk costs one GEMM. Output on x's
        device in x's dtype; NaN/Inf input rows give NaN/Inf output rows (callers report them by id).
        """
        x = self._check_input(x)
        work = compute_dtype(x.dtype)
        weight, offset = self.derived(("affine", str(x.device), work),
                                      lambda: tuple(t.to(device=x.device, dtype=work) for t in self.affine_form()))
        out = torch.empty(x.shape[0], self.target_dim_, dtype=x.dtype, device=x.device)
        for sl in row_chunks(x.shape[0], chunk_rows):
            if work == x.dtype and not x.requires_grad:  # straight into the output rows, no temporary
                torch.addmm(offset, x[sl], weight, out=out[sl])
            else:
                out[sl] = torch.addmm(offset, x[sl].to(work), weight)
        return out

    def affine_form(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(W (d_X × d_Y), c (d_Y)) with transform(x) = x W + c, computed in float64.

        W = diag(1/σ_X) R diag(σ_Y) and c = (b − (μ_X/σ_X) R)·σ_Y + μ_Y, R the top-left d_X × d_Y
        block of the padded map (padding x with zeros only meets R's zero rows).
        """
        self.check_fitted()
        d_x, d_y = self.source_dim_, self.target_dim_
        f64 = lambda t: t.to(torch.float64)  # noqa: E731
        matrix = f64(self.matrix_)[:d_x, :d_y]
        source_scale, target_scale = f64(self.source_scale_).expand(d_x), f64(self.target_scale_).expand(d_y)
        weight = matrix / source_scale[:, None] * target_scale[None, :]
        offset = (f64(self.bias_)[:d_y] - (f64(self.source_mean_).expand(d_x) / source_scale) @ matrix) * target_scale
        return weight, offset + f64(self.target_mean_).expand(d_y)


class Procrustes(DirectTranslator):
    """Orthogonal Procrustes: R = argmin_{RᵀR=I} ‖X_s R − Y_s‖_F = UVᵀ with X_sᵀY_s = UΣVᵀ; b = 0."""

    method = "procrustes"

    def _solve(self, xs, ys, to_target, gallery):
        return _polar(xs.T @ ys), torch.zeros(xs.shape[1], dtype=xs.dtype, device=xs.device), {}

    def _solve_moments(self, sxx, sxy, n, means):
        d_x, d_y = sxy.shape
        dim = max(d_x, d_y)
        padded = sxy.new_zeros(dim, dim)
        padded[:d_x, :d_y] = sxy
        return _polar(padded)[:d_x, :d_y], sxy.new_zeros(d_y), {}


class LinearTranslator(DirectTranslator):
    """Least squares, regularised; b = 0.

    ``rcond="auto"`` (the default): ridge R = (X_sᵀX_s + λI)⁻¹X_sᵀY_s with λ chosen by leave-one-out on
    the anchors (``relcli.core._ridge``; scored for ``objective``, ``relcli.core._scoring``), which
    works below k = d too; ``alpha_`` is the chosen λ/k and ``alpha_scores_`` every candidate's
    held-out scores. A number: the truncated pseudo-inverse R = X_s⁺ Y_s keeping σ > rcond·σ_max
    (``alpha_`` = 0).
    """

    method = "linear"
    _state = {**DirectTranslator._state, "alpha_": "float", "alpha_scores_": "dict"}

    def __init__(self, scaling: str = "standard", rcond: float | str = "auto", alpha: float | None = None,
                 objective: str = "auto"):
        super().__init__(scaling, rcond)
        self.alpha = alpha
        self.objective = objective

    def _check_params(self) -> None:
        super()._check_params()
        check_objective(self.objective)
        if self.alpha is not None and (isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float))
                                       or not 0 <= self.alpha < float("inf")):
            raise UsageError(f"alpha must be a number >= 0 or None (chosen by leave-one-out), got {self.alpha!r}")

    def _solve(self, xs, ys, to_target, gallery):
        zero = torch.zeros(xs.shape[1], dtype=xs.dtype, device=xs.device)
        if self.rcond != "auto":
            return pinv_solve(xs, ys, float(self.rcond)), zero, {"alpha_": 0.0, "alpha_scores_": {}}
        if self.alpha is not None:
            matrix = ridge_solve(xs.T @ xs, xs.T @ ys, float(self.alpha) * xs.shape[0])
            return matrix, zero, {"alpha_": float(self.alpha), "alpha_scores_": {}}
        matrix, alpha, scores = ridge_loo(xs, ys, to_target, gallery, objective=self.objective)
        return matrix, zero, {"alpha_": alpha, "alpha_scores_": scores}

    def _solve_moments(self, sxx, sxy, n, means):
        zero = sxy.new_zeros(sxy.shape[1])
        if self.rcond != "auto":
            return gram_solve(sxx, sxy, float(self.rcond)), zero, {"alpha_": 0.0, "alpha_scores_": {}}
        if self.alpha is None:
            raise UsageError("a linear map fitted from sums needs its ridge penalty (alpha) chosen on a sample first")
        return ridge_solve(sxx, sxy, float(self.alpha) * n), zero, {"alpha_": float(self.alpha), "alpha_scores_": {}}

    @property
    def tunes_on_anchors(self) -> bool:
        return self.rcond == "auto" and self.alpha is None

    def frozen(self) -> "LinearTranslator":
        if self.tunes_on_anchors:
            self.check_fitted()
        if self.rcond == "auto":
            return LinearTranslator(scaling=self.scaling, rcond="auto",
                                    alpha=self.alpha_ if self.tunes_on_anchors else self.alpha, objective=self.objective)
        return LinearTranslator(scaling=self.scaling, rcond=self.rcond, objective=self.objective)

    def diagnostics(self) -> dict:
        facts = super().diagnostics()
        if self.rcond == "auto":
            facts.pop("rcond_chosen")
            facts.update(alpha_chosen=self.alpha_, alpha_scores=self.alpha_scores_)
        return facts


class AffineTranslator(DirectTranslator):
    """Least squares with a bias: R = X_c⁺ Y_c on the anchors centred on their means, b = ȳ − x̄ R
    (the least-squares bias; the cut-off acts on the centred anchors only). With standard or
    isotropic scaling the anchors are already centred, b = 0 and this equals ``linear`` with a cut-off."""

    method = "affine"

    def _solve(self, xs, ys, to_target, gallery):
        mean_x, mean_y = xs.mean(dim=0), ys.mean(dim=0)
        matrix = pinv_solve(xs - mean_x, ys - mean_y, self.rcond_)
        return matrix, mean_y - mean_x @ matrix, {}

    def _solve_moments(self, sxx, sxy, n, means):
        mean_x, mean_y = means
        centred_xx = sxx - n * torch.outer(mean_x, mean_x)
        centred_xy = sxy - n * torch.outer(mean_x, mean_y)
        matrix = gram_solve(centred_xx, centred_xy, self.rcond_)
        return matrix, mean_y - mean_x @ matrix, {}


class OrthoLinearTranslator(DirectTranslator):
    """Least squares R = X_s⁺ Y_s, then its nearest orthogonal matrix UVᵀ (R = UΣVᵀ); b = 0."""

    method = "ortho-linear"

    def _solve(self, xs, ys, to_target, gallery):
        r = pinv_solve(xs, ys, self.rcond_)
        return _polar(r), torch.zeros(xs.shape[1], dtype=xs.dtype, device=xs.device), {}

    def _solve_moments(self, sxx, sxy, n, means):
        d_x, d_y = sxy.shape
        dim = max(d_x, d_y)
        padded = sxy.new_zeros(dim, dim)
        padded[:d_x, :d_y] = gram_solve(sxx, sxy, self.rcond_)
        return _polar(padded)[:d_x, :d_y], sxy.new_zeros(d_y), {}


DIRECT_TRANSLATORS: dict[str, type[DirectTranslator]] = {
    cls.method: cls for cls in (Procrustes, LinearTranslator, AffineTranslator, OrthoLinearTranslator)
}
