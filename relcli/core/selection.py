"""Choosing a translator from the user's own anchors, and saying how good it will be.

K-fold cross-validation on the parallel anchors: each candidate (a method with options) is fitted
on K−1 folds and scored on how well it reproduces the held-out fold's target anchors among all k
(``relcli.core._scoring``). The candidate with the best mean score wins and is refitted on every
anchor. Its mean held-out score is the **quality estimate**; its spread over folds comes with it.
The fold models also give a **per-row confidence**: how much the K fold translations of a row agree
with the full model's (rows that the anchors pin down agree; rows far from every anchor do not).

``--method auto`` cross-validates every candidate of ``AUTO_CANDIDATES``; an explicit method is
cross-validated alone, so it gets the same estimate. The score weighs what ``objective`` says
(``relcli.core._scoring``): retrieval and reconstruction, or retrieval alone (word translation).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from relcli.core._scoring import Gallery, check_objective, fold_indices, mean_scores, resolve_objective, source_groups
from relcli.core.registry import make_translator
from relcli.errors import DataError, RelcliError

FOLDS = 5
MIN_ANCHORS = 10
#: the candidates of ``--method auto``: every method, IRP both uncentred and centred (and allowed
#: fewer anchors than dimensions: cross-validation decides), Procrustes after standard scaling (right
#: where some units hardly vary, as dead ReLU units) and after isotropic scaling (the rigid map: right
#: where one space is a rotated copy of the other whose dimensions vary unequally, as word vectors).
#: ``affine`` is left out: with standard scaling it equals ``linear``.
AUTO_CANDIDATES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("irp", {"center": False, "allow_rank_deficient": True}),
    ("irp", {"center": True, "allow_rank_deficient": True}),
    ("procrustes", {}),
    ("procrustes", {"scaling": "isotropic"}),
    ("linear", {}),
    ("ortho-linear", {}),
)
#: below this estimated score a translation is called poor and a warning says so (see README).
POOR_SCORE = 0.2


def describe(method: str, options: dict[str, Any]) -> str:
    """'irp (center)', 'procrustes': how a candidate is named in reports."""
    flags = [name if value is True else f"{name}={value}" for name, value in options.items() if value not in (None, False)]
    return f"{method} ({', '.join(flags)})" if flags else method


@dataclass
class Candidate:
    """One cross-validated candidate: its held-out scores, or why it could not be fitted."""

    method: str
    options: dict[str, Any]
    scores: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    fold_models: list = field(default_factory=list, repr=False)
    full_model: Any = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return describe(self.method, self.options)

    def record(self) -> dict[str, Any]:
        """JSON-able, for provenance."""
        return {"method": self.method, "options": self.options, **({"error": self.error} if self.error else self.scores)}


@dataclass
class Selection:
    """The chosen, refitted translator, the estimate, and every candidate's record."""

    translator: Any
    chosen: Candidate
    candidates: list[Candidate]
    output_mean: torch.Tensor = field(repr=False, default=None)
    anchors: int = 0
    #: what the score weighed: "all" or "retrieval" (``relcli.core._scoring.resolve_objective``)
    objective: str = "all"

    @property
    def estimate(self) -> dict[str, float]:
        return self.chosen.scores

    def record(self) -> dict[str, Any]:
        return {"chosen": self.chosen.name, "objective": self.objective, "estimate": self.estimate,
                "folds": len(self.chosen.fold_models), "anchors": self.anchors,
                "candidates": [c.record() for c in self.candidates]}

    def confidence(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-row agreement of the fold models with the full model's translation ``y`` of ``x``:
        mean_f cos(T_f(x) − μ, y − μ), μ = the full model's mean output over the anchors. In [-1, 1]."""
        mean = self.output_mean
        reference = y - mean.to(y)
        reference = reference / torch.linalg.vector_norm(reference, dim=1, keepdim=True).clamp_min(torch.finfo(y.dtype).tiny)
        total = torch.zeros(x.shape[0], dtype=y.dtype, device=y.device)
        for model in self.chosen.fold_models:
            other = model.transform(x, chunk_rows=None) - mean.to(y)
            other = other / torch.linalg.vector_norm(other, dim=1, keepdim=True).clamp_min(torch.finfo(y.dtype).tiny)
            total += (other * reference).sum(dim=1)
        return total / max(len(self.chosen.fold_models), 1)


def _cross_validate(candidate: Candidate, source, target, seed: int, target_norm, folds: int,
                    gallery: Gallery) -> None:
    """Fill ``candidate.scores`` (mean held-out scores and spread), its fold models and, where the
    folds needed it, its model fitted on every anchor; or its error.

    What a method chooses from data (IRP's cut-off, linear's ridge penalty) is chosen once, by the
    fit on every anchor (which cross-validates it itself), and held fixed in the folds
    (``Translator.frozen``): not nested, so an estimate may be a little optimistic for such methods,
    at a fifth of the cost of nesting. A method that chooses nothing is fitted on every anchor only
    if it wins (``select_translator``). ``gallery``: the target anchors as a ``Gallery``, whose
    objective the methods that tune on the anchors are given too.
    """
    k = source.shape[0]
    per_fold, models = [], []
    try:
        template = make_translator(candidate.method, seed=seed, objective=gallery.objective, **candidate.options)
        full = template.fit(source, target, target_norm) if template.tunes_on_anchors else None
        for held in fold_indices(k, folds, seed, gallery.groups):
            kept = torch.ones(k, dtype=torch.bool)
            kept[held] = False
            kept = kept.to(source.device)
            model = template.frozen()
            if candidate.method == "irp":  # a fold has fewer anchors than the whole set
                model.allow_rank_deficient, model.subspaces = True, min(model.subspaces, int(kept.sum()))
            model.fit(source[kept], target[kept], target_norm)
            per_fold.append(gallery.scores(model.transform(source[held.to(source.device)], chunk_rows=None), held))
            models.append(model)
    except RelcliError as exc:
        candidate.error = exc.message
        return
    candidate.scores, candidate.fold_models, candidate.full_model = mean_scores(per_fold), models, full


def select_translator(
    source: torch.Tensor,
    target: torch.Tensor,
    method: str = "auto",
    options: dict[str, Any] | None = None,
    seed: int = 0,
    target_norm: float | None = None,
    folds: int = FOLDS,
    objective: str = "auto",
) -> Selection:
    """Cross-validate ``method`` (or every auto candidate) on parallel anchors and refit the best.

    ``options`` given by the user (None = the method's default) apply to every candidate that
    takes them and rule out the candidates that contradict them (``center=True`` keeps only the
    centred IRP). ``objective``: what the score weighs (``relcli.core._scoring.resolve_objective``:
    ``auto`` is retrieval for anchors that pair a source row with several target rows). With fewer
    than MIN_ANCHORS anchors nothing can be held out: the estimate is then empty and ``auto`` takes
    procrustes.
    """
    from relcli.core.registry import options_of

    check_objective(objective)
    given = {name: value for name, value in (options or {}).items() if value is not None}
    if method == "auto":
        pool = []
        for name, defaults in AUTO_CANDIDATES:
            accepted = options_of(name)
            if any(name_ in given and given[name_] != value for name_, value in defaults.items()):
                continue
            merged = {**defaults, **{o: v for o, v in given.items() if o in accepted}}
            if (name, merged) not in pool:
                pool.append((name, merged))
        make_translator(pool[0][0], seed=seed, **{o: v for o, v in given.items() if o in options_of(pool[0][0])})
    else:
        make_translator(method, seed=seed, **given)  # a usage error before any work
        pool = [(method, given)]
    candidates = [Candidate(name, opts) for name, opts in pool]
    for rows, side in ((source, "source"), (target, "target")):
        if rows.shape[0] > 1 and bool((rows == rows[:1]).all()):
            raise DataError(f"the {side} anchors are all one vector: nothing to learn a translation from")
    groups = source_groups(source)
    objective = resolve_objective(objective, groups, target)
    if source.shape[0] >= MIN_ANCHORS:
        gallery = Gallery(target, groups, objective)  # the same for every candidate
        for candidate in candidates:
            _cross_validate(candidate, source, target, seed, target_norm, folds, gallery)
        scored = [c for c in candidates if c.error is None]
        if not scored:
            raise DataError(f"no method could be fitted on the anchors: {candidates[0].name}: {candidates[0].error}")
        chosen = max(scored, key=lambda c: round(c.scores["score"], 12))
    else:
        chosen = candidates[0] if method != "auto" else Candidate("procrustes", {})
    translator = chosen.full_model
    if translator is None:
        try:
            translator = make_translator(chosen.method, seed=seed, objective=objective, **chosen.options).fit(
                source, target, target_norm)
        except DataError as exc:
            if not chosen.scores:
                raise
            raise DataError(f"no method could be fitted on the anchors: {chosen.name}: {exc.message}") from None
    return Selection(translator, chosen, candidates, translator.transform(source, chunk_rows=None).mean(dim=0),
                     source.shape[0], objective)
