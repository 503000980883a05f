"""Peer workers of benchmarks/run.py, each run as its own process (stdlib imports at the top, so
the import cost belongs to the tool measured):

    python _bench_peers.py naive x.npy W.npy out.npy              # relcli's own venv: numpy only
    python _bench_peers.py latentis x.npy xa.npy ya.npy out.npy   # the peer venv (latentis 0.0.8)

naive: np.load the whole x, x @ W (W given), np.save. latentis has no CLI and no file I/O: load
the .npy files, ``Procrustes()`` (its recipe: per-dimension standard scaling, zero padding, SVD)
fit on the anchors, transform all rows, np.save. isotrieve 0.4.0 runs through its own CLI
(``isotrieve calibrate`` then ``isotrieve transform``), see ``isotrieve_commands``.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGES = ["torch==2.13.0", "latentis==0.0.8", "isotrieve==0.4.0"]
#: peak RSS of each peer as a multiple of the float32 input (measured at 100k-200k × 768; see
#: /work/scratch/peers/README.md): used to skip a run that cannot fit in memory.
MEMORY_FACTOR = {"naive": 2.3, "latentis": 4.6, "isotrieve": 4.5}


def naive(x_path: str, w_path: str, out: str) -> None:
    import numpy as np

    np.save(out, np.load(x_path) @ np.load(w_path))


def latentis(x_path: str, xa_path: str, ya_path: str, out: str) -> None:
    import numpy as np
    import torch
    from latentis.transform.translate import Procrustes

    x = torch.from_numpy(np.load(x_path))
    translator = Procrustes()
    translator.fit(torch.from_numpy(np.load(xa_path)), torch.from_numpy(np.load(ya_path)))
    with torch.no_grad():
        y, _ = translator.transform(x)  # returns (x, y); y is None
    np.save(out, y.numpy())


def isotrieve_commands(peer_python: Path, folder: Path) -> list[list[str]]:
    """calibrate (RidgeMapping, alpha=auto, on the anchor .npy files) then transform (a directory
    holding vectors.npy -> x.npy; output float64, L2-normalised rows). transform APPENDS to an
    existing output directory: the caller removes it first."""
    cli = str(Path(peer_python).parent / "isotrieve")
    store = folder / "iso_store"
    store.mkdir(exist_ok=True)
    if not (store / "vectors.npy").is_symlink():
        (store / "vectors.npy").symlink_to(folder / "x.npy")
    return [
        [cli, "calibrate", "--source-vectors", str(folder / "anchors_src.npy"), "--target-vectors",
         str(folder / "anchors_tgt.npy"), "-o", str(folder / "map.isotrieve"), "--seed", "0"],
        [cli, "transform", "--mapping", str(folder / "map.isotrieve"), "--source-dir", str(store),
         "--target-dir", str(folder / "iso_out")],
    ]


if __name__ == "__main__":
    tool, *args = sys.argv[1:]
    {"naive": naive, "latentis": latentis}[tool](*args)
