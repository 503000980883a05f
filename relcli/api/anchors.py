"""``api.anchors``: choose anchors in a space, or take the parallel anchors of another space."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from relcli.api._context import (
    DEFAULT_BATCH,
    as_path,
    blame,
    check_batch_size,
    check_seed,
    compute_dtype_of,
    output_dtype,
    provenance,
    resolve_device,
    rows_by_keys,
    take,
)
from relcli.api._results import Progress, Result
from relcli.api._rows import RowLoop
from relcli.errors import DataError, UsageError


def anchors(
    input,
    *,
    output,
    n_anchors: int | None = None,
    strategy: str = "fps",
    seed: int = 0,
    like=None,
    pairs=None,
    drop_invalid: bool = False,
    key: str | None = None,
    dtype: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    device: str | None = None,
    progress: Progress | None = None,
) -> Result:
    """Write an anchors file: ``n_anchors`` rows chosen by ``strategy``, or the rows with the ids of
    ``like``'s anchors (mapped through ``pairs`` across vocabularies), plus the whole space's statistics.

    Every row of ``input`` must be usable as an anchor (finite, not all zeros) unless
    ``drop_invalid``, which leaves such rows out of the statistics and of the choice.
    """
    import torch

    from relcli.core.anchors import STRATEGIES, select_anchors
    from relcli.core.stats import SpaceStatsAccumulator
    from relcli.io.atomic import check_output
    from relcli.io.embeddings import EmbeddingWriter, open_embeddings
    from relcli.io.join import read_pairs
    from relcli.io.kinds import anchors_layout, expect_kind

    input, output, like, pairs = Path(input), check_output(output), as_path(like), as_path(pairs)
    check_batch_size(batch_size)
    check_seed(seed)
    if like is None and pairs is not None:
        raise UsageError("--pairs maps ids across spaces and needs --like ANCHORS")
    if like is None and n_anchors is None:
        raise UsageError("give -n/--n-anchors to choose anchors, or --like ANCHORS to take parallel ones")
    if like is not None and n_anchors is not None:
        raise UsageError("-n and --like exclude each other: --like takes as many anchors as its file has")
    if n_anchors is not None and (isinstance(n_anchors, bool) or not isinstance(n_anchors, int) or n_anchors < 1):
        raise UsageError(f"-n must be a positive integer, got {n_anchors!r}")
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown --strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    torch_device = resolve_device(device)
    result = Result("anchors", output, files={"output": output})

    with open_embeddings(input, key=key) as reader:
        expect_kind(reader, ("embeddings", "anchors"), "anchors")
        accumulator = SpaceStatsAccumulator()
        loop = RowLoop.over(reader, drop_invalid=drop_invalid, progress=progress, description=f"statistics {input.name}")
        chunks = loop.read(reader, device=torch.device("cpu"), dtype=compute_dtype_of(reader.dtype),
                           batch_size=batch_size, need_direction=True)
        loop.run(chunks, lambda chunk: chunk, on_output=lambda rows, chunk: accumulator.update(chunk))
        if loop.written == 0:
            raise DataError("has no usable rows to choose anchors from", input)
        stats = accumulator.result()
        dropped = np.asarray(sorted(loop.dropped), dtype=np.int64)
        source_ids = None
        if like is not None:
            with open_embeddings(like) as reference:
                expect_kind(reference, ("anchors", "embeddings"), "--like")
                wanted = reference.row_keys()
            if pairs is not None:
                mapping = read_pairs(pairs)
                unmapped = [k for k in wanted if k not in mapping]
                if unmapped:
                    raise DataError(
                        f"{len(unmapped)} of {len(wanted)} anchor ids of {like.name} have no pair: "
                        + ", ".join(repr(u) for u in unmapped[:5]),
                        pairs,
                    )
                source_ids, wanted = list(wanted), [mapping[k] for k in wanted]
            rows = np.asarray(rows_by_keys(wanted, reader.row_keys(), input, f"anchor ids of {like.name}"), dtype=np.int64)
            usable = ~np.isin(rows, dropped)
            if not usable.all():
                result.warnings.append(f"{input}: {int((~usable).sum())} of the {len(rows)} anchors of {like.name} are "
                                       "invalid here and left out")
                rows = rows[usable]
                source_ids = None if source_ids is None else [s for s, u in zip(source_ids, usable.tolist()) if u]
            if not len(rows):
                raise DataError(f"none of the anchors of {like.name} is usable here", input)
            method = {"like": str(like), "pairs": None if pairs is None else str(pairs)}
        else:
            valid = np.setdiff1d(np.arange(reader.n_rows), dropped)
            if n_anchors > len(valid):
                usable = f"{len(valid)} rows" + (" without NaN/Inf or zeros" if len(dropped) else "")
                raise DataError(f"-n {n_anchors}: asked for {n_anchors} anchors but the file has only {usable}", input)
            labels = None
            if strategy == "per-class":
                if reader.labels is None:
                    raise UsageError("--strategy per-class needs labels, and this file has none", input)
                _, codes = np.unique(reader.labels[valid].astype(str), return_inverse=True)
                labels = torch.from_numpy(codes.astype(np.int64).reshape(-1))
            x = None
            if strategy in ("fps", "kmeans"):
                x = reader.read_rows(valid).to(torch_device, compute_dtype_of(reader.dtype))
            with blame(input):
                chosen = select_anchors(strategy, n_anchors, x=x, labels=labels, n_rows=len(valid), seed=seed,
                                        chunk_rows=batch_size)
            rows = valid[chosen.numpy()]
            method = {"n_anchors": n_anchors, "strategy": strategy, "seed": seed}
        vectors = reader.read_rows(rows)
        ids = take(reader.ids, rows) if reader.ids is not None else rows.astype(np.int64)
        layout = anchors_layout(stats, method, source_ids)
        layout["attrs"]["provenance"] = provenance("anchors", {**method, "key": key}, [input, like, pairs])
        with EmbeddingWriter(output, len(rows), reader.dim, output_dtype(dtype, reader.dtype), ids=ids,
                             labels=take(reader.labels, rows), **layout) as writer:
            writer.write(vectors)
    result.rows, result.dims, result.parameters = len(rows), reader.dim, method
    result.dropped, result.dropped_ids = len(loop.dropped), loop.dropped_ids
    result.scores = {"space": stats.to_dict()}
    result.details.append(f"chose {len(rows)} anchors of {reader.n_rows:,} x {reader.dim}")
    return result

