"""How good a translation is: metrics between a prediction and its reference, row by row.

``pred`` (n×d) and ``ref`` (n×d) are aligned: row i of ``pred`` should match row i of ``ref``.
Everything runs over row chunks with float64 accumulators, so no n×n matrix is ever built and
the result does not depend on the chunk size. Cosines are of L2-normalised rows, so NaN/Inf
rows and all-zero rows (undefined direction) are a ``DataError`` naming the rows.

Ties. Similarities are compared with a rounding tolerance τ = 32·eps(dtype) (4τ for CSLS
scores): two similarities closer than τ count as equal, because a matrix product can round the
same cosine differently in different columns. Retrieval ties go in the query's favour; nearest
neighbour ties go to the lower row index.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from relcli.core._common import (
    DEFAULT_CHUNK_ROWS, check_matrix, check_rows, compute_dtype, l2_normalize, row_chunks, row_norms,
)
from relcli.errors import DataError, UsageError

SIMILARITY_CHUNK_ROWS = 4096
#: metric families that compare two spaces of any dimensions
ACROSS_SPACES = ("cka", "jaccard@")
#: metric families that do not need a row's direction (all-zero rows are fine)
NO_DIRECTION = frozenset({"mse", "cka"})


# --------------------------------------------------------------------------- input checks
def _pair(
    pred: torch.Tensor, ref: torch.Tensor, same_dims: bool = True, names: tuple[str, str] = ("pred", "ref")
) -> tuple[torch.Tensor, torch.Tensor]:
    """Check both matrices, put ``ref`` on ``pred``'s device, and both in their common dtype."""
    a, b = names
    pred = check_matrix(pred, a)
    ref = check_matrix(ref, b)
    if pred.shape[0] != ref.shape[0]:
        raise DataError(
            f"{a} has {pred.shape[0]} rows but {b} has {ref.shape[0]}; "
            "metrics compare aligned rows, join them by id first"
        )
    if same_dims and pred.shape[1] != ref.shape[1]:
        raise DataError(
            f"dimension mismatch: {a} is {tuple(pred.shape)} but {b} is {tuple(ref.shape)}; compare inside one space"
        )
    if pred.shape[0] == 0:
        raise DataError(f"{a} and {b} have no rows; metrics need at least one")
    dtype = torch.promote_types(pred.dtype, ref.dtype)
    return pred.to(dtype), ref.to(device=pred.device, dtype=dtype)


def _tie_tol(dtype: torch.dtype) -> float:
    return 32 * torch.finfo(dtype).eps


def _check_k(k: int, limit: int, what: str, n: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise UsageError(f"{what} must be a positive integer, got {k!r}")
    if k > limit:
        raise DataError(f"{what}={k} needs more rows than the {n} given; use k <= {limit}")
    return k


def query_indices(n: int, query_sample: int | None = None, seed: int = 0) -> torch.Tensor:
    """The query rows a sampled metric evaluates, sorted (int64, CPU).

    All rows when ``query_sample`` is None or ≥ n; otherwise a uniform random subset of
    ``query_sample`` rows drawn with a CPU generator seeded by ``seed`` (the same on every device).
    """
    if query_sample is None or query_sample >= n:
        return torch.arange(n)
    if isinstance(query_sample, bool) or not isinstance(query_sample, int) or query_sample < 1:
        raise UsageError(f"query_sample must be a positive integer, got {query_sample!r}")
    generator = torch.Generator().manual_seed(int(seed))
    return torch.randperm(n, generator=generator)[:query_sample].sort().values


# --------------------------------------------------------------------------- row-wise metrics
def mean_cosine(pred: torch.Tensor, ref: torch.Tensor, chunk_rows: int | None = DEFAULT_CHUNK_ROWS) -> float:
    """Mean row cosine: (1/n) Σ_i ⟨pred_i, ref_i⟩ / (‖pred_i‖ ‖ref_i‖). Higher is better."""
    pred, ref = _pair(pred, ref)
    check_rows(pred, "pred")
    check_rows(ref, "ref")
    total = torch.zeros((), dtype=torch.float64, device=pred.device)
    for rows in row_chunks(pred.shape[0], chunk_rows):
        p, r = pred[rows].to(compute_dtype(pred.dtype)), ref[rows].to(compute_dtype(ref.dtype))  # half: past 65504
        cosines = torch.einsum("ij,ij->i", p, r) / (row_norms(p, "pred") * row_norms(r, "ref"))  # no normalised copies
        if not bool(torch.isfinite(cosines).all()):  # dot products or norm products past the dtype's range
            cosines = (l2_normalize(p, "pred") * l2_normalize(r, "ref")).sum(dim=1, dtype=torch.float64)
        total += cosines.sum(dtype=torch.float64)
    return float(total) / pred.shape[0]


def mse(pred: torch.Tensor, ref: torch.Tensor, chunk_rows: int | None = DEFAULT_CHUNK_ROWS) -> float:
    """Mean squared error over all elements: (1/(n·d)) Σ_ij (pred_ij − ref_ij)². Lower is better."""
    pred, ref = _pair(pred, ref)
    check_rows(pred, "pred", allow_zero=True)
    check_rows(ref, "ref", allow_zero=True)
    total = torch.zeros((), dtype=torch.float64, device=pred.device)
    for rows in row_chunks(pred.shape[0], chunk_rows):
        difference = pred[rows] - ref[rows]
        part = torch.einsum("ij,ij->i", difference, difference).sum(dtype=torch.float64)
        if not bool(torch.isfinite(part)):  # squares past the dtype's range: this chunk in float64
            part = difference.to(torch.float64).pow(2).sum()
        total += part
    return float(total) / pred.numel()


# --------------------------------------------------------------------------- retrieval
def _rank_summary(ranks: torch.Tensor, ks: Iterable[int], mrr_ks: Iterable[int], prefix: str = "") -> dict[str, float]:
    ranks64 = ranks.to(torch.float64)
    out: dict[str, float] = {}
    for k in ks:
        out[f"{prefix}top{k}"] = float((ranks <= k).to(torch.float64).mean())
    if not prefix:
        out["mrr"] = float((1.0 / ranks64).mean())
        for k in mrr_ks:  # a k past every rank (past int64 too) is every rank
            within = ranks <= min(k, int(ranks.max()) if len(ranks) else 0)
            out[f"mrr@{k}"] = float(torch.where(within, 1.0 / ranks64, torch.zeros_like(ranks64)).mean())
    return out


def tensor_metrics(pred: torch.Tensor, ref: torch.Tensor, wanted: dict[str, tuple[str, int | None]],
                   chunk_rows: int | None, query_sample: int | None, seed: int, csls_neighbours: int = 10) -> dict[str, float]:
    """``relcli.core.paired.paired_metrics`` on two matrices in memory: both checked (rows, dims,
    NaN/Inf; zero rows where a direction is needed), then read in chunks that keep a query block ×
    chunk similarity block within its budget."""
    from relcli.core.paired import SIMILARITY_ELEMENTS, TensorRows, paired_metrics

    families = {family for family, _ in wanted.values()}
    across = families <= set(ACROSS_SPACES)
    names = ("x", "y") if families == {"cka"} else ("pred", "ref")
    pred, ref = _pair(pred, ref, same_dims=not across, names=names)
    zero_ok = families <= NO_DIRECTION
    check_rows(pred, names[0], allow_zero=zero_ok)
    check_rows(ref, names[1], allow_zero=zero_ok)
    n = pred.shape[0]
    queries = n if query_sample is None else min(n, query_sample)
    per_block = max(1, min(chunk_rows or queries, queries))
    chunk = max(1, min(n, SIMILARITY_ELEMENTS // per_block))
    return paired_metrics(TensorRows(pred, ref, chunk), wanted, chunk_rows, query_sample, seed, csls_neighbours)


def retrieval(
    pred: torch.Tensor,
    ref: torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
    chunk_rows: int | None = SIMILARITY_CHUNK_ROWS,
    query_sample: int | None = None,
    seed: int = 0,
    mrr_ks: Sequence[int] = (10,),
) -> dict[str, float]:
    """Retrieval of each pred row among all ref rows by cosine: top-k accuracy and MRR.

    s_ij = cos(pred_i, ref_j); rank_i = 1 + #{j ≠ i : s_ij > s_ii}. Ties (|s_ij − s_ii| ≤ τ)
    are resolved in the query's favour, so a duplicate of the correct row does not push it down.
    Returns {"top{k}": mean_i [rank_i ≤ k] for k in ks, "mrr": mean_i 1/rank_i,
    "mrr@{k}": mean_i (1/rank_i if rank_i ≤ k else 0) for k in mrr_ks} (MRR@k as in relreps).
    ``query_sample=m`` averages over a seeded random subset of m queries (see ``query_indices``),
    each still ranked among all n ref rows. k > n is a ``DataError`` (an mrr@k with k ≥ n is MRR).
    """
    n = check_matrix(pred, "pred").shape[0]
    ks = [_check_k(k, n, "top-k k", n) for k in ks]
    mrr_ks = [_check_k(k, math.inf, "mrr@k k", n) for k in mrr_ks]
    wanted = {f"top{k}": ("top", k) for k in ks} | {"mrr": ("mrr", None)} | {f"mrr@{k}": ("mrr@", k) for k in mrr_ks}
    return tensor_metrics(pred, ref, wanted, chunk_rows, query_sample, seed)


# --------------------------------------------------------------------------- neighbourhoods
def _knn_mask(sims: torch.Tensor, k: int, tol: float) -> torch.Tensor:
    """Boolean mask of each row's k largest entries; ties (within ``tol``) go to lower indices.

    t = k-th largest value; every entry > t + τ is in, and the rest of the k places go to the
    entries within τ of t, in index order.
    """
    kth = sims.topk(k, dim=1).values[:, -1:]
    sure = sims > kth + tol
    tied = (sims >= kth - tol) & ~sure
    need = k - sure.sum(dim=1, keepdim=True)
    return sure | (tied & (tied.cumsum(dim=1) <= need))


def jaccard_at_k(
    pred: torch.Tensor,
    ref: torch.Tensor,
    k: int = 10,
    chunk_rows: int | None = SIMILARITY_CHUNK_ROWS,
    query_sample: int | None = None,
    seed: int = 0,
) -> float:
    """Mean Jaccard index of k-nearest-neighbour sets: mean_i |N_k^P(i) ∩ N_k^R(i)| / |N_k^P(i) ∪ N_k^R(i)|.

    N_k^X(i) = the k rows j ≠ i of X with the largest cos(x_i, x_j) (self excluded); ties within
    τ go to the lower row index, so the sets are deterministic. Needs k < n (``DataError``
    otherwise). ``query_sample`` averages over a seeded subset of rows (neighbours among all rows).
    The two spaces may have different dimensions.
    """
    n = check_matrix(pred, "pred").shape[0]
    _check_k(k, n - 1, "jaccard k", n)
    return tensor_metrics(pred, ref, {"jaccard": ("jaccard@", k)}, chunk_rows, query_sample, seed)["jaccard"]


def csls_retrieval(
    pred: torch.Tensor,
    ref: torch.Tensor,
    k_neighbours: int = 10,
    ks: Sequence[int] = (1,),
    chunk_rows: int | None = SIMILARITY_CHUNK_ROWS,
    query_sample: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Top-k retrieval accuracy under CSLS (Conneau et al. 2018), which corrects for hubs.

    CSLS(p_i, r_j) = 2 cos(p_i, r_j) − r_T(p_i) − r_S(r_j), where r_T(p_i) is the mean cosine of
    p_i to its k nearest ref rows and r_S(r_j) the mean cosine of r_j to its k nearest pred rows
    (k = ``k_neighbours``; neighbourhoods include the matching row; with ``query_sample``, the
    nearest among the sampled pred rows). rank_i = 1 + #{j ≠ i: CSLS_ij > CSLS_ii}, ties in the
    query's favour. Returns {"csls_top{k}": mean_i [rank_i ≤ k]}.
    """
    n = check_matrix(pred, "pred").shape[0]
    _check_k(k_neighbours, n, "CSLS k_neighbours", n)
    ks = [_check_k(k, n, "CSLS top-k k", n) for k in ks]
    wanted = {f"csls_top{k}": ("csls_top", k) for k in ks}
    return tensor_metrics(pred, ref, wanted, chunk_rows, query_sample, seed, k_neighbours)


# --------------------------------------------------------------------------- CKA
_CKA_ROWS = 4096


class CKASums:
    """XᵀX, YᵀY, YᵀX and the column sums of two aligned row streams, summed in float64, for linear CKA.

    Rows are shifted by the mean of the first rows added (centring is shift invariant), which
    keeps the final centring (XᵀX_c = XᵀX − n μ_x μ_xᵀ, ...) nearly free of cancellation, and each
    side is divided by the largest shifted value of those rows (CKA is invariant to scaling either
    side): values of 1e-24 or 1e19 would under- or overflow in the products, and 1e-24 gave CKA 4e15. The
    products of a few thousand rows are taken in float32 when neither side is float64 (2.3× faster
    than float64 products on the CPU; CKA off by 1e-7 at most in the tests, the data's own
    round-off) and in float64 otherwise; the running sums are float64 either way."""

    def __init__(self):
        self.n = 0
        self.shift_x = self.shift_y = self.scale_x = self.scale_y = self.xx = self.yy = self.yx = self.sx = self.sy = None

    def add(self, x: torch.Tensor, y: torch.Tensor) -> None:
        if self.n == 0:
            f64 = dict(dtype=torch.float64, device=x.device)
            self.shift_x = x.mean(dim=0, dtype=torch.float64)  # summed in float64, no float64 copy of the chunk
            self.shift_y = y.mean(dim=0, dtype=torch.float64).to(x.device)
            self.scale_x = _unit_scale(x[:_CKA_ROWS].to(torch.float64), self.shift_x)  # a few thousand rows suffice
            self.scale_y = _unit_scale(y[:_CKA_ROWS].to(device=x.device, dtype=torch.float64), self.shift_y)
            self.xx, self.yy = torch.zeros(x.shape[1], x.shape[1], **f64), torch.zeros(y.shape[1], y.shape[1], **f64)
            self.yx = torch.zeros(y.shape[1], x.shape[1], **f64)
            self.sx, self.sy = torch.zeros(x.shape[1], **f64), torch.zeros(y.shape[1], **f64)
        work = torch.float32 if torch.float64 not in (x.dtype, y.dtype) else torch.float64
        for rows in row_chunks(x.shape[0], _CKA_ROWS):  # copies of a few thousand rows at a time
            xc = ((x[rows].to(torch.float64) - self.shift_x) / self.scale_x).to(work)  # in float64, then rounded once
            yc = ((y[rows].to(device=x.device, dtype=torch.float64) - self.shift_y) / self.scale_y).to(work)
            self.xx += (xc.T @ xc).to(torch.float64)
            self.yy += (yc.T @ yc).to(torch.float64)
            self.yx += (yc.T @ xc).to(torch.float64)
            self.sx += xc.sum(dim=0, dtype=torch.float64)
            self.sy += yc.sum(dim=0, dtype=torch.float64)
        self.n += x.shape[0]

    def value(self) -> float:
        n = self.n
        mx, my = self.sx / n, self.sy / n
        xx = self.xx - n * torch.outer(mx, mx)
        yy = self.yy - n * torch.outer(my, my)
        yx = self.yx - n * torch.outer(my, mx)
        denominator = torch.linalg.matrix_norm(xx) * torch.linalg.matrix_norm(yy)
        if not bool(denominator > 0):
            raise DataError("linear CKA is undefined: x or y is constant over rows (zero variance after centring)")
        return min(1.0, float(torch.linalg.matrix_norm(yx) ** 2 / denominator))  # ≤ 1 (Cauchy–Schwarz) but for round-off


def _unit_scale(rows: torch.Tensor, shift: torch.Tensor) -> float:
    """The largest |row − shift| of float64 ``rows`` (else the largest |row|, else 1): a divisor that
    brings the values near 1, so that their products neither under- nor overflow."""
    for values in (rows - shift, rows):
        largest = float(values.abs().max()) if values.numel() else 0.0
        if 0.0 < largest < float("inf"):
            return largest
    return 1.0


def linear_cka(x: torch.Tensor, y: torch.Tensor, chunk_rows: int | None = DEFAULT_CHUNK_ROWS) -> float:
    """Linear CKA = ‖YᵀX‖²_F / (‖XᵀX‖_F ‖YᵀY‖_F) on column-centred X (n×d_x), Y (n×d_y).

    In [0, 1]; 1 for spaces equal up to rotation/reflection and isotropic scaling; symmetric.
    XᵀX, YᵀY, YᵀX and the column sums are accumulated in float64 over row chunks (``CKASums``).
    """
    x, y = _pair(x, y, same_dims=False, names=("x", "y"))
    check_rows(x, "x", allow_zero=True)
    check_rows(y, "y", allow_zero=True)
    sums = CKASums()
    for rows in row_chunks(x.shape[0], chunk_rows):
        sums.add(x[rows], y[rows])
    return sums.value()


# --------------------------------------------------------------------------- label metrics
def _label_pair(pred_labels, true_labels) -> tuple[torch.Tensor, torch.Tensor]:
    pred_labels = torch.as_tensor(pred_labels)
    true_labels = torch.as_tensor(true_labels)
    for what, labels in (("pred_labels", pred_labels), ("true_labels", true_labels)):
        if labels.ndim != 1:
            raise DataError(f"{what} must be a 1-D vector, got shape {tuple(labels.shape)}")
        if labels.is_floating_point() or labels.is_complex():
            raise DataError(f"{what} must be integer labels, got dtype {labels.dtype}")
    if len(pred_labels) != len(true_labels):
        raise DataError(
            f"pred_labels has {len(pred_labels)} entries but true_labels has {len(true_labels)}; align them by id first"
        )
    if len(true_labels) == 0:
        raise DataError("no labels to compare")
    return pred_labels.to(torch.int64), true_labels.to(device=pred_labels.device, dtype=torch.int64)


def accuracy(pred_labels, true_labels) -> float:
    """Fraction of rows whose predicted label equals the true one: (1/n) Σ_i [ŷ_i = y_i]."""
    pred_labels, true_labels = _label_pair(pred_labels, true_labels)
    return float((pred_labels == true_labels).to(torch.float64).mean())


def macro_f1(pred_labels, true_labels) -> float:
    """Macro-F1: mean over classes c in true ∪ pred of F1_c = 2TP_c / (2TP_c + FP_c + FN_c).

    Every such class occurs at least once, so no F1_c has a zero denominator.
    """
    pred_labels, true_labels = _label_pair(pred_labels, true_labels)
    classes, codes = torch.unique(torch.cat([pred_labels, true_labels]), return_inverse=True)
    c = len(classes)
    pred_codes, true_codes = codes[: len(pred_labels)], codes[len(pred_labels) :]
    hit = pred_codes == true_codes
    tp = torch.bincount(true_codes[hit], minlength=c).to(torch.float64)
    predicted = torch.bincount(pred_codes, minlength=c).to(torch.float64)  # TP + FP
    actual = torch.bincount(true_codes, minlength=c).to(torch.float64)  # TP + FN
    return float((2 * tp / (predicted + actual)).mean())
