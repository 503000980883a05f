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


def _check_usage(n_anchors, strategy, like, pairs, target) -> None:
    from relcli.core.anchors import STRATEGIES

    if like is None and n_anchors is None:
        with_pairs = " (--pairs goes with --like, or with -n and --target)" if pairs is not None else ""
        raise UsageError(f"give -n/--n-anchors to choose anchors, or --like ANCHORS to take parallel ones{with_pairs}")
    if like is not None and n_anchors is not None:
        raise UsageError("-n and --like exclude each other: --like takes as many anchors as its file has")
    if pairs is None and target is not None:
        raise UsageError("--target needs --pairs: the pairs say which ids of this space have a partner there")
    if like is not None and target is not None:
        raise UsageError("--target is for -n (choose among ids with a partner); with --like the pairs decide")
    if n_anchors is not None and pairs is not None and target is None:
        raise UsageError("-n with --pairs needs --target TARGET_FILE: the space whose ids the pairs name")
    if n_anchors is not None and (isinstance(n_anchors, bool) or not isinstance(n_anchors, int) or n_anchors < 1):
        raise UsageError(f"-n must be a positive integer, got {n_anchors!r}")
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown --strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")


def _like_rows(reader, input: Path, like: Path, pairs: Path | None, usable: np.ndarray, result: Result):
    """Rows of ``reader`` parallel to the anchors of ``like`` (matched by id, or through ``pairs``,
    every pair whose two ids exist), without unusable rows; and the ``like`` id of each row (pairs)."""
    from relcli.io.embeddings import open_embeddings
    from relcli.io.join import read_pairs
    from relcli.io.kinds import expect_kind

    with open_embeddings(like) as reference:
        expect_kind(reference, ("anchors", "embeddings"), "--like")
        wanted = reference.row_keys()
    if pairs is None:
        rows = np.asarray(rows_by_keys(wanted, reader.row_keys(), input, f"anchor ids of {like.name}"), dtype=np.int64)
        source_ids = None
    else:
        position = {key: row for row, key in enumerate(reader.row_keys())}
        partners: dict[str, list[int]] = {}
        for left, right in read_pairs(pairs):
            if right in position:
                partners.setdefault(left, []).append(position[right])
        matched = [(key, row) for key in wanted for row in partners.get(key, [])]
        unpaired = sum(1 for key in wanted if key not in partners)
        if unpaired:
            result.warnings.append(f"{pairs}: {unpaired} of the {len(wanted)} anchors of {like.name} have no pair with an id "
                                   f"of {input.name}; they are left out")
        rows = np.asarray([row for _, row in matched], dtype=np.int64)
        source_ids = np.asarray([key for key, _ in matched], dtype=object)
    keep = usable[rows]
    if not keep.all():
        result.warnings.append(f"{input}: {int((~keep).sum())} of the {len(rows)} anchors of {like.name} are invalid here "
                               "and left out")
        rows, source_ids = rows[keep], None if source_ids is None else source_ids[keep]
    if not len(rows):
        raise DataError(f"none of the anchors of {like.name} is usable here", input)
    return rows, source_ids


def _paired_rows(reader, pairs: Path, target: Path) -> np.ndarray:
    """Mask of the rows of ``reader`` whose id has a pair with an id of ``target``."""
    from relcli.io.embeddings import open_embeddings
    from relcli.io.join import read_pairs

    with open_embeddings(target) as other:
        present = set(other.row_keys())
    have = {left for left, right in read_pairs(pairs) if right in present}
    return np.asarray([key in have for key in reader.row_keys()], dtype=bool)


def anchors(
    input,
    *,
    output,
    n_anchors: int | None = None,
    strategy: str = "fps",
    seed: int = 0,
    like=None,
    pairs=None,
    target=None,
    drop_invalid: bool = False,
    key: str | None = None,
    dtype: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    device: str | None = None,
    progress: Progress | None = None,
) -> Result:
    """Write an anchors file: ``n_anchors`` rows chosen by ``strategy`` (with ``pairs`` and ``target``,
    only among ids that have a partner in ``target``), or the rows parallel to ``like``'s anchors
    (through ``pairs`` across vocabularies: every pair whose two ids exist, unpaired anchors left
    out with a count), plus the whole space's statistics.

    Every row of ``input`` must be usable as an anchor (finite, not all zeros) unless
    ``drop_invalid``, which leaves such rows out of the statistics and of the choice.
    """
    import torch

    from relcli.core.anchors import select_anchors
    from relcli.core.stats import SpaceStatsAccumulator
    from relcli.io.atomic import check_output
    from relcli.io.embeddings import EmbeddingWriter, open_embeddings
    from relcli.io.kinds import anchors_layout, expect_kind

    input, output, like, pairs, target = Path(input), check_output(output), as_path(like), as_path(pairs), as_path(target)
    check_batch_size(batch_size)
    check_seed(seed)
    _check_usage(n_anchors, strategy, like, pairs, target)
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
        usable = np.ones(reader.n_rows, dtype=bool)
        usable[np.asarray(loop.dropped, dtype=np.int64)] = False
        source_ids = None
        if like is not None:
            rows, source_ids = _like_rows(reader, input, like, pairs, usable, result)
            method = {"like": str(like), "pairs": None if pairs is None else str(pairs)}
        else:
            if pairs is not None:
                usable &= _paired_rows(reader, pairs, target)
            valid = np.flatnonzero(usable)
            if n_anchors > len(valid):
                what = "rows" + (" without NaN/Inf or zeros" if loop.dropped else "") + (" with a pair" if pairs else "")
                raise DataError(f"-n {n_anchors}: asked for {n_anchors} anchors but the file has only {len(valid)} {what}", input)
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
            method = {"n_anchors": n_anchors, "strategy": strategy, "seed": seed,
                      **({"pairs": str(pairs), "target": str(target)} if pairs is not None else {})}
        ids = take(reader.ids, rows) if reader.ids is not None else rows.astype(np.int64)
        layout = anchors_layout(stats, method, source_ids)
        layout["attrs"]["provenance"] = provenance("anchors", {**method, "key": key}, [input, like, pairs, target])
        with EmbeddingWriter(output, len(rows), reader.dim, output_dtype(dtype, reader.dtype), ids=ids,
                             labels=take(reader.labels, rows), **layout) as writer:
            writer.write(reader.read_rows(rows))
    result.rows, result.dims, result.parameters = len(rows), reader.dim, method
    result.dropped, result.dropped_ids = len(loop.dropped), loop.dropped_ids
    result.scores = {"space": stats.to_dict()}
    return result
