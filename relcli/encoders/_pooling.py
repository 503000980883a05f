"""Pooling token states into one vector per item (the same definitions as sentence-transformers'
Pooling module)."""

from __future__ import annotations

from relcli.encoders._common import POOLINGS
from relcli.errors import UsageError


def mean_pool(hidden, attention_mask):
    """Mask-aware mean over tokens: Σ_t m_t h_t / Σ_t m_t (padding never changes a row)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def pool(hidden, attention_mask, pooling: str | tuple[str, ...] | list[str]):
    """(batch, tokens, dim) token states -> (batch, dim) per mode; several modes are concatenated.

    mean: Σ m_t h_t / Σ m_t; mean_sqrt_len_tokens: Σ m_t h_t / √Σ m_t; cls: the first unmasked
    token; lasttoken: the last unmasked token; max: the element-wise max over unmasked tokens;
    weightedmean: weights 1, 2, ... from the first unmasked token. A row with no unmasked token
    pools to zeros.
    """
    import torch

    modes = (pooling,) if isinstance(pooling, str) else tuple(pooling)
    mask = attention_mask.to(torch.bool)
    present = mask.any(dim=1, keepdim=True)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    out = []
    for mode in modes:
        if mode == "mean":
            out.append(mean_pool(hidden, attention_mask))
        elif mode == "mean_sqrt_len_tokens":
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            out.append((hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0).sqrt())
        elif mode == "cls":
            first = hidden[rows, mask.to(torch.int32).argmax(dim=1)]
            out.append(torch.where(present, first, torch.zeros((), dtype=hidden.dtype, device=hidden.device)))
        elif mode == "lasttoken":
            last = hidden.shape[1] - 1 - mask.flip(1).to(torch.int32).argmax(dim=1)
            out.append(torch.where(present, hidden[rows, last], torch.zeros((), dtype=hidden.dtype, device=hidden.device)))
        elif mode == "max":
            filled = hidden.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(dim=1).values
            out.append(torch.where(present, filled, torch.zeros((), dtype=hidden.dtype, device=hidden.device)))
        elif mode == "weightedmean":
            start = mask.to(torch.int32).argmax(dim=1, keepdim=True)
            positions = torch.arange(1, hidden.shape[1] + 1, device=hidden.device).unsqueeze(0) - start
            weights = (positions * mask).to(hidden.dtype).unsqueeze(-1)
            out.append((hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-9))
        else:
            raise UsageError(f"unknown --pooling {mode!r}; choose one of {', '.join(POOLINGS)}")
    return out[0] if len(out) == 1 else torch.cat(out, dim=-1)


def _mode_name(pooling) -> str:
    return pooling if isinstance(pooling, str) else "+".join(pooling)
