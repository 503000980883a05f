"""Spaces are recorded (relcli.space) and checked: steps refuse to mix two encoders' rows unless --force.

Real files: 80 digits embedded by the two sample encoders (MNIST-net and USPS-net, both 128-d, so
only the recorded space tells them apart).
"""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pytest

from relcli.io.spaces import encoder_space

from ._embed_helpers import DIGIT_LABELS, DIGITS, ENCODERS
from .conftest import assert_clean_error, invoke, load, ok


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("spaces")
    digits, labels = root / "d.npy", root / "l.npy"
    np.save(digits, np.load(DIGITS)[:80])
    np.save(labels, np.load(DIGIT_LABELS)[:80])
    out = {"root": root}
    for name in ("mnist", "usps"):
        out[name] = root / f"{name}.h5"
        ok(invoke("embed", digits, "-e", f"torchscript:{ENCODERS[name]}", "--labels", labels, "-q", "-o", out[name]))
    out["xa"] = root / "xa.h5"
    ok(invoke("anchors", out["mnist"], "-n", 30, "--seed", 0, "-q", "-o", out["xa"]))
    out["ya"] = root / "ya.h5"
    ok(invoke("anchors", out["usps"], "--like", out["xa"], "-q", "-o", out["ya"]))
    return out


def space(path):
    return load(path).attrs.get("space")


def refused(result, path, *others) -> str:
    line = assert_clean_error(result, 1, "torchscript:", "--force", path=path)
    for other in others:
        assert other.name in line, line
    return line


def test_embed_records_the_encoder_space(files, tmp_path):
    mnist, usps = space(files["mnist"]), space(files["usps"])
    assert mnist["name"] == f"torchscript:{ENCODERS['mnist']}" and mnist["dim"] == 128
    assert len(mnist["fingerprint"]) == 16 and mnist["fingerprint"] != usps["fingerprint"]
    copy = tmp_path / "elsewhere.pt"
    shutil.copy(ENCODERS["mnist"], copy)  # the same weights anywhere are the same space
    moved = tmp_path / "moved.h5"
    np.save(tmp_path / "d.npy", np.load(DIGITS)[:5])
    ok(invoke("embed", tmp_path / "d.npy", "-e", f"torchscript:{copy}", "-q", "-o", moved))
    assert space(moved)["fingerprint"] == mnist["fingerprint"]


def test_encoder_space_ignores_what_leaves_the_space_alone():
    class Model:
        path, settings = ENCODERS["usps"], {"pooling": "mean", "max_length": 128, "prefix": "query: "}

    class Other(Model):
        settings = {"pooling": "mean", "max_length": 512}

    class OtherPooling(Model):
        settings = {"pooling": "cls"}

    spec = f"hf:{ENCODERS['usps']}"
    assert encoder_space(spec, Model(), 8) == encoder_space(spec, Other(), 8)
    assert encoder_space(spec, Model(), 8)["fingerprint"] != encoder_space(spec, OtherPooling(), 8)["fingerprint"]


def test_anchors_carry_their_input_space(files):
    assert space(files["xa"]) == space(files["mnist"])
    assert space(files["ya"]) == space(files["usps"])  # --like: the rows' own space, not the --like file's


def test_project_refuses_anchors_of_another_space(files, tmp_path):
    out = tmp_path / "rel.h5"
    line = refused(invoke("project", files["mnist"], "--anchors", files["ya"], "-o", out), files["mnist"].name, files["ya"])
    assert "usps_cnn" in line and "mnist_cnn" in line
    assert not out.exists()
    ok(invoke("project", files["mnist"], "--anchors", files["ya"], "--force", "-q", "-o", out))
    ok(invoke("project", files["mnist"], "--anchors", files["xa"], "-q", "-o", tmp_path / "rel2.h5"))


def test_translate_checks_and_records_spaces(files, tmp_path):
    out, mapped = tmp_path / "y_hat.h5", tmp_path / "map.safetensors"
    refused(invoke("translate", "--src", files["mnist"], "--src-anchors", files["ya"], "--tgt-anchors", files["ya"],
                   "-o", out), files["ya"].name, files["mnist"])
    assert not out.exists()
    ok(invoke("translate", "--src", files["mnist"], "--tgt-anchors", files["ya"], "--method", "procrustes", "--save-map", mapped,
              "-q", "-o", out))
    assert space(out) == space(files["usps"])
    from relcli.io.kinds import read_estimator_meta

    recorded, _ = read_estimator_meta(mapped)
    assert recorded["spaces"] == {"source": space(files["mnist"]), "target": space(files["usps"])}
    wrong = tmp_path / "wrong.h5"
    refused(invoke("translate", "--src", files["usps"], "--map", mapped, "-o", wrong), files["usps"].name, mapped)
    assert not wrong.exists()
    back = tmp_path / "back.h5"
    ok(invoke("translate", "--src", files["usps"], "--map", mapped, "--reverse", "-q", "-o", back))
    assert space(back) == space(files["mnist"])
    ok(invoke("translate", "--src", files["usps"], "--map", mapped, "--force", "-q", "-o", wrong))


def test_heads_record_their_space(files, tmp_path):
    head, preds = tmp_path / "head.safetensors", tmp_path / "p.h5"
    ok(invoke("stitch", "fit", files["usps"], "-q", "-o", head))
    from relcli.io.kinds import read_estimator_meta

    assert read_estimator_meta(head)[0]["space"] == space(files["usps"])
    refused(invoke("stitch", "apply", files["mnist"], "--head", head, "-o", preds), files["mnist"].name, head)
    refused(invoke("stitch", "run", "--src", files["usps"], "--tgt-anchors", files["xa"], "--head", head, "-o", preds),
            files["xa"].name, head)
    assert not preds.exists()
    ok(invoke("stitch", "run", "--src", files["mnist"], "--tgt-anchors", files["ya"], "--head", head, "--method", "procrustes",
              "-q", "-o", preds))
    ok(invoke("stitch", "apply", files["mnist"], "--head", head, "--force", "-q", "-o", tmp_path / "forced.h5"))


def test_evaluate_and_search_compare_within_one_space(files, tmp_path):
    refused(invoke("evaluate", files["mnist"], "--reference", files["usps"]), files["usps"].name, files["mnist"])
    ok(invoke("evaluate", files["mnist"], "--reference", files["usps"], "--metrics", "cka", "--format", "json"), data=True)
    ok(invoke("evaluate", files["mnist"], "--reference", files["usps"], "--force", "--format", "json"), data=True)
    refused(invoke("search", files["mnist"], "--queries", files["usps"], "-k", 3), files["mnist"].name, files["usps"])
    ok(invoke("search", files["mnist"], "--queries", files["xa"], "-k", 3), data=True)


def test_files_without_a_space_are_not_refused(files, tmp_path):
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as handle:
        handle["embeddings"] = load(files["usps"]).matrix
    ok(invoke("project", files["mnist"], "--anchors", foreign, "-q", "-o", tmp_path / "rel.h5"))
    assert "space" not in load(tmp_path / "rel.h5").attrs


@pytest.mark.parametrize("value", ['"mnist"', '{"name": "m", "dim": 128}', '{"name": "m", "fingerprint": "ab", "dim": 0}'])
def test_a_garbled_space_record_is_named(files, tmp_path, value):
    bad = tmp_path / "bad.h5"
    shutil.copy(files["xa"], bad)
    with h5py.File(bad, "a") as handle:
        handle.attrs["relcli.space"] = value
    out = tmp_path / "rel.h5"
    assert_clean_error(invoke("project", files["mnist"], "--anchors", bad, "-o", out), 1, "relcli.space", path=bad)
    assert not out.exists()
