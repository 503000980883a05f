"""--shard I/N and --rows A:B on every row-wise step: shards tile the input, and together equal one run."""

from __future__ import annotations

import numpy as np
import pytest

from relcli.api._context import row_range
from relcli.errors import UsageError

from .conftest import N, assert_clean_error, invoke, load, ok


@pytest.mark.parametrize("n,count", [(240, 7), (5, 8), (1, 1), (0, 3)])
def test_shards_are_balanced_contiguous_and_tile_the_rows(n, count):
    spans = [row_range(n, shard=f"{i}/{count}")[:2] for i in range(count)]
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    sizes = [stop - start for start, stop in spans]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("bad", ["3/3", "-1/2", "a/b", "1", "1/0"])
def test_bad_shards_are_usage_errors(bad):
    with pytest.raises(UsageError, match="--shard"):
        row_range(10, shard=bad)


def test_rows_take_slice_bounds():
    assert row_range(100, rows="10:20")[:2] == (10, 20)
    assert row_range(100, rows=":5")[:2] == (0, 5)
    assert row_range(100, rows="-10:")[:2] == (90, 100)
    with pytest.raises(UsageError, match="exclude each other"):
        row_range(100, shard="0/2", rows="0:5")


def commands(data, tmp_path):
    ok(invoke("translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "--method", "linear",
              "--save-map", tmp_path / "map.safetensors", "-o", tmp_path / "unused.h5"))
    ok(invoke("stitch", "fit", data.y_h5, "--max-iter", 20, "-o", tmp_path / "head.safetensors"))
    return {
        "translate": ["translate", "--src", data.x_h5, "--map", tmp_path / "map.safetensors"],
        "project": ["project", data.x_h5, "--anchors", data.xa],
        "stitch-apply": ["stitch", "apply", data.y_h5, "--head", tmp_path / "head.safetensors"],
        "stitch-run": ["stitch", "run", "--src", data.x_h5, "--tgt-anchors", data.ya, "--head",
                       tmp_path / "head.safetensors", "--method", "procrustes"],
    }


def test_shards_together_equal_one_run(data, tmp_path):
    for name, args in commands(data, tmp_path).items():
        ok(invoke(*args, "-o", tmp_path / f"{name}.all.h5"))
        whole = load(tmp_path / f"{name}.all.h5")
        parts = []
        for i in range(3):
            ok(invoke(*args, "--shard", f"{i}/3", "-o", tmp_path / f"{name}.{i}.h5"))
            parts.append(load(tmp_path / f"{name}.{i}.h5"))
        assert [p.attrs["shard"]["rows"] for p in parts] == [[0, 80], [80, 160], [160, 240]]
        assert all(p.attrs["shard"]["count"] == 3 and p.attrs["shard"]["source_rows"] == N for p in parts)
        assert sum((p.ids for p in parts), []) == whole.ids
        np.testing.assert_allclose(np.concatenate([p.matrix for p in parts]), whole.matrix, rtol=0, atol=1e-6)
        ok(invoke(*args, "--rows", "5:17", "-o", tmp_path / f"{name}.rows.h5"))
        assert load(tmp_path / f"{name}.rows.h5").ids == whole.ids[5:17]


def test_a_bad_shard_is_one_line_and_writes_nothing(data, tmp_path):
    result = invoke("project", data.x_h5, "--anchors", data.xa, "--shard", "4/4", "-o", tmp_path / "p.h5")
    assert_clean_error(result, 2, "--shard '4/4'")
    assert not (tmp_path / "p.h5").exists()
