"""``relcli invert``, ``relcli translate`` and ``relcli stitch`` through typer's CliRunner: outputs,
metadata, exit codes, stdout vs stderr.

Ground truth comes from NumPy in float64 on the same small files (see conftest.py): X, and
Y = 2.5 X Q + noise with the same ids. Commands that are not asked for data print nothing on
stdout; their one "wrote ..." line goes to stderr (DESIGN §6).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from relcli.io.embeddings import write_embeddings
from relcli.io.kinds import load_estimator

from ._commands_helpers import check_provenance, evaluate_json
from .conftest import D, D_Z, K, N, assert_clean_error, invoke, load, ok, row_cosines, unit_rows


METHODS = ["irp", "procrustes", "linear", "affine", "ortho-linear"]


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
    chosen = load(tmp_path / "y_hat.h5").attrs["translation"]["method"]  # both ran auto on the same anchors
    assert f"auto chose {chosen}" in result.stderr
    one, two = load(out), load(tmp_path / "two_steps.h5")
    assert one.kind == "predictions" and one.ids == two.ids == data.ids
    assert one.labels == two.labels
    np.testing.assert_allclose(one.matrix, two.matrix, atol=1e-5)
    assert one.attrs["translation"]["method"] == chosen
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
