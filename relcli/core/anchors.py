"""Anchor selection: which rows of a space become the anchors.

Every strategy is seeded through a CPU ``torch.Generator`` and returns a CPU LongTensor of
``k`` distinct row indices, in the order they were chosen.
"""

from __future__ import annotations

import torch

from relcli.core import registry
from relcli.core._common import DEFAULT_CHUNK_ROWS, check_matrix, check_rows, compute_dtype, row_chunks
from relcli.core._estimator import Estimator
from relcli.core.stats import SpaceStats, space_stats
from relcli.errors import DataError, UsageError

STRATEGIES = tuple(registry.STRATEGIES)

# Most elements of one (rows x k) block built by k-means; bounds its memory whatever chunk_rows is.
_MAX_BLOCK = 1 << 24


# --------------------------------------------------------------------------- strategies


def _check_k(k: int, n_rows: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError(f"the number of anchors must be a positive integer, got {k!r}")
    if k > n_rows:
        raise DataError(f"asked for {k} anchors but the space has only {n_rows} rows: lower -n")


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def _row_norms(x: torch.Tensor, chunk_rows: int | None, what: str) -> torch.Tensor:
    """‖x_i‖₂ in the working dtype, computed by chunks; zero or NaN/Inf rows are a DataError."""
    work = compute_dtype(x.dtype)
    norms = torch.cat(
        [torch.linalg.vector_norm(x[sl].to(work), dim=1) for sl in row_chunks(x.shape[0], chunk_rows)]
    )
    if not bool((torch.isfinite(norms) & (norms > 0)).all()):
        check_rows(x.to(work), what)
    return norms


def select_random(n_rows: int, k: int, seed: int = 0) -> torch.Tensor:
    """The first k entries of a seeded random permutation of ``range(n_rows)``."""
    _check_k(k, n_rows)
    return torch.randperm(n_rows, generator=_generator(seed))[:k]


def select_per_class(labels: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """Class-balanced round robin: one row per class in turn (classes sorted) until k are taken.

    Rows are shuffled with the seed first; within a class they are taken in shuffled order.
    A class that runs out is skipped, so class counts differ by at most one unless a class
    is smaller than its share.
    """
    labels = torch.as_tensor(labels)
    if labels.ndim != 1:
        raise DataError(f"labels must be one per row (1-D), got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex():
        raise DataError(f"labels must be integers, got {labels.dtype}: map them to class numbers")
    n = labels.shape[0]
    _check_k(k, n)
    perm = torch.randperm(n, generator=_generator(seed))
    _, cls = torch.unique(labels.cpu()[perm], sorted=True, return_inverse=True)
    n_classes = int(cls.max()) + 1
    # rank of each shuffled row within its class, from a stable grouping by class
    order = torch.argsort(cls, stable=True)
    counts = torch.bincount(cls, minlength=n_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = torch.arange(n) - starts[cls[order]]
    key = rank * n_classes + cls  # round r, then class number: unique keys
    return perm[torch.argsort(key)[:k]]


def select_fps(
    x: torch.Tensor, k: int, seed: int = 0, chunk_rows: int | None = DEFAULT_CHUNK_ROWS
) -> torch.Tensor:
    """Farthest-point sampling on the unit sphere with distance d(x, c) = max(0, 1 − x̂·ĉ).

    Starts from a seeded random row, then repeatedly takes the unchosen row whose distance to
    its nearest chosen row is largest (lowest index on ties, so exact duplicates of chosen rows
    come last, lowest index first). Keeps one running minimum per row: O(N·k·d) time, O(N)
    memory beyond x.
    """
    x = check_matrix(x, "x")
    n = x.shape[0]
    _check_k(k, n)
    norms = _row_norms(x, chunk_rows, "x")
    work = norms.dtype
    start = torch.randint(n, (1,), generator=_generator(seed)).to(x.device)
    chosen = torch.zeros(n, dtype=torch.bool, device=x.device)
    min_dist = torch.full((n,), float("inf"), dtype=work, device=x.device)
    picks = [start[0]]
    for step in range(k):
        if step:
            picks.append(torch.argmax(min_dist.masked_fill(chosen, -float("inf"))))
        idx = picks[-1]
        chosen[idx] = True
        if step == k - 1:
            break
        centre = x[idx].to(work) / norms[idx]
        for sl in row_chunks(n, chunk_rows):
            dist = (1 - (x[sl].to(work) @ centre) / norms[sl]).clamp_min(0)
            min_dist[sl] = torch.minimum(min_dist[sl], dist)
    return torch.stack(picks).cpu()


def _block_rows(n: int, k: int, chunk_rows: int | None) -> int:
    step = n if not chunk_rows or chunk_rows <= 0 else chunk_rows
    return max(1, min(step, _MAX_BLOCK // k))


def _kmeans_centroids(unit: torch.Tensor, k: int, seed: int, n_iter: int, step: int) -> torch.Tensor:
    """Spherical k-means on unit rows x̂: k-means++ seeding, then ``n_iter`` Lloyd steps; (k, d) unit centroids.

    Seeding (Arthur & Vassilvitskii 2007) draws each next centre with probability ∝ D(x)²,
    D² = ‖x̂ − ĉ‖² = 2 − 2 x̂·ĉ to the nearest centre: u ~ U[0,1) from the seeded CPU generator,
    centre = first row whose cumulative D² exceeds u·ΣD². If every unchosen row duplicates a
    centre (ΣD² = 0) the lowest unchosen row is taken. Lloyd: assign each row to the centroid of
    highest cosine, centroid = normalised sum of its rows; an empty cluster keeps its centroid.
    Stops early once the assignment no longer changes.
    """
    n, work, device = unit.shape[0], unit.dtype, unit.device
    g = _generator(seed)
    chosen = torch.zeros(n, dtype=torch.bool, device=device)
    d2 = torch.full((n,), float("inf"), dtype=torch.float64, device=device)
    centres = [int(torch.randint(n, (1,), generator=g))]
    for _ in range(1, k):
        last = centres[-1]
        chosen[last] = True
        centre = unit[last]
        for sl in row_chunks(n, step):
            cos = unit[sl] @ centre
            d2[sl] = torch.minimum(d2[sl], (2 - 2 * cos).clamp_min(0).to(torch.float64))
        weights = d2.masked_fill(chosen, 0)
        cumulative = torch.cumsum(weights, 0)
        total = float(cumulative[-1])
        u = float(torch.rand((), generator=g, dtype=torch.float64))
        if total > 0:
            target = torch.tensor([u * total], dtype=torch.float64, device=device)
            idx = int(torch.searchsorted(cumulative, target, right=True)[0])
            if idx >= n:  # u·total rounded up to total
                idx = int(weights.nonzero()[-1, 0])
        else:
            idx = int((~chosen).nonzero()[0, 0])
        centres.append(idx)

    centroids = unit[torch.tensor(centres, device=device)]
    previous = None
    for _ in range(n_iter):
        assign = torch.empty(n, dtype=torch.long, device=device)
        sums = torch.zeros(k, unit.shape[1], dtype=torch.float64, device=device)
        for sl in row_chunks(n, step):
            xs = unit[sl]
            a = torch.argmax(xs @ centroids.T, dim=1)
            assign[sl] = a
            sums += _segment_sums(xs.to(torch.float64), a, k)
        if previous is not None and torch.equal(assign, previous):
            break
        previous = assign
        lengths = torch.linalg.vector_norm(sums, dim=1, keepdim=True)
        updated = (sums / lengths.clamp_min(torch.finfo(torch.float64).tiny)).to(work)
        centroids = torch.where(lengths > 0, updated, centroids)
    return centroids


def _segment_sums(values: torch.Tensor, segment: torch.Tensor, k: int) -> torch.Tensor:
    """Row sums per segment id in 0..k-1, bit-reproducible on every device.

    On the CPU ``index_add_`` adds in row order. On a GPU its atomics add in a varying order, so
    there the sums are differences of a cumulative sum over the rows sorted by id.
    """
    if values.device.type == "cpu":
        return torch.zeros(k, values.shape[1], dtype=values.dtype).index_add_(0, segment, values)
    counts = torch.bincount(segment, minlength=k)
    ends = torch.cumsum(counts, 0)
    cumulative = torch.cumsum(values[torch.argsort(segment, stable=True)], 0)
    cumulative = torch.cat([torch.zeros_like(cumulative[:1]), cumulative])
    return cumulative[ends] - cumulative[ends - counts]


def _snap_to_rows(x: torch.Tensor, centroids: torch.Tensor, step: int) -> torch.Tensor:
    """For each unit centroid in order, the unit row of ``x`` of highest cosine not taken by an earlier one."""
    n, k = x.shape[0], centroids.shape[0]
    best = torch.full((k,), -float("inf"), dtype=x.dtype, device=x.device)
    best_idx = torch.zeros(k, dtype=torch.long, device=x.device)
    for sl in row_chunks(n, step):
        sims = x[sl] @ centroids.T
        i = torch.argmax(sims, dim=0)
        v = sims.gather(0, i[None]).squeeze(0)
        better = v > best  # strict: an earlier chunk keeps ties (lowest index)
        best = torch.where(better, v, best)
        best_idx = torch.where(better, i + sl.start, best_idx)
    used = torch.zeros(n, dtype=torch.bool, device=x.device)
    out = []
    for j, idx in enumerate(best_idx.tolist()):
        if used[idx]:
            sims = torch.cat([x[sl] @ centroids[j] for sl in row_chunks(n, step)])
            idx = int(torch.argmax(sims.masked_fill(used, -float("inf"))))
        used[idx] = True
        out.append(idx)
    return torch.tensor(out, dtype=torch.long)


def select_kmeans(
    x: torch.Tensor,
    k: int,
    seed: int = 0,
    n_iter: int = 20,
    chunk_rows: int | None = DEFAULT_CHUNK_ROWS,
) -> torch.Tensor:
    """Rows nearest to the k centroids of spherical k-means on x̂ (see ``_kmeans_centroids``).

    Each centroid, in seeding order, snaps to its nearest real row by cosine; a centroid whose
    nearest row is already taken gets its nearest unused row, so the k rows are distinct.
    Blocks of rows × k are at most ``chunk_rows`` rows and 2²⁴ elements.
    """
    x = check_matrix(x, "x")
    n = x.shape[0]
    _check_k(k, n)
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
        raise UsageError(f"n_iter must be a non-negative integer, got {n_iter!r}")
    norms = _row_norms(x, chunk_rows, "x")
    step = _block_rows(n, k, chunk_rows)
    unit = x.to(norms.dtype) / norms[:, None]  # normalised once: every pass below reads only this
    centroids = _kmeans_centroids(unit, k, seed, n_iter, step)
    return _snap_to_rows(unit, centroids, step)


def select_anchors(
    strategy: str,
    n_anchors: int,
    x: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    n_rows: int | None = None,
    seed: int = 0,
    chunk_rows: int | None = DEFAULT_CHUNK_ROWS,
) -> torch.Tensor:
    """Indices (CPU LongTensor) of ``n_anchors`` distinct rows chosen by ``strategy``.

    ``random`` needs only the row count (``n_rows``, or taken from ``x``/``labels``);
    ``per-class`` needs ``labels``; ``fps`` and ``kmeans`` need ``x``.
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown anchor strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    if x is not None:
        x = check_matrix(x, "x")
    sizes = {
        name: size
        for name, size in (
            ("x", None if x is None else x.shape[0]),
            ("labels", None if labels is None else len(labels)),
            ("n_rows", n_rows),
        )
        if size is not None
    }
    if not sizes:
        raise UsageError("select_anchors needs x, labels or n_rows to know how many rows there are")
    if len(set(sizes.values())) > 1:
        raise DataError(f"row counts disagree: {', '.join(f'{k}={v}' for k, v in sizes.items())}")
    n = next(iter(sizes.values()))
    _check_k(n_anchors, n)
    if strategy == "random":
        return select_random(n, n_anchors, seed)
    if strategy == "per-class":
        if labels is None:
            raise UsageError("strategy 'per-class' needs labels: give a file with labels or pick another strategy")
        return select_per_class(labels, n_anchors, seed)
    if x is None:
        raise UsageError(f"strategy {strategy!r} needs the embeddings x")
    if strategy == "fps":
        return select_fps(x, n_anchors, seed, chunk_rows)
    return select_kmeans(x, n_anchors, seed, chunk_rows=chunk_rows)


class AnchorSelector(Estimator):
    """Choose anchors with ``select_anchors`` and record the whole space's ``SpaceStats``.

    Learned state: ``indices_`` (CPU LongTensor, k), ``space_mean_``/``space_std_`` (d),
    ``mean_norm_``/``std_norm_`` (float), ``n_rows_`` (int). ``transform(x)`` = x[indices_].
    """

    _state = {
        "indices_": "itensor1", "space_mean_": "tensor1", "space_std_": "tensor1",
        "mean_norm_": "float", "std_norm_": "float", "n_rows_": "int",
    }

    def __init__(
        self,
        n_anchors: int,
        strategy: str = "fps",
        seed: int = 0,
        chunk_rows: int | None = DEFAULT_CHUNK_ROWS,
    ):
        self.n_anchors = n_anchors
        self.strategy = strategy
        self.seed = seed
        self.chunk_rows = chunk_rows

    def fit(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> "AnchorSelector":
        x = check_matrix(x, "x")
        indices = select_anchors(
            self.strategy, self.n_anchors, x=x, labels=labels, seed=self.seed, chunk_rows=self.chunk_rows
        )
        stats = space_stats(x, self.chunk_rows)
        self._set_state(
            indices_=indices, space_mean_=stats.mean, space_std_=stats.std,
            mean_norm_=stats.mean_norm, std_norm_=stats.std_norm, n_rows_=stats.n_rows,
        )
        return self

    @property
    def stats(self) -> SpaceStats:
        """The fitted whole-space statistics as a ``SpaceStats``."""
        self.check_fitted()
        return SpaceStats(self.n_rows_, self.mean_norm_, self.std_norm_, self.space_mean_, self.space_std_)

    def transform(self, x: torch.Tensor) -> torch.Tensor:
        """The anchor rows of x (a matrix with the fitted number of rows, e.g. a parallel space)."""
        self.check_fitted()
        x = check_matrix(x, "x")
        if x.shape[0] != self.n_rows_:
            raise DataError(
                f"x has {x.shape[0]} rows but the anchors were chosen among {self.n_rows_}"
            )
        return x[self.indices_.to(x.device)]
