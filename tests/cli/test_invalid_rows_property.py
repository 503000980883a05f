"""Property: bad rows anywhere in an input, any --batch-size, every row-wise step (the one row loop).

NaN/Inf rows, and all-zero rows where direction matters, put at random positions: the error names
the file and exactly the bad rows of the first chunk that has any; with ``drop_invalid`` the
output is the clean output without those rows.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relcli import api
from relcli.errors import DataError
from relcli.io.embeddings import write_embeddings

from .conftest import load, make_parallel_spaces

N, D, K = 60, 8, 16


@dataclass
class Spaces:
    folder: Path
    x: np.ndarray
    ids: list
    labels: np.ndarray
    xa: Path
    ya: Path
    head: Path


@pytest.fixture(scope="module")
def spaces(tmp_path_factory) -> Spaces:
    folder = tmp_path_factory.mktemp("property")
    x, y, _, ids, labels = make_parallel_spaces(N, D, seed=5)
    x_path = write_embeddings(folder / "x.h5", x, ids=ids, labels=labels)
    y_path = write_embeddings(folder / "y.h5", y, ids=ids, labels=labels)
    api.anchors(x_path, output=folder / "xa.h5", n_anchors=K, strategy="random", seed=1)
    api.anchors(y_path, output=folder / "ya.h5", like=folder / "xa.h5")
    api.stitch_fit(y_path, output=folder / "head.safetensors", max_iter=20)
    return Spaces(folder, x, ids, labels, folder / "xa.h5", folder / "ya.h5", folder / "head.safetensors")


def steps(s: Spaces):
    """name -> (needs a direction, run(source, output, batch_size, drop_invalid))."""
    return {
        "project": (True, lambda src, o, b, drop: api.project(src, anchors=s.xa, output=o, batch_size=b, drop_invalid=drop)),
        "translate-irp": (True, lambda src, o, b, drop: api.translate(src, output=o, tgt_anchors=s.ya, src_anchors=s.xa,
                                                                     method="irp", rcond=0.01, batch_size=b, drop_invalid=drop)),
        "translate-procrustes": (False, lambda src, o, b, drop: api.translate(
            src, output=o, tgt_anchors=s.ya, src_anchors=s.xa, method="procrustes", batch_size=b, drop_invalid=drop)),
        "stitch-apply": (False, lambda src, o, b, drop: api.stitch_apply(src, head=s.head, output=o, batch_size=b,
                                                                        drop_invalid=drop)),
        "stitch-run": (True, lambda src, o, b, drop: api.stitch_run(src=src, tgt_anchors=s.ya, src_anchors=s.xa,
                                                                   head=s.head, output=o, method="irp", rcond=0.01, batch_size=b,
                                                                   drop_invalid=drop)),
    }


@settings(max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    step=st.sampled_from(["project", "translate-irp", "translate-procrustes", "stitch-apply", "stitch-run"]),
    bad=st.lists(st.integers(0, N - 1), min_size=1, max_size=6, unique=True),
    kind=st.sampled_from(["nan", "inf", "zero"]),
    batch_size=st.integers(1, N + 5),
    fmt=st.sampled_from([".h5", ".safetensors"]),
)
def test_bad_rows_are_named_or_dropped(spaces, tmp_path, step, bad, kind, batch_size, fmt):
    needs_direction, run = steps(spaces)[step]
    x = spaces.x.copy()
    for row in bad:
        if kind == "zero":
            x[row] = 0
        else:
            x[row, row % D] = np.nan if kind == "nan" else -np.inf
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    source = write_embeddings(folder / f"x{fmt}", x, ids=spaces.ids, labels=spaces.labels, allow_nonfinite=True)
    invalid = sorted(bad) if kind != "zero" or needs_direction else []

    out = folder / f"out{fmt}"
    if invalid:
        with pytest.raises(DataError) as caught:
            run(source, out, batch_size, False)
        message = str(caught.value)
        assert message.startswith(f"{source}: ") and "\n" not in message
        first_chunk = invalid[0] // batch_size
        expected = [r for r in invalid if r // batch_size == first_chunk]
        assert f"{len(expected)} row(s) (ids " in message, message
        named = re.findall(r"'(item-\d{4})'", message)
        assert named == [spaces.ids[r] for r in expected[:5]], message
        assert "--drop-invalid" in message
        assert not out.exists() and sorted(p.name for p in folder.iterdir()) == [source.name]

    clean = folder / f"clean{fmt}"
    run(write_embeddings(folder / f"x_clean{fmt}", spaces.x, ids=spaces.ids, labels=spaces.labels), clean, batch_size, False)
    result = run(source, out, batch_size, True)
    assert result.dropped == len(invalid) and result.dropped_ids == [spaces.ids[r] for r in invalid]
    written, reference = load(out), load(clean)
    keep = [i for i in range(N) if i not in invalid]
    assert written.ids == [reference.ids[i] for i in keep]
    assert np.isfinite(written.matrix).all()
    same = [position for position, i in enumerate(keep) if i not in bad]  # zero rows kept where valid differ, of course
    assert [written.labels[p] for p in same] == [reference.labels[keep[p]] for p in same]
    np.testing.assert_allclose(written.matrix[same], reference.matrix[[keep[p] for p in same]], rtol=0, atol=2e-6)
