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
    rows_per_chunk,
    select_by_ids,
    take,
)
from relcli.api._results import Progress, Result
from relcli.api._rows import RowLoop
from relcli.errors import DataError, UsageError
from relcli.io.spaces import SPACE_KEY, read_space


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
    from relcli.io.join import find_rows, read_pairs
    from relcli.io.kinds import expect_kind

    with open_embeddings(like) as reference:
        expect_kind(reference, ("anchors", "embeddings"), "--like")
        wanted = reference.row_keys()
    if pairs is None:
        rows = np.asarray(rows_by_keys(wanted, reader.row_keys(), input, f"anchor ids of {like.name}"), dtype=np.int64)
        source_ids = None
    else:
        listed = read_pairs(pairs)
        position, found = find_rows([right for _, right in listed], reader.row_keys())
        partners: dict[str, list[int]] = {}
        for (left, _), row, present in zip(listed, position.tolist(), found.tolist()):
            if present:
                partners.setdefault(left, []).append(row)
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
        if len(keep):
            raise DataError(f"every anchor of {like.name} is invalid here (NaN/Inf, or no direction)", input)
        where = f"has a pair in {pairs.name} with an id of this file" if pairs is not None else "is in this file"
        raise DataError(f"none of the anchors of {like.name} {where}", input)
    return rows, source_ids


def _paired_rows(reader, pairs: Path, target: Path) -> np.ndarray:
    """Mask of the rows of ``reader`` whose id has a pair with an id of ``target``."""
    from relcli.io.embeddings import open_embeddings
    from relcli.io.join import find_rows, read_pairs

    listed = read_pairs(pairs)
    with open_embeddings(target) as other:
        present = find_rows([right for _, right in listed], other.row_keys())[1]
    have = list({left for (left, _), paired in zip(listed, present.tolist()) if paired})
    return find_rows(reader.row_keys(), have)[1]  # every row of a repeated id


def _candidate_pool(n_rows: int, eligible, strategy: str, n_anchors: int, candidates: int | None, seed: int):
    """The rows fps and kmeans choose among: all eligible rows, or a seeded random sample of
    ``candidates`` of them (default max(16·k, 10,000)) when there are more: fps and k-means cost
    O(rows · k · d), and on a sample their anchors cover the space as well (README: Performance)."""
    if strategy not in ("fps", "kmeans"):
        return None
    rows = np.flatnonzero(eligible) if eligible is not None else np.arange(n_rows, dtype=np.int64)
    size = candidates if candidates is not None else max(16 * n_anchors, 10_000)
    if len(rows) <= size:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, size, replace=False))


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
    candidates: int | None = None,
    ids=None,
    exclude_ids=None,
    drop_invalid: bool = False,
    key: str | None = None,
    dtype: str | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    device: str | None = None,
    progress: Progress | None = None,
) -> Result:
    """Write an anchors file: ``n_anchors`` rows chosen by ``strategy`` (with ``pairs`` and ``target``,
    only among ids that have a partner in ``target``), or the rows parallel to ``like``'s anchors
    (through ``pairs`` across vocabularies: every pair whose two ids exist, unpaired anchors left
    out with a count), plus the whole space's statistics. ``ids`` / ``exclude_ids`` (id lists, as
    ``stitch fit``'s) restrict the choice to these rows / to the others, e.g. the train side of
    ``relcli split``; the statistics still cover every row.

    Every row of ``input`` must be usable as an anchor (finite, not all zeros) unless
    ``drop_invalid``, which leaves such rows out of the statistics and of the choice. fps and
    kmeans choose among at most ``candidates`` rows (a seeded sample; default max(16·k, 10,000)),
    gathered during the one streaming pass that computes the statistics: memory stays flat in N.
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
    if like is not None and (ids is not None or exclude_ids is not None):
        raise UsageError("--ids/--exclude-ids restrict the choice of -n anchors; --like takes its file's anchors")
    if candidates is not None and (isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1):
        raise UsageError(f"--candidates must be a positive integer, got {candidates!r}")
    torch_device = resolve_device(device)
    result = Result("anchors", output, files={"output": output})

    with open_embeddings(input, key=key) as reader:
        expect_kind(reader, ("embeddings", "anchors"), "anchors")
        eligible = None if like is not None or pairs is None else _paired_rows(reader, pairs, target)
        selected = select_by_ids(reader.row_keys(), as_path(ids), as_path(exclude_ids), input)
        if selected is not None:
            chosen_rows = np.zeros(reader.n_rows, dtype=bool)
            chosen_rows[np.asarray(selected, dtype=np.int64)] = True
            eligible = chosen_rows if eligible is None else eligible & chosen_rows
        pool = _candidate_pool(reader.n_rows, eligible, strategy, n_anchors, candidates, seed) if like is None else None
        accumulator, kept = SpaceStatsAccumulator(), {}
        loop = RowLoop.over(reader, drop_invalid=drop_invalid, progress=progress, description=f"statistics {input.name}")

        def collect(rows, chunk):
            accumulator.update(chunk)
            if pool is not None:  # the candidates of fps/kmeans, gathered on the way
                hit = np.isin(rows, pool)
                if hit.any():
                    kept[int(rows[0])] = (rows[hit], chunk[torch.from_numpy(hit)])

        chunks = loop.read(reader, device=torch.device("cpu"), dtype=compute_dtype_of(reader.dtype),
                           batch_size=batch_size, need_direction=True)
        loop.run(chunks, lambda chunk: chunk, on_output=collect)
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
            if eligible is not None:
                usable &= eligible
            x = None
            if pool is not None:
                valid = np.concatenate([r for r, _ in kept.values()]) if kept else np.zeros(0, dtype=np.int64)
                x = torch.cat([c for _, c in kept.values()]).to(torch_device) if kept else None
            else:
                valid = np.flatnonzero(usable)
            if n_anchors > len(valid):
                what = ("rows" + (" selected by --ids/--exclude-ids" if ids is not None or exclude_ids is not None else "")
                        + (" without NaN/Inf or zeros" if loop.dropped else "") + (" with a pair" if pairs else ""))
                raise DataError(f"-n {n_anchors}: asked for {n_anchors} anchors but the file has only {len(valid)} {what}", input)
            labels = None
            if strategy == "per-class":
                if reader.labels is None:
                    raise UsageError("--strategy per-class needs labels, and this file has none", input)
                _, codes = np.unique(reader.labels[valid].astype(str), return_inverse=True)
                labels = torch.from_numpy(codes.astype(np.int64).reshape(-1))
            with blame(input):
                chosen = select_anchors(strategy, n_anchors, x=x, labels=labels, n_rows=len(valid), seed=seed,
                                        chunk_rows=rows_per_chunk(batch_size, n_anchors))
            rows = valid[chosen.numpy()]
            method = {"n_anchors": n_anchors, "strategy": strategy, "seed": seed,
                      **({"candidates": len(valid)} if pool is not None else {}),
                      **({"pairs": str(pairs), "target": str(target)} if pairs is not None else {}),
                      **({"ids": None if ids is None else str(ids), "exclude_ids": None if exclude_ids is None else str(exclude_ids)}
                         if selected is not None else {})}
        ids = take(reader.ids, rows) if reader.ids is not None else rows.astype(np.int64)
        layout = anchors_layout(stats, method, source_ids)
        layout["attrs"]["provenance"] = provenance("anchors", {**method, "key": key}, [input, like, pairs, target])
        space = read_space(reader.attrs, input)
        if space is not None:
            layout["attrs"][SPACE_KEY] = space
        with EmbeddingWriter(output, len(rows), reader.dim, output_dtype(dtype, reader.dtype), ids=ids,
                             labels=take(reader.labels, rows), **layout) as writer:
            with blame(input, keys=reader.keys_of(rows), noun=reader.key_noun):
                writer.write(reader.read_rows(rows))
    result.rows, result.dims, result.parameters = len(rows), reader.dim, method
    result.dropped, result.dropped_ids = len(loop.dropped), loop.dropped_ids
    result.scores = {"space": stats.to_dict()}
    return result
