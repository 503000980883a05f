"""Fitting on a very large anchor set (``translate --tgt-anchors y.h5`` with a whole corpus): linear in
its rows, flat in memory.

The choices that need rows (``auto``'s cross-validation, IRP's cut-off, the ridge penalty) are made
on a seeded sample of SAMPLE_ANCHORS anchors; the map is then fitted on every anchor pair from sums
accumulated chunk by chunk (``relcli.core.moments``; one pass, two when IRP centres). The quality
estimate is the sample's. The objective is decided on every pair (``whole_objective``), not on the
sample, where the two translations of a word would rarely both land.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from relcli.api._context import compute_dtype_of, rows_by_keys, rows_per_chunk
from relcli.errors import DataError, describe_rows

#: above this many anchor rows, fits stream (a k × d copy would be too large to hold)
STREAM_ANCHORS = 20_000
#: the anchors the cross-validation and the data-driven choices see then
SAMPLE_ANCHORS = 4_096
#: ``auto``'s objective is decided on at most this many source rows paired with several target rows
OBJECTIVE_GROUPS = 1_024


def whole_objective(objective: str, positions: np.ndarray, target):
    """``objective``, with ``auto`` decided on every anchor pair: ``retrieval`` when some source row
    (``positions``: the source row of each target anchor) is paired with different target rows
    (``relcli.core._scoring.resolve_objective`` on the rows of the first OBJECTIVE_GROUPS such source
    rows), else ``all``. Source rows are told apart by position here, not by value as in memory."""
    import torch

    from relcli.core._scoring import resolve_objective

    if objective != "auto":
        return objective
    _, group, counts = np.unique(positions, return_inverse=True, return_counts=True)
    repeated = np.flatnonzero(counts[group] > 1)
    if not len(repeated):
        return "all"
    first = np.unique(group[repeated])[:OBJECTIVE_GROUPS]
    rows = repeated[np.isin(group[repeated], first)]
    _, groups = np.unique(group[rows], return_inverse=True)
    return resolve_objective("auto", torch.as_tensor(groups), target.read_rows(rows))


def _pairs(target, source, positions: np.ndarray, device, dtype, join: list[str], paths):
    """(source chunk, target chunk) over every anchor pair, on ``device``; bad rows are errors naming ids."""
    from relcli.core._common import invalid_rows

    step = rows_per_chunk(None, max(target.dim, source.dim))
    for start, y in target.iter_chunks(step):
        stop = start + y.shape[0]
        x = source.read_rows(positions[start:stop]).to(device=device, dtype=dtype)
        y = y.to(device=device, dtype=dtype)
        for what, data, path, need in (("source anchors", x, paths[0], True), ("target anchors", y, paths[1], False)):
            _, problems = invalid_rows(data, need)
            if problems:
                problem, bad = problems[0]
                raise DataError(f"{what}: {problem} in {describe_rows([join[start + i] for i in bad.tolist()])}", path)
        yield x, y


def fit_streamed(src_reader, src: Path, tgt_anchors: Path, src_anchors, method: str, options: dict, seed: int,
                 device, reverse: bool, objective: str = "auto"):
    """(selection with the map fitted on every anchor, target stats, reverse map or None)."""
    from relcli.core.moments import AnchorMoments
    from relcli.core.registry import make_translator
    from relcli.core.selection import select_translator
    from relcli.core.stats import SpaceStatsAccumulator
    from relcli.io.embeddings import open_embeddings
    from relcli.io.kinds import expect_kind, read_stats

    with open_embeddings(tgt_anchors) as target:
        expect_kind(target, ("anchors", "embeddings"), "--tgt-anchors")
        stats = read_stats(target) if target.kind == "anchors" else None
        source_ids = target.strings("source_ids")
        join = [str(s) for s in source_ids.tolist()] if source_ids is not None else target.row_keys()
        source = open_embeddings(src_anchors) if src_anchors is not None else src_reader
        source_path = Path(src_anchors) if src_anchors is not None else src
        try:
            keys = source.row_keys()
            if keys == join:  # the same ids in the same order: read both files side by side
                positions = np.arange(target.n_rows, dtype=np.int64)
            else:
                positions = np.asarray(rows_by_keys(join, keys, source_path, f"anchor ids of {tgt_anchors.name}"), dtype=np.int64)
            if source.dim != src_reader.dim:
                raise DataError(f"dimension mismatch: {src.name} has {src_reader.dim} dims, source anchors have "
                                f"{source.dim}", source_path)
            dtype = compute_dtype_of(src_reader.dtype)
            sample = np.sort(np.random.default_rng(seed).choice(target.n_rows, SAMPLE_ANCHORS, replace=False))
            xs = source.read_rows(positions[sample]).to(device=device, dtype=dtype)
            ys = target.read_rows(sample).to(device=device, dtype=dtype)
            selection = select_translator(xs, ys, method, options, seed, None if stats is None else stats.mean_norm,
                                          objective=whole_objective(objective, positions, target))
            twin = selection.translator.frozen()
            centre = (None, None)
            if twin.method == "irp" and twin.center:
                means = AnchorMoments()
                for x, y in _pairs(target, source, positions, device, dtype, join, (source_path, tgt_anchors)):
                    means.update(x, y)
                centre = (means.mean_x, means.mean_y)
            moments = AnchorMoments(unit=twin.method == "irp", centre_x=centre[0], centre_y=centre[1])
            accumulator = SpaceStatsAccumulator() if stats is None else None
            for x, y in _pairs(target, source, positions, device, dtype, join, (source_path, tgt_anchors)):
                moments.update(x, y)
                if accumulator is not None:
                    accumulator.update(y)
            stats = stats or accumulator.result()
            selection.translator = twin.fit_moments(moments, target_norm=stats.mean_norm)
            backward = None
            if reverse:
                chosen = selection.chosen
                sample_fit = make_translator(chosen.method, seed=seed, objective=selection.objective, **chosen.options).fit(ys, xs)
                backward = sample_fit.frozen().fit_moments(moments.reversed())
        finally:
            if source is not src_reader:
                source.close()
    return selection, stats, backward
