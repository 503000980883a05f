"""Statistics of a whole space, accumulated in one streaming pass.

``SpaceStats`` summarises the whole space an anchor set is drawn from (not just the anchors):
IRP restores the target's mean norm from it, and anchors files carry it (DESIGN §3,
``relcli.source_stats``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from relcli.core._common import DEFAULT_CHUNK_ROWS, check_matrix, compute_dtype, invalid_rows, row_chunks
from relcli.errors import DataError, RowsError

BLOCK_ROWS = 1024  # rows per step of the squared deviations (a 3 MiB buffer at d = 768)


@dataclass(frozen=True, eq=False)
class SpaceStats:
    """Statistics of a whole space: row count, mean and std of ‖x‖₂, per-dimension mean and std.

    Standard deviations are population ones (ddof = 0): σ² = Σ(x − μ)² / n.
    """

    n_rows: int
    mean_norm: float
    std_norm: float
    mean: torch.Tensor
    std: torch.Tensor

    def to_dict(self) -> dict[str, Any]:
        """The scalar part, JSON-able (for file metadata)."""
        return {"n_rows": self.n_rows, "mean_norm": self.mean_norm, "std_norm": self.std_norm}

    def tensors(self) -> dict[str, torch.Tensor]:
        """The per-dimension part, under the names the anchor file stores them."""
        return {"space_mean": self.mean, "space_std": self.std}

    @classmethod
    def from_parts(cls, scalars: dict[str, Any], mean: torch.Tensor, std: torch.Tensor) -> "SpaceStats":
        """Rebuild from ``to_dict()`` output and the two tensors."""
        return cls(
            n_rows=int(scalars["n_rows"]),
            mean_norm=float(scalars["mean_norm"]),
            std_norm=float(scalars["std_norm"]),
            mean=mean,
            std=std,
        )


class SpaceStatsAccumulator:
    """Streaming ``SpaceStats``: feed row chunks to ``update``, read ``result()``.

    Keeps only running moments (never the rows), merged in float64 with Chan et al.'s
    pairwise update: for parts a, b with n, mean m and sum of squared deviations M2,
    δ = m_b − m_a, m = m_a + δ·n_b/n, M2 = M2_a + M2_b + δ²·n_a·n_b/n. So a huge common
    offset does not cancel catastrophically as Σx² − n·m² would. Rows with NaN/Inf are an
    error naming their global index; zero rows are fine. Results lie on the chunks' device
    and are float64 if any chunk was float64, else float32.
    """

    def __init__(self) -> None:
        self._n = 0
        self._mean: torch.Tensor | None = None
        self._m2: torch.Tensor | None = None
        self._norm_mean: torch.Tensor | None = None
        self._norm_m2: torch.Tensor | None = None
        self._out_dtype = torch.float32

    def update(self, chunk: torch.Tensor) -> "SpaceStatsAccumulator":
        """Merge the moments of one (rows, d) chunk of floats."""
        chunk = check_matrix(chunk, "chunk")
        if chunk.shape[0] == 0:
            return self
        bad, problems = invalid_rows(chunk, need_direction=False)
        if problems:
            raise RowsError(problems[0][0], (problems[0][1] + self._n).tolist(), "input")
        if self._mean is not None and chunk.shape[1] != self._mean.shape[0]:
            raise DataError(
                f"chunk has {chunk.shape[1]} dims but earlier chunks had {self._mean.shape[0]}"
            )
        if chunk.dtype == torch.float64:
            self._out_dtype = torch.float64
        x = chunk.to(compute_dtype(chunk.dtype))
        n_b = x.shape[0]
        mean_b, m2_b, norms = _moments(x)
        if x.dtype != torch.float64 and not all(bool(torch.isfinite(t).all()) for t in (mean_b, m2_b, norms)):
            mean_b, m2_b, norms = _moments(x.to(torch.float64))  # finite rows whose sums or squares pass float32's range
        mean_b, norms = mean_b.to(torch.float64), norms.to(torch.float64)
        norm_mean_b = norms.mean()
        norm_m2_b = ((norms - norm_mean_b) ** 2).sum()
        if self._mean is None:  # merging into empty moments (n_a = 0) just copies the chunk's
            self._mean, self._m2 = torch.zeros_like(mean_b), torch.zeros_like(m2_b)
            self._norm_mean, self._norm_m2 = torch.zeros_like(norm_mean_b), torch.zeros_like(norm_m2_b)
        n_a = self._n
        self._mean, self._m2 = _chan_merge(self._mean, self._m2, n_a, mean_b, m2_b, n_b)
        self._norm_mean, self._norm_m2 = _chan_merge(
            self._norm_mean, self._norm_m2, n_a, norm_mean_b, norm_m2_b, n_b
        )
        self._n = n_a + n_b
        return self

    def result(self) -> SpaceStats:
        """The statistics of every row seen so far."""
        if self._n == 0:
            raise DataError("no rows to compute space statistics from: the input is empty")
        n = self._n
        return SpaceStats(
            n_rows=n,
            mean_norm=float(self._norm_mean),
            std_norm=math.sqrt(max(float(self._norm_m2) / n, 0.0)),
            mean=self._mean.to(self._out_dtype),
            std=(self._m2 / n).clamp_min(0).sqrt().to(self._out_dtype),
        )


def _moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(column means (d,), Σ_rows (x − mean)² (d,) in float64, row norms (n,)) of a (n, d) chunk."""
    mean = x.mean(dim=0)
    return mean, _squared_deviations(x, mean), torch.linalg.vector_norm(x, dim=1)


def _squared_deviations(x: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Σ_rows (x − mean)² per column, in float64: (d,) from (rows, d) and its column mean (d,).

    The chunk's own mean is taken off first (no cancellation), a block of BLOCK_ROWS rows at a time
    through one small buffer in x's dtype: a chunk-sized float64 copy and temporaries per chunk made
    this pass 14 times slower (13.3 s against 0.95 s over 1M × 768 rows; fresh pages every time)."""
    scratch = torch.empty(min(BLOCK_ROWS, x.shape[0]), x.shape[1], dtype=x.dtype, device=x.device)
    total = torch.zeros(x.shape[1], dtype=torch.float64, device=x.device)
    for rows in row_chunks(x.shape[0], BLOCK_ROWS):
        block = scratch[: rows.stop - rows.start]
        torch.sub(x[rows], mean, out=block)
        block.mul_(block)
        total += block.sum(dim=0).to(torch.float64)
    return total


def _chan_merge(mean_a, m2_a, n_a, mean_b, m2_b, n_b):
    n = n_a + n_b
    delta = mean_b - mean_a
    return mean_a + delta * (n_b / n), m2_a + m2_b + delta**2 * (n_a * n_b / n)


def space_stats(x: torch.Tensor, chunk_rows: int | None = DEFAULT_CHUNK_ROWS) -> SpaceStats:
    """``SpaceStats`` of an in-memory (N, d) matrix, accumulated over row chunks."""
    x = check_matrix(x, "x")
    acc = SpaceStatsAccumulator()
    for sl in row_chunks(x.shape[0], chunk_rows):
        acc.update(x[sl])
    return acc.result()


#: a dimension whose std is below this fraction of the typical (rms) std hardly varies: dead or
#: near-constant (measured on the sample pairs, see README "Defaults, and why").
DEAD_SCALE = 1e-2


def guarded_scale(std: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
    """Per-dimension scales to divide by, safe for dead and near-constant dimensions.

    σ_j is kept unless the dimension hardly varies, in relative terms (σ_j < DEAD_SCALE·rms(σ),
    rms(σ) = sqrt(mean_j σ_j²), the typical scale) or in absolute terms (σ_j ≤ 32·eps·|μ_j|: what
    is left is rounding noise of its dtype). Such a dimension gets rms(σ), so it is scaled like a
    typical one: a value of ~1e-33 with noise of 5e-9 standardises to ~1e-7, not to ~1e24 (real
    text encoders have units at ~1e-33; ReLU encoders have units that hardly ever fire). When every
    dimension is constant, every scale is 1.
    """
    eps = torch.finfo(std.dtype).eps
    rms = std.pow(2).mean().sqrt()
    typical = rms if bool(rms > 0) else torch.ones_like(rms)
    dead = (std < DEAD_SCALE * typical) | (std <= 32 * eps * mean.abs())
    return torch.where(dead, typical.expand_as(std), std)
