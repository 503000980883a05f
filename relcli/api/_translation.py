"""Fitting (or loading) a translator from files: what ``translate`` and ``stitch run`` share.

The fit goes through ``relcli.core.selection``: the method (or, with ``auto``, every candidate) is
cross-validated on the parallel anchors, so every fitted translation comes with a quality
estimate, a one-line summary, a warning when it is poor, and fold models for per-row confidence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relcli.api._context import as_path, blame, compute_dtype_of, load_anchors, parallel, rows_by_keys
from relcli.api._streamfit import SAMPLE_ANCHORS, STREAM_ANCHORS, fit_streamed
from relcli.errors import DataError, FileFormatError, UsageError, describe_rows
from relcli.io.spaces import check_same_space, read_space

#: condition number of the kept IRP spectrum above which a warning says results may be poor.
BAD_CONDITION = 1e4
FIT_OPTIONS = ("center", "scaling", "rcond", "prune_threshold", "subspaces", "allow_rank_deficient")


@dataclass
class Translation:
    """A fitted (or loaded) translator and what to record and say about it."""

    translator: Any
    info: dict[str, Any]
    inputs: list
    selection: Any = None
    reverse: Any = None
    warnings: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: the recorded spaces of the map's two ends ({"source": ..., "target": ...}, None where unknown)
    spaces: dict[str, Any] = field(default_factory=lambda: {"source": None, "target": None})

    @property
    def output_space(self) -> dict[str, Any] | None:
        """The space of the translated rows: the map's target, or its source when applied in reverse."""
        return self.spaces["source" if self.info.get("reverse") else "target"]

    @property
    def estimate(self) -> dict[str, float]:
        return self.info.get("estimate") or {}


def _check_rows(vectors, keys: list[str], path, what: str, need_direction: bool) -> None:
    from relcli.core._common import invalid_rows

    _, problems = invalid_rows(vectors, need_direction)
    if problems:
        problem, positions = problems[0]
        raise DataError(f"{what}: {problem} in {describe_rows([keys[p] for p in positions.tolist()])}", path)


def fit_translation(
    src_reader, src: Path, tgt_anchors, src_anchors, method: str, options: dict, seed: int, device,
    reverse: bool = False, min_score: float | None = None, force: bool = False, target_of=None,
    confidence: bool = False, objective: str = "auto",
) -> Translation:
    """Cross-validate and fit ``method`` (or ``auto``) on parallel anchors: the target anchors, and the
    source rows with the same ids (or ``src_anchors``, matched by id). ``reverse`` also fits the map
    back (target → source) with the chosen method. ``min_score``: a quality estimate below it is an
    error, before anything is written; so is no estimate at all (too few anchors) when ``min_score`` or
    ``confidence`` (the fold models' per-row agreement) needs one. ``src`` and ``src_anchors`` must share a recorded space
    unless ``force``, and so must ``target_of`` ((path, space) of what the output feeds, e.g. a head)
    and ``tgt_anchors``: both checked before any fitting. ``objective``: what the estimate weighs
    (``relcli.core._scoring``)."""
    from relcli.core.registry import make_translator
    from relcli.core._scoring import check_objective
    from relcli.core.selection import POOR_SCORE, select_translator
    from relcli.io.embeddings import open_embeddings

    check_objective(objective)
    if min_score is not None and not -1.0 <= min_score <= 1.0:
        raise UsageError(f"--min-score must be in [-1, 1], the range of the estimated score; got {min_score:g}")

    tgt_anchors = Path(tgt_anchors)
    with open_embeddings(tgt_anchors) as peek:
        n_anchors = peek.n_rows
        streamed = n_anchors > STREAM_ANCHORS
        spaces = {"source": read_space(src_reader.attrs, src), "target": read_space(peek.attrs, tgt_anchors)}
    if target_of is not None:
        check_same_space(target_of, (tgt_anchors, spaces["target"]), force)
    if src_anchors is not None:
        with open_embeddings(src_anchors) as peek:
            anchors_space = read_space(peek.attrs, src_anchors)
        check_same_space((src, spaces["source"]), (src_anchors, anchors_space), force)
        spaces["source"] = spaces["source"] or anchors_space
    inputs = [src, tgt_anchors, as_path(src_anchors)]
    if streamed:
        with blame(tgt_anchors):
            selection, _, backward = fit_streamed(src_reader, src, tgt_anchors, src_anchors, method, options, seed, device,
                                                  reverse, objective)
        translation = _describe(selection, method, inputs, spaces)
        translation.info["streamed"] = {"anchors": n_anchors, "sample": SAMPLE_ANCHORS}
        translation.notes.append(f"{n_anchors:,} anchors: the method was chosen on a sample of {SAMPLE_ANCHORS:,} and "
                                 "fitted on all of them, streaming")
        translation.info["anchors"] = n_anchors
        translation.reverse = backward
        _report(translation, tgt_anchors, method, POOR_SCORE, min_score, confidence, objective)
        return translation
    target = load_anchors(tgt_anchors, device)
    if src_anchors is not None:
        source = load_anchors(src_anchors, device)
        source_vectors, source_path = parallel(source, target), Path(src_anchors)
    else:
        rows = rows_by_keys(target.join_keys, src_reader.row_keys(), src, f"anchor ids of {tgt_anchors.name}")
        source_vectors, source_path = src_reader.read_rows(rows).to(device), src
    if source_vectors.shape[1] != src_reader.dim:
        raise DataError(
            f"dimension mismatch: {src.name} has {src_reader.dim} dims, source anchors have {source_vectors.shape[1]}",
            source_path,
        )
    cdtype = compute_dtype_of(src_reader.dtype)
    source_vectors, target_vectors = source_vectors.to(cdtype), target.vectors.to(cdtype)
    _check_rows(source_vectors, target.join_keys, source_path, "source anchors", True)
    _check_rows(target_vectors, target.keys, tgt_anchors, "target anchors", False)
    with blame(tgt_anchors):
        selection = select_translator(source_vectors, target_vectors, method, options, seed, target.stats.mean_norm,
                                      objective=objective)
    translation = _describe(selection, method, inputs, spaces)
    if src_anchors is not None and len(source.keys) > source_vectors.shape[0]:
        translation.warnings.append(
            f"{len(source.keys) - source_vectors.shape[0]:,} of the {len(source.keys):,} anchors of {source_path.name} are "
            f"not in {tgt_anchors.name}: fitted on the {source_vectors.shape[0]:,} they share")
    _report(translation, tgt_anchors, method, POOR_SCORE, min_score, confidence, objective)
    if reverse:
        chosen = selection.chosen
        with blame(tgt_anchors):
            translation.reverse = make_translator(chosen.method, seed=seed, objective=selection.objective,
                                                  **chosen.options).fit(target_vectors, source_vectors)
    return translation


def _describe(selection, method: str, inputs: list, spaces: dict) -> Translation:
    translator = selection.translator
    info = {"method": translator.method, "requested": method, **translator.get_params(),
            "objective": selection.objective, "anchors": selection.anchors, **translator.diagnostics(),
            "estimate": selection.estimate, "selection": selection.record()}
    return Translation(translator, info, inputs, selection, spaces=spaces)


def _report(translation: Translation, path: Path, requested: str, poor: float, min_score: float | None,
            confidence: bool, objective: str) -> None:
    """The one-line summary of the estimate, the gate, warnings, and details for -v. ``objective``: as
    requested (the selection holds what it resolved to)."""
    from relcli.core.selection import MIN_ANCHORS

    info, selection = translation.info, translation.selection
    estimate = selection.estimate
    if not estimate:
        needed = (["there is no quality estimate to check --min-score against"] if min_score is not None else []) + (
            ["--confidence needs the cross-validation's fold models"] if confidence else [])
        if needed:
            raise DataError(f"{info['anchors']} anchors are too few to hold any out, so {needed[0]} (use {MIN_ANCHORS} "
                            "or more); nothing was written", path)
        translation.warnings.append(
            f"{path}: {info['anchors']} anchors are too few to hold any out: no quality estimate (use {MIN_ANCHORS} or more)")
    else:
        chose = f"auto chose {selection.chosen.name}" if requested == "auto" else selection.chosen.name
        retrieval = selection.objective == "retrieval"
        why = ""
        if retrieval:
            why = ", retrieval only" + (": some source anchors have several different target anchors (a dictionary; "
                                        "--objective all to weigh R² too)" if objective == "auto" else "")
        translation.notes.append(
            f"{chose}: estimated held-out {'retrieval ' if retrieval else ''}score {estimate['score']:.3f} ± "
            f"{estimate['spread']:.3f} (anchor retrieval MRR {estimate['mrr']:.3f}, top-1 {estimate['top1']:.3f}, neighbour "
            f"recall@10 {estimate['recall10']:.3f}, reconstruction R² {estimate['r2']:.3f}; "
            f"{len(selection.chosen.fold_models)} folds of {selection.anchors} anchors{why})"
        )
        for candidate in selection.candidates:
            scored = f"score {candidate.scores['score']:.3f}" if candidate.error is None else f"failed: {candidate.error}"
            translation.details.append(f"  candidate {candidate.name}: {scored}")
        if min_score is not None and not estimate["score"] >= min_score:
            raise DataError(f"estimated held-out score {estimate['score']:.3f} of {selection.chosen.name} is below "
                            f"--min-score {min_score:g}; nothing was written", path)
        if estimate["score"] < poor:
            translation.warnings.append(
                f"{path}: the translation looks poor (estimated held-out score {estimate['score']:.3f} < {poor:g}: held-out "
                "anchors are not reproduced); check that the anchors are parallel, "
                + ("try more anchors" if requested == "auto" else "try --method auto, more anchors or --center"))
    if info.get("alpha_scores"):
        table = ", ".join(f"{a}: {v['score']:.3f}" for a, v in info["alpha_scores"].items())
        translation.details.append(f"linear: ridge alpha={info['alpha_chosen']:g} by leave-one-out (scores: {table})")
    describe_conditioning(translation, path)


def describe_conditioning(translation: Translation, path: Path) -> None:
    """IRP's cut-off choice and conditioning for -v, and a warning when the inverse amplifies noise."""
    info = translation.info
    if info.get("rcond_scores"):
        table = ", ".join(f"{c}: {v['score']:.3f}" for c, v in info["rcond_scores"].items())
        translation.details.append(f"IRP rcond=auto chose {info['rcond_chosen']:g} (held-out anchor scores: {table})")
    if "kept_condition_numbers" in info:
        translation.details.append(
            f"IRP target anchors: condition number {', '.join(f'{c:.3g}' for c in info['condition_numbers'])}; kept "
            f"{', '.join(map(str, info['ranks']))} of {info['target_dim']} directions "
            f"(condition {', '.join(f'{c:.3g}' for c in info['kept_condition_numbers'])})"
        )
        worst = max(info["kept_condition_numbers"])
        if worst > BAD_CONDITION:
            translation.warnings.append(
                f"{path}: the IRP inverse is badly conditioned (condition number {worst:.3g} at rcond={info['rcond_chosen']:g}); "
                "results may be poor: use --rcond auto or a larger --rcond, more or more diverse anchors, or --prune-threshold"
            )


def load_translation(map_path, src: Path, reverse: bool = False, src_space=None, force: bool = False) -> Translation:
    """A map saved by ``translate --save-map`` (its reverse with ``reverse``); ``src_space``, the recorded
    space of the rows it will translate, must be the map's input end unless ``force``."""
    from relcli.io.kinds import load_estimator

    translator, attrs = load_estimator(Path(map_path), "translator", reverse=reverse)
    info = attrs.get("translation") if isinstance(attrs.get("translation"), dict) else {"method": translator.method}
    info = {**info, "method": translator.method, "map": str(map_path), "reverse": reverse}
    recorded = attrs.get("spaces", {})
    if not isinstance(recorded, dict):
        raise FileFormatError("relcli.spaces must be an object with the map's source and target spaces", map_path)
    spaces = {end: read_space(recorded, map_path, end, f"relcli.spaces.{end}") for end in ("source", "target")}
    check_same_space((map_path, spaces["target" if reverse else "source"]), (src, src_space), force)
    return Translation(translator, info, [src, Path(map_path)], spaces=spaces)


def check_map_options(map_path, src_anchors, options: dict, method: str, objective: str = "auto") -> None:
    """A saved map is applied as it was fitted: fitting options with --map are a usage error."""
    fitting = src_anchors is not None or method != "auto" or objective != "auto" or any(v is not None for v in options.values())
    if map_path is not None and fitting:
        raise UsageError("--map applies a saved map as it was fitted: drop --src-anchors, --method, --objective and the "
                         "fitting options")
