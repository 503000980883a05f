"""The hostile suite's corpus (issue 12): tiny valid files of every kind relcli writes, in both formats,
made once per session through ``relcli.api`` (X: 40 x 8 float32, string ids ``id00``..``id39``, 3 int
classes; Y = 2 X Q), plus TorchScript encoders for ``embed``. Tests mutate *copies* of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

N, D, K = 40, 8, 16
IDS = [f"id{i:02d}" for i in range(N)]
ITEM_IDS = [f"it{i:02d}" for i in range(N)]
NAN_ITEMS = (7, 11)  # rows whose item makes the NaN encoder return NaN


@dataclass
class Corpus:
    folder: Path
    paths: dict[str, Path] = field(default_factory=dict)
    ids: dict[str, list] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Path:
        paths = self.__dict__.get("paths", {})
        if name in paths:
            return paths[name]
        raise AttributeError(name)

    def f(self, base: str, fmt: str) -> Path:
        """The pristine file ``base`` (x, y, xa, ya, rel, pred) in format ``h5`` or ``st``."""
        return self.paths[f"{base}_{fmt}"]


def _scripted_encoders(folder: Path) -> dict[str, Path]:
    import torch

    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, D)

        def forward(self, x):
            return self.lin(x.reshape(x.shape[0], -1))

    class NanAt(torch.nn.Module):
        """NaN rows for items whose first value is above 100."""

        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, D)

        def forward(self, x):
            y = self.lin(x.reshape(x.shape[0], -1))
            bad = (x.reshape(x.shape[0], -1)[:, 0] > 100.0).unsqueeze(1)
            return torch.where(bad, torch.full_like(y, float("nan")), y)

    class Flat(torch.nn.Module):
        def forward(self, x):
            return x.reshape(-1)

    class Huge(torch.nn.Module):
        """Finite float32 values whose rows' norms overflow (and one row beyond float16's range)."""

        def forward(self, x):
            return torch.full((x.shape[0], 8), 3e38)

    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(5, D)

        def forward(self, x):
            return self.lin(x.reshape(x.shape[0], -1))

    paths = {}
    with torch.random.fork_rng():
        torch.manual_seed(0)
        for name, module in (("enc", Linear()), ("nan_enc", NanAt()), ("flat_enc", Flat()), ("huge_enc", Huge()),
                             ("broken_enc", Broken())):
            path = folder / f"{name}.pt"
            torch.jit.script(module).save(str(path))
            paths[name] = path
    return paths


def build_corpus(folder: Path) -> Corpus:
    from relcli import api
    from relcli.io.embeddings import write_embeddings

    rng = np.random.default_rng(12)
    x = rng.standard_normal((N, D)).astype(np.float32)
    q, r = np.linalg.qr(rng.standard_normal((D, D)))
    y = (2.0 * x.astype(np.float64) @ (q * np.sign(np.diag(r)))).astype(np.float32)
    labels = np.argmax(x @ rng.standard_normal((D, 3)), axis=1).astype(np.int64)
    assert len(set(labels.tolist())) == 3
    c = Corpus(folder)
    p = c.paths
    for fmt, ext in (("h5", ".h5"), ("st", ".safetensors")):
        p[f"x_{fmt}"] = write_embeddings(folder / f"x{ext}", x, ids=IDS, labels=labels)
        p[f"y_{fmt}"] = write_embeddings(folder / f"y{ext}", y, ids=IDS, labels=labels)
    p["x_nolabels"] = write_embeddings(folder / "x_nolabels.h5", x, ids=IDS)
    p["x_noids"] = write_embeddings(folder / "x_noids.h5", x)
    api.anchors(p["x_h5"], output=folder / "xa.h5", n_anchors=K, strategy="fps", seed=0)
    p["xa_h5"] = folder / "xa.h5"
    api.anchors(p["x_st"], output=folder / "xa.safetensors", like=p["xa_h5"])
    p["xa_st"] = folder / "xa.safetensors"
    for fmt, ext in (("h5", ".h5"), ("st", ".safetensors")):
        p[f"ya_{fmt}"] = folder / f"ya{ext}"
        api.anchors(p[f"y_{fmt}"], output=p[f"ya_{fmt}"], like=p["xa_h5"])
        p[f"rel_{fmt}"] = folder / f"rel{ext}"
        api.project(p[f"x_{fmt}"], anchors=p["xa_h5"], output=p[f"rel_{fmt}"])
    p["head"] = folder / "head.safetensors"
    api.stitch_fit(p["y_h5"], output=p["head"], max_iter=5)
    p["mlp"] = folder / "mlp.safetensors"
    api.stitch_fit(p["y_h5"], output=p["mlp"], head="mlp", hidden=4, epochs=3)
    p["relhead"] = folder / "relhead.safetensors"
    api.stitch_fit(p["y_h5"], output=p["relhead"], anchors=p["ya_h5"], max_iter=5)
    for fmt, ext in (("h5", ".h5"), ("st", ".safetensors")):
        p[f"pred_{fmt}"] = folder / f"pred{ext}"
        api.stitch_apply(p["y_h5"], head=p["head"], output=p[f"pred_{fmt}"])
    p["map"] = folder / "map.safetensors"
    api.translate(p["x_h5"], tgt_anchors=p["ya_h5"], method="linear", save_map=p["map"], output=folder / "tx.h5")
    p["map_irp"] = folder / "map_irp.safetensors"
    api.translate(p["x_h5"], tgt_anchors=p["ya_h5"], method="irp", save_map=p["map_irp"], output=folder / "tx_irp.h5")
    p["tx_h5"] = folder / "tx.h5"
    items = rng.standard_normal((N, 4)).astype(np.float32)
    np.savez(folder / "items.npz", x=items, ids=np.array(ITEM_IDS))
    p["items"] = folder / "items.npz"
    nan_items = items.copy()
    nan_items[list(NAN_ITEMS), 0] = 1000.0
    np.savez(folder / "nan_items.npz", x=nan_items, ids=np.array(ITEM_IDS))
    p["nan_items"] = folder / "nan_items.npz"
    np.save(folder / "items.npy", items)
    p["items_npy"] = folder / "items.npy"
    p.update(_scripted_encoders(folder))
    for name in ("xa_h5", "ya_h5", "xa_st", "ya_st"):
        from ._files import ids_of

        c.ids[name] = ids_of(p[name])
    return c

