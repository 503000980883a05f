"""Shared pieces of the IRP tests (test_irp_*.py): parallel spaces, anchors with near-copies, and
``Both``, the translator and the inverse relative projection fitted on the same anchors."""

import torch
import torch.nn.functional as F

from relcli.core.irp import IRP, InverseRelativeProjection
from relcli.core.relative import relative_projection
from tests.conftest import random_orthogonal


SEEDS = [0, 1, 2, 3, 4]


def spaces(seed, n=2000, d=32, k=200, scale=2.5, shift=0.0, dtype=torch.float64):
    """X random; Y = s·X·Q + t with Q orthogonal; anchors are the first k rows of both."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    q = random_orthogonal(d, seed + 1000)
    t = shift * torch.randn(d, generator=g, dtype=torch.float64)
    y = scale * x @ q + t
    return x.to(dtype), y.to(dtype), k


class Both:
    """The IRP translator (``translate``: the folded map) and the inverse relative projection
    (``transform``: relative rows) fitted on the same anchors; attributes come from the inverse,
    then the translator."""

    def __init__(self, a_y, a_x=None, target_norm=None, anchor_relative=None, **params):
        self.translator = None
        if a_x is not None:
            self.translator = IRP(**params).fit(a_x, a_y, target_norm=target_norm)
            if anchor_relative is None:
                anchor_relative = relative_projection(a_x, a_x, center=params.get("center", False))
        norm = None if params.get("center") else target_norm
        self.inverse = InverseRelativeProjection(**params).fit(a_y, anchor_relative=anchor_relative, target_norm=norm)

    def translate(self, x, chunk_rows=65536):
        return self.translator.transform(x, chunk_rows=chunk_rows)

    def transform(self, r, chunk_rows=65536):
        return self.inverse.transform(r, chunk_rows=chunk_rows)

    def __getattr__(self, name):
        if name in InverseRelativeProjection._state:
            return getattr(self.inverse, name)
        return getattr(self.translator, name)


def row_cos(a, b):
    return F.cosine_similarity(a, b, dim=1)


def unit(a):
    return a / a.norm(dim=1, keepdim=True)


def near_duplicate_anchors(seed, d=16, distinct=60, dtype=torch.float64):
    """Anchors with near-copies (tiny angle) of the first rows: pruning should keep one of each."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randn(distinct, d, generator=g, dtype=torch.float64)
    copies = base[:30] + 1e-4 * torch.randn(30, d, generator=g, dtype=torch.float64)
    return torch.cat([base, copies]).to(dtype)
