"""Relative projection: describe each row by its similarities to a set of anchors.

Moschella et al. 2023 (relative representations): r(x)_j = ⟨x̂, â_j⟩, i.e. R = X̂ Âᵀ with
x̂ = x/‖x‖₂. Cannistraci et al. 2024 (product of invariances): several similarity blocks
(cosine, Euclidean, L1, L∞, ...) each standardised per row and then concatenated or summed, so
the representation inherits the invariances of every block. Everything is computed in chunks of
rows: at most a chunk × k block exists at a time, never an n × k × d tensor.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from relcli.core import registry
from relcli.core._common import DEFAULT_CHUNK_ROWS, check_matrix, check_rows, l2_normalize, row_chunks
from relcli.core._estimator import Estimator
from relcli.errors import DataError, UsageError

SIMILARITIES = tuple(registry.SIMILARITIES)
AGGREGATIONS = tuple(registry.AGGREGATIONS)

#: eps of the per-row standardisation (r − mean) / sqrt(var + eps), as in LayerNorm.
STANDARDIZE_EPS = 1e-5

# Euclidean via ‖x‖² + ‖a‖² − 2x·a loses digits when ‖x − a‖² ≪ ‖x‖² + ‖a‖²; pairs below this
# ratio are recomputed exactly from x − a (few pairs in practice: near-duplicates of an anchor).
_EXPANSION_REFINE_RATIO = 0.02
# Upper bound on elements of the (pairs × d) difference block used by that refinement.
_REFINE_BLOCK_ELEMENTS = 1 << 22

_DIRECTIONAL = ("cosine", "angular")


def _check_similarities(similarities: str | Sequence[str]) -> tuple[str, ...]:
    if isinstance(similarities, str):
        similarities = (similarities,)
    similarities = tuple(similarities)
    if not similarities:
        raise UsageError(f"give at least one similarity; valid: {', '.join(SIMILARITIES)}")
    unknown = [s for s in similarities if s not in SIMILARITIES]
    if unknown:
        raise UsageError(
            f"unknown similarity {', '.join(map(repr, unknown))}; valid: {', '.join(SIMILARITIES)}"
        )
    return similarities


def _check_aggregate(aggregate: str) -> str:
    if aggregate not in AGGREGATIONS:
        raise UsageError(f"unknown aggregation {aggregate!r}; valid: {', '.join(AGGREGATIONS)}")
    return aggregate


class _Anchors:
    """Anchor-side quantities computed once per projection and shared by every chunk."""

    def __init__(self, anchors: torch.Tensor, mean: torch.Tensor | None, similarities, center: bool):
        self.raw = anchors
        self.mean = anchors.mean(dim=0) if mean is None else mean
        self.center = center
        if any(s in _DIRECTIONAL for s in similarities):
            a = anchors - self.mean if center else anchors
            what = "anchors (after centring)" if center else "anchors"
            # Normalised once; Âᵀ as a transposed view, the layout of a bare ``x @ a.T``.
            self.unit_t = l2_normalize(a, what).T
        if "euclidean" in similarities:
            # Euclidean distance is translation invariant: centring both sides on the anchor mean
            # is free and shrinks the norms that the expansion would otherwise cancel.
            self.eu = anchors - self.mean
            self.eu_t = self.eu.T.contiguous()
            self.eu_sq = self.eu.square().sum(dim=1)


def _cosine_block(x_chunk: torch.Tensor, offset: int, anchors: _Anchors, out: torch.Tensor | None):
    """R = X̂ Âᵀ for one chunk: one norm pass, one matmul, one in-place row scaling."""
    xc = x_chunk - anchors.mean if anchors.center else x_chunk
    norms = torch.linalg.vector_norm(xc, dim=1, keepdim=True)
    if not bool((torch.isfinite(norms) & (norms > 0)).all()):
        check_rows(x_chunk, "x", offset=offset)
        check_rows(xc, "x (after centring on the anchor mean)", offset=offset)
    r = torch.mm(xc, anchors.unit_t, out=out)
    return r.div_(norms)


def _euclidean_block(x_chunk: torch.Tensor, anchors: _Anchors) -> torch.Tensor:
    """‖x − a_j‖₂ via the Gram expansion, with cancellation-prone pairs recomputed exactly."""
    xc = x_chunk - anchors.mean
    x_sq = xc.square().sum(dim=1, keepdim=True)
    scale = x_sq + anchors.eu_sq  # ‖x‖² + ‖a‖², the size of the terms that cancel
    d2 = torch.mm(xc, anchors.eu_t).mul_(-2).add_(scale).clamp_min_(0)
    close = d2 < _EXPANSION_REFINE_RATIO * scale
    dist = d2.sqrt_()
    if bool(close.any()):
        pairs = close.nonzero()
        block = max(1, _REFINE_BLOCK_ELEMENTS // max(1, xc.shape[1]))
        for start in range(0, len(pairs), block):
            i, j = pairs[start : start + block].unbind(dim=1)
            dist[i, j] = torch.linalg.vector_norm(xc[i] - anchors.eu[j], dim=1)
    return dist


def _similarity_block(
    name: str, x_chunk: torch.Tensor, offset: int, anchors: _Anchors, cos: torch.Tensor | None
) -> torch.Tensor:
    """One n_chunk × k block; ``cos`` is the chunk's cosine block when already computed."""
    if name == "cosine":
        return cos
    if name == "angular":
        return cos.clamp(-1.0, 1.0).arccos_().div_(math.pi)
    if not bool(torch.isfinite(x_chunk).all()):
        check_rows(x_chunk, "x", allow_zero=True, offset=offset)
    if name == "euclidean":
        return _euclidean_block(x_chunk, anchors)
    p = 1.0 if name == "l1" else float("inf")
    # cdist with p ≠ 2 sums |x_i − a_i| directly: exact, and no chunk × k × d tensor.
    return torch.cdist(x_chunk, anchors.raw, p=p)


def _project(
    x: torch.Tensor,
    anchors: torch.Tensor,
    anchor_mean: torch.Tensor | None,
    similarities: tuple[str, ...],
    aggregate: str,
    center: bool,
    standardize: bool | None,
    chunk_rows: int | None,
) -> torch.Tensor:
    x = check_matrix(x, "x")
    anchors = check_matrix(anchors, "anchors").to(device=x.device, dtype=x.dtype)
    if x.shape[1] != anchors.shape[1]:
        raise DataError(
            f"x has shape {tuple(x.shape)} but anchors have shape {tuple(anchors.shape)}: "
            "they must have the same number of columns (dimension)"
        )
    check_rows(anchors, "anchors", allow_zero=True)
    if anchor_mean is not None:
        anchor_mean = anchor_mean.to(device=x.device, dtype=x.dtype)
    prepared = _Anchors(anchors, anchor_mean, similarities, center)

    n, k, m = x.shape[0], anchors.shape[0], len(similarities)
    if standardize is None:
        standardize = m > 1
    width = k * m if aggregate == "concat" else k
    out = torch.empty(n, width, device=x.device, dtype=x.dtype)

    if similarities == ("cosine",) and not standardize:
        # The hot path: X̂ Âᵀ written straight into the output rows.
        for rows in row_chunks(n, chunk_rows):
            _cosine_block(x[rows], rows.start, prepared, out[rows])
        return out

    for rows in row_chunks(n, chunk_rows):
        target = out[rows]
        cos = None
        if any(name in _DIRECTIONAL for name in similarities):
            cos = _cosine_block(x[rows], rows.start, prepared, None)
        for b, name in enumerate(similarities):
            block = _similarity_block(name, x[rows], rows.start, prepared, cos)
            if standardize:
                # LayerNorm without learned parameters: (r − mean_row) / sqrt(var_row + eps).
                block = F.layer_norm(block, (k,), eps=STANDARDIZE_EPS)
            if aggregate == "concat":
                target[:, b * k : (b + 1) * k] = block
            elif b == 0:
                target.copy_(block)
            else:
                target.add_(block)
    return out


def relative_projection(
    x: torch.Tensor,
    anchors: torch.Tensor,
    similarities: str | Sequence[str] = ("cosine",),
    aggregate: str = "concat",
    center: bool = False,
    standardize: bool | None = None,
    chunk_rows: int | None = DEFAULT_CHUNK_ROWS,
) -> torch.Tensor:
    """Relative representation of the rows of ``x`` (n × d) w.r.t. ``anchors`` (k × d).

    Per anchor a_j and similarity:
      cosine    r_j = ⟨x̂, â_j⟩            (R = X̂ Âᵀ; invariant to rotations, reflections, scaling)
      angular   r_j = arccos(cos)/π ∈ [0, 1]
      euclidean r_j = ‖x − a_j‖₂           (invariant to rotations and translations)
      l1        r_j = ‖x − a_j‖₁           (invariant to coordinate permutations and translations)
      linf      r_j = ‖x − a_j‖∞
    ``center`` subtracts the anchors' mean from x and the anchors first (this makes cosine and
    angular translation invariant; distances are unchanged). With several similarities each n × k
    block is standardised per row, (r − mean)/sqrt(var + 1e-5) with biased var, and the blocks are
    concatenated in the given order (n × k·m) or summed (n × k). ``standardize`` forces that
    standardisation on or off (default: on iff more than one similarity).
    Zero rows (for cosine/angular) and NaN/Inf rows raise ``DataError`` naming them.
    """
    similarities = _check_similarities(similarities)
    aggregate = _check_aggregate(aggregate)
    return _project(x, anchors, None, similarities, aggregate, center, standardize, chunk_rows)


class RelativeProjector(Estimator):
    """Estimator form of :func:`relative_projection`: ``fit`` remembers the anchors.

    Learned state: ``anchors_`` (k × d) and ``anchor_mean_`` (d,), the mean used for centring.
    """

    _state = {"anchors_": "tensor2", "anchor_mean_": "tensor1"}

    def __init__(
        self,
        similarities: str | Sequence[str] = ("cosine",),
        aggregate: str = "concat",
        center: bool = False,
        standardize: bool | None = None,
    ):
        self.similarities = similarities
        self.aggregate = aggregate
        self.center = center
        self.standardize = standardize

    def _check_params(self) -> None:
        _check_similarities(self.similarities)
        _check_aggregate(self.aggregate)

    @property
    def needs_direction(self) -> bool:
        """Whether all-zero input rows are invalid (cosine and angular blocks need a direction)."""
        return any(s in _DIRECTIONAL for s in _check_similarities(self.similarities))

    @property
    def output_dim(self) -> int:
        """Columns of the relative rows: k per similarity (concat) or k (sum)."""
        self.check_fitted()
        blocks = 1 if self.aggregate == "sum" else len(_check_similarities(self.similarities))
        return self.anchors_.shape[0] * blocks

    def fit(self, anchors: torch.Tensor) -> "RelativeProjector":
        """Check and store the anchors (zero rows after centring are an error for cosine)."""
        similarities = _check_similarities(self.similarities)
        _check_aggregate(self.aggregate)
        anchors = check_matrix(anchors, "anchors")
        check_rows(anchors, "anchors", allow_zero=True)
        mean = anchors.mean(dim=0)
        _Anchors(anchors, mean, similarities, self.center)  # validates zero rows early
        self._set_state(anchors_=anchors, anchor_mean_=mean)
        return self

    def transform(self, x: torch.Tensor, chunk_rows: int | None = DEFAULT_CHUNK_ROWS) -> torch.Tensor:
        """Relative rows of ``x``: n × k·m (concat) or n × k (sum)."""
        self.check_fitted()
        similarities = _check_similarities(self.similarities)
        aggregate = _check_aggregate(self.aggregate)
        return _project(
            x, self.anchors_, self.anchor_mean_, similarities, aggregate,
            self.center, self.standardize, chunk_rows,
        )
