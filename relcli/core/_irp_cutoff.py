"""How IRP picks what to invert: FPS pruning of collinear anchors and the cut-off by cross-validation.

Both work on unit-normalised (optionally centred) target anchors; see ``relcli.core.irp``.
"""

from __future__ import annotations

import torch

from relcli.core._linalg import Spectrum
from relcli.core._scoring import Gallery, direction_groups, fold_indices, mean_scores

# 1 − |cos| below this (computed in float64) is round-off: the two anchors are duplicates or
# exactly (anti)collinear, i.e. at distance 0 for FPS.
_FPS_ZERO_DISTANCE = 1e-12


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
    objective: str = "auto",
) -> tuple[float, dict[str, dict[str, float]]]:
    """Choose IRP's cut-off by k-fold cross-validation over the anchors themselves.

    For each fold H (seeded split of the k anchors) and each cut-off c: invert the held-out
    anchors' relative rows restricted to the other anchors' columns, Ŷ_H = R[H, F] (Â_{Y,F}ᵀ)⁺_c,
    and score how well it reproduces the true held-out target anchors among all k of them
    (``relcli.core._scoring.anchor_scores``: retrieval, neighbourhoods and direction; on real
    encoders retrieval peaks at small cut-offs and direction, what a stitched classifier needs,
    at larger ones). ``anchor_relative`` is the k × k relative matrix of the anchor items (row i:
    item i against every anchor); ``unit_targets`` the row-normalised (centred) target anchors.
    ``objective``: what the score weighs (``relcli.core._scoring``).
    Returns the best cut-off (smallest among equals) and every cut-off's mean scores.
    """
    k = unit_targets.shape[0]
    device, dtype = unit_targets.device, unit_targets.dtype
    per_cut: dict[float, list[dict[str, float]]] = {c: [] for c in grid}
    gallery = Gallery(unit_targets, direction_groups(anchor_relative), objective)  # one source direction: one group
    for held in fold_indices(k, folds, seed, gallery.groups):
        held = held.to(device)
        kept = torch.ones(k, dtype=torch.bool, device=device)
        kept[held] = False
        # Ŷ_H,c = R[H, F] (Â_Fᵀ)⁺_c = (Â_F⁺_c R[H, F]ᵀ)ᵀ: one decomposition of Â_F for every cut-off
        spectrum = Spectrum.of(unit_targets[kept], min(grid))
        solutions = spectrum.solutions(anchor_relative[held][:, kept].to(dtype).T, grid)
        by_rank: dict[int, dict[str, float]] = {}  # cut-offs that keep the same σ predict the same rows
        for c, solution in zip(grid, solutions):
            rank = int(spectrum.kept(c).sum())
            if rank not in by_rank:
                predicted = solution.T
                tiny = torch.finfo(predicted.dtype).tiny
                unit = predicted / torch.linalg.vector_norm(predicted, dim=1, keepdim=True).clamp_min(tiny)
                by_rank[rank] = gallery.scores(unit, held)  # unit rows, as IRP's output is (up to its norm)
            per_cut[c].append(by_rank[rank])
    scores = {f"{c:g}": mean_scores(folds_of_c) for c, folds_of_c in per_cut.items()}
    best = max(grid, key=lambda c: (round(scores[f"{c:g}"]["score"], 12), -c))
    return float(best), scores
