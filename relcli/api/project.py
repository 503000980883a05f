"""``api.project`` (absolute → relative) and ``api.invert`` (relative → another space, by IRP)."""

from __future__ import annotations

from pathlib import Path

from relcli.api._context import (
    DEFAULT_BATCH,
    blame,
    check_batch_size,
    check_number,
    check_seed,
    compute_dtype_of,
    load_anchors,
    output_dtype,
    provenance,
    resolve_device,
    rows_by_keys,
)
from relcli.api._results import Progress, Result
from relcli.api._rows import RowLoop
from relcli.errors import DataError, UsageError
from relcli.io.spaces import SPACE_KEY, check_same_space, read_space


def _similarities(similarity) -> list[str]:
    """--similarity values: repeated and/or comma-separated; cosine when none."""
    values = [similarity] if isinstance(similarity, str) else list(similarity or ["cosine"])
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return names or ["cosine"]


def project(
    input,
    *,
    anchors,
    output,
    similarity=("cosine",),
    aggregate: str = "concat",
    center: bool = False,
    shard=None,
    rows=None,
    drop_invalid: bool = False,
    force: bool = False,
    key: str | None = None,
    dtype: str | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    device: str | None = None,
    progress: Progress | None = None,
) -> Result:
    """Relative representation of every row of ``input`` w.r.t. ``anchors`` (of the same space: recorded
    spaces that differ are an error unless ``force``)."""
    from relcli.core.relative import RelativeProjector
    from relcli.io.atomic import check_output
    from relcli.io.embeddings import EmbeddingWriter, open_embeddings
    from relcli.io.kinds import expect_kind, relative_layout

    input, anchors, output = Path(input), Path(anchors), check_output(output)
    check_batch_size(batch_size)
    projector = RelativeProjector(_similarities(similarity), aggregate, center)
    projector._check_params()
    torch_device = resolve_device(device)
    with open_embeddings(input, key=key) as reader:
        expect_kind(reader, ("embeddings", "anchors"), "project")
        anchor_set = load_anchors(anchors, torch_device, compute_dtype_of(reader.dtype))
        check_same_space((input, read_space(reader.attrs, input)), (anchors, anchor_set.space), force)
        if reader.dim != anchor_set.vectors.shape[1]:
            raise DataError(
                f"dimension mismatch: {input.name} is {reader.n_rows} x {reader.dim}, anchors {anchors.name} are "
                f"{anchor_set.vectors.shape[0]} x {anchor_set.vectors.shape[1]}",
                input,
            )
        with blame(anchors, anchor_set.keys):
            projector.fit(anchor_set.vectors)
        parameters = {"similarities": list(projector.similarities), "aggregate": aggregate, "center": center}
        anchor_ids = anchor_set.ids if anchor_set.ids is not None else list(range(len(anchor_set.keys)))
        layout = relative_layout(anchor_ids, projector.similarities, aggregate, center, anchors)
        loop, shard_record = RowLoop.sharded(reader, shard, rows, drop_invalid=drop_invalid, progress=progress,
                                             description="project")
        if shard_record:
            layout["attrs"]["shard"] = shard_record
        layout["attrs"]["provenance"] = provenance("project", {**parameters, "key": key, "shard": shard_record},
                                                   [input, anchors])
        with EmbeddingWriter(output, None, projector.output_dim, output_dtype(dtype, reader.dtype), **layout) as writer:
            chunks = loop.read(reader, device=torch_device, dtype=compute_dtype_of(reader.dtype),
                               batch_size=batch_size, need_direction=projector.needs_direction, width=projector.output_dim)
            loop.run(chunks, lambda chunk: projector.transform(chunk, chunk_rows=None), writer)
    return Result("project", output, loop.written, projector.output_dim, len(loop.dropped), loop.dropped_ids,
                  parameters=parameters, files={"output": output})


def invert(
    input,
    *,
    anchors,
    output,
    rcond: float | str | None = None,
    prune_threshold: float | None = None,
    subspaces: int | None = None,
    allow_rank_deficient: bool | None = None,
    target_norm: float | None = None,
    seed: int = 0,
    shard=None,
    rows=None,
    drop_invalid: bool = False,
    dtype: str | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    device: str | None = None,
    progress: Progress | None = None,
) -> Result:
    """Invert a relative file (cosine, from ``project``) into the space of the parallel target ``anchors``.

    IRP options left at None take ``InverseRelativeProjection``'s defaults (rcond "auto": chosen by
    cross-validation when the anchor items are among the file's rows).
    """
    import torch

    from relcli.api._translation import Translation, describe_conditioning
    from relcli.core.irp import InverseRelativeProjection
    from relcli.io.atomic import check_output
    from relcli.io.embeddings import EmbeddingWriter, open_embeddings
    from relcli.io.join import find_rows
    from relcli.io.kinds import read_relative_layout

    input, anchors, output = Path(input), Path(anchors), check_output(output)
    check_batch_size(batch_size)
    check_seed(seed)
    target_norm = check_number(target_norm, "--target-norm", positive=True)
    torch_device = resolve_device(device)
    with open_embeddings(input) as reader:
        layout = read_relative_layout(reader)
        if layout.similarities != ["cosine"]:
            raise DataError(f"IRP inverts cosine relative representations; this file uses {layout.similarities}", input)
        cdtype = compute_dtype_of(reader.dtype)
        target = load_anchors(anchors, torch_device, cdtype)
        target_keys = target.join_keys
        missing = sorted(set(layout.anchor_keys) - set(target_keys))
        if missing or len(target_keys) != len(layout.anchor_keys):
            raise DataError(
                f"anchors do not match {anchors.name}: {len(missing)} of the {len(layout.anchor_keys)} anchor ids of the "
                f"relative file are not among its {len(target_keys)} anchors"
                + (f" (e.g. {', '.join(repr(m) for m in missing[:3])})" if missing else ""),
                input,
            )
        order = rows_by_keys(layout.anchor_keys, target_keys, anchors, "anchor ids")
        target_vectors = target.vectors[torch.as_tensor(order, device=torch_device)]
        options = {"rcond": rcond, "prune_threshold": prune_threshold, "subspaces": subspaces,
                   "allow_rank_deficient": allow_rank_deficient}
        inverse = InverseRelativeProjection(center=layout.center, seed=seed, **{k: v for k, v in options.items() if v is not None})
        inverse._check_params()
        warnings, anchor_relative = [], None
        if inverse.rcond == "auto":
            positions, found = find_rows(layout.anchor_keys, reader.row_keys())
            if found.all():  # the anchor items' own rows let "auto" cross-validate
                anchor_relative = reader.read_rows(positions).to(torch_device, cdtype)
            else:
                warnings.append(f"{input}: the anchor items are not among its rows, so --rcond auto cannot "
                                f"cross-validate; using {_fallback_rcond():g}")
        norm = target_norm if target_norm is not None else (None if layout.center else target.stats.mean_norm)
        _check_norm_fits(norm, target_norm is not None, output_dtype(dtype, reader.dtype), anchors)
        with blame(anchors, layout.anchor_keys):
            inverse.fit(target_vectors, anchor_relative=anchor_relative, target_norm=norm)
        parameters = {**inverse.get_params(), "rcond_chosen": inverse.rcond_, "rcond_scores": inverse.rcond_scores_,
                      "target_norm": inverse.target_norm_}
        diagnostics = {"condition_numbers": inverse.condition_numbers_, "kept_condition_numbers": inverse.kept_condition_numbers_,
                       "ranks": inverse.ranks_, "target_dim": inverse.target_dim_}
        report = Translation(inverse, {**parameters, **diagnostics}, [], warnings=warnings)
        describe_conditioning(report, anchors)
        loop, shard_record = RowLoop.sharded(reader, shard, rows, drop_invalid=drop_invalid, progress=progress,
                                             description="invert")
        attrs = {"kind": "embeddings", "irp": {**parameters, **diagnostics}, **({"shard": shard_record} if shard_record else {}),
                 "provenance": provenance("invert", {**parameters, "shard": shard_record}, [input, anchors]),
                 **({SPACE_KEY: target.space} if target.space else {})}
        with EmbeddingWriter(output, None, inverse.target_dim_, output_dtype(dtype, reader.dtype), attrs=attrs) as writer:
            chunks = loop.read(reader, device=torch_device, dtype=cdtype, batch_size=batch_size, need_direction=False)
            loop.run(chunks, lambda chunk: inverse.transform(chunk, chunk_rows=None), writer)
    return Result("invert", output, loop.written, inverse.target_dim_, len(loop.dropped), loop.dropped_ids,
                  parameters=parameters, warnings=report.warnings, details=report.details, files={"output": output})


def _check_norm_fits(norm: float | None, given: bool, dtype: str, anchors: Path) -> None:
    """Rows scaled to ``norm`` must fit the output dtype, or every written row would be Inf: refused before
    anything is written, naming --target-norm (given) or the anchors' statistics (restored from them)."""
    import torch

    if norm is None:
        return
    largest = float(torch.finfo(getattr(torch, dtype)).max)
    if norm > largest:
        if given:
            raise UsageError(f"--target-norm {norm:g} does not fit the {dtype} output (largest {largest:g}): "
                             "every row would overflow")
        raise DataError(f"relcli.source_stats.mean_norm {norm:g} does not fit the {dtype} output (largest {largest:g}); "
                        "give --target-norm", anchors)


def _fallback_rcond() -> float:
    from relcli.core._irp_cutoff import FALLBACK_RCOND

    return FALLBACK_RCOND
