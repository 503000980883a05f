"""Sufficient statistics of parallel anchor pairs, accumulated chunk by chunk (linear in rows, flat memory).

A map fitted on a whole embedding file of anchors (``translate --tgt-anchors y.h5`` with a
million rows) needs no k × d matrix in memory: every method relcli offers is a function of a few
d × d sums over the anchor pairs (x_i, y_i), accumulated here in float64:

- direct methods: n, Σx, Σy, XᵀX, XᵀY; the centring and scaling of the anchors follow
  analytically (XcᵀXc = XᵀX − n μ_X μ_Xᵀ, σ_j² = (XᵀX)_jj / n − μ_j²);
- IRP: the same sums over unit rows, x̂ = (x − c_X)/‖x − c_X‖ and ŷ alike (c = 0, or the anchor
  means from a first pass when centring): Â_XᵀÂ_Y and Â_YᵀÂ_Y, plus Σ‖y − c_Y‖ for the target norm.

``Translator.fit_moments`` turns them into the same state ``fit`` computes from the rows.
"""

from __future__ import annotations

import torch


class AnchorMoments:
    """Sums over anchor pairs; ``unit`` sums rows normalised after subtracting ``centre_x``/``centre_y``."""

    def __init__(self, unit: bool = False, centre_x: torch.Tensor | None = None, centre_y: torch.Tensor | None = None):
        self.unit, self.centre_x, self.centre_y = unit, centre_x, centre_y
        self.n = 0
        self.sum_x = self.sum_y = self.xx = self.xy = self.yy = None
        self.norm_x = self.norm_y = 0.0

    def update(self, x: torch.Tensor, y: torch.Tensor) -> "AnchorMoments":
        """Add the pairs (x_i, y_i) of two parallel chunks (rows × d_X, rows × d_Y)."""
        x, y = x.to(torch.float64), y.to(torch.float64)
        if self.unit:
            if self.centre_x is not None:
                x, y = x - self.centre_x.to(x), y - self.centre_y.to(y)
            norms_x = torch.linalg.vector_norm(x, dim=1, keepdim=True)
            norms_y = torch.linalg.vector_norm(y, dim=1, keepdim=True)
            self.norm_x += float(norms_x.sum())
            self.norm_y += float(norms_y.sum())
            x = x / norms_x.clamp_min(torch.finfo(x.dtype).tiny)
            y = y / norms_y.clamp_min(torch.finfo(y.dtype).tiny)
        if self.sum_x is None:
            self.sum_x, self.sum_y = x.new_zeros(x.shape[1]), y.new_zeros(y.shape[1])
            self.xx, self.xy, self.yy = x.new_zeros(x.shape[1], x.shape[1]), x.new_zeros(x.shape[1], y.shape[1]), \
                y.new_zeros(y.shape[1], y.shape[1])
        self.n += x.shape[0]
        self.sum_x += x.sum(dim=0)
        self.sum_y += y.sum(dim=0)
        self.xx += x.T @ x
        self.xy += x.T @ y
        self.yy += y.T @ y
        return self

    def reversed(self) -> "AnchorMoments":
        """The same sums with the roles of x and y swapped (for the map back, target → source)."""
        other = AnchorMoments(self.unit, self.centre_y, self.centre_x)
        other.n, other.norm_x, other.norm_y = self.n, self.norm_y, self.norm_x
        other.sum_x, other.sum_y, other.xx, other.xy, other.yy = self.sum_y, self.sum_x, self.yy, self.xy.T, self.xx
        return other

    @property
    def mean_x(self) -> torch.Tensor:
        return self.sum_x / self.n

    @property
    def mean_y(self) -> torch.Tensor:
        return self.sum_y / self.n

    def centred(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(XcᵀXc, XcᵀYc): the sums of products of the centred pairs."""
        mx, my = self.mean_x, self.mean_y
        return self.xx - self.n * torch.outer(mx, mx), self.xy - self.n * torch.outer(mx, my)

    def variances(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-dimension population variances of x and y (clamped at 0 against rounding)."""
        vx = (self.xx.diagonal() / self.n - self.mean_x.square()).clamp_min(0)
        vy = (self.yy.diagonal() / self.n - self.mean_y.square()).clamp_min(0)
        return vx, vy
