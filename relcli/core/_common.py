"""Small helpers the kernels share: row normalisation, chunking, input checks."""

from __future__ import annotations

from collections.abc import Iterator

import torch

from relcli.errors import DataError

DEFAULT_CHUNK_ROWS = 65536


def row_chunks(n_rows: int, chunk_rows: int | None) -> Iterator[slice]:
    """Slices covering ``range(n_rows)`` in blocks of ``chunk_rows`` (all at once if None)."""
    step = n_rows if not chunk_rows or chunk_rows <= 0 else chunk_rows
    step = max(step, 1)
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


def check_matrix(x: torch.Tensor, what: str = "input") -> torch.Tensor:
    """Require a 2-D floating tensor; integer input is promoted to float32."""
    if not isinstance(x, torch.Tensor):
        raise DataError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 2:
        raise DataError(f"{what} must be a 2-D matrix (rows, dims), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        x = x.to(torch.float32)
    return x


def bad_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of rows holding NaN/Inf, and of all-zero rows (whose direction is undefined)."""
    nonfinite = (~torch.isfinite(x)).any(dim=1)
    zero = (x == 0).all(dim=1) & ~nonfinite
    return nonfinite.nonzero().flatten(), zero.nonzero().flatten()


def _describe(indices: torch.Tensor, limit: int = 5) -> str:
    shown = ", ".join(str(int(i)) for i in indices[:limit])
    more = f" and {len(indices) - limit} more" if len(indices) > limit else ""
    return f"{len(indices)} row(s) ({shown}{more})"


def check_rows(x: torch.Tensor, what: str = "input", allow_zero: bool = False) -> None:
    """Raise ``DataError`` naming NaN/Inf rows (and zero rows unless ``allow_zero``)."""
    nonfinite, zero = bad_rows(x)
    if len(nonfinite):
        raise DataError(f"{what} has NaN/Inf in {_describe(nonfinite)}")
    if len(zero) and not allow_zero:
        raise DataError(f"{what} has all-zero {_describe(zero)}: their direction is undefined")


def l2_normalize(x: torch.Tensor, what: str = "input") -> torch.Tensor:
    """x̂ = x / ‖x‖₂ per row; zero or non-finite rows are an error, never a silent NaN."""
    norms = torch.linalg.vector_norm(x, dim=1, keepdim=True)
    if not bool(torch.isfinite(norms).all() and (norms > 0).all()):
        check_rows(x, what)
    return x / norms
