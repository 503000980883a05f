"""The embedding metrics of ``evaluate`` in passes over aligned row chunks: memory flat in n.

Row i of ``pred`` should match row i of ``ref``; the rows arrive in chunks, in order, from a
``PairedRows`` source (``TensorRows`` for tensors in memory; ``relcli.api.evaluate`` reads two
files chunk by chunk). The retrieval metrics judge a set of query rows q (all, or a seeded sample:
``metrics.query_indices``) against every row, so each query keeps a little state across chunks:

- retrieval: rank_q = 1 + #{j ≠ q: cos(p_q, r_j) > cos(p_q, r_q)}, counted chunk by chunk (a row
  within τ of the bound, where rounding could decide, is compared in float64: ``count_above``);
- Jaccard@k: the k nearest other rows of p_q among pred and of r_q among ref (``_Nearest``: every
  row within τ of the running k-th is kept, so ties are decided at the end, by row index, exactly
  as on a whole row);
- CSLS: 2cos(p_q, r_j) − r_T(p_q) − r_S(r_j) ranked like retrieval (Conneau et al. 2018). r_T(p_q)
  is the same for every row a query is compared with, so it cannot change a rank and is not
  computed; r_S(r_j), the mean of r_j's k largest cosines to the queries' pred rows (every pred row
  when every row is a query: exact; else the sampled ones, p_j left out so that no row's hub holds
  its own match: an estimate, a little low for every row alike), comes from the same similarities
  as the ranks.

One pass serves every metric: cosine, MSE, CKA's sums and the queries' counts, with gallery rows
taken in slices so that all queries' similarities to a slice fit ``SIMILARITY_ELEMENTS``. Every
result equals that of one block holding all n rows (the running top-k sets are those of the whole
row; the counts are sums), so it does not depend on the chunk sizes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Protocol

import torch

from relcli.core._common import l2_normalize, row_chunks
from relcli.core.metrics import CKASums, _knn_mask, _rank_summary, _tie_tol, mean_cosine, mse, query_indices

#: entries of a query × row similarity block (float32: 64 MiB)
SIMILARITY_ELEMENTS = 1 << 24


class PairedRows(Protocol):
    """Aligned rows of a prediction and a reference, as the metrics read them.

    ``n`` rows; ``chunk_rows``: rows per chunk; ``chunks()`` yields (start, pred rows, ref rows)
    over rows 0..n in order, each valid (no NaN/Inf; no zero rows where a direction is needed) and
    in one dtype on one device; ``rows(indices)`` the (pred, ref) rows at sorted ``indices``."""

    n: int
    chunk_rows: int

    def chunks(self) -> Iterator[tuple[int, torch.Tensor, torch.Tensor]]: ...

    def rows(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class TensorRows:
    """``pred`` and ``ref`` in memory (checked by the caller: same rows, one dtype and device)."""

    def __init__(self, pred: torch.Tensor, ref: torch.Tensor, chunk_rows: int):
        self.pred, self.ref, self.n, self.chunk_rows = pred, ref, pred.shape[0], max(1, chunk_rows)

    def chunks(self):
        for rows in row_chunks(self.n, self.chunk_rows):
            yield rows.start, self.pred[rows], self.ref[rows]

    def rows(self, indices):
        indices = indices.to(self.pred.device)
        return self.pred[indices], self.ref[indices]


class _Nearest:
    """The k nearest rows of each query among the rows seen so far, by cosine, the query itself left
    out. Columns stay in row order, so ``sets`` can break ties by row index. A row is kept unless
    it can never end among the k nearest, ties included:

    - it lies more than τ below the running k-th largest similarity (the k-th largest over all rows
      is at least that over any part of them);
    - or k earlier rows are at least as close (ties go to the lower index): it is no larger than
      the k-th largest of the rows before it, or than a value that k earlier rows reach.

    The second rule bounds the rows kept when many rows are duplicates, which all tie.
    """

    def __init__(self, queries: int, k: int, tol: float, like: torch.Tensor):
        self.k, self.tol = k, tol
        self.values = like.new_empty(queries, 0)
        self.index = torch.empty(queries, 0, dtype=torch.int64, device=like.device)
        self.kth = like.new_full((queries, 1), -math.inf)  # the running k-th largest similarity

    def add(self, sims: torch.Tensor, start: int) -> None:
        before = self.kth  # the k-th largest of every earlier row (−inf until k rows were seen)
        if sims.shape[1] >= self.k:
            self.kth = torch.maximum(self.kth, sims.topk(self.k, dim=1).values[:, -1:])
        values, index = _compact(sims, self._kept(sims) & (sims > before), start)
        values, index = torch.cat([self.values, values], dim=1), torch.cat([self.index, index], dim=1)
        if values.shape[1] >= self.k:
            self.kth = values.topk(self.k, dim=1).values[:, -1:]
        self.values, self.index = _compact(values, self._kept(values), 0, index)

    def _kept(self, values: torch.Tensor) -> torch.Tensor:
        """Entries (columns in row order) within τ of the running k-th, less those at or below it
        that come after k entries at or above it."""
        keep = values >= self.kth - self.tol
        reach = values >= self.kth
        crowded = (_row_counts(reach) > self.k).nonzero().flatten()  # ties at the k-th (duplicates)
        if len(crowded):
            reached = reach[crowded]
            earlier = reached.cumsum(dim=1, dtype=torch.int32) - reached.to(torch.int32)
            keep[crowded] &= (values[crowded] > self.kth[crowded]) | (earlier < self.k)
        return keep

    def sets(self, k: int) -> torch.Tensor:
        """(queries × k) row indices of the k nearest (k ≤ the k this was built for); ties to the lower index."""
        return self.index[_knn_mask(self.values, k, self.tol)].view(self.values.shape[0], k)


def _row_counts(mask: torch.Tensor) -> torch.Tensor:
    """True entries per row (int64): summed in int16 when a row cannot overflow it, which is several
    times faster than the int64 sum of a bool block on the CPU."""
    dtype = torch.int16 if mask.shape[1] < 2**15 else torch.int32
    return mask.sum(dim=1, dtype=dtype).to(torch.int64)


def count_above(into: torch.Tensor, first: int, scores: torch.Tensor, bound: torch.Tensor, bound64: torch.Tensor,
                window: float, exact: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
    """into[first + i] += #{j: score_ij > bound_i}, for scores (m × w) in the rows' precision.

    Entries more than ``window`` above the bound count; entries within it of the bound (a near tie,
    where rounding could decide) count when their float64 score ``exact(i, j)`` (for index tensors
    i, j) exceeds ``bound64`` (m,): a near miss is not a hit, and an exact tie counts for the query."""
    above = scores > (bound + window)[:, None]
    into[first:first + scores.shape[0]] += _row_counts(above)
    near = (scores >= (bound - window)[:, None]) & ~above
    if bool(near.any()):
        rows, columns = near.nonzero(as_tuple=True)
        into.index_add_(0, first + rows, (exact(rows, columns) > bound64[rows]).to(torch.int64))


def unit64(rows: torch.Tensor, what: str) -> torch.Tensor:
    """Rows scaled to unit norm in float64: the exact side of ``count_above``."""
    return l2_normalize(rows.to(torch.float64), what)


def _compact(values: torch.Tensor, keep: torch.Tensor, start: int, index: torch.Tensor | None = None):
    """The kept entries of each row, in column order, padded with −inf: (values, their row indices,
    ``index`` where given, else start + column). Memory in the kept entries, not the block."""
    rows, columns = keep.nonzero(as_tuple=True)  # row-major: columns ascending within a row
    counts = _row_counts(keep)
    position = torch.arange(len(rows), device=values.device) - (counts.cumsum(0) - counts)[rows]
    width = int(counts.max()) if len(counts) else 0
    out = values.new_full((values.shape[0], width), -math.inf)
    out[rows, position] = values[rows, columns]
    where = torch.zeros(values.shape[0], width, dtype=torch.int64, device=values.device)
    where[rows, position] = columns + start if index is None else index[rows, columns]
    return out, where


class _Queries:
    """One block of query rows and what the pass keeps for them."""

    def __init__(self, rows: torch.Tensor, pred: torch.Tensor, ref: torch.Tensor, tol: float, knn_k: int):
        self.rows, self.pred, self.ref, self.tol = rows, pred, ref, tol
        self.own = (pred * ref).sum(dim=1) if pred.shape[1] == ref.shape[1] else None
        self.own64 = (pred.double() * ref.double()).sum(dim=1) if self.own is not None else None  # near ties
        self.ranks = torch.ones(len(rows), dtype=torch.int64, device=pred.device)  # 1 + the rows counted above
        self.csls_ranks = torch.ones_like(self.ranks)
        self.own_csls = self.own_csls64 = None  # 2 cos(p_q, r_q) − r_S(r_q)
        self.near_pred = _Nearest(len(rows), knn_k, tol, pred) if knn_k else None
        self.near_ref = _Nearest(len(rows), knn_k, tol, ref) if knn_k else None

    def own_columns(self, start: int, stop: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(positions in this block, columns in rows start:stop) of the queries whose own row lies there."""
        inside = ((self.rows >= start) & (self.rows < stop)).nonzero().flatten()
        return inside, self.rows[inside] - start


def _running_top(best: torch.Tensor | None, sims: torch.Tensor, k: int, dim: int = 1) -> torch.Tensor:
    """The k largest values along ``dim`` of ``sims`` and of the ``best`` so far, merged."""
    top = sims.topk(min(k, sims.shape[dim]), dim=dim).values
    if best is None:
        return top
    merged = torch.cat([best, top], dim=dim)
    return merged.topk(min(k, merged.shape[dim]), dim=dim).values


def paired_metrics(
    source: PairedRows,
    wanted: dict[str, tuple[str, int | None]],
    query_batch: int | None,
    query_sample: int | None = None,
    seed: int = 0,
    csls_neighbours: int = 10,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, float]:
    """``wanted`` (name -> (family, k), as ``evaluation.parse_metrics`` names them) over ``source``.

    Families: cosine, mse, cka (any dimensions), top/mrr/mrr@ (retrieval), jaccard@ (any
    dimensions), csls_top. ``query_batch``: query rows per similarity block (at most). k and the
    row counts are the caller's to check. ``progress(description, done, total)`` after each chunk.
    """
    n = source.n
    families = {family for family, _ in wanted.values()}
    ranking, csls = bool(families & {"top", "mrr", "mrr@"}), "csls_top" in families
    knn_k = max((k for family, k in wanted.values() if family == "jaccard@"), default=0)
    blocks: list[_Queries] = []
    width = source.chunk_rows  # gallery rows per similarity block: all the queries' blocks of them fit the budget
    if ranking or csls or knn_k:
        queries = query_indices(n, query_sample, seed)
        pred_q, ref_q = source.rows(queries)
        pred_q, ref_q = l2_normalize(pred_q, "pred"), l2_normalize(ref_q, "ref")
        tol = _tie_tol(pred_q.dtype)
        queries = queries.to(pred_q.device)
        step = max(1, min(query_batch or len(queries), len(queries)))
        blocks = [_Queries(queries[part], pred_q[part], ref_q[part], tol, knn_k) for part in row_chunks(len(queries), step)]
        width = max(1, SIMILARITY_ELEMENTS // len(queries))
        sampled = len(queries) < n
        if csls:
            _own_csls(blocks, pred_q, csls_neighbours, sampled)

    totals = {"cosine": 0.0, "mse": 0.0}
    cka = CKASums() if "cka" in families else None
    for start, pred, ref in source.chunks():
        if "cosine" in families:
            totals["cosine"] += mean_cosine(pred, ref, None) * pred.shape[0]
        if "mse" in families:
            totals["mse"] += mse(pred, ref, None) * pred.shape[0]
        if cka is not None:
            cka.add(pred, ref)
        if blocks:
            pred_hat, ref_hat = l2_normalize(pred, "pred"), l2_normalize(ref, "ref")
            for lo in range(0, pred_hat.shape[0], width):
                part = slice(lo, lo + width)
                _count(blocks, start + lo, pred_hat[part], ref_hat[part], ranking, csls, knn_k, csls_neighbours, sampled)
        if progress is not None:
            progress("evaluate", start + pred.shape[0], n)

    results: dict[str, float] = {}
    ranks = torch.cat([b.ranks for b in blocks]) if blocks else None
    csls_ranks = torch.cat([b.csls_ranks for b in blocks]) if blocks else None
    for name, (family, k) in wanted.items():
        if family in ("cosine", "mse"):
            results[name] = totals[family] / n
        elif family == "cka":
            results[name] = cka.value()
        elif family == "top":
            results[name] = _rank_summary(ranks, [k], [])[f"top{k}"]
        elif family == "mrr":
            results[name] = _rank_summary(ranks, [], [])["mrr"]
        elif family == "mrr@":
            results[name] = _rank_summary(ranks, [], [k])[f"mrr@{k}"]
        elif family == "csls_top":
            results[name] = _rank_summary(csls_ranks, [k], [], prefix="csls_")[f"csls_top{k}"]
        else:  # jaccard@
            total = torch.zeros((), dtype=torch.float64, device=blocks[0].rows.device)
            for block in blocks:
                a, b = block.near_pred.sets(k), block.near_ref.sets(k)
                shared = (a[:, :, None] == b[:, None, :]).any(dim=2).sum(dim=1).to(torch.float64)
                total += (shared / (2 * k - shared)).sum()
            results[name] = float(total) / sum(len(b.rows) for b in blocks)
    return results


def _count(blocks: list[_Queries], start: int, pred_hat, ref_hat, ranking: bool, csls: bool, knn_k: int, k_nb: int,
           sampled: bool) -> None:
    """Add gallery rows start:start+len (unit rows) to every query block's counts and nearest sets.

    CSLS ranks drop r_T(p_q), a constant of the query's row: 2s_qj − r_S(r_j) > 2s_qq − r_S(r_q) (4τ
    the near-tie window, ``count_above``).
    r_S of these rows (their k largest cosines to the queries' pred rows) needs every block's
    similarities to them first, so all blocks' fit the similarity budget together. ``sampled``: the
    queries are a sample, and r_S(r_j) leaves p_j out (only the sampled rows would have their own
    match among the pred rows, which would raise their hub and sink exactly the right answers)."""
    stop = start + pred_hat.shape[0]
    if ranking or csls:
        sims = [block.pred @ ref_hat.T for block in blocks]
        if csls:
            nearest = None
            for block, block_sims in zip(blocks, sims):
                if sampled:  # no row's hub may hold its own match: rows outside the sample have none there
                    inside, columns = block.own_columns(start, stop)
                    block_sims[inside, columns] = -math.inf
                nearest = _running_top(nearest, block_sims, k_nb, dim=0)
            hubs = nearest.mean(dim=0)
        for block, block_sims in zip(blocks, sims):
            inside, columns = block.own_columns(start, stop)
            block_sims[inside, columns] = -math.inf  # the query's own row is not counted against it

            def cosines(query, column, block=block):  # near ties, in float64 on the unit rows
                return (block.pred[query].double() * ref_hat[column].double()).sum(dim=1)

            if ranking:
                count_above(block.ranks, 0, block_sims, block.own, block.own64, block.tol, cosines)
            if csls:
                count_above(block.csls_ranks, 0, 2 * block_sims - hubs[None, :], block.own_csls, block.own_csls64,
                            4 * block.tol, lambda query, column, cosines=cosines:
                            2 * cosines(query, column) - hubs[column].double())
    if knn_k:
        for block in blocks:
            inside, columns = block.own_columns(start, stop)
            for nearest, queries, rows in ((block.near_pred, block.pred, pred_hat), (block.near_ref, block.ref, ref_hat)):
                block_sims = queries @ rows.T
                block_sims[inside, columns] = -math.inf
                nearest.add(block_sims, start)


def _own_csls(blocks: list[_Queries], pred_q: torch.Tensor, k: int, sampled: bool) -> None:
    """Each query's 2 cos(p_q, r_q) − r_S(r_q), with r_S(r_q) the mean of r_q's k largest cosines to the
    queries' pred rows, p_q left out when ``sampled`` (see ``_count``): an m × m pass, m = the queries."""
    first = 0
    for block in blocks:
        nearest = None
        for part in row_chunks(pred_q.shape[0], max(1, SIMILARITY_ELEMENTS // len(block.rows))):
            sims = block.ref @ pred_q[part].T
            if sampled:
                mine = torch.arange(first, first + len(block.rows), device=sims.device)
                here = (mine >= part.start) & (mine < part.stop)
                sims[here.nonzero().flatten(), mine[here] - part.start] = -math.inf
            nearest = _running_top(nearest, sims, k)
        block.own_csls = 2 * block.own - nearest.mean(dim=1)
        block.own_csls64 = 2 * block.own64 - nearest.mean(dim=1).double()
        first += len(block.rows)


__all__ = ["PairedRows", "SIMILARITY_ELEMENTS", "TensorRows", "count_above", "paired_metrics"]
