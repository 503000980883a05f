"""``api.translate``: source embeddings into a target space, by a translator chosen and checked on the anchors."""

from __future__ import annotations

from pathlib import Path

from relcli.api._context import (
    DEFAULT_BATCH,
    as_path,
    check_batch_size,
    check_number,
    check_seed,
    compute_dtype_of,
    output_dtype,
    provenance,
    resolve_device,
)
from relcli.api._results import Progress, Result
from relcli.api._rows import RowLoop
from relcli.api._translation import check_map_options, fit_translation, load_translation
from relcli.errors import DataError, UsageError
from relcli.io.spaces import SPACE_KEY, read_space


def translate(
    src,
    *,
    output,
    tgt_anchors=None,
    src_anchors=None,
    method: str = "auto",
    objective: str = "auto",
    center: bool | None = None,
    scaling: str | None = None,
    rcond: float | str | None = None,
    prune_threshold: float | None = None,
    subspaces: int | None = None,
    allow_rank_deficient: bool | None = None,
    min_score: float | None = None,
    confidence: bool = False,
    save_map=None,
    map=None,  # noqa: A002 - the flag is --map
    reverse: bool = False,
    shard=None,
    rows=None,
    drop_invalid: bool = False,
    force: bool = False,
    seed: int = 0,
    key: str | None = None,
    dtype: str | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    device: str | None = None,
    progress: Progress | None = None,
) -> Result:
    """Translate ``src`` into the target space of ``tgt_anchors`` (fitting a map) or with a saved ``map``.

    ``method="auto"`` cross-validates every method on the anchors and keeps the best; any method
    gets a quality estimate (``Result.scores["estimate"]``), and ``min_score`` makes a poor one an
    error before anything is written. ``objective``: what ``auto`` maximises and the estimate measures
    (``"all"``: retrieval and reconstruction; ``"retrieval"``: for search and word translation;
    ``"auto"``: retrieval when some source anchor has several different target anchors, a dictionary, else all).
    Fitting options left at None take the method's own default.
    ``confidence`` writes a per-row ``confidence`` array (agreement of the cross-validation fold
    models, in [-1, 1]). ``save_map`` also writes the fitted map and its reverse (both files or
    neither); ``map`` applies a saved map, ``reverse`` its reverse (target → source). ``shard``
    ("I/N") or ``rows`` ("A:B") translate only those rows (``relcli merge`` joins the shard files).
    ``src`` must be in the recorded space of ``src_anchors`` (or of the map's input end) unless
    ``force``; the output records the target's space.
    """
    from relcli.io.atomic import OutputGroup, check_output
    from relcli.io.embeddings import EmbeddingWriter, open_embeddings
    from relcli.io.kinds import expect_kind, save_estimator

    src, output, save_map = Path(src), check_output(output), as_path(save_map)
    check_batch_size(batch_size)
    check_seed(seed)
    min_score = check_number(min_score, "--min-score")
    options = {"center": center, "scaling": scaling, "rcond": rcond, "prune_threshold": prune_threshold,
               "subspaces": subspaces, "allow_rank_deficient": allow_rank_deficient}
    if save_map is not None:
        if save_map.suffix.lower() != ".safetensors":
            raise UsageError("--save-map writes a .safetensors file", save_map)
        if save_map.resolve() == output.resolve():
            raise UsageError("--save-map and -o name the same file", save_map)
    if (map is None) == (tgt_anchors is None):
        raise UsageError("give either --tgt-anchors (to fit a map) or --map (to apply a saved one)")
    check_map_options(map, src_anchors, options, method, objective)
    if map is not None and (min_score is not None or confidence):
        raise UsageError("--min-score and --confidence need a fit: use --tgt-anchors, not --map")
    if reverse and map is None:
        raise UsageError("--reverse applies a saved map backwards: give --map")
    torch_device = resolve_device(device)
    with open_embeddings(src, key=key) as reader:
        expect_kind(reader, ("embeddings", "anchors"), "--src")
        if map is not None:
            translation = load_translation(map, src, reverse, read_space(reader.attrs, src), force)
        else:
            translation = fit_translation(reader, src, tgt_anchors, src_anchors, method, options, seed, torch_device,
                                          reverse=save_map is not None, min_score=min_score, force=force,
                                          confidence=confidence, objective=objective)
        translator = translation.translator.to(torch_device, compute_dtype_of(reader.dtype))
        if reader.dim != translator.source_dim_:
            raise DataError(f"dimension mismatch: {src.name} has {reader.dim} dims, the map expects {translator.source_dim_}", src)
        loop, shard_record = RowLoop.sharded(reader, shard, rows, drop_invalid=drop_invalid, progress=progress,
                                             description=f"translate ({translation.info.get('method')})")
        attrs = {"kind": "embeddings", "translation": translation.info, **({"shard": shard_record} if shard_record else {}),
                 "provenance": provenance("translate", {**translation.info, "key": key, "shard": shard_record},
                                          translation.inputs),
                 **({SPACE_KEY: translation.output_space} if translation.output_space else {})}
        columns_of = None
        if confidence:
            for model in translation.selection.chosen.fold_models:
                model.to(torch_device, compute_dtype_of(reader.dtype))
            columns_of = lambda chunk, out: {"confidence": translation.selection.confidence(chunk, out)}  # noqa: E731
        with OutputGroup() as group:
            with EmbeddingWriter(output, None, translator.target_dim_, output_dtype(dtype, reader.dtype),
                                 attrs=attrs, group=group) as writer:
                chunks = loop.read(reader, device=torch_device, dtype=compute_dtype_of(reader.dtype),
                                   batch_size=batch_size, need_direction=translator.needs_direction)
                loop.run(chunks, translator.transform, writer, columns_of=columns_of)
                writer.attrs["dropped"] = len(loop.dropped)
            if save_map is not None:
                save_estimator(save_map, translator, "translator", {"translation": translation.info,
                               "provenance": attrs["provenance"], "spaces": translation.spaces}, group=group,
                               reverse=translation.reverse)
    files = {"output": output, **({"save_map": save_map} if save_map is not None else {})}
    return Result(
        "translate", output, loop.written, translator.target_dim_, len(loop.dropped), loop.dropped_ids,
        parameters=translation.info, scores={"estimate": translation.estimate}, warnings=translation.warnings,
        details=translation.details, notes=translation.notes, files=files,
    )
