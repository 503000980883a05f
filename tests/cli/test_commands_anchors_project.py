"""``relcli anchors`` and ``relcli project`` through typer's CliRunner: outputs, metadata, exit codes,
stdout vs stderr.

Ground truth comes from NumPy in float64 on the same small files (see conftest.py): X, and
Y = 2.5 X Q + noise with the same ids. Commands that are not asked for data print nothing on
stdout; their one "wrote ..." line goes to stderr (DESIGN §6).
"""

from __future__ import annotations

import numpy as np
import pytest

from relcli.io.embeddings import write_embeddings

from ._commands_helpers import check_provenance
from .conftest import D, K, N, invoke, load, ok, unit_rows


def rows_of(data, ids) -> list[int]:
    position = {key: row for row, key in enumerate(data.ids)}
    return [position[i] for i in ids]


def layer_norm(block: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    mean = block.mean(axis=1, keepdims=True)
    var = block.var(axis=1, keepdims=True)
    return (block - mean) / np.sqrt(var + eps)


def similarity(name: str, x: np.ndarray, a: np.ndarray) -> np.ndarray:
    """The per-anchor similarity blocks of DESIGN §5, in float64."""
    x, a = np.asarray(x, np.float64), np.asarray(a, np.float64)
    diff = x[:, None, :] - a[None, :, :]
    cos = unit_rows(x) @ unit_rows(a).T
    return {
        "cosine": cos,
        "angular": np.arccos(np.clip(cos, -1, 1)) / np.pi,
        "euclidean": np.linalg.norm(diff, axis=2),
        "l1": np.abs(diff).sum(axis=2),
        "linf": np.abs(diff).max(axis=2),
    }[name]


# ---------------------------------------------------------------------------------------------
# anchors
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["fps", "kmeans"])
def test_fps_and_kmeans_choose_among_a_seeded_candidate_sample(data, tmp_path, strategy):
    out = tmp_path / "a.h5"
    ok(invoke("anchors", data.x_h5, "-n", 10, "--strategy", strategy, "--candidates", 50, "--seed", 4, "-o", out))
    a = load(out)
    assert a.attrs["anchor_method"]["candidates"] == 50 and len(set(a.ids)) == 10
    ok(invoke("anchors", data.x_h5, "-n", 10, "--strategy", strategy, "--candidates", 50, "--seed", 4, "-o", tmp_path / "b.h5"))
    assert load(tmp_path / "b.h5").ids == a.ids  # the sample is seeded
    ok(invoke("anchors", data.x_h5, "-n", 10, "--strategy", strategy, "--candidates", 50, "--seed", 5, "-o", tmp_path / "c.h5"))
    assert load(tmp_path / "c.h5").ids != a.ids


@pytest.mark.parametrize("strategy", ["random", "per-class", "fps", "kmeans"])
def test_anchors_each_strategy(data, tmp_path, strategy):
    out = tmp_path / "a.h5"
    result = ok(invoke("anchors", data.x_h5, "-n", 20, "--strategy", strategy, "--seed", 3, "-o", out))
    assert f"wrote 20 anchors of {N:,} x {D}" in result.stderr
    a = load(out)
    assert (a.kind, a.format, a.matrix.shape, a.dtype) == ("anchors", "hdf5", (20, D), "float32")
    assert len(set(a.ids)) == 20 and set(a.ids) <= set(data.ids)
    rows = rows_of(data, a.ids)
    np.testing.assert_array_equal(a.matrix, data.x[rows])
    assert a.labels == data.labels[rows].tolist()
    # statistics of the whole space, not of the anchors (DESIGN §3)
    x64 = data.x.astype(np.float64)
    norms = np.linalg.norm(x64, axis=1)
    np.testing.assert_allclose(a.arrays["space_mean"], x64.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(a.arrays["space_std"], x64.std(axis=0), rtol=1e-5)
    stats = a.attrs["source_stats"]
    assert stats["n_rows"] == N
    assert stats["mean_norm"] == pytest.approx(norms.mean(), rel=1e-5)
    assert stats["std_norm"] == pytest.approx(norms.std(), rel=1e-4)
    pool = {"candidates": N} if strategy in ("fps", "kmeans") else {}  # every row is a candidate here
    assert a.attrs["anchor_method"] == {"n_anchors": 20, "strategy": strategy, "seed": 3, **pool}
    params = check_provenance(a.attrs, "anchors", [data.x_h5])
    assert params["strategy"] == strategy and params["seed"] == 3

    # deterministic: same seed, same anchors (written as safetensors this time)
    again = tmp_path / "b.safetensors"
    ok(invoke("anchors", data.x_h5, "-n", 20, "--strategy", strategy, "--seed", 3, "-o", again))
    b = load(again)
    assert b.format == "safetensors" and b.ids == a.ids
    np.testing.assert_array_equal(b.matrix, a.matrix)
    np.testing.assert_array_equal(b.arrays["space_mean"], a.arrays["space_mean"])

    if strategy == "per-class":
        counts = np.bincount(np.asarray(a.labels), minlength=4)
        assert counts.tolist() == [5, 5, 5, 5]
    if strategy == "random":
        other = tmp_path / "c.h5"
        ok(invoke("anchors", data.x_h5, "-n", 20, "--strategy", strategy, "--seed", 4, "-o", other))
        assert set(load(other).ids) != set(a.ids)
    if strategy == "fps":
        # every pick is (one of) the farthest rows from the picks before it, in 1 - cos
        unit = unit_rows(data.x)
        chosen = rows_of(data, a.ids)
        nearest = 1 - unit @ unit[chosen[0]]
        for t in range(1, 20):
            candidates = np.delete(nearest, chosen[:t])
            assert nearest[chosen[t]] >= candidates.max() - 1e-5, t
            nearest = np.minimum(nearest, 1 - unit @ unit[chosen[t]])


@pytest.mark.parametrize("strategy", ["fps", "kmeans"])
def test_fps_and_kmeans_cover_every_cluster(tmp_path, strategy):
    """Four tight clusters on orthogonal directions: one anchor per cluster (random rarely does)."""
    rng = np.random.default_rng(5)
    centres = 10 * np.eye(D)[:4]
    x = np.concatenate([c + 0.1 * rng.standard_normal((50, D)) for c in centres]).astype(np.float32)
    cluster = np.repeat(np.arange(4), 50)
    write_embeddings(tmp_path / "c.h5", x, ids=[f"p{i}" for i in range(200)])
    ok(invoke("anchors", tmp_path / "c.h5", "-n", 4, "--strategy", strategy, "-o", tmp_path / "a.h5"))
    picked = [int(i[1:]) for i in load(tmp_path / "a.h5").ids]
    assert sorted(cluster[picked].tolist()) == [0, 1, 2, 3]


def test_anchors_like_takes_the_reference_order(data, tmp_path):
    # the target file lists its rows in another order: --like still follows the anchors file
    perm = np.random.default_rng(2).permutation(N)
    shuffled = write_embeddings(tmp_path / "y_perm.h5", data.y[perm], ids=[data.ids[p] for p in perm])
    out = tmp_path / "ya.safetensors"
    result = ok(invoke("anchors", shuffled, "--like", data.xa, "-o", out))
    assert f"wrote {K} anchors" in result.stderr
    a = load(out)
    assert a.kind == "anchors" and a.ids == data.xa_ids
    np.testing.assert_array_equal(a.matrix, data.y[rows_of(data, data.xa_ids)])
    # the statistics are those of Y, the space the anchors come from
    np.testing.assert_allclose(a.arrays["space_mean"], data.y.astype(np.float64).mean(axis=0), atol=1e-5)
    assert a.attrs["anchor_method"] == {"like": str(data.xa), "pairs": None}
    assert "source_ids" not in a.reader_strings
    check_provenance(a.attrs, "anchors", [shuffled, data.xa])
    # the fixture's ya (made the same way from y.safetensors) holds the same rows
    np.testing.assert_array_equal(load(data.ya).matrix, a.matrix)


def test_anchors_pairs_map_ids_across_vocabularies(data, tmp_path):
    en = write_embeddings(tmp_path / "en.h5", data.x, ids=[f"en-{i}" for i in range(N)])
    fr = write_embeddings(tmp_path / "fr.safetensors", data.y, ids=[f"fr-{i}" for i in range(N)])
    ok(invoke("anchors", en, "-n", 24, "--strategy", "random", "--seed", 1, "-o", tmp_path / "en_a.h5"))
    en_ids = load(tmp_path / "en_a.h5").ids
    numbers = [int(i.split("-")[1]) for i in en_ids]
    spare = next(j for j in range(N) if j not in numbers)
    first = numbers[0]
    lines = ["# source\ttarget", f"en-{first}\tfr-{spare}", ""]  # a second translation of en-first
    lines += [f"en-{i}\tfr-{i}" for i in range(N)]  # and en-spare -> fr-spare: fr-spare has two sources
    (tmp_path / "en_fr.tsv").write_text("\n".join(lines) + "\n")

    out = tmp_path / "fr_a.h5"
    ok(invoke("anchors", fr, "--like", tmp_path / "en_a.h5", "--pairs", tmp_path / "en_fr.tsv", "-o", out))
    a = load(out)
    expected = [spare, first] + numbers[1:]  # many-to-many: every pair whose two ids exist, in dictionary order
    assert a.ids == [f"fr-{j}" for j in expected]
    assert a.reader_strings["source_ids"] == [en_ids[0]] + en_ids  # both ids recorded, row by row
    np.testing.assert_array_equal(a.matrix, data.y[expected])
    assert a.attrs["anchor_method"]["pairs"] == str(tmp_path / "en_fr.tsv")

    # the source ids link the French anchors back to rows of the English file
    ok(invoke("translate", "--src", en, "--tgt-anchors", out, "--method", "linear", "-o", tmp_path / "t.h5"))
    t = load(tmp_path / "t.h5")
    assert t.ids == [f"en-{i}" for i in range(N)] and t.matrix.shape == (N, D)


@pytest.mark.parametrize(("strategy", "separator"), [("random", "\t"), ("fps", "\t"), ("fps", " ")],
                         ids=["random", "fps", "fps-space-separated"])
def test_anchors_drawn_only_among_ids_with_a_pair(data, tmp_path, strategy, separator):
    """`anchors SRC -n K --pairs P --target TGT`: only rows whose id has a pair with an id of TGT are
    candidates (a dictionary covers part of a vocabulary, and names words TGT lacks). Space-separated
    is how the MUSE dictionaries are written."""
    en = write_embeddings(tmp_path / "en.h5", data.x, ids=[f"en-{i}" for i in range(N)])
    fr = write_embeddings(tmp_path / "fr.h5", data.y[: N // 2], ids=[f"fr-{i}" for i in range(N // 2)])
    lines = [f"en-{i}{separator}fr-{i // 2}" for i in range(0, N, 3)]  # many-to-one; fr-k exists only for k < N/2
    lines += [f"en-{i}{separator}fr-{i}" for i in range(1, N, 3)]  # one-to-one where fr-i exists (i < N/2)
    (tmp_path / "pairs.tsv").write_text("\n".join(lines) + "\n")
    eligible = {f"en-{i}" for i in range(0, N, 3)} | {f"en-{i}" for i in range(1, N // 2, 3)}
    out = tmp_path / "en_a.h5"
    ok(invoke("anchors", en, "-n", 30, "--strategy", strategy, "--pairs", tmp_path / "pairs.tsv", "--target", fr,
              "--seed", 2, "-o", out))
    chosen = load(out).ids
    assert len(chosen) == 30 and set(chosen) <= eligible


def test_anchors_from_npy_without_ids(data, tmp_path):
    out = tmp_path / "a.safetensors"
    ok(invoke("anchors", data.x_npy, "-n", 12, "--strategy", "random", "-o", out))
    a = load(out)
    assert all(isinstance(i, int) for i in a.ids)  # row numbers stand in for ids
    np.testing.assert_array_equal(a.matrix, data.x[a.ids])


# ---------------------------------------------------------------------------------------------
# project
# ---------------------------------------------------------------------------------------------
def test_project_cosine(data, tmp_path):
    out = tmp_path / "x_rel.h5"
    result = ok(invoke("project", data.x_h5, "--anchors", data.xa, "-o", out))
    assert f"wrote {N:,} x {K} relative rows" in result.stderr
    r = load(out)
    anchors = load(data.xa).matrix
    assert (r.kind, r.matrix.shape) == ("relative", (N, K))
    np.testing.assert_allclose(r.matrix, unit_rows(data.x) @ unit_rows(anchors).T, atol=2e-6)
    assert r.ids == data.ids and r.labels == data.labels.tolist()
    assert r.reader_strings["anchor_ids"] == data.xa_ids
    assert (r.attrs["similarities"], r.attrs["aggregate"], r.attrs["center"]) == (["cosine"], "concat", False)
    params = check_provenance(r.attrs, "project", [data.x_h5, data.xa])
    assert params["similarities"] == ["cosine"] and params["center"] is False


@pytest.mark.parametrize(
    "options,names,aggregate",
    [
        (["-s", "cosine", "-s", "euclidean"], ["cosine", "euclidean"], "concat"),
        (["-s", "cosine,l1,linf"], ["cosine", "l1", "linf"], "concat"),
        (["-s", "cosine,euclidean", "--aggregate", "sum"], ["cosine", "euclidean"], "sum"),
        (["-s", "angular", "-s", "l1", "--aggregate", "sum"], ["angular", "l1"], "sum"),
    ],
)
def test_project_product_of_invariances(data, tmp_path, options, names, aggregate):
    out = tmp_path / "rel.safetensors"
    ok(invoke("project", data.x_st, "--anchors", data.xa, *options, "-o", out))
    r = load(out)
    anchors = load(data.xa).matrix
    blocks = [layer_norm(similarity(name, data.x, anchors)) for name in names]
    expected = np.concatenate(blocks, axis=1) if aggregate == "concat" else sum(blocks)
    assert r.matrix.shape == expected.shape == (N, K * len(names) if aggregate == "concat" else K)
    # rows that are anchors have cos = 1 where arccos is ill-conditioned in float32: looser there
    is_anchor = np.isin(data.ids, data.xa_ids)
    np.testing.assert_allclose(r.matrix[~is_anchor], expected[~is_anchor], atol=2e-4)
    np.testing.assert_allclose(r.matrix[is_anchor], expected[is_anchor], atol=2e-3)
    assert (r.attrs["similarities"], r.attrs["aggregate"]) == (names, aggregate)
    assert r.reader_strings["anchor_ids"] == data.xa_ids


def test_project_center(data, tmp_path):
    out = tmp_path / "rel.h5"
    ok(invoke("project", data.x_h5, "--anchors", data.xa, "--center", "-o", out))
    r = load(out)
    anchors = load(data.xa).matrix.astype(np.float64)
    mean = anchors.mean(axis=0)
    np.testing.assert_allclose(r.matrix, unit_rows(data.x - mean) @ unit_rows(anchors - mean).T, atol=2e-6)
    assert r.attrs["center"] is True
    assert check_provenance(r.attrs, "project", [data.x_h5, data.xa])["center"] is True
    # centring changes the numbers (the anchors' mean is not zero)
    plain = unit_rows(data.x) @ unit_rows(anchors).T
    assert np.abs(r.matrix - plain).max() > 1e-2


def test_project_npy_input_quiet_and_dtype(data, tmp_path):
    out = tmp_path / "rel.safetensors"
    result = ok(invoke("project", data.x_npy, "--anchors", data.xa, "--dtype", "float64", "-q", "-o", out))
    assert result.stderr == ""
    r = load(out)
    assert (r.format, r.dtype, r.ids, r.labels) == ("safetensors", "float64", None, None)
    np.testing.assert_allclose(r.matrix, unit_rows(data.x) @ unit_rows(load(data.xa).matrix).T, atol=1e-6)


@pytest.mark.parametrize("strategy", ["fps", "random", "kmeans"])
def test_anchors_ids_restrict_the_choice_not_the_statistics(data, tmp_path, strategy):
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    ok(invoke("split", data.x_h5, "--test-size", 0.5, "--seed", 3, "--train-out", train, "--test-out", test, "-q"))
    allowed, held = set(train.read_text().split()), set(test.read_text().split())
    inside, outside, whole = tmp_path / "in.h5", tmp_path / "out.h5", tmp_path / "all.h5"
    ok(invoke("anchors", data.x_h5, "-n", 20, "--strategy", strategy, "--ids", train, "-q", "-o", inside))
    ok(invoke("anchors", data.x_h5, "-n", 20, "--strategy", strategy, "--exclude-ids", test, "-q", "-o", outside))
    ok(invoke("anchors", data.x_h5, "-n", 20, "--strategy", strategy, "-q", "-o", whole))
    chosen = [str(i) for i in load(inside).ids]
    assert len(chosen) == 20 and set(chosen) <= allowed and not set(chosen) & held
    assert load(outside).ids == load(inside).ids  # --exclude-ids of the complement is the same choice
    assert load(inside).attrs["source_stats"] == load(whole).attrs["source_stats"]  # statistics of every row
    assert load(inside).attrs["anchor_method"]["ids"] == str(train)


def test_anchors_ids_usage(data, tmp_path):
    from .conftest import assert_clean_error

    listed = tmp_path / "few.txt"
    listed.write_text("\n".join(str(i) for i in data.ids[:5]) + "\n")
    out = tmp_path / "a.h5"
    assert_clean_error(invoke("anchors", data.x_h5, "-n", 10, "--ids", listed, "-o", out), 1, "-n 10", "5", path=data.x_h5)
    assert_clean_error(invoke("anchors", data.y_h5, "--like", data.xa, "--ids", listed, "-o", out), 2, "--like")
    assert not out.exists()


def test_invert_cross_validates_its_cut_off_when_the_anchor_items_are_among_the_rows(data, tmp_path):
    """`--rcond auto` needs the anchor items' own relative rows, looked up by id among the file's rows."""
    whole, part = tmp_path / "rel.h5", tmp_path / "part.h5"
    ok(invoke("project", data.x_h5, "--anchors", data.xa, "-o", whole))
    ok(invoke("project", data.x_h5, "--anchors", data.xa, "--rows", "0:20", "-o", part))
    ok(invoke("invert", whole, "--anchors", data.ya, "-o", tmp_path / "y.h5"))
    chosen = load(tmp_path / "y.h5").attrs["irp"]
    assert chosen["rcond_scores"] and f"{chosen['rcond_chosen']:g}" in chosen["rcond_scores"]
    result = ok(invoke("invert", part, "--anchors", data.ya, "-o", tmp_path / "y20.h5"))
    assert "the anchor items are not among its rows" in result.stderr
    assert load(tmp_path / "y20.h5").attrs["irp"]["rcond_scores"] == {}
