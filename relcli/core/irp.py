"""Inverse relative projection (IRP): from relative rows back to a target space.

Maiorca et al. 2024. With parallel target anchors Â_Y (k × d_Y, rows unit-normalised, optionally
centred first), a cosine relative row r ≈ ŷ Â_Yᵀ, so the least-squares direction is
ŷ = r (Â_Yᵀ)⁺, with the pseudo-inverse taken by SVD and a relative cut-off on small singular
values. Rows are then normalised and rescaled to the target's mean norm (decoders are largely
scale invariant), and the target anchor mean is added back when centring was used.

Conditioning aids from the paper: prune near-collinear anchors by farthest-point sampling (FPS)
with distance 1 − |cos| and threshold δ, repeat over ω pruned subsets ("subspaces") and average
the reconstructions before the final row normalisation.

With parallel source anchors the whole source → relative → target chain is linear up to row
scalings, so it folds into one d_X × d_Y matrix: translate(x) = norm_rows(x̂ Â_Xᵀ P̄), with
P̄ = mean_s P_s. One n × d_X × d_Y matmul replaces the two n × k × d matmuls.
"""

from __future__ import annotations

import torch

from relcli.core._common import DEFAULT_CHUNK_ROWS, check_matrix, check_rows, l2_normalize, row_chunks
from relcli.core._estimator import Estimator
from relcli.errors import DataError, NotFittedError, UsageError

# 1 − |cos| below this (computed in float64) is round-off: the two anchors are duplicates or
# exactly (anti)collinear, i.e. at distance 0 for FPS.
_FPS_ZERO_DISTANCE = 1e-12
# A reconstructed row whose norm is this close to the round-off level of its matmul carries no
# direction: ‖y‖ ≤ _ZERO_ROW_FACTOR · eps · ‖input row‖ · ‖map‖_F is reported as a zero row.
_ZERO_ROW_FACTOR = 32.0


def _rows(indices: torch.Tensor, limit: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    more = f" and {len(indices) - limit} more" if len(indices) > limit else ""
    return f"{len(indices)} row(s) ({shown}{more})"


def farthest_point_subset(unit_anchors: torch.Tensor, threshold: float, seed: int) -> torch.Tensor:
    """Boolean mask (k,) of anchors chosen by FPS with distance D_ij = 1 − |cos(a_i, a_j)|.

    Starts from a random anchor (CPU generator seeded with ``seed``, so every device picks the
    same) and keeps adding the anchor farthest from the chosen set while that min-distance is
    > ``threshold``. Duplicates and antipodal anchors are at distance 0, so with threshold ≥ 0
    no two of them are ever both chosen. Computed in float64 on the CPU; k × k memory.
    """
    a = unit_anchors.detach().to(device="cpu", dtype=torch.float64)
    k = a.shape[0]
    gram = a @ a.T
    diag = gram.diagonal().sqrt()
    cos = (gram / diag[:, None] / diag[None, :]).clamp_(-1.0, 1.0)
    dist = 1.0 - cos.abs_()
    dist[dist < _FPS_ZERO_DISTANCE] = 0.0
    generator = torch.Generator().manual_seed(int(seed))
    first = int(torch.randint(k, (1,), generator=generator))
    chosen = torch.zeros(k, dtype=torch.bool)
    chosen[first] = True
    min_dist = dist[first].clone()
    min_dist[first] = -1.0
    for _ in range(k - 1):
        j = int(torch.argmax(min_dist))  # first index among ties: deterministic
        if not float(min_dist[j]) > threshold:
            break
        chosen[j] = True
        torch.minimum(min_dist, dist[j], out=min_dist)
        min_dist[chosen] = -1.0
    return chosen


RCOND_GRID = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.2, 0.3, 0.5)
AUTO_FOLDS = 5
AUTO_MIN_ANCHORS = 10
FALLBACK_RCOND = 1e-3  # used by "auto" when there is nothing to cross-validate on


def select_rcond(
    anchor_relative: torch.Tensor,
    unit_targets: torch.Tensor,
    grid: tuple[float, ...] = RCOND_GRID,
    folds: int = AUTO_FOLDS,
    seed: int = 0,
) -> tuple[float, dict[str, dict[str, float]]]:
    """Choose IRP's cut-off by k-fold cross-validation over the anchors themselves.

    For each fold H (seeded split of the k anchors) and each cut-off c: invert the held-out
    anchors' relative rows restricted to the other anchors' columns, Ŷ_H = R[H, F] (Â_{Y,F}ᵀ)⁺_c,
    and score how well it reconstructs the true held-out target anchors: score = MRR of
    retrieving ŷ_h among all held-out targets by cosine + mean row cosine cos(ŷ_h, y_h). Both
    matter: on real encoders retrieval peaks at small cut-offs and direction (what a stitched
    classifier needs) at larger ones; their sum picked the best stitching cut-off on sample_data.
    ``anchor_relative`` is the k × k relative matrix of the anchor items (row i: item i against
    every anchor); ``unit_targets`` the row-normalised (centred) target anchors. Returns the
    best cut-off (smallest among equals) and every cut-off's mean scores.
    """
    k = unit_targets.shape[0]
    device, dtype = unit_targets.device, unit_targets.dtype
    order = torch.randperm(k, generator=torch.Generator().manual_seed(int(seed))).to(device)
    parts = [p for p in torch.tensor_split(order, min(folds, k)) if len(p) > 1]
    totals = {c: torch.zeros(2, dtype=torch.float64) for c in grid}
    for held in parts:
        kept = torch.ones(k, dtype=torch.bool, device=device)
        kept[held] = False
        u, sigma, vh = torch.linalg.svd(unit_targets[kept], full_matrices=False)
        projected = anchor_relative[held][:, kept].to(dtype) @ u
        truth = unit_targets[held]
        for c in grid:
            keep = sigma > c * sigma[0]
            y = (projected[:, keep] / sigma[keep]) @ vh[keep]
            y = y / torch.linalg.vector_norm(y, dim=1, keepdim=True).clamp_min(torch.finfo(dtype).tiny)
            sims = y @ truth.T
            diagonal = sims.diagonal()
            ranks = 1 + (sims > diagonal[:, None]).sum(dim=1)
            totals[c] += torch.tensor([float((1.0 / ranks).mean()), float(diagonal.mean())], dtype=torch.float64)
    scores = {f"{c:g}": {"mrr": float(t[0]) / len(parts), "cosine": float(t[1]) / len(parts)} for c, t in totals.items()}
    for value in scores.values():
        value["score"] = value["mrr"] + value["cosine"]
    best = max(grid, key=lambda c: (round(scores[f"{c:g}"]["score"], 12), -c))
    return float(best), scores


class IRP(Estimator):
    """Inverse relative projection onto target anchors, optionally folded with source anchors.

    Parameters: ``rcond`` relative SVD cut-off (σ ≤ rcond·σ_max dropped), or ``"auto"`` to choose it
    by cross-validation on the anchors (:func:`select_rcond`); ``center`` centre the
    anchors (and inputs) on their anchor means; ``prune_threshold`` δ and ``n_subspaces`` ω of the
    FPS pruning (δ = 0, ω = 1: every anchor, plain pseudo-inverse); ``allow_rank_deficient`` accept
    fewer than d_Y independent anchors (minimum-norm solution inside their span); ``seed`` of FPS.

    Learned state: ``subsets_`` (ω, k) bool, ``inverse_`` (ω, k, d_Y) with P_s = (Â_{Y,S}ᵀ)⁺ and
    zero rows outside S, per subspace ``condition_numbers_`` (σ_max/σ_min of Â_{Y,S}),
    ``kept_condition_numbers_`` (σ_max over the smallest singular value kept: what the inverse
    really amplifies, at most 1/rcond) and ``ranks_``, ``target_norm_``,
    ``target_mean_`` (zeros unless centring); with source anchors also ``source_mean_`` and the
    folded map ``map_`` (d_X × d_Y) = mean_s Â_Xᵀ P_s.
    """

    def __init__(
        self,
        rcond: float | str = "auto",
        center: bool = False,
        prune_threshold: float = 0.0,
        n_subspaces: int = 1,
        allow_rank_deficient: bool = False,
        seed: int = 0,
    ):
        self.rcond = rcond
        self.center = center
        self.prune_threshold = prune_threshold
        self.n_subspaces = n_subspaces
        self.allow_rank_deficient = allow_rank_deficient
        self.seed = seed

    def _check_params(self) -> None:
        if self.rcond != "auto" and not (isinstance(self.rcond, (int, float)) and 0.0 <= float(self.rcond) < 1.0):
            raise UsageError(f"rcond must be 'auto' or a number in [0, 1), got {self.rcond!r}")
        if not 0.0 <= float(self.prune_threshold) <= 1.0:
            raise UsageError(
                f"prune_threshold must be in [0, 1] (a 1 − |cos| distance), got {self.prune_threshold}"
            )
        if int(self.n_subspaces) != self.n_subspaces or self.n_subspaces < 1:
            raise UsageError(f"n_subspaces must be an integer ≥ 1, got {self.n_subspaces}")

    def fit(
        self,
        target_anchors: torch.Tensor,
        source_anchors: torch.Tensor | None = None,
        target_norm: float | None = None,
        anchor_relative: torch.Tensor | None = None,
    ) -> "IRP":
        """Pseudo-inverses of the (pruned) target anchors, and the folded map if sources are given.

        ``target_norm`` is the norm every output row gets (of its centred part when centring);
        by default the mean L2 norm of the (centred) target anchors. ``rcond="auto"`` picks the
        cut-off with :func:`select_rcond`, which needs the anchors' own relative rows: computed
        from ``source_anchors``, or given as ``anchor_relative`` (k × k, anchor order). The choice
        is ``rcond_``, the scores of every candidate ``rcond_scores_`` (empty when there was nothing
        to cross-validate on: no source anchors nor anchor_relative, or fewer than 10 anchors; the
        cut-off is then FALLBACK_RCOND).
        """
        self._check_params()
        a_y = check_matrix(target_anchors, "target anchors")
        check_rows(a_y, "target anchors", allow_zero=True)
        k, d_y = a_y.shape
        a_x = None
        if source_anchors is not None:
            a_x = check_matrix(source_anchors, "source anchors").to(device=a_y.device, dtype=a_y.dtype)
            if a_x.shape[0] != k:
                raise DataError(
                    f"source anchors have shape {tuple(a_x.shape)} but target anchors have shape "
                    f"{tuple(a_y.shape)}: parallel anchors need the same number of rows"
                )
            check_rows(a_x, "source anchors", allow_zero=True)

        zeros_y = torch.zeros(d_y, device=a_y.device, dtype=a_y.dtype)
        target_mean = a_y.mean(dim=0) if self.center else zeros_y
        a_y_c = a_y - target_mean if self.center else a_y
        suffix = " (after centring)" if self.center else ""
        unit_y = l2_normalize(a_y_c, "target anchors" + suffix)
        if a_x is not None:
            source_mean = a_x.mean(dim=0) if self.center else torch.zeros_like(a_x[0])
            unit_x = l2_normalize(a_x - source_mean if self.center else a_x, "source anchors" + suffix)

        if self.rcond == "auto":
            if anchor_relative is None and a_x is not None:
                anchor_relative = unit_x @ unit_x.T
            if anchor_relative is not None and tuple(anchor_relative.shape) != (k, k):
                raise DataError(f"anchor_relative must be {k} x {k} (anchors x anchors), got {tuple(anchor_relative.shape)}")
            if anchor_relative is not None and k >= AUTO_MIN_ANCHORS:
                self.rcond_, self.rcond_scores_ = select_rcond(anchor_relative.to(a_y.device), unit_y, seed=self.seed)
            else:
                self.rcond_, self.rcond_scores_ = FALLBACK_RCOND, {}
        else:
            self.rcond_, self.rcond_scores_ = float(self.rcond), {}

        omega, delta = int(self.n_subspaces), float(self.prune_threshold)
        if delta == 0.0 and omega == 1:
            masks = [torch.ones(k, dtype=torch.bool)]
        else:
            masks = [farthest_point_subset(unit_y, delta, self.seed + s) for s in range(omega)]

        inverse = torch.zeros(omega, k, d_y, device=a_y.device, dtype=a_y.dtype)
        conditions, kept_conditions, ranks = [], [], []
        for s, mask in enumerate(masks):
            sub = unit_y[mask.to(a_y.device)]
            p_s, condition, kept_condition, rank = self._pinv_transpose(sub, k, d_y, delta, omega)
            inverse[s, mask.to(a_y.device)] = p_s
            conditions.append(condition)
            kept_conditions.append(kept_condition)
            ranks.append(rank)

        self.subsets_ = torch.stack(masks).to(a_y.device)
        self.inverse_ = inverse
        self.condition_numbers_ = conditions
        self.kept_condition_numbers_ = kept_conditions
        self.ranks_ = ranks
        if target_norm is None:
            target_norm = float(torch.linalg.vector_norm(a_y_c, dim=1).mean())
        elif not float(target_norm) > 0.0:
            raise DataError(f"target_norm must be a positive number, got {target_norm}")
        self.target_norm_ = float(target_norm)
        self.target_mean_ = target_mean
        if a_x is not None:
            self.source_mean_ = source_mean
            # mean_s Â_Xᵀ P_s = Â_Xᵀ (mean_s P_s): the whole project-then-invert chain in one map.
            self.map_ = unit_x.T @ inverse.mean(dim=0)
        return self

    def _pinv_transpose(self, unit_sub: torch.Tensor, k: int, d_y: int, delta: float, omega: int):
        """P = (Âᵀ)⁺ = U Σ⁻¹ Vᵀ for Â = U Σ Vᵀ (k_S × d_Y), keeping σ > rcond·σ_max."""
        k_s = unit_sub.shape[0]
        u, sigma, vh = torch.linalg.svd(unit_sub, full_matrices=False)
        sigma_max = float(sigma[0]) if len(sigma) else 0.0
        keep = sigma > self.rcond_ * sigma_max
        rank = int(keep.sum())
        sigma_min = float(sigma[-1]) if len(sigma) else 0.0
        full = k_s >= d_y and sigma_min > 0.0
        condition = sigma_max / sigma_min if full else float("inf")
        if k_s < d_y and not self.allow_rank_deficient:
            pruned = (
                f" after pruning (prune_threshold={delta}, n_subspaces={omega}: lower the threshold)"
                if k_s < k else ""
            )
            raise DataError(
                f"IRP needs at least d_Y={d_y} target anchors, got k={k_s}"
                f"{pruned} (rank {rank} at rcond={self.rcond_:g}): use more anchors (≥ d_Y, ideally "
                f"2·d_Y) or accept a rank-deficient inverse (allow_rank_deficient=True; CLI --allow-rank-deficient)"
            )
        p_s = (u[:, keep] / sigma[keep]) @ vh[keep]
        kept_condition = sigma_max / float(sigma[keep][-1]) if rank else float("inf")
        return p_s, condition, kept_condition, rank

    # -- applying ---------------------------------------------------------------------------

    def _finish(self, y: torch.Tensor, inputs: torch.Tensor, map_norm: float, offset: int, what: str):
        """Normalise rows of y, rescale to target_norm_, add the target mean; zero rows → error."""
        norms = torch.linalg.vector_norm(y, dim=1, keepdim=True)
        eps = torch.finfo(y.dtype).eps
        floor = torch.linalg.vector_norm(inputs, dim=1, keepdim=True).mul_(_ZERO_ROW_FACTOR * eps * map_norm)
        good = torch.isfinite(norms) & (norms > floor)
        if not bool(good.all()):
            nonfinite = (~torch.isfinite(inputs)).any(dim=1)
            if bool(nonfinite.any()):
                raise DataError(f"{what} has NaN/Inf in {_rows(nonfinite.nonzero().flatten() + offset)}")
            zero = (inputs == 0).all(dim=1)
            if bool(zero.any()):
                note = " after centring (equal to the source anchor mean)" if self.center and what == "x" else ""
                raise DataError(
                    f"{what} has all-zero {_rows(zero.nonzero().flatten() + offset)}{note}: "
                    "their direction is undefined"
                )
            bad = (~good).flatten().nonzero().flatten() + offset
            raise DataError(
                f"reconstructed {_rows(bad)} are zero: those {what} rows are (numerically) "
                "orthogonal to every target anchor direction, so they have no direction in the "
                "target space; drop them"
            )
        y.mul_(self.target_norm_ / norms)
        if self.center:
            y.add_(self.target_mean_.to(device=y.device, dtype=y.dtype))
        return y

    def transform(self, relative: torch.Tensor, chunk_rows: int | None = DEFAULT_CHUNK_ROWS) -> torch.Tensor:
        """Ŷ = norm_rows(mean_s R P_s) · target_norm_ (+ target_mean_) for cosine rows R (n × k).

        R must be the cosine relative rows (one block, anchor order) w.r.t. the source anchors
        that are parallel to the fitted target anchors, centred the same way.
        """
        self.check_fitted()
        relative = check_matrix(relative, "relative rows")
        k = self.inverse_.shape[1]
        if relative.shape[1] != k:
            raise DataError(
                f"relative rows have shape {tuple(relative.shape)} but IRP was fitted on {k} "
                f"anchors (inverse shape {tuple(self.inverse_.shape)}): the columns must be the "
                "cosine similarities to those anchors, in order"
            )
        inverse = self.inverse_.to(device=relative.device, dtype=relative.dtype)
        inverse = inverse[0] if inverse.shape[0] == 1 else inverse.mean(dim=0)
        return self._apply(relative, inverse, None, chunk_rows, "relative rows")

    def translate(self, x: torch.Tensor, chunk_rows: int | None = DEFAULT_CHUNK_ROWS) -> torch.Tensor:
        """Source rows straight to the target: norm_rows((x − source_mean_) map_) · target_norm_.

        Equals ``transform(relative_projection(x, source_anchors, center=center))`` (x̂'s row
        scaling cancels in the final normalisation) at one d_X × d_Y matmul per row.
        """
        self.check_fitted()
        if not hasattr(self, "map_"):
            raise NotFittedError(
                "IRP was fitted without source anchors: fit with source_anchors to translate directly"
            )
        x = check_matrix(x, "x")
        d_x = self.map_.shape[0]
        if x.shape[1] != d_x:
            raise DataError(
                f"x has shape {tuple(x.shape)} but the source anchors had {d_x} columns "
                f"(map shape {tuple(self.map_.shape)}): they must have the same dimension"
            )
        folded = self.map_.to(device=x.device, dtype=x.dtype)
        mean = self.source_mean_.to(device=x.device, dtype=x.dtype) if self.center else None
        return self._apply(x, folded, mean, chunk_rows, "x")

    def _apply(self, inputs, matrix, mean, chunk_rows, what):
        n = inputs.shape[0]
        out = torch.empty(n, matrix.shape[1], device=inputs.device, dtype=inputs.dtype)
        map_norm = float(torch.linalg.matrix_norm(matrix))  # Frobenius: cheap bound on ‖·‖₂
        for rows in row_chunks(n, chunk_rows):
            chunk = inputs[rows] if mean is None else inputs[rows] - mean
            y = torch.mm(chunk, matrix, out=out[rows])
            self._finish(y, chunk, map_norm, rows.start, what)
        return out
