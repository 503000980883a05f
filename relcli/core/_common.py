"""Small helpers the kernels share: row chunks, the compute dtype, and the one test of a bad row."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from relcli.errors import DataError, RowsError

DEFAULT_CHUNK_ROWS = 65536


def row_chunks(n_rows: int, chunk_rows: int | None) -> Iterator[slice]:
    """Slices covering ``range(n_rows)`` in blocks of ``chunk_rows`` (all at once if None)."""
    step = n_rows if not chunk_rows or chunk_rows <= 0 else chunk_rows
    step = max(step, 1)
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype relcli computes in for data stored as ``dtype``: float64 stays, all else is float32.

    Half precision (float16, bfloat16) is widened: its 3-4 significant digits would round
    similarities and sums of squares away. Integer data becomes float32.
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def check_matrix(x: torch.Tensor, what: str = "input") -> torch.Tensor:
    """Require a 2-D floating tensor; integer input is promoted to float32."""
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise DataError(f"{what} must be a 2-D matrix (rows, dims), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(torch.float32)
    return x


from relcli.errors import NONFINITE, ZERO  # noqa: E402 - the names of row problems live with the errors


def _overflow(dtype: torch.dtype) -> str:
    name = str(dtype).replace("torch.", "")
    return f"an L2 norm that over- or underflows in {name} (rescale them or use float64)"


def invalid_rows(x: torch.Tensor, need_direction: bool = True) -> tuple[torch.Tensor, list[tuple[str, torch.Tensor]]]:
    """The one test of a bad row: (mask of bad rows, [(problem, positions), ...]).

    A row is bad when it holds NaN/Inf; where its direction matters (cosines, normalisation)
    also when it is all zeros or when its L2 norm over- or underflows in its dtype (finite
    entries of ~1e20 in float32, say). Problems come in that order, each with its positions. The
    common case (every row good) costs one reduction pass.
    """
    if x.shape[0] == 0:
        return torch.zeros(0, dtype=torch.bool, device=x.device), []
    if need_direction:
        norms = torch.linalg.vector_norm(x, dim=1)  # NaN/Inf, zero and overflowing rows all show here
        if bool((torch.isfinite(norms) & (norms > 0)).all()):
            return torch.zeros(x.shape[0], dtype=torch.bool, device=x.device), []
    elif bool(torch.isfinite(x.sum())):  # NaN/Inf survive a sum; a sum that overflows is checked exactly below
        return torch.zeros(x.shape[0], dtype=torch.bool, device=x.device), []
    nonfinite = (~torch.isfinite(x)).any(dim=1)
    mask = nonfinite
    problems = [(NONFINITE, nonfinite)]
    if need_direction and x.shape[0]:
        zero = (x == 0).all(dim=1) & ~nonfinite
        norms = torch.linalg.vector_norm(x, dim=1)
        overflow = ~(torch.isfinite(norms) & (norms > 0)) & ~nonfinite & ~zero
        mask = nonfinite | zero | overflow
        problems += [(ZERO, zero), (_overflow(x.dtype), overflow)]
    return mask, [(problem, rows.nonzero().flatten()) for problem, rows in problems if bool(rows.any())]


def check_rows(x: torch.Tensor, what: str = "input", allow_zero: bool = False, offset: int = 0) -> None:
    """Raise ``RowsError`` naming the first kind of bad row (see ``invalid_rows``), if any.

    ``offset`` is added to the positions, for a chunk that starts at row ``offset`` of its input.
    """
    mask, problems = invalid_rows(x, need_direction=not allow_zero)
    if problems:
        problem, positions = problems[0]
        raise RowsError(problem, (positions + offset).tolist(), what)


def row_norms(x: torch.Tensor, what: str = "input") -> torch.Tensor:
    """‖x_i‖₂ per row, (n,); zero, overflowing or non-finite rows raise ``RowsError``."""
    norms = torch.linalg.vector_norm(x, dim=1)
    if not bool((torch.isfinite(norms) & (norms > 0)).all()):
        check_rows(x, what)
    return norms


def l2_normalize(x: torch.Tensor, what: str = "input") -> torch.Tensor:
    """x̂ = x / ‖x‖₂ per row; zero, overflowing or non-finite rows raise ``RowsError``, never a NaN."""
    return x / row_norms(x, what)[:, None]
