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
- ``r2``: max(−1, 1 − Σ_h ‖ŷ_h − y_h‖² / Σ_h ‖y_h − μ‖²), the share of the held-out rows' spread
  around μ that the predictions reproduce: 1 when exact, 0 for predicting μ, below 0 for rows
  that miss μ itself or the target's scale (what a classifier trained on the target space, or
  IRP's norm restoration, relies on; uncentred IRP on an anisotropic encoder fails exactly here);
- ``score`` = (mrr′ + recall10′ + r2) / 3 for the objective ``all``, (mrr′ + recall10′) / 2 for
  ``retrieval`` (see ``resolve_objective``), where ′ marks a figure corrected for chance,
  x′ = (x − c) / (1 − c) with c its value for predictions unrelated to the truth: c = H_k / k for
  mrr (a uniform rank among k; H_k the k-th harmonic number) and c = m / (k − 1) for recall10 (m
  of the k − 1 other rows drawn at random). So chance scores 0 at every k: without the correction
  a gallery of 64 anchors gives an unrelated translation ~0.08 (recall 10/63 is 0.16 by chance),
  and a weak translation from few anchors would look as good as a fair one from many. Each
  corrected figure is floored at −1, so ``score`` is in [-1, 1].

The objective ``all`` weighs reconstruction because a classifier trained on the target space needs
its offset and scale. ``retrieval`` leaves R² out: it rewards a map that shrinks its outputs
towards μ (least squares does, ridge more), and shrunk rows crowd around the rows nearest μ when
each translated row searches the target space (word translation lost up to 13 points of
precision@1 that way on the synthetic dictionaries of ``benchmarks/dictionary.py``). Where one
source row has several different target rows (a many-to-many dictionary), R² is no criterion at
all: no single prediction can reproduce two different rows, and least squares rewards predicting
their mean. So ``auto`` means ``retrieval`` for such anchors and ``all`` otherwise.
"""

from __future__ import annotations

import torch

from relcli.core import registry
from relcli.errors import UsageError

NEIGHBOURS = 10
SCORE_NAMES = ("score", "mrr", "top1", "recall10", "cosine", "r2")
OBJECTIVES = tuple(registry.OBJECTIVES)
#: at most this many held-out rows are scored per call (evenly spaced): an estimate, at a bounded cost
MAX_SCORED = 1024


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / torch.linalg.vector_norm(x, dim=1, keepdim=True).clamp_min(torch.finfo(x.dtype).tiny)


def _beyond_chance(value: float, chance: float) -> float:
    """max(−1, (value − chance) / (1 − chance)): 0 at chance, 1 when perfect."""
    return max(-1.0, (value - chance) / (1.0 - chance)) if chance < 1.0 else 0.0


def source_groups(source: torch.Tensor) -> torch.Tensor | None:
    """(k,) group of each anchor, anchors with the same source row in one group (a word that a
    many-to-many dictionary pairs with several translations); None when every row is distinct."""
    _, groups = torch.unique(source, dim=0, return_inverse=True)
    return groups if int(groups.max()) + 1 < source.shape[0] else None


def direction_groups(cosines: torch.Tensor) -> torch.Tensor | None:
    """``source_groups`` from the anchors' cosines to each other (k × k): anchors whose directions
    agree to 1e-6 are one group (computed cosines of equal rows may differ in the last bits)."""
    first = (cosines >= 1 - 1e-6).to(torch.int8).argmax(dim=1)  # each row's first twin (itself at the latest)
    return source_groups(first[:, None])


def check_objective(objective: str) -> None:
    """A ``UsageError`` unless ``objective`` is one of ``OBJECTIVES``."""
    if objective not in OBJECTIVES:
        raise UsageError(f"unknown objective {objective!r}; choose one of: {', '.join(OBJECTIVES)}")


def resolve_objective(objective: str, groups: torch.Tensor | None, targets: torch.Tensor) -> str:
    """``objective``, with ``auto`` made ``retrieval`` when some source row (``groups``, from
    ``source_groups``) is paired with different rows of ``targets`` (k × d): a many-to-many dictionary.
    Otherwise ``all``: a duplicated pair (a text that a corpus holds twice) is not a dictionary."""
    check_objective(objective)
    if objective != "auto":
        return objective
    if groups is None:
        return "all"
    _, rows = torch.unique(targets, dim=0, return_inverse=True)
    pairs = torch.stack([groups.to(rows), rows], dim=1)
    return "retrieval" if torch.unique(pairs, dim=0).shape[0] > int(groups.max()) + 1 else "all"


class Gallery:
    """The target anchors prepared once for many scorings: unit rows, their mean, and each row's
    nearest other rows (so scoring a prediction costs one h × k product).

    ``groups`` (``source_groups``): anchors that share a source row are one item with several right
    answers; a held-out anchor's rank does not count its siblings (the same prediction cannot be
    nearer to each of its translations than to the others). ``objective``: what ``score`` weighs
    (``resolve_objective``; resolved, as ``self.objective``)."""

    def __init__(self, targets: torch.Tensor, groups: torch.Tensor | None = None, objective: str = "auto"):
        targets = targets.to(torch.float64)
        self.groups = None if groups is None else groups.to(targets.device)
        self.objective = resolve_objective(objective, self.groups, targets)
        self.rows = targets
        self.unit = _unit(targets).to(torch.float32)  # similarities only rank: float32 is plenty
        self.mean = targets.mean(dim=0)
        self.neighbours_count = min(NEIGHBOURS, targets.shape[0] - 2)
        k = targets.shape[0]
        self.mrr_chance = float(torch.arange(1, k + 1, dtype=torch.float64).reciprocal().sum()) / k
        self.recall_chance = self.neighbours_count / (k - 1) if self.neighbours_count >= 1 else 0.0
        if self.neighbours_count >= 1:
            self.neighbours = torch.empty(targets.shape[0], self.neighbours_count, dtype=torch.long, device=targets.device)
            for start in range(0, targets.shape[0], 4096):
                sims = self.unit[start:start + 4096] @ self.unit.T
                rows = torch.arange(start, start + sims.shape[0], device=targets.device)
                sims[torch.arange(sims.shape[0]), rows] = -torch.inf
                self.neighbours[start:start + sims.shape[0]] = sims.topk(self.neighbours_count, dim=1).indices

    def scores(self, predicted: torch.Tensor, truth_rows: torch.Tensor) -> dict[str, float]:
        """Scores of ``predicted`` (h × d), whose truths are the gallery rows ``truth_rows`` (h,)."""
        truth_rows = truth_rows.to(self.rows.device)
        if len(truth_rows) > MAX_SCORED:
            pick = torch.linspace(0, len(truth_rows) - 1, MAX_SCORED, device=truth_rows.device).round().long()
            predicted, truth_rows = predicted[pick], truth_rows[pick]
        predicted = predicted.to(device=self.rows.device, dtype=torch.float64)
        sims = _unit(predicted).to(torch.float32) @ self.unit.T  # h × k
        own = sims.gather(1, truth_rows[:, None])
        above = sims > own
        if self.groups is not None:
            above &= self.groups[None, :] != self.groups[truth_rows][:, None]
        ranks = 1 + above.sum(dim=1)
        mrr = float((1.0 / ranks.to(torch.float64)).mean())  # ties count in the row's favour
        top1 = float((ranks == 1).to(torch.float64).mean())
        recall = 0.0
        m = self.neighbours_count
        if m >= 1:
            found = sims.scatter_(1, truth_rows[:, None], -torch.inf).topk(m, dim=1).indices
            hits = (found[:, :, None] == self.neighbours[truth_rows][:, None, :]).any(dim=2).sum(dim=1)
            recall = float(hits.to(torch.float64).mean() / m)
        truth = self.rows[truth_rows]
        cosine = float((_unit(predicted - self.mean) * _unit(truth - self.mean)).sum(dim=1).mean())
        spread = float((truth - self.mean).square().sum())
        r2 = max(-1.0, 1.0 - float((predicted - truth).square().sum()) / spread) if spread > 0 else 0.0
        retrieval = _beyond_chance(mrr, self.mrr_chance) + _beyond_chance(recall, self.recall_chance)
        score = retrieval / 2 if self.objective == "retrieval" else (retrieval + r2) / 3
        return {"score": score, "mrr": mrr, "top1": top1, "recall10": recall, "cosine": cosine, "r2": r2}


def anchor_scores(predicted: torch.Tensor, truth_rows: torch.Tensor, gallery: torch.Tensor | Gallery) -> dict[str, float]:
    """Scores of ``predicted`` (h × d) against ``gallery`` (k × d, or a prepared ``Gallery``), whose rows
    ``truth_rows`` (h,) are the truth."""
    prepared = gallery if isinstance(gallery, Gallery) else Gallery(gallery.to(predicted.device))
    return prepared.scores(predicted, truth_rows)


def fold_indices(k: int, folds: int, seed: int, groups: torch.Tensor | None = None) -> list[torch.Tensor]:
    """A seeded split of range(k) into ``folds`` held-out parts (CPU generator: the same on every device);
    with ``groups``, the groups are split and each anchor goes with its group (a word is never both
    fitted on and held out)."""
    if groups is None:
        order = torch.randperm(k, generator=torch.Generator().manual_seed(int(seed)))
        return [part for part in torch.tensor_split(order, min(folds, k)) if len(part) > 0]
    groups = groups.cpu()
    split = fold_indices(int(groups.max()) + 1, folds, seed)
    return [torch.isin(groups, part).nonzero().flatten() for part in split]


def mean_scores(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """Fold scores averaged, with ``spread`` = the standard deviation of ``score`` over folds."""
    keys = per_fold[0].keys()
    means = {key: sum(f[key] for f in per_fold) / len(per_fold) for key in keys}
    scores = torch.tensor([f["score"] for f in per_fold], dtype=torch.float64)
    means["spread"] = float(scores.std(unbiased=False)) if len(per_fold) > 1 else 0.0
    return means
