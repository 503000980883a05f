"""The one score of how well predicted rows reproduce held-out target anchors.

Every choice relcli makes from the user's own anchors (IRP's cut-off, the ridge penalty of
``linear``, the method of ``--method auto``) and the quality estimate it reports use this score,
so they agree on what "good" means. For held-out anchors h with predictions ŷ_h and true target
rows y_h, searched among all k target anchors (a gallery, as a search index would be):

- ``mrr``: mean 1/rank of y_h among the gallery by cosine to ŷ_h (rank 1 = found first);
- ``top1``: fraction with rank 1;
- ``recall10``: mean |N₁₀(ŷ_h) ∩ N₁₀(y_h)| / 10, N₁₀ = the 10 nearest other gallery rows by cosine
  (y_h itself left out of both): whether neighbourhoods survive, what search users see;
- ``cosine``: mean cos(ŷ_h − μ, y_h − μ), μ = the gallery mean: direction, without the shared
  offset that makes every row of an anisotropic encoder look alike (predicting μ itself scores 0);
- ``score`` = (mrr + recall10 + cosine) / 3, in [-1/3, 1]; chance is about 0.
"""

from __future__ import annotations

import torch

NEIGHBOURS = 10
SCORE_NAMES = ("score", "mrr", "top1", "recall10", "cosine")


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def anchor_scores(predicted: torch.Tensor, truth_rows: torch.Tensor, gallery: torch.Tensor) -> dict[str, float]:
    """Scores of ``predicted`` (h × d) against ``gallery`` (k × d), whose rows ``truth_rows`` (h,) are the truth."""
    work = torch.float64
    predicted, gallery = predicted.to(work), gallery.to(device=predicted.device, dtype=work)
    truth_rows = truth_rows.to(predicted.device)
    k = gallery.shape[0]
    unit_gallery = _unit(gallery)
    sims = _unit(predicted) @ unit_gallery.T  # h × k
    own = sims.gather(1, truth_rows[:, None])
    ranks = 1 + (sims > own).sum(dim=1)
    mrr = float((1.0 / ranks.to(work)).mean())
    top1 = float((ranks == 1).to(work).mean())

    m = min(NEIGHBOURS, k - 2)
    recall = 0.0
    if m >= 1:
        own_cols = truth_rows[:, None]
        pred_sims = sims.scatter(1, own_cols, -torch.inf)
        true_sims = (unit_gallery[truth_rows] @ unit_gallery.T).scatter(1, own_cols, -torch.inf)
        pred_nn = pred_sims.topk(m, dim=1).indices
        true_nn = true_sims.topk(m, dim=1).indices
        hits = (pred_nn[:, :, None] == true_nn[:, None, :]).any(dim=2).sum(dim=1)
        recall = float(hits.to(work).mean() / m)

    mean = gallery.mean(dim=0)
    cosine = float((_unit(predicted - mean) * _unit(gallery[truth_rows] - mean)).sum(dim=1).mean())
    return {"score": (mrr + recall + cosine) / 3, "mrr": mrr, "top1": top1, "recall10": recall, "cosine": cosine}


def fold_indices(k: int, folds: int, seed: int) -> list[torch.Tensor]:
    """A seeded split of range(k) into ``folds`` held-out parts (CPU generator: the same on every device)."""
    order = torch.randperm(k, generator=torch.Generator().manual_seed(int(seed)))
    return [part for part in torch.tensor_split(order, min(folds, k)) if len(part) > 0]


def mean_scores(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """Fold scores averaged, with ``spread`` = the standard deviation of ``score`` over folds."""
    keys = per_fold[0].keys()
    means = {key: sum(f[key] for f in per_fold) / len(per_fold) for key in keys}
    scores = torch.tensor([f["score"] for f in per_fold], dtype=torch.float64)
    means["spread"] = float(scores.std(unbiased=False)) if len(per_fold) > 1 else 0.0
    return means
