"""``api.translate``: source embeddings into a target space, by IRP or a direct translator.

``fit_translation`` and ``load_translation`` are shared with ``stitch_run``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from relcli.api._context import (
    DEFAULT_BATCH,
    as_path,
    blame,
    check_batch_size,
    check_seed,
    compute_dtype_of,
    load_anchors,
    output_dtype,
    parallel,
    provenance,
    resolve_device,
    rows_by_keys,
)
from relcli.api._results import Progress, Result
from relcli.api._rows import RowLoop
from relcli.errors import DataError, UsageError, describe_rows

#: condition number of the kept IRP spectrum above which a warning says results may be poor.
BAD_CONDITION = 1e4
FIT_OPTIONS = ("center", "scaling", "rcond", "prune_threshold", "subspaces", "allow_rank_deficient")


@dataclass
class Translation:
    """A fitted (or loaded) translator and what to record and say about it."""

    translator: Any
    info: dict[str, Any]
    inputs: list
    warnings: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)


def _check_rows(vectors, keys: list[str], path, what: str, need_direction: bool) -> None:
    from relcli.core._common import invalid_rows

    _, problems = invalid_rows(vectors, need_direction)
    if problems:
        problem, positions = problems[0]
        shown = [keys[p] for p in positions.tolist()]
        raise DataError(f"{what}: {problem} in {describe_rows(shown)}", path)


def fit_translation(src_reader, src: Path, tgt_anchors, src_anchors, method: str, options: dict, seed: int, device) -> Translation:
    """Fit ``method`` on parallel anchors: the target anchors, and the source rows with the same ids
    (or ``src_anchors``, matched by id)."""
    from relcli.core.registry import make_translator

    translator = make_translator(method, seed=seed, **options)
    tgt_anchors = Path(tgt_anchors)
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
    _check_rows(source_vectors, target.join_keys, source_path, "source anchors", translator.needs_direction)
    _check_rows(target_vectors, target.keys, tgt_anchors, "target anchors", False)
    with blame(tgt_anchors):
        translator.fit(source_vectors, target_vectors, target_norm=target.stats.mean_norm)
    info = {"method": method, **translator.get_params(), "anchors": int(target_vectors.shape[0]), **translator.diagnostics()}
    translation = Translation(translator, info, [src, tgt_anchors, as_path(src_anchors)])
    _report(translation, tgt_anchors)
    return translation


def _report(translation: Translation, path: Path) -> None:
    """Details for -v and a warning when the inverse amplifies noise (IRP)."""
    info = translation.info
    if info.get("rcond_scores"):
        table = ", ".join(f"{c}: mrr {v['mrr']:.3f} cos {v['cosine']:.3f}" for c, v in info["rcond_scores"].items())
        translation.details.append(f"IRP rcond=auto chose {info['rcond_chosen']:g} (held-out anchor scores: {table})")
    if "kept_condition_numbers" in info:
        ranks = ", ".join(map(str, info["ranks"]))
        translation.details.append(
            f"IRP target anchors: condition number {', '.join(f'{c:.3g}' for c in info['condition_numbers'])}; kept "
            f"{ranks} of {info['target_dim']} directions (condition {', '.join(f'{c:.3g}' for c in info['kept_condition_numbers'])})"
        )
        worst = max(info["kept_condition_numbers"])
        if worst > BAD_CONDITION:
            translation.warnings.append(
                f"{path}: the IRP inverse is badly conditioned (condition number {worst:.3g} at rcond={info['rcond_chosen']:g}); "
                "results may be poor: use --rcond auto or a larger --rcond, more or more diverse anchors, or --prune-threshold"
            )


def load_translation(map_path, src: Path) -> Translation:
    """A map saved by ``translate --save-map``."""
    from relcli.io.kinds import load_estimator

    translator, attrs = load_estimator(Path(map_path), "translator")
    info = attrs.get("translation") if isinstance(attrs.get("translation"), dict) else {"method": translator.method}
    return Translation(translator, info, [src, Path(map_path)])


def translate(
    src,
    *,
    output,
    tgt_anchors=None,
    src_anchors=None,
    method: str = "irp",
    center: bool | None = None,
    scaling: str | None = None,
    rcond: float | str | None = None,
    prune_threshold: float | None = None,
    subspaces: int | None = None,
    allow_rank_deficient: bool | None = None,
    save_map=None,
    map=None,  # noqa: A002 - the flag is --map
    drop_invalid: bool = False,
    seed: int = 0,
    key: str | None = None,
    dtype: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    device: str | None = None,
    progress: Progress | None = None,
) -> Result:
    """Translate ``src`` into the target space of ``tgt_anchors`` (fitting a map) or with a saved ``map``.

    Fitting options left at None take the method's own default. Writes ``output`` (and the
    fitted map to ``save_map``: both or neither).
    """
    from relcli.io.atomic import OutputGroup, check_output
    from relcli.io.embeddings import EmbeddingWriter, open_embeddings
    from relcli.io.kinds import expect_kind, save_estimator

    src, output, save_map = Path(src), check_output(output), as_path(save_map)
    check_batch_size(batch_size)
    check_seed(seed)
    options = {"center": center, "scaling": scaling, "rcond": rcond, "prune_threshold": prune_threshold,
               "subspaces": subspaces, "allow_rank_deficient": allow_rank_deficient}
    if save_map is not None:
        if save_map.suffix.lower() != ".safetensors":
            raise UsageError("--save-map writes a .safetensors file", save_map)
        if save_map.resolve() == output.resolve():
            raise UsageError("--save-map and -o name the same file", save_map)
    if (map is None) == (tgt_anchors is None):
        raise UsageError("give either --tgt-anchors (to fit a map) or --map (to apply a saved one)")
    if map is not None and (src_anchors is not None or any(v is not None for v in options.values())):
        raise UsageError("--map applies a saved map as it was fitted: drop --src-anchors and the fitting options")
    torch_device = resolve_device(device)
    with open_embeddings(src, key=key) as reader:
        expect_kind(reader, ("embeddings", "anchors"), "--src")
        if map is not None:
            translation = load_translation(map, src)
        else:
            translation = fit_translation(reader, src, tgt_anchors, src_anchors, method, options, seed, torch_device)
        translator = translation.translator.to(torch_device, compute_dtype_of(reader.dtype))
        if reader.dim != translator.source_dim_:
            raise DataError(f"dimension mismatch: {src.name} has {reader.dim} dims, the map expects {translator.source_dim_}", src)
        params = {**translation.info, "key": key}
        attrs = {"kind": "embeddings", "translation": translation.info,
                 "provenance": provenance("translate", params, translation.inputs)}
        loop = RowLoop.over(reader, drop_invalid=drop_invalid, progress=progress,
                            description=f"translate ({translation.info.get('method')})")
        with OutputGroup() as group:
            with EmbeddingWriter(output, None, translator.target_dim_, output_dtype(dtype, reader.dtype),
                                 attrs=attrs, group=group) as writer:
                chunks = loop.read(reader, device=torch_device, dtype=compute_dtype_of(reader.dtype),
                                   batch_size=batch_size, need_direction=translator.needs_direction)
                loop.run(chunks, translator.transform, writer)
                writer.attrs["dropped"] = len(loop.dropped)
            if save_map is not None:
                save_estimator(save_map, translator, "translator",
                               {"translation": translation.info, "provenance": attrs["provenance"]}, group=group)
    files = {"output": output, **({"save_map": save_map} if save_map is not None else {})}
    return Result(
        "translate", output, loop.written, translator.target_dim_, len(loop.dropped), loop.dropped_ids,
        parameters=translation.info, warnings=translation.warnings, details=translation.details, files=files,
    )
