"""Inverse relative projection (IRP): from relative rows back to a target space.

Maiorca et al. 2024. With parallel target anchors Â_Y (k × d_Y, rows unit-normalised, optionally
centred first), a cosine relative row r ≈ ŷ Â_Yᵀ, so the least-squares direction is
ŷ = r (Â_Yᵀ)⁺, with the pseudo-inverse from the singular values (``_linalg.Spectrum``) and a relative
cut-off on small singular values. Rows are then normalised and rescaled to the target's mean norm
(decoders are largely scale invariant), and the target anchor mean is added back when centring was used.

Conditioning aids from the paper: prune near-collinear anchors by farthest-point sampling (FPS)
with distance 1 − |cos| and threshold δ, repeat over ω pruned subsets ("subspaces") and average
the reconstructions before the final row normalisation.

Two estimators:
- ``InverseRelativeProjection`` inverts relative rows (what ``relcli invert`` does);
- ``IRP`` is the translator: with parallel source anchors the whole source → relative → target
  chain is linear up to row scalings, so it folds into one d_X × d_Y matrix,
  translate(x) = norm_rows((x − μ_X) Â_Xᵀ P̄) with P̄ = mean_s P_s: one n × d_X × d_Y matmul
  instead of two n × k × d ones.
"""

from __future__ import annotations

import torch

from relcli.core._common import DEFAULT_CHUNK_ROWS, check_matrix, check_rows, l2_normalize, row_chunks
from relcli.core._estimator import Estimator
from relcli.core._irp_cutoff import AUTO_MIN_ANCHORS, FALLBACK_RCOND, farthest_point_subset, select_rcond
from relcli.core._linalg import Spectrum
from relcli.core._scoring import check_objective
from relcli.core._translator import Translator, check_fit_size, check_parallel
from relcli.errors import DataError, FileFormatError, RowsError, UsageError

# A reconstructed row whose norm is this close to the round-off level of its matmul carries no
# direction: ‖y‖ ≤ _ZERO_ROW_FACTOR · eps · ‖input row‖ · ‖map‖_F counts as a zero row.
_ZERO_ROW_FACTOR = 32.0
NO_DIRECTION = "a reconstruction of zero (orthogonal to every kept target anchor direction)"


class _IRPParams:
    """The parameters both IRP estimators share, and their checks."""

    def __init__(
        self,
        rcond: float | str = "auto",
        center: bool = False,
        prune_threshold: float = 0.0,
        subspaces: int = 1,
        allow_rank_deficient: bool = False,
        seed: int = 0,
        objective: str = "auto",
    ):
        self.rcond = rcond
        self.center = center
        self.prune_threshold = prune_threshold
        self.subspaces = subspaces
        self.allow_rank_deficient = allow_rank_deficient
        self.seed = seed
        self.objective = objective

    def _check_params(self) -> None:
        check_objective(self.objective)
        number = (int, float)
        if self.rcond != "auto" and not (
            isinstance(self.rcond, number) and not isinstance(self.rcond, bool) and 0.0 <= float(self.rcond) < 1.0
        ):
            raise UsageError(f"rcond must be 'auto' or a number in [0, 1), got {self.rcond!r}")
        if not isinstance(self.prune_threshold, number) or not 0.0 <= float(self.prune_threshold) <= 1.0:
            raise UsageError(f"prune_threshold must be in [0, 1] (a 1 − |cos| distance), got {self.prune_threshold!r}")
        if isinstance(self.subspaces, bool) or not isinstance(self.subspaces, int) or self.subspaces < 1:
            raise UsageError(f"subspaces must be an integer ≥ 1, got {self.subspaces!r}")
        for name in ("center", "allow_rank_deficient"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**63:
            raise UsageError(f"seed must be an integer in [0, 2^63), got {self.seed!r}")


def _pinv_transpose(unit_sub, rcond: float, allow_rank_deficient: bool, pruned: str):
    """P = (Âᵀ)⁺ = U Σ⁻¹ Vᵀ for Â = U Σ Vᵀ (k_S × d_Y), keeping σ > rcond·σ_max (``Spectrum``: from
    the float64 Gram matrix for rcond ≥ 1e-4, else by SVD in Â's dtype); P in Â's dtype.

    Returns (P, condition number σ_max/σ_min of Â, condition of what is kept, kept rank).
    """
    k_s, d_y = unit_sub.shape
    spectrum = Spectrum.of(unit_sub, rcond, smallest=k_s >= d_y)
    sigma = spectrum.sigma
    sigma_max = float(sigma[0]) if len(sigma) else 0.0
    keep = spectrum.kept(rcond)
    rank = int(keep.sum())
    sigma_min = spectrum.sigma_min
    condition = sigma_max / sigma_min if k_s >= d_y and sigma_min > 0.0 else float("inf")
    if k_s < d_y and not allow_rank_deficient:
        raise DataError(
            f"IRP needs at least d_Y={d_y} target anchors, got k={k_s}{pruned} (rank {rank} at rcond={rcond:g}): "
            "use more anchors (≥ d_Y, ideally 2·d_Y) or accept a rank-deficient inverse (--allow-rank-deficient)"
        )
    p_s = spectrum.pinv_t(rcond).to(unit_sub.dtype)
    kept_condition = sigma_max / float(sigma[keep][-1]) if rank else float("inf")
    return p_s, condition, kept_condition, rank


def _project_back(inputs, matrix, shift, target_norm, target_mean, chunk_rows, what):
    """norm_rows((inputs − shift) · matrix) · target_norm (+ target_mean), row chunk by chunk.

    One GEMM per chunk: the shift folds into an offset, (x − s)M = xM − sM. A row that maps to
    (numerically) zero has no direction in the target: ``RowsError``.
    """
    n = inputs.shape[0]
    out = torch.empty(n, matrix.shape[1], device=inputs.device, dtype=inputs.dtype)
    map_norm = float(torch.linalg.matrix_norm(matrix))  # Frobenius: a cheap bound on ‖·‖₂
    eps = torch.finfo(inputs.dtype).eps
    offset = None if shift is None else -(shift @ matrix)
    shift_norm = 0.0 if shift is None else float(torch.linalg.vector_norm(shift))
    for rows in row_chunks(n, chunk_rows):
        chunk = inputs[rows]
        y = torch.mm(chunk, matrix, out=out[rows]) if offset is None else torch.addmm(offset, chunk, matrix, out=out[rows])
        norms = torch.linalg.vector_norm(y, dim=1, keepdim=True)
        # ‖(x − s)M‖ below rounding of the product: ‖x − s‖ ≤ ‖x‖ + ‖s‖ bounds what rounding can leave
        floor = torch.linalg.vector_norm(chunk, dim=1, keepdim=True).add_(shift_norm).mul_(_ZERO_ROW_FACTOR * eps * map_norm)
        good = (torch.isfinite(norms) & (norms > floor)).flatten()
        if not bool(good.all()):
            check_rows(chunk, what, offset=rows.start)
            if shift is not None:
                check_rows(chunk - shift, f"{what} (after centring on the source anchor mean)", offset=rows.start)
            raise RowsError(NO_DIRECTION, ((~good).nonzero().flatten() + rows.start).tolist(), what)
        y.mul_(target_norm / norms)
        if target_mean is not None:
            y.add_(target_mean)
    return out


class InverseRelativeProjection(_IRPParams, Estimator):
    """Cosine relative rows (n × k) → target space (n × d_Y), with parallel target anchors.

    Parameters: ``rcond`` relative SVD cut-off (σ ≤ rcond·σ_max dropped), or ``"auto"`` to choose
    it by cross-validation on the anchors (``select_rcond``; needs the anchors' own relative rows);
    ``center`` centre the target anchors on their mean (the relative rows must have been made
    with centring too); ``prune_threshold`` δ and ``subspaces`` ω of the FPS pruning (0 and 1: every
    anchor, one plain pseudo-inverse); ``allow_rank_deficient`` accept fewer than d_Y anchors;
    ``seed`` of FPS and of the cross-validation folds; ``objective`` what they score (``relcli.core._scoring``).

    Learned state: ``subsets_`` (ω, k) bool, ``inverse_`` (ω, k, d_Y) with P_s = (Â_{Y,S}ᵀ)⁺ and
    zero rows outside S, per subspace ``condition_numbers_`` (σ_max/σ_min of Â_{Y,S}),
    ``kept_condition_numbers_`` (σ_max over the smallest singular value kept: what the inverse
    amplifies, at most 1/rcond) and ``ranks_``; ``rcond_`` (the cut-off used) and
    ``rcond_scores_`` (every candidate's cross-validation scores; empty without "auto");
    ``target_norm_``, ``target_mean_`` (zeros unless centring), ``target_dim_``.
    """

    _state = {
        "subsets_": "btensor2", "inverse_": "tensor3", "condition_numbers_": "list",
        "kept_condition_numbers_": "list", "ranks_": "list", "rcond_": "float", "rcond_scores_": "dict",
        "target_norm_": "float", "target_mean_": "tensor1", "target_dim_": "int",
    }

    def fit(self, target_anchors: torch.Tensor, anchor_relative: torch.Tensor | None = None, target_norm: float | None = None):
        """Pseudo-inverses of the (pruned) target anchors.

        ``anchor_relative`` (k × k): the anchor items' own relative rows (row i: item i against
        every anchor), which ``rcond="auto"`` cross-validates on; without them (or with fewer than
        10 anchors) "auto" falls back to FALLBACK_RCOND. ``target_norm`` is the norm every output
        row gets (of its centred part when centring); default: the anchors' mean norm.
        """
        self._check_params()
        a_y = check_matrix(target_anchors, "target anchors")
        check_rows(a_y, "target anchors", allow_zero=True)
        k, d_y = a_y.shape
        target_mean = a_y.mean(dim=0) if self.center else torch.zeros(d_y, device=a_y.device, dtype=a_y.dtype)
        centred = a_y - target_mean
        unit_y = l2_normalize(centred, "target anchors" + (" (after centring)" if self.center else ""))
        if anchor_relative is not None and tuple(anchor_relative.shape) != (k, k):
            raise DataError(f"anchor_relative must be {k} x {k} (anchors x anchors), got {tuple(anchor_relative.shape)}")
        rcond, scores = self._choose_rcond(unit_y, anchor_relative)
        if target_norm is None:
            target_norm = float(torch.linalg.vector_norm(centred, dim=1).mean())
        elif not float(target_norm) > 0.0 or target_norm == float("inf"):
            raise DataError(f"target_norm must be a positive finite number, got {target_norm}")

        omega, delta = int(self.subspaces), float(self.prune_threshold)
        if omega > k:
            raise UsageError(f"subspaces={omega} is more than the {k} target anchors: FPS from at most {k} different "
                             "starting anchors gives at most that many different subsets")
        if delta == 0.0 and omega == 1:
            masks = [torch.ones(k, dtype=torch.bool)]
        else:
            masks = [farthest_point_subset(unit_y, delta, self.seed + s) for s in range(omega)]
        inverse = torch.zeros(omega, k, d_y, device=a_y.device, dtype=a_y.dtype)
        conditions, kept, ranks = [], [], []
        for s, mask in enumerate(masks):
            mask = mask.to(a_y.device)
            pruned = f" after pruning (prune_threshold={delta}, subspaces={omega}: lower the threshold)" if int(mask.sum()) < k else ""
            p_s, condition, kept_condition, rank = _pinv_transpose(unit_y[mask], rcond, self.allow_rank_deficient, pruned)
            inverse[s, mask] = p_s
            conditions.append(condition)
            kept.append(kept_condition)
            ranks.append(rank)
        self._set_state(
            subsets_=torch.stack(masks).to(a_y.device), inverse_=inverse, condition_numbers_=conditions,
            kept_condition_numbers_=kept, ranks_=ranks, rcond_=rcond, rcond_scores_=scores,
            target_norm_=float(target_norm), target_mean_=target_mean, target_dim_=d_y,
        )
        return self

    def _choose_rcond(self, unit_y: torch.Tensor, anchor_relative: torch.Tensor | None) -> tuple[float, dict]:
        if self.rcond != "auto":
            return float(self.rcond), {}
        if anchor_relative is None or unit_y.shape[0] < AUTO_MIN_ANCHORS:
            return FALLBACK_RCOND, {}
        return select_rcond(anchor_relative.to(device=unit_y.device), unit_y, seed=self.seed, objective=self.objective)

    def _check_state(self) -> None:
        omega, k, d_y = self.inverse_.shape
        if tuple(self.subsets_.shape) != (omega, k) or self.target_mean_.shape[0] != d_y or self.target_dim_ != d_y:
            raise FileFormatError(
                f"InverseRelativeProjection state does not fit together: inverse_ {list(self.inverse_.shape)}, "
                f"subsets_ {list(self.subsets_.shape)}, target_mean_ {list(self.target_mean_.shape)}"
            )
        if not self.target_norm_ > 0:
            raise FileFormatError(f"InverseRelativeProjection state target_norm_ must be > 0, got {self.target_norm_}")

    def transform(self, relative: torch.Tensor, chunk_rows: int | None = DEFAULT_CHUNK_ROWS) -> torch.Tensor:
        """Ŷ = norm_rows(R P̄) · target_norm_ (+ target_mean_) for cosine rows R (n × k), P̄ = mean_s P_s.

        R must hold the cosines to the source anchors parallel to the fitted target anchors, in
        order, centred the same way.
        """
        self.check_fitted()
        relative = check_matrix(relative, "relative rows")
        k = self.inverse_.shape[1]
        if relative.shape[1] != k:
            raise DataError(
                f"relative rows have shape {tuple(relative.shape)} but IRP was fitted on {k} anchors: "
                "the columns must be the cosine similarities to those anchors, in order"
            )
        inverse = self.inverse_.to(device=relative.device, dtype=relative.dtype).mean(dim=0)
        mean = self.target_mean_.to(device=relative.device, dtype=relative.dtype) if self.center else None
        return _project_back(relative, inverse, None, self.target_norm_, mean, chunk_rows, "relative rows")


class IRP(_IRPParams, Translator):
    """The IRP translator: source rows → relative to the source anchors → inverted on the target anchors.

    Same parameters as ``InverseRelativeProjection``. Learned state: ``map_`` (d_X × d_Y) =
    Â_Xᵀ P̄, ``source_mean_`` (zeros unless centring), ``target_mean_``, ``target_norm_``, and the
    inverse's diagnostics ``rcond_``, ``rcond_scores_``, ``condition_numbers_``,
    ``kept_condition_numbers_``, ``ranks_``; ``source_dim_``, ``target_dim_``.
    """

    method = "irp"
    needs_direction = True
    _state = {
        "map_": "tensor2", "source_mean_": "tensor1", "target_mean_": "tensor1", "target_norm_": "float",
        "rcond_": "float", "rcond_scores_": "dict", "condition_numbers_": "list", "kept_condition_numbers_": "list",
        "ranks_": "list", "source_dim_": "int", "target_dim_": "int",
    }

    def fit(self, source_anchors: torch.Tensor, target_anchors: torch.Tensor, target_norm: float | None = None):
        """Fit the inverse on the target anchors and fold in the source anchors (k × d_X, parallel).

        ``target_norm``: the norm of every output row (default: the target anchors' mean norm);
        ignored with centring, where the centred anchors' mean norm is used.
        """
        self._check_params()
        a_x, a_y = check_parallel(source_anchors, target_anchors)
        a_x = a_x.to(dtype=torch.promote_types(a_x.dtype, a_y.dtype))
        a_y = a_y.to(dtype=a_x.dtype)
        check_rows(a_x, "source anchors", allow_zero=True)
        source_mean = a_x.mean(dim=0) if self.center else torch.zeros_like(a_x[0])
        unit_x = l2_normalize(a_x - source_mean, "source anchors" + (" (after centring)" if self.center else ""))
        inverse = InverseRelativeProjection(**self.get_params()).fit(
            a_y,
            anchor_relative=unit_x @ unit_x.T if self.rcond == "auto" else None,
            target_norm=None if self.center else target_norm,  # the whole space's norm is of uncentred rows
        )
        self._set_state(
            map_=unit_x.T @ inverse.inverse_.mean(dim=0), source_mean_=source_mean,
            target_mean_=inverse.target_mean_, target_norm_=inverse.target_norm_, rcond_=inverse.rcond_,
            rcond_scores_=inverse.rcond_scores_, condition_numbers_=inverse.condition_numbers_,
            kept_condition_numbers_=inverse.kept_condition_numbers_, ranks_=inverse.ranks_,
            source_dim_=a_x.shape[1], target_dim_=a_y.shape[1],
        )
        return self

    def diagnostics(self) -> dict:
        return {
            **super().diagnostics(), "rcond_chosen": self.rcond_, "rcond_scores": self.rcond_scores_,
            "condition_numbers": self.condition_numbers_, "kept_condition_numbers": self.kept_condition_numbers_,
            "ranks": self.ranks_, "target_norm": self.target_norm_,
        }

    @property
    def tunes_on_anchors(self) -> bool:
        return self.rcond == "auto"

    def frozen(self) -> "IRP":
        if self.tunes_on_anchors:
            self.check_fitted()
        return IRP(**{**self.get_params(), "rcond": self.rcond_ if self.tunes_on_anchors else self.rcond})

    def fit_moments(self, moments, target_norm: float | None = None):
        """The folded map from sums over unit anchor rows (``AnchorMoments(unit=True)``, centred on
        the anchor means when ``center``): with Â_Y = UΣVᵀ, Â_Xᵀ(Â_Yᵀ)⁺ = (Â_XᵀÂ_Y) V Σ⁻² Vᵀ, and
        Â_YᵀÂ_Y = V Σ² V ᵀ gives V and Σ. Needs a numeric ``rcond``; no pruning (it needs the rows)."""
        self._check_params()
        if self.rcond == "auto" or self.prune_threshold or self.subspaces != 1:
            raise UsageError("an IRP fitted from sums needs a numeric rcond (chosen on a sample first) and no pruning")
        if not moments.unit:
            raise UsageError("IRP needs the sums of unit anchor rows (AnchorMoments(unit=True))")
        k, d_x, d_y = moments.n, moments.xy.shape[0], moments.xy.shape[1]
        check_fit_size(k, d_x, d_y)
        spectrum = Spectrum.from_gram(moments.yy)
        sigma, keep = spectrum.sigma, spectrum.kept(float(self.rcond))
        if k < d_y and not self.allow_rank_deficient:
            raise DataError(f"IRP needs at least d_Y={d_y} target anchors, got k={k}: use more anchors or "
                            "--allow-rank-deficient")
        folded = spectrum.solve_cross(moments.xy.T, float(self.rcond)).T  # (Â_Y⁺ Â_YᵀÂ_X)ᵀ
        full = k >= d_y and spectrum.sigma_min > 0
        condition = float(sigma[0]) / spectrum.sigma_min if full else float("inf")
        kept_condition = float(sigma[0] / sigma[keep][-1]) if bool(keep.any()) else float("inf")
        zeros_x, zeros_y = moments.xy.new_zeros(d_x), moments.xy.new_zeros(d_y)
        norm = moments.norm_y / k if self.center or target_norm is None else float(target_norm)
        self._set_state(
            map_=folded, source_mean_=moments.centre_x.to(folded) if self.center else zeros_x,
            target_mean_=moments.centre_y.to(folded) if self.center else zeros_y, target_norm_=norm,
            rcond_=float(self.rcond), rcond_scores_={}, condition_numbers_=[condition],
            kept_condition_numbers_=[kept_condition], ranks_=[int(keep.sum())], source_dim_=d_x, target_dim_=d_y,
        )
        return self

    def _check_state(self) -> None:
        d_x, d_y = self.map_.shape
        sizes = (self.source_mean_.shape[0], self.target_mean_.shape[0], self.source_dim_, self.target_dim_)
        if sizes != (d_x, d_y, d_x, d_y) or not self.target_norm_ > 0:
            raise FileFormatError(
                f"IRP state does not fit together: map_ {list(self.map_.shape)}, source_mean_ "
                f"{list(self.source_mean_.shape)}, target_mean_ {list(self.target_mean_.shape)}, target_norm_ {self.target_norm_}"
            )

    def transform(self, x: torch.Tensor, chunk_rows: int | None = DEFAULT_CHUNK_ROWS) -> torch.Tensor:
        """norm_rows((x − source_mean_) map_) · target_norm_ (+ target_mean_ when centring).

        Equals ``InverseRelativeProjection.transform(relative_projection(x, source_anchors))``
        (x̂'s row scaling cancels in the final normalisation) at one d_X × d_Y matmul per row.
        """
        x = self._check_input(x)
        like = dict(device=x.device, dtype=x.dtype)
        shift = self.source_mean_.to(**like) if self.center else None
        mean = self.target_mean_.to(**like) if self.center else None
        return _project_back(x, self.map_.to(**like), shift, self.target_norm_, mean, chunk_rows, "x")
