"""``api.search``: the k nearest rows of an index file to some queries, in one streamed pass over the index.

Queries are rows of the index picked by id (``id``/``ids``), rows of another embedding file
(``queries``, optionally picked by id), or texts embedded with a local encoder (``text`` +
``encoder``). The index is read once, chunk by chunk through the one row loop (``RowLoop``); each
query keeps a running top-k, so memory is O(queries × (dims + k)) plus one chunk, whatever the
index's size. Index rows that cannot be used (NaN/Inf, all zeros) are an error naming their ids, or
are skipped under ``drop_invalid``; a query that cannot be used is always an error naming it.

Similarities (x̂ = x/‖x‖₂):
- ``cosine``: s(q, y) = ⟨q̂, ŷ⟩.
- ``csls`` (Conneau et al. 2018, as ``relcli.core.metrics.csls_retrieval``):
  CSLS(q, y) = 2 cos(q, y) − r_T(q) − r_S(y), where
  r_T(q) = mean cosine of q to its ``csls_k`` nearest index rows (exact: kept in the same pass;
  fewer when the index has fewer), and
  r_S(y) = mean cosine of index row y to its ``csls_k`` nearest rows of the *neighbourhood* S,
  S = the rows of the query side's space: all rows of the ``queries`` file, or, for ids and
  texts, of the index itself (y itself left out). When that space has more than ``csls_sample``
  rows, S is a seeded uniform sample of ``csls_sample`` of them (CPU generator, the same on every
  device) and r_S is an estimate: from a sample the k nearest are a little farther, so r_S is
  biased low by about the same amount for every y, which hardly changes the ranking.
  r_T(q) does not change a query's ranking, only its scores. Cost: one (index × |S|) similarity
  pass on top of the (index × queries) one.

Ranks are 1..k by score, ties to the lower index row; a query that is a row of the index does
not find itself unless ``include_self``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from relcli.api._context import DEFAULT_BATCH, check_batch_size, check_seed, compute_dtype_of, resolve_device, rows_by_keys
from relcli.api._results import Progress, Result
from relcli.api._rows import RowLoop
from relcli.errors import DataError, UsageError, describe_rows

DEFAULT_K = 10
DEFAULT_CSLS_K = 10
DEFAULT_CSLS_SAMPLE = 10_000
#: similarities held at once (queries × chunk rows, chunk rows × |S|): 16 Mi values, 64 MiB of float32
BLOCK_ELEMENTS = 1 << 24
TEXT_BATCH = 64
SIMILARITIES = ("cosine", "csls")


@dataclass
class Search(Result):
    """``api.search``: for query i, ``indices[i]`` are the index rows of its neighbours (best first; -1
    past the last when the index has fewer than k rows to offer) and ``similarities[i]`` their scores.
    ``records()`` gives what ``relcli search`` prints, one dict per query."""

    queries: list = field(default_factory=list)
    indices: np.ndarray | None = field(default=None, repr=False)
    similarities: np.ndarray | None = field(default=None, repr=False)
    index_ids: np.ndarray | None = field(default=None, repr=False)
    index_labels: np.ndarray | None = field(default=None, repr=False)

    def records(self) -> Iterator[dict]:
        """{"query": id or text, "neighbours": [{"id", "score", "rank"[, "label"]}, ...]} per query."""
        ids, labels = self.index_ids, self.index_labels
        for i, query in enumerate(self.queries):
            neighbours = []
            for rank, (row, score) in enumerate(zip(self.indices[i].tolist(), self.similarities[i].tolist()), start=1):
                if row < 0:
                    break
                item = {"id": row if ids is None else _plain(ids[row]), "score": round(score, 6), "rank": rank}
                if labels is not None:
                    item["label"] = _plain(labels[row])
                neighbours.append(item)
            yield {"query": query, "neighbours": neighbours}


def _plain(value):
    """A numpy scalar as the Python value JSON writes (int64 -> int; str stays)."""
    return value.item() if isinstance(value, np.generic) else value


def _positive(value, option: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{option} must be a positive integer, got {value!r}")
    return value


def _read_checked(reader, rows: np.ndarray, device, dtype, batch_size, drop: bool, hint: str = ""):
    """Rows of ``reader`` (at ``rows``) on ``device``, L2-normalised; rows without a direction are an
    error naming their ids (or, with ``drop``, left out). Returns (rows kept, matrix)."""
    import torch

    from relcli.api._context import rows_per_chunk
    from relcli.core._common import invalid_rows

    loop = RowLoop.over(reader, drop_invalid=drop, hint=hint)
    step = rows_per_chunk(batch_size, reader.dim)
    kept, parts = [], []
    for start in range(0, len(rows), step):
        picked = rows[start:start + step]
        data = reader.read_rows(picked).to(device=device, dtype=dtype)
        mask, problems = invalid_rows(data, need_direction=True)
        for problem, positions in problems:
            loop.reject(picked[positions.cpu().numpy()], problem)
        if problems:
            keep = ~mask
            picked, data = picked[keep.cpu().numpy()], data[keep]
        kept.append(picked)
        parts.append(data / torch.linalg.vector_norm(data, dim=1, keepdim=True))
    if not parts:
        return rows[:0], torch.empty((0, reader.dim), device=device, dtype=dtype)
    return np.concatenate(kept), torch.cat(parts)


def _chunk_top(key, columns, k: int):
    """The k best entries of every row of ``key`` (score desc, then column asc: columns are in index
    order), as (scores, index rows) with ``columns`` mapping a column to its index row."""
    import torch

    kk = min(k, key.shape[1])
    top, pos = key.topk(min(kk + 1, key.shape[1]), dim=1)
    # the k-th score also outside the pick (the (k+1)-th equals it): settled by a full sort below
    tied = top[:, kk - 1] == top[:, kk] if top.shape[1] > kk else torch.zeros(key.shape[0], dtype=torch.bool, device=key.device)
    pos = pos[:, :kk].sort(dim=1).values  # index order, then a stable sort by score: ties go to the lower row
    vals = key.gather(1, pos)
    order = torch.sort(vals, dim=1, descending=True, stable=True).indices
    pos, vals = pos.gather(1, order), vals.gather(1, order)
    if bool(tied.any()):
        rows = tied.nonzero().flatten()
        full = torch.sort(key[rows], dim=1, descending=True, stable=True)
        vals[rows], pos[rows] = full.values[:, :kk], full.indices[:, :kk]
    return vals, columns[pos]


def _merge(best_vals, best_rows, vals, rows, k: int):
    """Running top-k: ``best`` (earlier index rows) merged with a chunk's pick (later rows)."""
    import torch

    v, r = torch.cat([best_vals, vals], dim=1), torch.cat([best_rows, rows], dim=1)
    order = torch.sort(v, dim=1, descending=True, stable=True).indices[:, :k]
    return v.gather(1, order), r.gather(1, order)


def _neighbourhood_means(chunk, rows, hood, hood_rows, k: int):
    """r_S for the rows of a chunk: mean of the k largest cosines to the neighbourhood ``hood``
    (its own index row left out when ``hood_rows`` holds index rows)."""
    import torch

    out = torch.empty(chunk.shape[0], dtype=chunk.dtype, device=chunk.device)
    step = max(1, BLOCK_ELEMENTS // max(hood.shape[0], 1))
    for start in range(0, chunk.shape[0], step):
        sims = chunk[start:start + step] @ hood.T
        if hood_rows is not None:
            sims.masked_fill_(rows[start:start + step, None] == hood_rows[None, :], -math.inf)
        out[start:start + step] = sims.topk(k, dim=1).values.mean(dim=1)
    return out


def _encode_texts(texts: list[str], encoder: str, options, prefix: str | None, device, dtype):
    import torch

    from relcli.encoders import load_encoder
    from relcli.io.spaces import encoder_space

    model = load_encoder(encoder, options)
    if getattr(model, "modality", "text") != "text":
        raise UsageError(f"encoder {encoder!r} takes {model.modality} input; --text needs a text encoder")
    where = getattr(model, "path", None) or encoder
    parts = []
    for start in range(0, len(texts), TEXT_BATCH):
        batch = texts[start:start + TEXT_BATCH]
        vectors = model.encode([(prefix or "") + t for t in batch])
        if not isinstance(vectors, torch.Tensor) or vectors.ndim != 2 or vectors.shape[0] != len(batch):
            shape = tuple(getattr(vectors, "shape", ()))
            raise DataError(f"encoder output has shape {shape} for {len(batch)} texts; expected (rows, dims)", where)
        parts.append(vectors.to(device=device, dtype=dtype))
    vectors = torch.cat(parts)
    return vectors, where, encoder_space(encoder, model, vectors.shape[1])


def search(
    index,
    *,
    id=None,  # noqa: A002 - the flag is --id
    ids=None,
    queries=None,
    text=None,
    encoder: str | None = None,
    prefix: str | None = None,
    pooling: str | None = None,
    max_length: int | None = None,
    tokenizer=None,
    k: int = DEFAULT_K,
    similarity: str = "cosine",
    csls_k: int = DEFAULT_CSLS_K,
    csls_sample: int = DEFAULT_CSLS_SAMPLE,
    include_self: bool = False,
    drop_invalid: bool = False,
    force: bool = False,
    seed: int = 0,
    key: str | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    device: str | None = None,
    progress: Progress | None = None,
) -> Search:
    """The ``k`` nearest rows of ``index`` to each query, by ``similarity`` (cosine or csls; see the module docstring).

    Queries: ``id`` (one id or a list) and/or ``ids`` (a .txt id list or an embedding file's ids)
    pick rows of ``queries`` if given, else of the index; ``queries`` alone takes all its rows;
    ``text`` (one or a list) is embedded with ``encoder`` (``BACKEND:PATH``, as ``relcli embed``;
    ``prefix``, ``pooling``, ``max_length`` and ``tokenizer`` as there). ``csls_k``: the
    neighbourhood size of CSLS; ``csls_sample``: at most this many rows make its neighbourhood S
    (seeded by ``seed``). ``drop_invalid`` skips unusable index rows. Queries from a file or an
    encoder whose recorded space differs from the index's are an error unless ``force``.
    """
    import torch

    from relcli.core._common import l2_normalize
    from relcli.io.embeddings import open_embeddings
    from relcli.io.join import read_id_list
    from relcli.io.kinds import expect_kind
    from relcli.io.spaces import check_same_space, read_space

    index = Path(index)
    wanted = [str(i) for i in ([id] if isinstance(id, (str, int)) else list(id or []))]
    if ids is not None:
        listed = read_id_list(ids)
        if not listed:
            raise DataError("holds no ids", ids)
        wanted += listed
    texts = [text] if isinstance(text, str) else list(text or [])
    if texts and (wanted or ids is not None or queries is not None):
        raise UsageError("--text queries stand alone: leave out --id/--ids/--queries")
    if texts and not encoder:
        raise UsageError("--text needs --encoder to embed it (the encoder that made the index)")
    if encoder and not texts:
        raise UsageError("--encoder embeds --text queries: give --text")
    if not texts and not wanted and ids is None and queries is None:
        raise UsageError("no queries: give --id/--ids (rows of the index, or of --queries), --queries FILE, or --text with --encoder")
    _positive(k, "-k/--top-k")
    if similarity not in SIMILARITIES:
        raise UsageError(f"unknown --similarity {similarity!r}; choose one of {', '.join(SIMILARITIES)}")
    _positive(csls_k, "--csls-k")
    _positive(csls_sample, "--csls-sample")
    check_seed(seed)
    check_batch_size(batch_size)
    torch_device = resolve_device(device)
    csls = similarity == "csls"
    kinds = ("embeddings", "anchors", "relative")
    details: list[str] = []
    with open_embeddings(index, key=key) as reader:
        expect_kind(reader, kinds, "the index")
        dtype = compute_dtype_of(reader.dtype)
        same_file = queries is not None and Path(queries).resolve() == index.resolve()
        own = None  # per query, its own index row (left out of its neighbours), or -1
        source = None  # the reader the CSLS neighbourhood is drawn from (None: the index)
        if texts:
            from relcli.encoders import EncoderOptions

            options = EncoderOptions(device=torch_device, max_length=max_length, pooling=pooling,
                                     tokenizer=None if tokenizer is None else Path(tokenizer))
            vectors, where, space = _encode_texts(texts, encoder, options, prefix, torch_device, dtype)
            check_same_space((index, read_space(reader.attrs, index)), (where, space), force)
            from relcli.core._common import invalid_rows

            _, problems = invalid_rows(vectors, need_direction=True)
            for problem, positions in problems:
                raise DataError(f"the encoder gave {problem} for {describe_rows([texts[p] for p in positions.tolist()], 'texts')}",
                                where)
            query_matrix, names = l2_normalize(vectors), texts
        elif queries is None or same_file:
            rows = np.asarray(rows_by_keys(wanted, reader.row_keys(), index, "query ids") if wanted else
                              np.arange(reader.n_rows), dtype=np.int64)
            rows, query_matrix = _read_checked(reader, rows, torch_device, dtype, batch_size, drop=False)
            names = reader.keys_of(rows)
            if not include_self:
                own = torch.as_tensor(rows, device=torch_device)
        else:
            queries = Path(queries)
            source = open_embeddings(queries)
            try:  # closed by the finally below once the queries are read; here on any failure before that
                expect_kind(source, kinds, "--queries")
                check_same_space((index, read_space(reader.attrs, index)), (queries, read_space(source.attrs, queries)), force)
                rows = np.asarray(rows_by_keys(wanted, source.row_keys(), queries, f"--ids of {queries.name}") if wanted else
                                  np.arange(source.n_rows), dtype=np.int64)
                rows, query_matrix = _read_checked(source, rows, torch_device, dtype, batch_size, drop=False)
            except BaseException:
                source.close()
                raise
            names = source.keys_of(rows)
        try:
            n_queries = query_matrix.shape[0]
            if n_queries == 0:
                raise DataError("has no rows to search with", queries or index)
            if query_matrix.shape[1] != reader.dim:
                what = "the --text embeddings have" if texts else f"{Path(queries).name} has" if queries else "the queries have"
                raise DataError(f"dimension mismatch: {what} {query_matrix.shape[1]} dims, the index {reader.dim}", index)
            hood = hood_rows = None
            k_s = 0
            if csls:
                space = source if source is not None else reader
                n_space = space.n_rows
                from relcli.core.metrics import query_indices

                picked = query_indices(n_space, csls_sample if csls_sample < n_space else None, seed).numpy()
                picked, hood = _read_checked(space, picked, torch_device, dtype, batch_size, drop=drop_invalid,
                                             hint=" (rows of the CSLS neighbourhood); use --drop-invalid to skip them")
                if source is None:
                    hood_rows = torch.as_tensor(picked, device=torch_device)
                available = hood.shape[0] - (1 if source is None else 0)
                if available < 1:
                    raise DataError("too few rows for a CSLS neighbourhood: use --similarity cosine", space.path)
                k_s = min(csls_k, available)
                sampled = f"a seeded sample of {hood.shape[0]:,}" if hood.shape[0] < n_space else f"all {hood.shape[0]:,}"
                details.append(f"CSLS: r_S over {sampled} rows of {space.path.name} (k={k_s}); r_T over the index (k={csls_k})")
        finally:
            if source is not None:
                source.close()

        queries_t = query_matrix.T.contiguous()
        k, csls_k = min(k, reader.n_rows), min(csls_k, reader.n_rows)  # no more can be found
        best_vals = torch.full((n_queries, k), -math.inf, dtype=dtype, device=torch_device)
        best_rows = torch.full((n_queries, k), -1, dtype=torch.int64, device=torch_device)
        near = torch.full((n_queries, csls_k), -math.inf, dtype=dtype, device=torch_device) if csls else None
        loop = RowLoop.over(reader, drop_invalid=drop_invalid, progress=progress, description=f"search {index.name}")

        def update(rows: np.ndarray, chunk) -> None:
            nonlocal best_vals, best_rows, near
            if not len(rows):
                return
            columns = torch.as_tensor(rows, device=torch_device)
            penalty = _neighbourhood_means(chunk, columns, hood, hood_rows, k_s) if csls else None
            step = max(1, BLOCK_ELEMENTS // chunk.shape[0])
            for start in range(0, n_queries, step):
                block = slice(start, start + step)
                sims = (chunk @ queries_t[:, block]).T  # (queries, chunk rows); this operand order runs ~1.5x faster
                if own is not None:
                    sims.masked_fill_(own[block, None] == columns[None, :], -math.inf)
                if csls:
                    nv, _ = sims.topk(min(csls_k, sims.shape[1]), dim=1)
                    near[block] = torch.cat([near[block], nv], dim=1).topk(csls_k, dim=1).values
                    sims = 2 * sims - penalty[None, :]
                vals, picked_rows = _chunk_top(sims, columns, k)
                best_vals[block], best_rows[block] = _merge(best_vals[block], best_rows[block], vals, picked_rows, k)

        chunks = loop.read(reader, device=torch_device, dtype=dtype, batch_size=batch_size, need_direction=True)
        loop.run(chunks, lambda chunk: l2_normalize(chunk), on_output=update)
        index_ids, index_labels = reader.ids, reader.labels
        n_index = reader.n_rows
    found = torch.isfinite(best_vals)
    best_rows = torch.where(found, best_rows, torch.full_like(best_rows, -1))
    scores = best_vals.to(torch.float64)
    if csls:
        finite = torch.isfinite(near)
        r_t = torch.where(finite, near, torch.zeros_like(near)).sum(dim=1, dtype=torch.float64) / finite.sum(dim=1).clamp_min(1)
        scores = scores - r_t[:, None]
    parameters = {"k": k, "similarity": similarity, "queries": n_queries, "index_rows": n_index,
                  "include_self": include_self, **({"csls_k": csls_k, "csls_sample": csls_sample, "seed": seed} if csls else {})}
    return Search(
        "search", None, n_queries, 0, len(loop.dropped), loop.dropped_ids, parameters=parameters, details=details,
        queries=list(names), indices=best_rows.cpu().numpy(), similarities=scores.cpu().numpy(),
        index_ids=index_ids, index_labels=index_labels,
    )
