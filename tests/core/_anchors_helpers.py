"""Shared data and checks of the anchor tests (test_anchors_*.py)."""

import torch


def gaussian(n, d, seed, dtype=torch.float64):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def clusters(n_clusters, per_cluster, d, seed, spread=1e-2):
    """Tight clusters around random directions; row i belongs to cluster i // per_cluster."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_clusters, d, generator=g, dtype=torch.float64)
    centres = centres / centres.norm(dim=1, keepdim=True)
    noise = spread * torch.randn(n_clusters, per_cluster, d, generator=g, dtype=torch.float64)
    return (centres[:, None, :] + noise).reshape(-1, d)


def assert_distinct(indices, k, n):
    assert indices.dtype == torch.long and indices.device.type == "cpu"
    assert indices.shape == (k,)
    assert len(set(indices.tolist())) == k
    assert 0 <= int(indices.min()) and int(indices.max()) < n
