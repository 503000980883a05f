"""Linear algebra the translators share: pseudo-inverses (from rows or from sums) and the polar factor.

Every truncated pseudo-inverse in relcli keeps the singular values σ_i > rcond·σ_max (``kept``) and
is taken from a ``Spectrum``: an SVD, or, where that is exact enough, the eigen-decomposition of the
smaller Gram matrix in float64 (eigh of 768 × 768 in float64 costs about half an SVD of 1024 × 768).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

#: the smallest cut-off for which a pseudo-inverse is taken from the Gram matrix. Its eigenvalues
#: λ = σ² carry an absolute error of about c·eps·λ_max (eps = 2.2e-16 in float64, c a small multiple),
#: so a kept one (λ > rcond²·λ_max ≥ 1e-8·λ_max) is off by ≲ c·2e-8 relatively: float32 round-off.
GRAM_MIN_RCOND = 1e-4
#: float64 rows only: below λ_min = this·λ_max the Gram's smallest singular value √λ_min is less
#: accurate (relative error ≈ c·eps·λ_max/(2·λ_min) > ~1e-7) than the SVD's (eps·σ_max/σ_min), so a
#: caller that reports σ_min (a condition number) falls back to the SVD. In float32 the SVD is no better.
GRAM_RESOLVED = 1e-9
#: an eigenvalue λ ≤ this·λ_max of a float64 Gram matrix is within its round-off of 0: as a smallest
#: singular value it counts as 0 (a condition number beyond ~1e7 is reported as inf, not as noise)
GRAM_ZERO = 1e-14


def kept(sigma: torch.Tensor, rcond: float) -> torch.Tensor:
    """σ_i > rcond·σ_max for descending σ: the singular values a pseudo-inverse keeps (a leading run)."""
    return sigma > rcond * sigma[0] if len(sigma) else sigma > 0


class Spectrum:
    """A (k × D) as A = UΣVᵀ, for the truncated pseudo-inverse A⁺_c = Σ_{σ_i > c·σ_max} v_i σ_i⁻¹ u_iᵀ.

    Routes (``route``):
    - ``"svd"``: torch.linalg.svd in A's dtype;
    - ``"right"`` (k ≥ D): AᵀA = V Λ Vᵀ in float64, σ = √λ, A⁺_c = V_c Λ_c⁻¹ V_cᵀ Aᵀ;
    - ``"left"`` (k < D): AAᵀ = U Λ Uᵀ in float64, σ = √λ, A⁺_c = Aᵀ U_c Λ_c⁻¹ U_cᵀ.
    ``sigma`` (min(k, D), descending) comes from the route taken (negative eigenvalues, round-off,
    clamped to 0). ``of`` picks the route, ``from_gram`` takes AᵀA alone (sums, no rows: ``solve_cross``).
    """

    def __init__(self, route: str, sigma: torch.Tensor, vectors: tuple[torch.Tensor, ...], rows: torch.Tensor | None):
        self.route, self.sigma, self._vectors, self._rows = route, sigma, vectors, rows

    @classmethod
    def of(cls, a: torch.Tensor, rcond: float, smallest: bool = False) -> "Spectrum":
        """The spectrum of A for cut-offs ≥ ``rcond``: the Gram route when rcond ≥ GRAM_MIN_RCOND, the
        SVD otherwise. ``smallest``: the caller reports σ_min, so float64 rows whose Gram does not resolve
        it (λ_min < GRAM_RESOLVED·λ_max) take the SVD too."""
        k, d = a.shape
        if rcond >= GRAM_MIN_RCOND and min(k, d) > 0:
            rows = a.to(torch.float64)
            route = "right" if k >= d else "left"
            spectrum = cls._eigh(route, rows.T @ rows if route == "right" else rows @ rows.T, rows)
            lam = spectrum._vectors[1]
            if not (smallest and a.dtype == torch.float64 and bool(lam[-1] < GRAM_RESOLVED * lam[0])):
                return spectrum
        u, sigma, vh = torch.linalg.svd(a, full_matrices=False)
        return cls("svd", sigma, (u, vh), None)

    @classmethod
    def from_gram(cls, gram: torch.Tensor) -> "Spectrum":
        """The right route from AᵀA (D × D) alone."""
        return cls._eigh("right", gram, None)

    @classmethod
    def _eigh(cls, route: str, gram: torch.Tensor, rows: torch.Tensor | None) -> "Spectrum":
        lam, vec = torch.linalg.eigh(gram)
        lam, vec = lam.flip(0).clamp_min(0), vec.flip(1)
        return cls(route, lam.sqrt(), (vec, lam), rows)

    def kept(self, rcond: float) -> torch.Tensor:
        return kept(self.sigma, rcond)

    @property
    def sigma_min(self) -> float:
        """σ_min (0.0 for an empty A), and 0.0 where a Gram route cannot tell it from 0 (``GRAM_ZERO``)."""
        if not len(self.sigma):
            return 0.0
        if self.route != "svd" and bool(self.sigma[-1].square() <= GRAM_ZERO * self.sigma[0].square()):
            return 0.0
        return float(self.sigma[-1])

    def solve(self, b: torch.Tensor, rcond: float) -> torch.Tensor:
        """A⁺_rcond B (D × m) for B (k × m)."""
        return self.solutions(b, (rcond,))[0]

    def solve_cross(self, cross: torch.Tensor, rcond: float) -> torch.Tensor:
        """A⁺_rcond B from C = AᵀB (D × m), on the right route only: V_c Λ_c⁻¹ V_cᵀ C."""
        if self.route != "right":
            raise TypeError(f"solve_cross needs the right Gram route, not {self.route!r}")
        return self._terms(self._vectors[0].T @ cross, 0, int(self.kept(rcond).sum()))

    def solutions(self, b: torch.Tensor, rconds: Sequence[float]) -> list[torch.Tensor]:
        """[A⁺_c B for c in rconds], the projection of B done once: the kept sets are nested (a leading
        run of σ), so A⁺_c B for a smaller c adds only the terms of the singular values it adds."""
        if self.route == "svd":
            coefficients = self._vectors[0].T @ b
        elif self.route == "right":
            coefficients = self._vectors[0].T @ (self._rows.T @ b.to(torch.float64))
        else:
            coefficients = self._vectors[0].T @ b.to(torch.float64)
        out: list[torch.Tensor] = [None] * len(rconds)  # type: ignore[list-item]
        total, done = None, 0
        for i in sorted(range(len(rconds)), key=lambda j: -rconds[j]):  # fewest kept first
            rank = int(self.kept(rconds[i]).sum())
            if total is None or rank > done:
                part = self._terms(coefficients, done, rank)
                total, done = part if total is None else total + part, rank
            out[i] = total
        return out

    def _terms(self, coefficients: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Σ_{start ≤ i < stop} of A⁺B's terms, from the coefficients of B along u_i (svd) or along the
        Gram's eigenvectors (right: v_iᵀAᵀB; left: u_iᵀB)."""
        part = slice(start, stop)
        if self.route == "svd":
            return self._vectors[1][part].T @ (coefficients[part] / self.sigma[part, None])
        vec, lam = self._vectors
        scaled = vec[:, part] @ (coefficients[part] / lam[part, None])
        return scaled if self.route == "right" else self._rows.T @ scaled

    def pinv_t(self, rcond: float) -> torch.Tensor:
        """(Aᵀ)⁺_rcond = (A⁺_rcond)ᵀ (k × D): U_c Σ_c⁻¹ V_cᵀ (svd), A V_c Λ_c⁻¹ V_cᵀ (right),
        U_c Λ_c⁻¹ U_cᵀ A (left)."""
        rank = int(self.kept(rcond).sum())
        if self.route == "svd":
            u, vh = self._vectors
            return (u[:, :rank] / self.sigma[:rank]) @ vh[:rank]
        vec, lam = self._vectors
        vec = vec[:, :rank]
        if self.route == "right":
            return (self._rows @ vec) @ (vec / lam[:rank]).T
        return (vec / lam[:rank]) @ (vec.T @ self._rows)


def pinv_solve(a: torch.Tensor, b: torch.Tensor, rcond: float) -> torch.Tensor:
    """Minimum-norm least-squares solution X = A⁺B of A X ≈ B (``Spectrum``).

    A⁺ = V Σ⁺ Uᵀ with 1/σ_i kept only where σ_i > rcond·σ_max. Unlike
    ``torch.linalg.lstsq`` on CUDA (which assumes full rank) this stays right when A is
    rank deficient, e.g. fewer anchors than dimensions.
    """
    return Spectrum.of(a, rcond).solve(b, rcond)


def gram_solve(gram: torch.Tensor, cross: torch.Tensor, rcond: float) -> torch.Tensor:
    """X⁺Y from XᵀX and XᵀY: V Λ⁻¹ Vᵀ XᵀY over the eigenpairs of XᵀX with σ = √λ > rcond·σ_max
    (the pseudo-inverse of ``pinv_solve``, from sums instead of rows)."""
    return Spectrum.from_gram(gram).solve_cross(cross, rcond)


def _polar(m: torch.Tensor) -> torch.Tensor:
    """Nearest orthogonal matrix to m in Frobenius norm: UVᵀ for m = UΣVᵀ.

    UVᵀ does not depend on the SVD's sign choices (flipping a column of U and of V together
    cancels), so no sign fixing is needed; LAPACK/cuSOLVER are deterministic for a given input.
    Always by SVD: the Gram route (Q = M V Λ^{-1/2} Vᵀ) is off by about eps·κ(M)², and M is
    often far from well conditioned (κ ≈ 1e9 for Procrustes on 1024 anchors of 768 dims), or rank
    deficient (fewer anchors than dimensions, zero padding), where only the SVD completes Q.
    """
    u, _, vh = torch.linalg.svd(m)
    return u @ vh
