"""Ridge least squares with its penalty chosen by leave-one-out on the anchors (closed form).

For standardised anchors X (k × D, columns of unit variance) and targets Y (k × D'), the ridge
map R_λ = (XᵀX + λI)⁻¹XᵀY with λ = α·k (α is per anchor, so a grid of α means the same thing
for any k). With X = UΣVᵀ, the fitted values are Ŷ_λ = U diag(f) UᵀY with f_j = σ_j²/(σ_j²+λ)
and the leverage h_i = 1/k + Σ_j U_ij² f_j (the 1/k is the intercept: X and Y are centred on the
anchors' means, so without it every centred anchor would be a combination of the others and
leave-one-out would leak), so every anchor's leave-one-out prediction comes free:
ŷ_i^(−i) = y_i − (y_i − ŷ_i)/(1 − h_i). Each α is scored on those held-out predictions with the
anchor score (``relcli.core._scoring``); the best wins (the larger α among equals). Below k = d
this is what keeps a least-squares map from interpolating noise.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from relcli.core._linalg import gram_solve
from relcli.core._scoring import Gallery, source_groups

ALPHA_GRID = (0.0, 1e-4, 1e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def ridge_solve(gram: torch.Tensor, cross: torch.Tensor, penalty: float) -> torch.Tensor:
    """(XᵀX + λI)⁻¹ XᵀY from the sums (λ = ``penalty``, absolute: α·k); λ = 0 is the minimum-norm
    least-squares solution (directions of XᵀX below round-off, e.g. zero padding, left out)."""
    if penalty > 0:
        eye = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
        return torch.linalg.solve(gram + penalty * eye, cross)
    return gram_solve(gram, cross, 1e-7)


def ridge_loo(
    xs: torch.Tensor, ys: torch.Tensor, to_target: Callable[[torch.Tensor], torch.Tensor], gallery: torch.Tensor,
    grid: tuple[float, ...] = ALPHA_GRID, objective: str = "auto",
) -> tuple[torch.Tensor, float, dict[str, dict[str, float]]]:
    """(R (D × D'), the chosen α, every α's leave-one-out scores). ``to_target`` maps standardised
    predictions back to the target space, where they are scored against ``gallery`` (the raw target
    anchors) for ``objective``."""
    k = xs.shape[0]
    u, sigma, vh = torch.linalg.svd(xs, full_matrices=False)
    uty, u_squared = u.T @ ys, u.square()
    rows = torch.arange(k, device=xs.device)
    prepared = Gallery(gallery, source_groups(xs), objective)
    scores: dict[str, dict[str, float]] = {}
    for alpha in grid:
        denominator = sigma.square() + alpha * k
        shrink = torch.where(denominator > 0, sigma.square() / denominator.clamp_min(torch.finfo(sigma.dtype).tiny), 0.0)
        fitted = u @ (shrink[:, None] * uty)
        leverage = 1.0 / k + u_squared @ shrink
        if bool((leverage > 1 - 1e-6).any()):
            continue  # an anchor the fit interpolates has no leave-one-out prediction (α = 0 below k = d)
        held_out = ys - (ys - fitted) / (1 - leverage)[:, None]
        scores[f"{alpha:g}"] = prepared.scores(to_target(held_out), rows)
    best = max((a for a in grid if f"{a:g}" in scores), key=lambda a: (round(scores[f"{a:g}"]["score"], 12), a))
    denominator = sigma.square() + best * k
    gain = torch.where(denominator > 0, sigma / denominator.clamp_min(torch.finfo(sigma.dtype).tiny), 0.0)
    matrix = vh.T @ (gain[:, None] * uty)
    return matrix, float(best), scores
