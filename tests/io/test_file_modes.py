"""Every output's mode follows the umask, like any file a shell command writes (issue 12, item 6)."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from relcli import api
from relcli.io.embeddings import write_embeddings


@pytest.mark.parametrize("mask", [0o022, 0o077])
def test_outputs_of_every_kind_follow_the_umask(tmp_path, mask):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((40, 6)).astype(np.float32)
    ids = [f"r{i}" for i in range(40)]
    src = write_embeddings(tmp_path / "x.h5", x, ids=ids, labels=np.arange(40) % 2)
    tgt = write_embeddings(tmp_path / "y.safetensors", 2 * x, ids=ids, labels=np.arange(40) % 2)
    previous = os.umask(mask)
    try:
        api.anchors(src, output=tmp_path / "xa.h5", n_anchors=12, strategy="random")
        api.anchors(tgt, like=tmp_path / "xa.h5", output=tmp_path / "ya.safetensors")
        api.translate(src, tgt_anchors=tmp_path / "ya.safetensors", method="procrustes",
                      save_map=tmp_path / "map.safetensors", output=tmp_path / "t.h5")
        api.stitch_fit(tgt, output=tmp_path / "head.safetensors", max_iter=5)
    finally:
        os.umask(previous)
    for name in ("xa.h5", "ya.safetensors", "map.safetensors", "t.h5", "head.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o666 & ~mask, name
