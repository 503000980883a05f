"""Bad inputs, command by command (DESIGN §3, §6): ``stitch``, ``evaluate``, and NaN or all-zero
rows, named by id and skipped by ``--drop-invalid``.

Every failure: exit 1 (data/runtime) or 2 (usage), one ``Error:`` line on stderr naming the
file (where there is one) and the problem, nothing on stdout, no traceback, and no output or
temp file left behind: the folders' listings (and bytes) are unchanged. An existing output
survives a failing run over it bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from relcli.io.embeddings import write_embeddings

from ._bad_inputs_helpers import (
    BAD_ROW,
    broken,  # noqa: F401 (a fixture)
    fails,
    head,  # noqa: F401 (a fixture)
    nan_lines,
    out,  # noqa: F401 (a fixture)
    wide,  # noqa: F401 (a fixture)
)
from .conftest import N, invoke, load, ok


# ---------------------------------------------------------------------------------------------
# stitch
# ---------------------------------------------------------------------------------------------
def test_stitch_apply_head_of_another_dimension(data, wide, tmp_path, out):
    fails(data, tmp_path, ["stitch", "apply", wide.x32, "--head", wide.head64, "-o", out / "p.h5"], 1,
          "dimension mismatch of a head", "32 dims", "expects 64", path=wide.x32)


def test_stitch_run_head_of_another_dimension(data, wide, tmp_path, out):
    fails(data, tmp_path, ["stitch", "run", "--src", data.x_h5, "--tgt-anchors", data.ya, "--head", wide.head64,
                           "-o", out / "p.h5"], 1, "dimension mismatch of a head", "16 dims", "expects 64",
          path=data.ya)


def test_stitch_fit_needs_labels(data, tmp_path, out):
    fails(data, tmp_path, ["stitch", "fit", data.x_nolabels, "-o", out / "head.safetensors"], 1,
          "has no labels", path=data.x_nolabels)


def test_stitch_fit_unknown_head(data, tmp_path, out):
    fails(data, tmp_path, ["stitch", "fit", data.y_h5, "--head", "svm", "-o", out / "head.safetensors"], 2,
          "'--head': 'svm' is not one of 'logistic', 'mlp'")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit.load
def test_stitch_apply_bad_head_files(data, tmp_path, out):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a zip archive")
    fails(data, tmp_path, ["stitch", "apply", data.y_h5, "--head", garbage, "-o", out / "p.h5"], 1,
          "TorchScript", path=garbage)
    fails(data, tmp_path, ["stitch", "apply", data.y_h5, "--head", data.x_h5, "-o", out / "p.h5"], 1,
          path=data.x_h5)
    fails(data, tmp_path, ["stitch", "apply", data.y_h5, "--head", tmp_path / "none.safetensors", "-o", out / "p.h5"],
          1, "no such file", path=tmp_path / "none.safetensors")


def test_absolute_head_refuses_anchors(data, head, tmp_path, out):
    fails(data, tmp_path, ["stitch", "apply", data.y_h5, "--head", head, "--anchors", data.ya, "-o", out / "p.h5"],
          2, "relative mode", path=head)


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "extra,fragment",
    [
        (["--metrics", "cosine,bogus"], "unknown metric 'bogus'"),
        (["--metrics", "top0"], "unknown metric 'top0'"),
        (["--metrics", "accuracy"], "needs a predictions file"),
        (["--min", "bogus=0.5"], "unknown metric 'bogus'"),
        (["--max", "nope=1"], "unknown metric 'nope'"),
        (["--min", "cosine"], "expected METRIC=NUMBER"),
        (["--min", "cosine=high"], "expected METRIC=NUMBER"),
    ],
    ids=["metric", "top0", "label-metric", "gate-min", "gate-max", "gate-no-value", "gate-not-number"],
)
def test_evaluate_usage_errors(data, tmp_path, extra, fragment):
    for fmt in ("json", "table"):
        fails(data, tmp_path, ["evaluate", data.x_h5, "--reference", data.y_h5, "--format", fmt, *extra], 2, fragment)


def test_evaluate_embedding_metric_on_predictions(data, head, tmp_path):
    ok(invoke("stitch", "apply", data.y_h5, "--head", head, "-o", tmp_path / "p.h5"))
    fails(data, tmp_path, ["evaluate", tmp_path / "p.h5", "--reference", data.y_h5, "--metrics", "cosine"], 2,
          "'cosine'", "accuracy")
    fails(data, tmp_path, ["evaluate", tmp_path / "p.h5", "--reference", data.x_nolabels], 1,
          "no labels", path=data.x_nolabels)


def test_evaluate_rows_missing_from_the_reference(data, tmp_path):
    part = write_embeddings(tmp_path / "y_part.h5", data.y[:100], ids=data.ids[:100])
    fails(data, tmp_path, ["evaluate", data.x_h5, "--reference", part, "--format", "json"], 1,
          f"{N - 100} of {N} row ids of x.h5 are missing", "only 100 matched", path=part)


# ---------------------------------------------------------------------------------------------
# NaN and zero rows: named by id; --drop-invalid skips them
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["project", "translate", "stitch-apply", "stitch-run"])
def test_nan_row_is_named_then_dropped(data, broken, head, tmp_path, out, name):
    args = nan_lines(data, broken, head)[name]
    fails(data, tmp_path, args(out / "r.h5"), 1, "NaN", "'item-0005'", "--drop-invalid", path=broken[0])

    dropped = ok(invoke(*args(out / "r.h5"), "--drop-invalid"))
    assert "dropped 1 row(s) (ids 'item-0005')" in dropped.stderr  # stitch says so too
    result = load(out / "r.h5")
    assert result.ids == [i for i in data.ids if i != "item-0005"]
    assert result.matrix.shape[0] == N - 1 and np.isfinite(result.matrix).all()
    # the other rows are exactly what a clean input gives (the dropped row does not shift them)
    clean_args = [data.x_h5 if a == broken[0] else a for a in args(out / "clean.h5")]
    ok(invoke(*clean_args))
    clean = load(out / "clean.h5")
    np.testing.assert_allclose(result.matrix, np.delete(clean.matrix, BAD_ROW, axis=0), rtol=1e-5, atol=1e-6)


def test_nan_row_in_evaluate(data, broken, tmp_path):
    fails(data, tmp_path, ["evaluate", broken[0], "--reference", data.y_h5, "--format", "json"], 1,
          "'item-0005'", path=broken[0])


def test_nan_row_in_anchors(data, broken, tmp_path, out):
    fails(data, tmp_path, ["anchors", broken[0], "-n", 8, "-o", out / "a.h5"], 1, "NaN", "'item-0005'",
          path=broken[0])


def test_nan_row_in_anchors_advice_works(data, broken, tmp_path):
    ok(invoke("anchors", broken[0], "-n", 8, "--drop-invalid", "-o", tmp_path / "a.h5"))
    assert "item-0005" not in load(tmp_path / "a.h5").ids


@pytest.mark.parametrize("name", ["project", "translate"])
def test_zero_row_is_named_then_dropped(data, broken, tmp_path, out, name):
    x_zero = broken[1]
    args = {"project": ["project", x_zero, "--anchors", data.xa],
            "translate": ["translate", "--src", x_zero, "--tgt-anchors", data.ya, "--method", "irp"]}[name]
    fails(data, tmp_path, [*args, "-o", out / "r.safetensors"], 1, "all zeros (no direction)", "'item-0007'",
          "--drop-invalid", path=x_zero)
    ok(invoke(*args, "--drop-invalid", "-o", out / "r.safetensors"))
    result = load(out / "r.safetensors")
    assert result.ids == [i for i in data.ids if i != "item-0007"]
    assert np.isfinite(result.matrix).all()


def test_zero_row_in_evaluate(data, broken, tmp_path):
    fails(data, tmp_path, ["evaluate", broken[1], "--reference", data.y_h5], 1, "all zeros (no direction)", "'item-0007'",
          path=broken[1])
