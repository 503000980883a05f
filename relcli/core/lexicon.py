"""Bilingual lexicon induction: ranks of translated words among a whole target vocabulary, by
nearest neighbours and by CSLS (Conneau et al. 2018), as MUSE scores word translation.
``relcli.api._dictionary`` reads the files; this is the maths on tensors."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from relcli.core._common import l2_normalize, row_chunks
from relcli.core.metrics import _tie_tol
from relcli.core.paired import SIMILARITY_ELEMENTS, _running_top, count_above, unit64


def hub_means(rows_hat: torch.Tensor, sources: Iterator[torch.Tensor], k: int) -> torch.Tensor:
    """r_S(y) for unit rows y (m × d): the mean of the k largest cos(y, s) over every row s that
    ``sources`` yields (the translated source vocabulary, in chunks), as CSLS's hubness (m,)."""
    best = None
    step = max(1, SIMILARITY_ELEMENTS // max(1, rows_hat.shape[0]))
    for source in sources:
        source_hat = l2_normalize(source.to(rows_hat), "translated rows")
        for lo in range(0, source_hat.shape[0], step):
            best = _running_top(best, rows_hat @ source_hat[lo:lo + step].T, k)
    return best.mean(dim=1)


def dictionary_ranks(
    pred_q: torch.Tensor,
    pair_query: torch.Tensor,
    pair_target: torch.Tensor,
    target_rows: torch.Tensor,
    gallery: Iterator[tuple[int, torch.Tensor]],
    query_batch: int | None = None,
    hubs: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Ranks of translated words among a whole target vocabulary, any of their translations a hit
    (bilingual lexicon induction, as MUSE scores it with nearest neighbours and with CSLS).

    ``pred_q`` (m × d): the queries' rows; pair p says target row ``pair_target[p]`` is a right
    answer of query ``pair_query[p]``, with ``target_rows`` (pairs × d) that row itself;
    ``gallery`` yields (start, rows) over every target row in order. Nearest neighbours:
    rank_q = 1 + #{j ∉ T(q): cos(p_q, r_j) > max_{t ∈ T(q)} cos(p_q, r_t)}: the best-placed right
    answer counts. With ``hubs`` (unit target rows -> r_S, ``hub_means`` over the translated
    vocabulary) also CSLS ranks, by 2cos(p_q, r_j) − r_S(r_j) (−r_T(p_q) is the same for every j
    and cannot change a rank): (ranks, CSLS ranks or None). Similarities are taken in the rows'
    precision; a row within the tie window τ of the best right answer (4τ for CSLS) is decided by
    its cosine in float64, so a near miss is not counted as a hit (an exact tie still is).
    """
    pred_hat = l2_normalize(pred_q, "translated rows")
    m, tol = pred_hat.shape[0], _tie_tol(pred_hat.dtype)
    device = pred_hat.device
    pair_query, pair_target = pair_query.to(device), pair_target.to(device)
    targets_hat = l2_normalize(target_rows.to(pred_hat), "reference rows")
    pred64 = unit64(pred_q, "translated rows")
    right = (pred_hat[pair_query] * targets_hat).sum(dim=1)
    right64 = (pred64[pair_query] * unit64(target_rows.to(pred64.device), "reference rows")).sum(dim=1)

    def best_of(values: torch.Tensor) -> torch.Tensor:  # per query, over its right answers
        return values.new_full((m,), -math.inf).scatter_reduce_(0, pair_query, values, "amax")

    best, best64 = best_of(right), best_of(right64)
    ranks = torch.ones(m, dtype=torch.int64, device=device)
    csls_ranks = best_csls = best_csls64 = None
    if hubs is not None:
        right_hubs = hubs(targets_hat)
        best_csls, best_csls64 = best_of(2 * right - right_hubs), best_of(2 * right64 - right_hubs.to(torch.float64))
        csls_ranks = torch.ones_like(ranks)
    step = max(1, min(query_batch or m, m))
    width = max(1, SIMILARITY_ELEMENTS // step)
    for start, rows in gallery:
        rows_hat = l2_normalize(rows.to(pred_hat), "reference rows")
        rows64 = None  # made when a near tie needs it
        rows_hubs = hubs(rows_hat) if hubs is not None else None
        inside = (pair_target >= start) & (pair_target < start + rows_hat.shape[0])
        for lo in range(0, rows_hat.shape[0], width):
            part = rows_hat[lo:lo + width]
            columns = pair_target - start - lo
            here = inside & (columns >= 0) & (columns < part.shape[0])
            for q in row_chunks(m, step):

                def cosines(query, column, q=q, lo=lo):
                    nonlocal rows64
                    if rows64 is None:
                        rows64 = unit64(rows.to(pred64.device), "reference rows")
                    return (pred64[q][query] * rows64[lo + column]).sum(dim=1)

                sims = pred_hat[q] @ part.T
                mine = here & (pair_query >= q.start) & (pair_query < q.stop)
                sims[pair_query[mine] - q.start, columns[mine]] = -math.inf  # a right answer is never counted against
                count_above(ranks, q.start, sims, best[q], best64[q], tol, cosines)
                if rows_hubs is not None:
                    hub = rows_hubs[lo:lo + width]
                    count_above(csls_ranks, q.start, 2 * sims - hub[None, :], best_csls[q], best_csls64[q], 4 * tol,
                                lambda query, column, hub=hub, cosines=cosines:
                                2 * cosines(query, column) - hub[column].to(torch.float64))
    return ranks, csls_ranks


__all__ = ["dictionary_ranks", "hub_means"]
