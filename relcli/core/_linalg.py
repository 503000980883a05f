"""Linear algebra the translators share: pseudo-inverse solves (from rows or from sums) and the polar factor."""

from __future__ import annotations

import torch


def pinv_solve(a: torch.Tensor, b: torch.Tensor, rcond: float) -> torch.Tensor:
    """Minimum-norm least-squares solution X = A⁺B of A X ≈ B, by SVD.

    A = UΣVᵀ, A⁺ = V Σ⁺ Uᵀ with 1/σ_i kept only where σ_i > rcond·σ_max. Unlike
    ``torch.linalg.lstsq`` on CUDA (which assumes full rank) this stays right when A is
    rank deficient, e.g. fewer anchors than dimensions.
    """
    u, s, vh = torch.linalg.svd(a, full_matrices=False)
    cutoff = rcond * s.max()
    s_inv = torch.where(s > cutoff, 1 / s, torch.zeros_like(s))
    return vh.T @ (s_inv[:, None] * (u.T @ b))


def gram_solve(gram: torch.Tensor, cross: torch.Tensor, rcond: float) -> torch.Tensor:
    """X⁺Y from XᵀX and XᵀY: V Λ⁻¹ Vᵀ XᵀY over the eigenpairs of XᵀX with σ = √λ > rcond·σ_max
    (the pseudo-inverse of ``pinv_solve``, from sums instead of rows)."""
    lam, vec = torch.linalg.eigh(gram)
    lam = lam.clamp_min(0)
    keep = lam.sqrt() > rcond * lam.max().sqrt()
    return vec[:, keep] @ ((vec[:, keep].T @ cross) / lam[keep][:, None])


def _polar(m: torch.Tensor) -> torch.Tensor:
    """Nearest orthogonal matrix to m in Frobenius norm: UVᵀ for m = UΣVᵀ.

    UVᵀ does not depend on the SVD's sign choices (flipping a column of U and of V together
    cancels), so no sign fixing is needed; LAPACK/cuSOLVER are deterministic for a given input.
    """
    u, _, vh = torch.linalg.svd(m)
    return u @ vh
