"""Every subcommand through typer's CliRunner: outputs, metadata, exit codes, stdout vs stderr.

Ground truth comes from NumPy in float64 on the same small files (see conftest.py): X, and
Y = 2.5 X Q + noise with the same ids. Commands that are not asked for data print nothing on
stdout; their one "wrote ..." line goes to stderr (DESIGN §6).
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch

from relcli.core.evaluation import EMBEDDING_METRICS
from relcli.io.embeddings import write_embeddings
from relcli.io.kinds import load_estimator

from .conftest import D, D_Z, K, N, assert_clean_error, invoke, load, ok, row_cosines, unit_rows

METHODS = ["irp", "procrustes", "linear", "affine", "ortho-linear"]


def evaluate_json(*args) -> dict:
    result = ok(invoke("evaluate", *args, "--format", "json"), data=True)
    assert result.stderr == ""
    return json.loads(result.stdout)


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


def check_provenance(attrs: dict, subcommand: str, inputs: list) -> dict:
    prov = attrs["provenance"]
    assert prov["subcommand"] == subcommand
    assert [i["path"] for i in prov["inputs"]] == [str(p) for p in inputs]
    for entry, path in zip(prov["inputs"], inputs):
        assert entry["size"] == path.stat().st_size
        assert len(entry["sha256_first_mib"]) == 64
    assert prov["created_utc"].endswith("Z") and prov["relcli_version"]
    return prov["parameters"]


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


# ---------------------------------------------------------------------------------------------
# invert
# ---------------------------------------------------------------------------------------------
def test_invert_recovers_the_target(data, tmp_path):
    ok(invoke("project", data.x_h5, "--anchors", data.xa, "-o", tmp_path / "rel.h5"))
    out = tmp_path / "y_hat.safetensors"
    result = ok(invoke("invert", tmp_path / "rel.h5", "--anchors", data.ya, "-o", out))
    assert f"wrote {N:,} x {D} rows" in result.stderr
    y_hat = load(out)
    assert (y_hat.kind, y_hat.matrix.shape, y_hat.ids) == ("embeddings", (N, D), data.ids)
    assert y_hat.labels == data.labels.tolist()
    assert row_cosines(y_hat.matrix, data.y).min() > 0.999
    # every row gets the target space's mean norm (from ya's whole-space statistics)
    mean_norm = np.linalg.norm(data.y.astype(np.float64), axis=1).mean()
    np.testing.assert_allclose(np.linalg.norm(y_hat.matrix, axis=1), mean_norm, rtol=1e-4)
    irp = y_hat.attrs["irp"]
    sigma = np.linalg.svd(unit_rows(load(data.ya).matrix), compute_uv=False)
    assert irp["ranks"] == [D]
    assert irp["condition_numbers"][0] == pytest.approx(sigma[0] / sigma[-1], rel=1e-3)
    assert irp["target_norm"] == pytest.approx(mean_norm, rel=1e-5)
    check_provenance(y_hat.attrs, "invert", [tmp_path / "rel.h5", data.ya])


def test_invert_rcond_is_relative_to_the_largest_singular_value(data, tmp_path):
    """--rcond 0.5 keeps σ > 0.5·σ_max (DESIGN §5 'cut-off on small singular values')."""
    ok(invoke("project", data.x_h5, "--anchors", data.xa, "-o", tmp_path / "rel.h5"))
    out = tmp_path / "y_hat.h5"
    ok(invoke("invert", tmp_path / "rel.h5", "--anchors", data.ya, "--rcond", "0.5", "--allow-rank-deficient", "-o", out))
    sigma = np.linalg.svd(unit_rows(load(data.ya).matrix), compute_uv=False)
    expected = int((sigma > 0.5 * sigma[0]).sum())
    assert 0 < expected < int((sigma > 0.5).sum())  # the data tell relative from absolute
    assert load(out).attrs["irp"]["ranks"] == [expected]


@pytest.mark.parametrize("options", [[], ["--prune-threshold", "0.6", "--subspaces", "3"], ["--center"]],
                         ids=["plain", "pruned-subspaces", "center"])
def test_invert_equals_translate_irp(data, tmp_path, options):
    project_options = ["--center"] if "--center" in options else []
    irp_options = [o for o in options if o != "--center"]
    ok(invoke("project", data.x_h5, "--anchors", data.xa, *project_options, "-o", tmp_path / "rel.h5"))
    ok(invoke("invert", tmp_path / "rel.h5", "--anchors", data.ya, *irp_options, "-o", tmp_path / "inv.h5"))
    ok(invoke("translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "--method", "irp", *options,
              "-o", tmp_path / "tr.h5"))
    inv, tr = load(tmp_path / "inv.h5"), load(tmp_path / "tr.h5")
    assert inv.ids == tr.ids == data.ids
    scale = np.abs(inv.matrix).max()
    assert np.abs(inv.matrix - tr.matrix).max() <= 1e-4 * scale
    if irp_options:
        ranks = inv.attrs["irp"]["ranks"]
        assert len(ranks) == 3


# ---------------------------------------------------------------------------------------------
# translate
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", METHODS)
def test_translate_every_method(data, tmp_path, method):
    out = tmp_path / f"y_hat_{method}.h5"
    result = ok(invoke("translate", "--src", data.x_st, "--src-anchors", data.xa, "--tgt-anchors", data.ya,
                       "--method", method, "-o", out))
    assert f"wrote {N:,} x {D} rows" in result.stderr and method in result.stderr
    t = load(out)
    assert (t.kind, t.matrix.shape, t.ids, t.labels) == ("embeddings", (N, D), data.ids, data.labels.tolist())
    assert row_cosines(t.matrix, data.y).mean() > 0.99
    assert t.attrs["translation"]["method"] == method and t.attrs["translation"]["anchors"] == K
    params = check_provenance(t.attrs, "translate", [data.x_st, data.ya, data.xa])
    assert params["method"] == method
    if method != "irp":
        # direct methods keep the target's scale: mse small against Var(Y) (= 2.5² per element)
        assert np.mean((t.matrix - data.y) ** 2) < 0.03 * data.y.var()


def test_translate_is_deterministic(data, tmp_path):
    """DESIGN §6: the same inputs and --seed give bit-identical outputs on the same device."""
    options = ["--prune-threshold", "0.5", "--subspaces", "2", "--seed", "3"]
    for name in ("a.safetensors", "b.safetensors"):
        ok(invoke("translate", "--src", data.x_h5, "--tgt-anchors", data.ya, *options, "-o", tmp_path / name))
    np.testing.assert_array_equal(load(tmp_path / "a.safetensors").matrix, load(tmp_path / "b.safetensors").matrix)


@pytest.mark.parametrize("method", METHODS)
def test_save_map_then_map_gives_identical_output(data, tmp_path, method):
    fitted, applied, saved = tmp_path / "a.h5", tmp_path / "b.h5", tmp_path / "map.safetensors"
    result = ok(invoke("translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "--method", method,
                       "--save-map", saved, "-o", fitted))
    assert "saved the fitted map" in result.stderr
    ok(invoke("translate", "--src", data.x_h5, "--map", saved, "-o", applied))
    a, b = load(fitted), load(applied)
    np.testing.assert_array_equal(a.matrix, b.matrix)
    assert a.ids == b.ids
    assert b.attrs["translation"]["method"] == method
    check_provenance(b.attrs, "translate", [data.x_h5, saved])
    _, meta = load_estimator(saved, "translator")
    assert meta["kind"] == "translator" and meta["translation"]["method"] == method


def test_translate_with_a_full_target_file(data, tmp_path):
    """`--tgt-anchors y.h5`: all rows of y are the anchors; x's rows with the same ids are the sources.
    IRP gives every row the target anchors' mean norm."""
    out = tmp_path / "y_hat.h5"
    ok(invoke("translate", "--src", data.x_h5, "--tgt-anchors", data.y_h5, "--method", "irp", "-o", out))
    t = load(out)
    assert t.attrs["translation"]["anchors"] == N
    assert row_cosines(t.matrix, data.y).min() > 0.999
    mean_norm = np.linalg.norm(data.y.astype(np.float64), axis=1).mean()
    np.testing.assert_allclose(np.linalg.norm(t.matrix, axis=1), mean_norm, rtol=1e-4)


def test_affine_fits_an_offset(tmp_path):
    """Y = X Q + t with --scaling none: only affine can model t; its bias must have the right sign."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((200, 8)).astype(np.float32)
    q = np.linalg.qr(rng.standard_normal((8, 8)))[0]
    offset = 3.0 * rng.standard_normal(8)
    y = (x @ q + offset).astype(np.float32)
    ids = [f"r{i}" for i in range(200)]
    write_embeddings(tmp_path / "x.h5", x, ids=ids)
    write_embeddings(tmp_path / "y.h5", y, ids=ids)
    errors = {}
    for method in ("affine", "linear"):
        out = tmp_path / f"{method}.h5"
        ok(invoke("translate", "--src", tmp_path / "x.h5", "--tgt-anchors", tmp_path / "y.h5",
                  "--method", method, "--scaling", "none", "-o", out))
        errors[method] = float(np.mean((load(out).matrix - y) ** 2))
    assert errors["affine"] < 1e-8
    assert errors["linear"] > 0.1


def test_translate_across_dimensions(data, tmp_path):
    """16-d X into the 24-d space Z = X W: procrustes zero-pads, output has Z's width."""
    ok(invoke("anchors", data.z_h5, "--like", data.xa, "-o", tmp_path / "za.h5"))
    out = tmp_path / "z_hat.h5"
    ok(invoke("translate", "--src", data.x_h5, "--tgt-anchors", tmp_path / "za.h5", "--method", "procrustes",
              "-o", out))
    z_hat = load(out).matrix
    assert z_hat.shape == (N, D_Z)
    assert row_cosines(z_hat, data.z).mean() > 0.97


# ---------------------------------------------------------------------------------------------
# stitch
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def head(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("head") / "head.safetensors"
    result = ok(invoke("stitch", "fit", data.y_st, "--head", "logistic", "-o", path))
    assert "fitted a logistic head" in result.stderr
    return path


def test_stitch_fit_writes_a_head(data, head):
    model, meta = load_estimator(head, "head")
    assert meta["kind"] == "head" and meta["estimator"] == "LogisticHead"
    assert meta["relative"] is None and meta["class_names"] is None
    assert meta["train_accuracy"] > 0.95
    assert model.classes_.tolist() == [0, 1, 2, 3]
    check_provenance(meta, "stitch fit", [data.y_st])


def test_stitch_fit_mlp(data, tmp_path):
    out = tmp_path / "mlp.safetensors"
    ok(invoke("stitch", "fit", data.y_h5, "--head", "mlp", "--hidden", 32, "--epochs", 100, "-o", out))
    model, meta = load_estimator(out, "head")
    assert meta["estimator"] == "MLPHead" and meta["train_accuracy"] > 0.9


def test_stitch_apply_writes_predictions(data, head, tmp_path):
    out = tmp_path / "preds.h5"
    result = ok(invoke("stitch", "apply", data.y_h5, "--head", head, "-o", out))
    assert f"wrote {N:,} predictions" in result.stderr
    p = load(out)
    assert (p.kind, p.matrix.shape, p.ids) == ("predictions", (N, 4), data.ids)
    model, _ = load_estimator(head, "head")
    expected = model.predict_scores(torch.from_numpy(data.y)).numpy()
    np.testing.assert_allclose(p.matrix, expected, atol=1e-5)
    assert p.labels == expected.argmax(axis=1).tolist()
    assert p.attrs["classes"] == [0, 1, 2, 3]
    assert np.mean(np.asarray(p.labels) == data.labels) > 0.95
    check_provenance(p.attrs, "stitch apply", [data.y_h5, head])

    report = evaluate_json(out, "--reference", data.y_h5)
    assert list(report["metrics"]) == ["accuracy", "macro_f1"]
    assert report["metrics"]["accuracy"] == pytest.approx(np.mean(np.asarray(p.labels) == data.labels))


def test_stitch_run_equals_translate_then_apply(data, head, tmp_path):
    ok(invoke("translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "-o", tmp_path / "y_hat.h5"))
    ok(invoke("stitch", "apply", tmp_path / "y_hat.h5", "--head", head, "-o", tmp_path / "two_steps.h5"))
    out = tmp_path / "one_step.safetensors"
    result = ok(invoke("stitch", "run", "--src", data.x_h5, "--tgt-anchors", data.ya, "--head", head, "-o", out))
    assert "irp" in result.stderr
    one, two = load(out), load(tmp_path / "two_steps.h5")
    assert one.kind == "predictions" and one.ids == two.ids == data.ids
    assert one.labels == two.labels
    np.testing.assert_allclose(one.matrix, two.matrix, atol=1e-5)
    assert one.attrs["translation"]["method"] == "irp"
    check_provenance(one.attrs, "stitch run", [data.x_h5, data.ya, head])
    assert evaluate_json(out, "--reference", data.y_h5)["metrics"]["accuracy"] > 0.95


def test_stitch_relative_mode(data, tmp_path):
    rel_head = tmp_path / "rel_head.safetensors"
    ok(invoke("stitch", "fit", data.y_st, "--anchors", data.ya, "-o", rel_head))
    _, meta = load_estimator(rel_head, "head")
    assert meta["relative"] == {"anchor_keys": data.xa_ids, "similarities": ["cosine"], "aggregate": "concat",
                                "center": False}
    assert meta["train_accuracy"] > 0.9
    # zero-shot: X's relative representations w.r.t. its own parallel anchors
    out = tmp_path / "preds.h5"
    ok(invoke("stitch", "apply", data.x_h5, "--head", rel_head, "--anchors", data.xa, "-o", out))
    p = load(out)
    assert p.matrix.shape == (N, 4) and p.ids == data.ids
    assert np.mean(np.asarray(p.labels) == data.labels) > 0.9
    # and the head needs those anchors
    missing = invoke("stitch", "apply", data.x_h5, "--head", rel_head, "-o", tmp_path / "p2.h5")
    assert_clean_error(missing, 2, "--anchors", path=rel_head)
    run = invoke("stitch", "run", "--src", data.x_h5, "--tgt-anchors", data.ya, "--head", rel_head,
                 "-o", tmp_path / "p3.h5")
    assert_clean_error(run, 2, "stitch apply --anchors", path=rel_head)
    assert not (tmp_path / "p2.h5").exists() and not (tmp_path / "p3.h5").exists()


def test_stitch_string_labels(data, tmp_path):
    names = [f"class-{c}" for c in data.labels]
    labelled = write_embeddings(tmp_path / "y.h5", data.y, ids=data.ids, labels=names)
    ok(invoke("stitch", "fit", labelled, "-o", tmp_path / "head.safetensors"))
    ok(invoke("stitch", "apply", labelled, "--head", tmp_path / "head.safetensors", "-o", tmp_path / "p.h5"))
    p = load(tmp_path / "p.h5")
    assert p.attrs["classes"] == ["class-0", "class-1", "class-2", "class-3"]
    assert set(p.labels) <= set(p.attrs["classes"])
    assert np.mean(np.asarray(p.labels) == np.asarray(names)) > 0.95
    assert evaluate_json(tmp_path / "p.h5", "--reference", labelled)["metrics"]["accuracy"] > 0.95


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated, still supported
def test_stitch_apply_torchscript_head(data, tmp_path):
    torch.manual_seed(0)
    linear = torch.nn.Linear(D, 3)
    scripted = torch.jit.script(linear)
    path = tmp_path / "head.pt"
    scripted.save(str(path))
    out = tmp_path / "preds.safetensors"
    ok(invoke("stitch", "apply", data.y_st, "--head", path, "-o", out))
    p = load(out)
    with torch.no_grad():
        expected = linear(torch.from_numpy(data.y)).numpy()
    assert (p.kind, p.matrix.shape, p.ids) == ("predictions", (N, 3), data.ids)
    np.testing.assert_allclose(p.matrix, expected, rtol=1e-5, atol=1e-5)
    assert p.labels == expected.argmax(axis=1).tolist()
    assert p.attrs["classes"] == [0, 1, 2]


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def translated(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("translated") / "y_hat.h5"
    ok(invoke("translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "--method", "procrustes", "-o", out))
    return out


def test_evaluate_json(data, translated):
    report = evaluate_json(translated, "--reference", data.y_st)
    assert (report["file"], report["reference"], report["rows"]) == (str(translated), str(data.y_st), N)
    metrics = report["metrics"]
    assert list(metrics) == list(EMBEDDING_METRICS)
    y_hat = load(translated).matrix
    assert metrics["cosine"] == pytest.approx(row_cosines(y_hat, data.y).mean(), abs=1e-6)
    assert metrics["mse"] == pytest.approx(np.mean((y_hat.astype(np.float64) - data.y) ** 2), rel=1e-5)
    sims = unit_rows(y_hat) @ unit_rows(data.y).T
    ranks = 1 + (sims > np.diag(sims)[:, None]).sum(axis=1)
    assert metrics["top1"] == pytest.approx(np.mean(ranks == 1))
    assert metrics["top5"] == pytest.approx(np.mean(ranks <= 5))
    assert metrics["mrr"] == pytest.approx(np.mean(1 / ranks), abs=1e-6)


def test_evaluate_table_and_csv(data, translated):
    table = ok(invoke("evaluate", translated, "--reference", data.y_st), data=True)
    assert table.stderr == ""
    assert "cosine" in table.stdout and "top1" in table.stdout and f"({N:,} rows)" in table.stdout
    report = evaluate_json(translated, "--reference", data.y_st)
    assert f"{report['metrics']['cosine']:.4f}" in table.stdout

    result = ok(invoke("evaluate", translated, "--reference", data.y_st, "--format", "csv"), data=True)
    assert result.stderr == ""
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert len(rows) == 2 and rows[0] == ["file", "reference", "rows", *EMBEDDING_METRICS]
    assert rows[1][:3] == [str(translated), str(data.y_st), str(N)]
    for name, value in zip(rows[0][3:], rows[1][3:]):
        assert float(value) == pytest.approx(report["metrics"][name], rel=1e-5, abs=1e-9)


def test_evaluate_chosen_metrics_in_order(data, translated):
    report = evaluate_json(translated, "--reference", data.y_st, "--metrics", "mrr@5,cosine,top3,cka")
    assert list(report["metrics"]) == ["mrr@5", "cosine", "top3", "cka"]


def test_evaluate_joins_rows_by_id(data, translated, tmp_path):
    perm = np.random.default_rng(3).permutation(N)
    shuffled = write_embeddings(tmp_path / "y_perm.safetensors", data.y[perm], ids=[data.ids[p] for p in perm])
    a = evaluate_json(translated, "--reference", data.y_st, "--metrics", "cosine,mse,top1")["metrics"]
    b = evaluate_json(translated, "--reference", shuffled, "--metrics", "cosine,mse,top1")["metrics"]
    assert b == pytest.approx(a, rel=1e-6)


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_evaluate_gates(data, translated, fmt):
    passing = invoke("evaluate", translated, "--reference", data.y_st, "--format", fmt,
                     "--min", "cosine=0.9", "--min", "top1=0.5", "--max", "mse=1.0")
    ok(passing, data=True)
    assert passing.stderr == ""

    failing = invoke("evaluate", translated, "--reference", data.y_st, "--format", fmt,
                     "--min", "cosine=0.9", "--min", "top1=1.01", "--max", "mse=0")
    assert failing.exit_code == 1 and isinstance(failing.exception, SystemExit)
    assert "Traceback" not in failing.output
    # the data are still printed, and complete
    if fmt == "json":
        report = json.loads(failing.stdout)
        assert report["metrics"]["top1"] <= 1.0
    else:
        assert "top1" in failing.stdout and "mse" in failing.stdout
    lines = failing.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(translated) in lines[0]
    assert "gate failed" in lines[0] and "top1" in lines[0] and "mse" in lines[0]
    assert "cosine" not in lines[0]  # the gate that passed is not reported


def test_evaluate_gate_adds_its_metric(data, translated):
    """A gate on a metric not in --metrics is computed anyway (and shown)."""
    result = invoke("evaluate", translated, "--reference", data.y_st, "--format", "json",
                    "--metrics", "cosine", "--min", "top1=0.5")
    ok(result, data=True)
    assert set(json.loads(result.stdout)["metrics"]) == {"cosine", "top1"}


def cka_numpy(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype(np.float64) - x.mean(axis=0)
    y = y.astype(np.float64) - y.mean(axis=0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))




def test_evaluate_cka_across_dimensions(data):
    report = evaluate_json(data.x_h5, "--reference", data.z_h5, "--metrics", "cka")
    assert list(report["metrics"]) == ["cka"]
    assert report["metrics"]["cka"] == pytest.approx(cka_numpy(data.x, data.z), abs=1e-5)
    assert report["metrics"]["cka"] > 0.99  # Z = X W + small noise


def test_evaluate_default_metrics_across_dimensions(data):
    report = evaluate_json(data.x_h5, "--reference", data.z_h5)
    assert list(report["metrics"]) == ["cka", "jaccard@10"]  # what applies across dims
    assert report["metrics"]["cka"] == pytest.approx(cka_numpy(data.x, data.z), abs=1e-5)
    assert report["metrics"]["jaccard@10"] > 0.8


def test_evaluate_cka_in_one_space(data, translated):
    """The CKA formula itself, where dims match (so this runs while the across-dims bug stands)."""
    report = evaluate_json(translated, "--reference", data.y_st, "--metrics", "cka")
    assert report["metrics"]["cka"] == pytest.approx(cka_numpy(load(translated).matrix, data.y), abs=1e-6)


def test_evaluate_same_space_metrics_refused_across_dimensions(data):
    wrong = invoke("evaluate", data.x_h5, "--reference", data.z_h5, "--metrics", "cosine")
    assert_clean_error(wrong, 2, "'cosine'", "cka")
    assert wrong.stdout == ""


# ---------------------------------------------------------------------------------------------
# info on outputs
# ---------------------------------------------------------------------------------------------
def test_info_describes_a_relative_file(data, tmp_path):
    out = tmp_path / "rel.safetensors"
    ok(invoke("project", data.x_h5, "--anchors", data.xa, "-o", out))
    result = ok(invoke("info", out, "--format", "json"), data=True)
    assert result.stderr == ""
    summary = json.loads(result.stdout)
    assert (summary["kind"], summary["rows"], summary["dims"]) == ("relative", N, K)
    assert summary["metadata"]["similarities"] == ["cosine"]
    assert summary["provenance"]["subcommand"] == "project"
    table = ok(invoke("info", out), data=True)
    assert "relative" in table.stdout and table.stderr == ""


def test_evaluate_ids_and_exclude_ids_select_rows(data, tmp_path):
    """--ids keeps only the listed rows, --exclude-ids drops them (lists as .txt or embedding files)."""
    from relcli.io.embeddings import open_embeddings

    with open_embeddings(data.xa) as anchors_file:
        anchor_ids = anchors_file.row_keys()
    with open_embeddings(data.x_h5) as x_file:
        n_rows = x_file.n_rows
    listing = tmp_path / "ids.txt"
    listing.write_text("\n".join(anchor_ids[:5]) + "\n")
    only = evaluate_json(data.x_h5, "--reference", data.x_h5, "--metrics", "cosine", "--ids", listing)
    assert only["rows"] == 5 and only["metrics"]["cosine"] == pytest.approx(1.0)
    rest = evaluate_json(data.x_h5, "--reference", data.x_h5, "--metrics", "cosine", "--exclude-ids", data.xa)
    assert rest["rows"] == n_rows - len(anchor_ids)
    assert rest["selection"] == {"ids": None, "exclude_ids": str(data.xa)}
