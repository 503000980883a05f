"""``relcli merge``: shard files of a ``--shard I/N`` run back into one file.

Ground truth: the same step run once over all rows. Shards are made by the commands' own
``--shard`` flag (and, for the odd cases, written by hand with a ``relcli.shard`` record).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from relcli import api
from relcli.io.embeddings import open_embeddings, write_embeddings

from .conftest import N, assert_clean_error, invoke, load, ok

SHARDS = 3


@pytest.fixture(scope="module")
def run(data, tmp_path_factory):
    """A saved map, the unsharded translation, and its SHARDS shards in parts/."""
    folder = tmp_path_factory.mktemp("merge")
    parts = folder / "parts"
    parts.mkdir()
    map_file = folder / "map.safetensors"
    api.translate(data.xa, tgt_anchors=data.ya, method="procrustes", save_map=map_file, output=folder / "xa_in_y.h5")
    full = api.translate(data.x_h5, map=map_file, output=folder / "full.h5").output
    shards = [api.translate(data.x_h5, map=map_file, shard=f"{i}/{SHARDS}", output=parts / f"part{i}.h5").output
              for i in range(SHARDS)]
    return folder, map_file, full, shards


def bounds(i: int, n: int = SHARDS) -> tuple[int, int]:
    return i * N // n, (i + 1) * N // n


def assert_same_file(path: Path, reference: Path) -> None:
    got, want = load(path), load(reference)
    assert got.matrix.dtype == want.matrix.dtype
    assert got.matrix.tobytes() == want.matrix.tobytes()
    assert got.ids == want.ids and got.labels == want.labels
    assert got.kind == want.kind


def shard_file(path, matrix, rows, total, *, index=None, count=None, source="src.h5", ids=None, **kwargs) -> Path:
    record = {"rows": list(rows), "source_rows": total, "source": source}
    if index is not None:
        record.update(index=index, count=count)
    attrs = {"kind": "embeddings", "shard": record, **kwargs.pop("attrs", {})}
    return write_embeddings(path, np.asarray(matrix, dtype=np.float32), ids=ids, attrs=attrs, **kwargs)


# -------------------------------------------------------------------------- merging


def test_virtual_merge_equals_the_unsharded_run_and_references_the_shards(run, tmp_path):
    folder, _, full, shards = run
    merged = tmp_path / "merged.h5"
    result = ok(invoke("merge", shards[2], shards[0], shards[1], "-o", merged))  # any order
    assert "merged 3 shard(s)" in result.stderr and "virtual" in result.stderr
    assert_same_file(merged, full)
    with h5py.File(merged, "r") as handle:
        matrix = handle["embeddings"]
        assert matrix.is_virtual
        assert len(matrix.virtual_sources()) == SHARDS
        assert all(not Path(s.file_name).is_absolute() for s in matrix.virtual_sources())
    attrs = load(merged).attrs
    assert "shard" not in attrs
    assert attrs["merged"]["virtual"] is True
    assert [s["rows"] for s in attrs["merged"]["shards"]] == [list(bounds(i)) for i in range(SHARDS)]
    assert attrs["provenance"]["subcommand"] == "merge"
    assert [Path(i["path"]).name for i in attrs["provenance"]["inputs"]] == ["part0.h5", "part1.h5", "part2.h5"]
    assert attrs["provenance"]["parameters"]["step"]["subcommand"] == "translate"
    assert attrs["translation"] == load(full).attrs["translation"]


def test_a_moved_folder_still_reads_in_every_command(run, data, tmp_path, monkeypatch):
    """Sources are stored relative to the merged file: the folder moves as a whole, and they are
    found from any working directory, even one holding other files of the same names."""
    folder, map_file, full, shards = run
    before = tmp_path / "before"
    (before / "parts").mkdir(parents=True)
    for shard in shards:
        shutil.copy(shard, before / "parts" / shard.name)
    ok(invoke("merge", *sorted((before / "parts").glob("part*.h5")), "-o", before / "merged.h5"))
    after = tmp_path / "moved" / "elsewhere"
    after.parent.mkdir()
    shutil.move(before, after)
    decoy = tmp_path / "cwd"
    (decoy / "parts").mkdir(parents=True)
    write_embeddings(decoy / "parts" / "part0.h5", np.ones((N // SHARDS, 16), np.float32))
    monkeypatch.chdir(decoy)
    merged = after / "merged.h5"

    assert_same_file(merged, full)
    assert "embeddings" in ok(invoke("info", merged), data=True).stdout
    report = ok(invoke("evaluate", merged, "--reference", full, "--metrics", "cosine,mse", "--format", "json"), data=True)
    assert '"mse": 0.0' in report.stdout
    ok(invoke("translate", "--src", merged, "--map", map_file, "--reverse", "-o", tmp_path / "back.h5"))
    api.translate(full, map=map_file, reverse=True, output=tmp_path / "back_full.h5")
    assert_same_file(tmp_path / "back.h5", tmp_path / "back_full.h5")
    ok(invoke("project", merged, "--anchors", data.ya, "-o", tmp_path / "rel.h5"))
    assert load(tmp_path / "rel.h5").matrix.shape == (N, 32)


def test_copy_is_self_contained(run, tmp_path):
    folder, _, full, shards = run
    for shard in shards:
        shutil.copy(shard, tmp_path / shard.name)
    merged = tmp_path / "merged.h5"
    ok(invoke("merge", *(tmp_path / s.name for s in shards), "--copy", "-o", merged))
    for shard in shards:
        (tmp_path / shard.name).unlink()
    with h5py.File(merged, "r") as handle:
        assert not handle["embeddings"].is_virtual
    assert_same_file(merged, full)


def test_safetensors_output_and_safetensors_shards_are_copied(run, data, tmp_path):
    folder, map_file, full, shards = run
    merged = tmp_path / "merged.safetensors"
    ok(invoke("merge", *shards, "-o", merged))
    assert_same_file(merged, full)
    parts = [api.translate(data.x_h5, map=map_file, shard=f"{i}/2", output=tmp_path / f"p{i}.safetensors").output
             for i in range(2)]
    result = ok(invoke("merge", *parts, "-o", tmp_path / "from_st.h5"))
    assert "not all HDF5" in result.stderr
    assert_same_file(tmp_path / "from_st.h5", full)


def test_relative_shards_keep_their_anchor_ids_and_invert(data, tmp_path):
    """Per-file arrays (anchor_ids) are kept once; the merged relative file inverts like the whole one."""
    whole = api.project(data.x_h5, anchors=data.xa, output=tmp_path / "rel.h5").output
    parts = [api.project(data.x_h5, anchors=data.xa, shard=f"{i}/2", output=tmp_path / f"rel{i}.h5").output
             for i in range(2)]
    merged = tmp_path / "rel_merged.h5"
    ok(invoke("merge", *parts, "-o", merged))
    assert_same_file(merged, whole)
    with open_embeddings(merged) as reader, open_embeddings(whole) as reference:
        assert reader.strings("anchor_ids").tolist() == reference.strings("anchor_ids").tolist()
        assert reader.attrs["similarities"] == reference.attrs["similarities"]
    ok(invoke("invert", merged, "--anchors", data.ya, "-o", tmp_path / "inv.h5"))
    api.invert(whole, anchors=data.ya, output=tmp_path / "inv_whole.h5")
    assert np.allclose(load(tmp_path / "inv.h5").matrix, load(tmp_path / "inv_whole.h5").matrix, atol=1e-5)


def test_per_row_arrays_are_concatenated_in_row_order(tmp_path):
    rng = np.random.default_rng(0)
    x, confidence = rng.standard_normal((10, 4)), rng.random(10).astype(np.float32)
    ids = [f"r{i}" for i in range(10)]
    cuts = [(0, 4), (4, 10)]
    paths = [shard_file(tmp_path / f"s{i}.h5", x[a:b], (a, b), 10, index=i, count=2, ids=ids[a:b],
                        arrays={"confidence": confidence[a:b]}) for i, (a, b) in enumerate(cuts)]
    for suffix in (".h5", ".safetensors"):
        merged = tmp_path / f"merged{suffix}"
        ok(invoke("merge", *reversed(paths), "-o", merged))
        with open_embeddings(merged) as reader:
            assert reader.array("confidence").numpy().tolist() == confidence.tolist()
            assert reader.ids.tolist() == ids
            assert np.array_equal(reader.read_all().numpy(), x.astype(np.float32))


def test_rows_dropped_by_a_shard_are_accounted_for(data, tmp_path):
    x = data.x.copy()
    x[5] = np.nan
    source = write_embeddings(tmp_path / "x_nan.h5", x, ids=data.ids, allow_nonfinite=True)
    map_file = tmp_path / "map.safetensors"
    api.translate(data.xa, tgt_anchors=data.ya, method="procrustes", save_map=map_file, output=tmp_path / "a.h5")
    parts = [api.translate(source, map=map_file, shard=f"{i}/2", drop_invalid=True, output=tmp_path / f"p{i}.h5").output
             for i in range(2)]
    result = api.merge(parts, output=tmp_path / "merged.h5")
    assert result.rows == N - 1
    merged = load(tmp_path / "merged.h5")
    assert merged.ids == [i for k, i in enumerate(data.ids) if k != 5]
    assert merged.attrs["dropped"] == 1


# -------------------------------------------------------------------------- refusals


def test_a_missing_shard_is_named(run, tmp_path):
    _, _, _, shards = run
    a, b = bounds(1)
    assert_clean_error(invoke("merge", shards[0], shards[2], "-o", tmp_path / "m.h5"), 1, "shard 1/3", f"rows {a}:{b}")
    a, b = bounds(2)
    assert_clean_error(invoke("merge", shards[0], shards[1], "-o", tmp_path / "m.h5"), 1, "shard 2/3", f"rows {a}:{b}")
    assert not (tmp_path / "m.h5").exists()


def test_a_duplicated_shard_is_named(run, tmp_path):
    _, _, _, shards = run
    again = tmp_path / "part1_again.h5"
    shutil.copy(shards[1], again)
    assert_clean_error(invoke("merge", *shards, again, "-o", tmp_path / "m.h5"), 1, "shard 1/3", "part1", path=again)
    assert_clean_error(invoke("merge", *shards, shards[1], "-o", tmp_path / "m.h5"), 2, "given twice")
    assert not (tmp_path / "m.h5").exists()


def test_shards_without_index_are_checked_by_their_rows(tmp_path):
    x = np.arange(40, dtype=np.float32).reshape(10, 4) + 1
    a = shard_file(tmp_path / "a.h5", x[:6], (0, 6), 10)
    b = shard_file(tmp_path / "b.h5", x[4:], (4, 10), 10)
    assert_clean_error(invoke("merge", a, b, "-o", tmp_path / "m.h5"), 1, "overlap", "rows 4:10", path=b)
    c = shard_file(tmp_path / "c.h5", x[7:], (7, 10), 10)
    assert_clean_error(invoke("merge", a, c, "-o", tmp_path / "m.h5"), 1, "missing", "rows 6:7")
    d = shard_file(tmp_path / "d.h5", x[6:], (6, 10), 10)
    ok(invoke("merge", d, a, "-o", tmp_path / "m.h5"))
    assert np.array_equal(load(tmp_path / "m.h5").matrix, x)


@pytest.mark.parametrize("change", ["count", "source", "dims", "kind", "options"])
def test_shards_of_different_runs_are_refused(change, tmp_path):
    x = np.arange(40, dtype=np.float32).reshape(10, 4) + 1
    a = shard_file(tmp_path / "a.h5", x[:5], (0, 5), 10, index=0, count=2, attrs={"encoder": "e"})
    kwargs = {"index": 1, "count": 2, "source": "src.h5", "attrs": {"encoder": "e"}}
    matrix = x[5:]
    if change == "count":
        kwargs["count"] = 3
    elif change == "source":
        kwargs["source"] = "other.h5"
    elif change == "dims":
        matrix = np.ones((5, 3), np.float32)
    elif change == "kind":
        kwargs["attrs"] = {"encoder": "e", "kind": "predictions"}
    else:
        kwargs["attrs"] = {"encoder": "f"}
    b = shard_file(tmp_path / "b.h5", matrix, (5, 10), 10, **kwargs)
    fragment = {"count": "count", "source": "source", "dims": "dims", "kind": "kind", "options": "relcli.encoder"}[change]
    assert_clean_error(invoke("merge", a, b, "-o", tmp_path / "m.h5"), 1, fragment, path=b)


def test_files_that_are_not_complete_shards_are_refused(run, tmp_path):
    _, _, full, shards = run
    assert_clean_error(invoke("merge", full, *shards, "-o", tmp_path / "m.h5"), 1, "not a shard", path=full)
    short = shard_file(tmp_path / "short.h5", np.ones((4, 4)), (0, 5), 10, index=0, count=2)
    assert_clean_error(invoke("merge", short, "-o", tmp_path / "m.h5"), 1, "holds 4 rows", "0:5", path=short)
    broken = tmp_path / "broken.h5"
    broken.write_bytes(shards[0].read_bytes()[:2000])
    assert_clean_error(invoke("merge", broken, "-o", tmp_path / "m.h5"), 1, path=broken)


def test_the_output_cannot_be_a_shard(run, tmp_path):
    _, _, _, shards = run
    copies = [Path(shutil.copy(s, tmp_path / s.name)) for s in shards]
    assert_clean_error(invoke("merge", *copies, "-o", copies[0]), 2, "one of the shards")


def test_a_lost_shard_fails_loudly(run, tmp_path):
    folder, map_file, _, shards = run
    copies = [Path(shutil.copy(s, tmp_path / s.name)) for s in shards]
    merged = tmp_path / "merged.h5"
    ok(invoke("merge", *copies, "-o", merged))
    copies[1].unlink()
    line = assert_clean_error(invoke("translate", "--src", merged, "--map", map_file, "-o", tmp_path / "y.h5"), 1,
                              "NaN", path=merged)
    assert "item-" in line


@pytest.mark.parametrize("suffix", [".h5", ".safetensors"])
def test_more_shards_than_rows_merge_with_the_empty_shards_adding_nothing(data, tmp_path, suffix):
    """3 rows in 5 shards: shards 0, 2 and 4 hold no rows and so no ids; the merge takes the rows of
    the others (it refused: 'ids/labels present in one of this shard ... but not the other')."""
    three = write_embeddings(tmp_path / "x3.h5", data.x[:3], ids=[10, 11, 12])
    the_map = tmp_path / "map.safetensors"
    ok(invoke("translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "--method", "procrustes", "--save-map", the_map,
              "-o", tmp_path / "full.h5"))
    parts = [tmp_path / f"s{i}{suffix}" for i in range(5)]
    for i, part in enumerate(parts):
        ok(invoke("translate", "--src", three, "--map", the_map, "--shard", f"{i}/5", "-o", part))
    assert [load(p).matrix.shape[0] for p in parts] == [0, 1, 0, 1, 1]
    for copy in ([], ["--copy"]):
        merged = tmp_path / f"merged{len(copy)}.h5"
        ok(invoke("merge", *parts, "-o", merged, *copy))
        whole = load(merged)
        assert whole.ids == [10, 11, 12] and whole.matrix.shape == (3, data.x.shape[1])
