"""Bad inputs, command by command (DESIGN §3, §6).

Every failure: exit 1 (data/runtime) or 2 (usage), one ``Error:`` line on stderr naming the
file (where there is one) and the problem, nothing on stdout, no traceback, and no output or
temp file left behind: the folders' listings (and bytes) are unchanged. An existing output
survives a failing run over it bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from relcli.io.embeddings import write_embeddings

from .conftest import D, K, N, assert_clean_error, invoke, load, make_labels, ok, snapshot

BAD_ROW, ZERO_ROW = 5, 7  # ids item-0005, item-0007


@pytest.fixture
def out(tmp_path) -> Path:
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def fails(data, tmp_path, args, code: int, *fragments: str, path=None) -> str:
    """Run a command that must fail cleanly and leave every folder exactly as it was."""
    before = snapshot(tmp_path, data.folder)
    result = invoke(*args)
    line = assert_clean_error(result, code, *fragments, path=path)
    assert result.stdout == ""
    assert snapshot(tmp_path, data.folder) == before
    return line


@dataclass
class Wide:
    """A 64-d space with 10 anchors (too few for IRP), a 64-d head, and a labelled 32-d file."""

    x64: Path
    y64: Path
    xa10: Path
    ya10: Path
    head64: Path
    x32: Path


@pytest.fixture(scope="module")
def wide(tmp_path_factory) -> Wide:
    folder = tmp_path_factory.mktemp("wide")
    rng = np.random.default_rng(9)
    x = rng.standard_normal((100, 64)).astype(np.float32)
    y = (x @ np.linalg.qr(rng.standard_normal((64, 64)))[0]).astype(np.float32)
    ids = [f"w{i}" for i in range(100)]
    labels = make_labels(x, rng)
    w = Wide(
        x64=write_embeddings(folder / "x64.h5", x, ids=ids, labels=labels),
        y64=write_embeddings(folder / "y64.h5", y, ids=ids, labels=labels),
        xa10=folder / "xa10.h5", ya10=folder / "ya10.h5", head64=folder / "head64.safetensors",
        x32=write_embeddings(folder / "x32.h5", x[:, :32].copy(), ids=ids, labels=labels),
    )
    ok(invoke("anchors", w.x64, "-n", 10, "--strategy", "random", "-o", w.xa10))
    ok(invoke("anchors", w.y64, "--like", w.xa10, "-o", w.ya10))
    ok(invoke("stitch", "fit", w.y64, "--max-iter", 20, "-o", w.head64))
    return w


@pytest.fixture
def broken(data, tmp_path):
    """X with a NaN in row BAD_ROW (x_nan) and X with an all-zero row ZERO_ROW (x_zero)."""
    folder = tmp_path / "in"
    folder.mkdir()
    x_nan, x_zero = data.x.copy(), data.x.copy()
    x_nan[BAD_ROW, 3] = np.nan
    x_zero[ZERO_ROW] = 0
    return (
        write_embeddings(folder / "x_nan.h5", x_nan, ids=data.ids, labels=data.labels, allow_nonfinite=True),
        write_embeddings(folder / "x_zero.safetensors", x_zero, ids=data.ids, labels=data.labels),
    )


@pytest.fixture(scope="module")
def head(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("head") / "head.safetensors"
    ok(invoke("stitch", "fit", data.y_h5, "--max-iter", 50, "-o", path))
    return path


@pytest.fixture(scope="module")
def relative(data, tmp_path_factory):
    path = tmp_path_factory.mktemp("rel") / "x_rel.h5"
    ok(invoke("project", data.x_h5, "--anchors", data.xa, "-o", path))
    return path


# ---------------------------------------------------------------------------------------------
# one command line per subcommand, with the output path left open
# ---------------------------------------------------------------------------------------------
def command_lines(data, head, relative):
    return {
        "anchors": lambda o: ["anchors", data.x_h5, "-n", 8, "-o", o],
        "anchors-like": lambda o: ["anchors", data.y_h5, "--like", data.xa, "-o", o],
        "project": lambda o: ["project", data.x_h5, "--anchors", data.xa, "-o", o],
        "invert": lambda o: ["invert", relative, "--anchors", data.ya, "-o", o],
        "translate": lambda o: ["translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "-o", o],
        "stitch-apply": lambda o: ["stitch", "apply", data.y_h5, "--head", head, "-o", o],
        "stitch-run": lambda o: ["stitch", "run", "--src", data.x_h5, "--tgt-anchors", data.ya, "--head", head,
                                 "-o", o],
    }


COMMANDS = ["anchors", "anchors-like", "project", "invert", "translate", "stitch-apply", "stitch-run"]


@pytest.mark.parametrize("name", COMMANDS)
def test_unknown_output_extension(data, head, relative, tmp_path, out, name):
    target = out / "result.txt"
    fails(data, tmp_path, command_lines(data, head, relative)[name](target), 2,
          "unknown output extension '.txt'", ".h5", ".safetensors", path=target)


def test_stitch_fit_output_must_be_safetensors(data, tmp_path, out):
    for name in ("head.txt", "head.h5"):
        fails(data, tmp_path, ["stitch", "fit", data.y_h5, "-o", out / name], 2, ".safetensors", path=out / name)


def test_save_map_must_be_safetensors(data, tmp_path, out):
    fails(data, tmp_path, ["translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "--save-map", out / "m.h5",
                           "-o", out / "y.h5"], 2, "--save-map", ".safetensors", path=out / "m.h5")


@pytest.mark.parametrize("name", COMMANDS + ["stitch-fit"])
def test_output_folder_missing(data, head, relative, tmp_path, out, name):
    target = out / "no" / "such" / ("head.safetensors" if name == "stitch-fit" else "result.h5")
    lines = command_lines(data, head, relative)
    args = ["stitch", "fit", data.y_h5, "-o", target] if name == "stitch-fit" else lines[name](target)
    fails(data, tmp_path, args, 1, "does not exist", str(out / "no" / "such"), path=target)
    assert not (out / "no").exists()


@pytest.mark.parametrize("name", ["project", "translate", "stitch-apply", "anchors"])
def test_missing_input_file(data, head, relative, tmp_path, out, name):
    missing = tmp_path / "nope.h5"
    args = [missing if str(a) in (str(data.x_h5), str(data.y_h5)) else a
            for a in command_lines(data, head, relative)[name](out / "r.h5")]
    fails(data, tmp_path, args, 1, "no such file", path=missing)


# ---------------------------------------------------------------------------------------------
# anchors
# ---------------------------------------------------------------------------------------------
def test_like_with_ids_missing_from_the_source(data, tmp_path, out):
    """--like names anchors the target file lacks: say how many are missing, of how many."""
    kept = 200
    part = write_embeddings(tmp_path / "y_part.h5", data.y[:kept], ids=data.ids[:kept])
    missing = sum(1 for i in data.xa_ids if int(i.split("-")[1]) >= kept)
    assert 0 < missing < K
    fails(data, tmp_path, ["anchors", part, "--like", data.xa, "-o", out / "ya.h5"], 1,
          f"{missing} of {K} anchor ids of xa.h5 are missing", f"only {K - missing} matched", path=part)


def test_pairs_without_a_pair_for_some_anchors_leave_them_out_with_a_count(data, tmp_path, out):
    en = write_embeddings(tmp_path / "en.h5", data.x, ids=[f"en-{i}" for i in range(N)])
    fr = write_embeddings(tmp_path / "fr.h5", data.y, ids=[f"fr-{i}" for i in range(N)])
    ok(invoke("anchors", en, "-n", 12, "--strategy", "random", "-o", tmp_path / "en_a.h5"))
    en_ids = load(tmp_path / "en_a.h5").ids
    unpaired = en_ids[3:5]
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"en-{i}\tfr-{i}\n" for i in range(N) if f"en-{i}" not in unpaired))
    result = ok(invoke("anchors", fr, "--like", tmp_path / "en_a.h5", "--pairs", pairs, "-o", out / "fr_a.h5"))
    assert f"{pairs}: 2 of the 12 anchors of en_a.h5 have no pair with an id of fr.h5; they are left out" in result.stderr
    written = load(out / "fr_a.h5")
    assert written.reader_strings["source_ids"] == [i for i in en_ids if i not in unpaired]


@pytest.mark.parametrize(
    "extra,fragment",
    [
        ([], "-n/--n-anchors"),
        (["-n", 5, "--like", "XA"], "exclude each other"),
        (["--pairs", "XA"], "--pairs"),
        (["-n", 5, "--strategy", "bogus"], "'--strategy': 'bogus' is not one of 'random'"),
    ],
    ids=["neither", "both", "pairs-alone", "strategy"],
)
def test_anchors_usage_errors(data, tmp_path, out, extra, fragment):
    extra = [data.xa if a == "XA" else a for a in extra]
    fails(data, tmp_path, ["anchors", data.x_h5, *extra, "-o", out / "a.h5"], 2, fragment)


def test_per_class_needs_labels(data, tmp_path, out):
    fails(data, tmp_path, ["anchors", data.x_nolabels, "-n", 8, "--strategy", "per-class", "-o", out / "a.h5"], 2,
          "needs labels", path=data.x_nolabels)


def test_more_anchors_than_rows(data, tmp_path, out):
    line = fails(data, tmp_path, ["anchors", data.x_h5, "-n", 1000, "-o", out / "a.h5"], 1, "1000", f"only {N} rows")
    assert "-n" in line


def test_more_anchors_than_rows_names_the_file(data, tmp_path, out):
    fails(data, tmp_path, ["anchors", data.x_h5, "-n", 1000, "-o", out / "a.h5"], 1, path=data.x_h5)


# ---------------------------------------------------------------------------------------------
# project / invert
# ---------------------------------------------------------------------------------------------
def test_project_dimension_mismatch_names_both_shapes(data, tmp_path, out):
    wide_anchors = write_embeddings(tmp_path / "wa.h5", np.ones((5, 24), np.float32))
    fails(data, tmp_path, ["project", data.x_h5, "--anchors", wide_anchors, "-o", out / "r.h5"], 1,
          "dimension mismatch", f"{N} x {D}", "5 x 24", path=data.x_h5)


@pytest.mark.parametrize("extra,fragment", [(["-s", "bogus"], "unknown similarity 'bogus'"),
                                            (["-s", "cosine,l1", "--aggregate", "mean"], "'--aggregate': 'mean' is not one of 'concat', 'sum'")])
def test_project_unknown_names(data, tmp_path, out, extra, fragment):
    fails(data, tmp_path, ["project", data.x_h5, "--anchors", data.xa, *extra, "-o", out / "r.h5"], 2, fragment)


def test_invert_with_anchors_of_other_ids(data, relative, tmp_path, out):
    """The relative file was made over xa; ya1 holds other anchors: say how many do not match."""
    ok(invoke("anchors", data.x_h5, "-n", K, "--strategy", "random", "--seed", 7, "-o", tmp_path / "xa1.h5"))
    ok(invoke("anchors", data.y_h5, "--like", tmp_path / "xa1.h5", "-o", tmp_path / "ya1.h5"))
    other = set(load(tmp_path / "ya1.h5").ids)
    missing = sum(1 for i in data.xa_ids if i not in other)
    assert missing > 0
    fails(data, tmp_path, ["invert", relative, "--anchors", tmp_path / "ya1.h5", "-o", out / "y_hat.h5"], 1,
          "anchors do not match ya1.h5", f"{missing} of the {K} anchor ids", path=relative)


def test_invert_needs_a_cosine_relative_file(data, relative, tmp_path, out):
    fails(data, tmp_path, ["invert", data.x_h5, "--anchors", data.ya, "-o", out / "y.h5"], 1,
          "is an embeddings file", "needs a relative file", path=data.x_h5)
    ok(invoke("project", data.x_h5, "--anchors", data.xa, "-s", "cosine,l1", "-o", tmp_path / "poi.h5"))
    fails(data, tmp_path, ["invert", tmp_path / "poi.h5", "--anchors", data.ya, "-o", out / "y.h5"], 1,
          "cosine", "'l1'", path=tmp_path / "poi.h5")


# ---------------------------------------------------------------------------------------------
# too few anchors for IRP (k < d)
# ---------------------------------------------------------------------------------------------
def test_translate_with_too_few_anchors(data, wide, tmp_path, out):
    fails(data, tmp_path, ["translate", "--src", wide.x64, "--tgt-anchors", wide.ya10, "--method", "irp",
                           "-o", out / "y.h5"], 1, "at least d_Y=64", "k=10")


def test_invert_with_too_few_anchors(data, wide, tmp_path, out):
    ok(invoke("project", wide.x64, "--anchors", wide.xa10, "-o", tmp_path / "rel.h5"))
    fails(data, tmp_path, ["invert", tmp_path / "rel.h5", "--anchors", wide.ya10, "-o", out / "y.h5"], 1,
          "at least d_Y=64", "k=10")


def test_too_few_anchors_names_the_anchors_file(data, wide, tmp_path, out):
    fails(data, tmp_path, ["translate", "--src", wide.x64, "--tgt-anchors", wide.ya10, "--method", "irp",
                           "-o", out / "y.h5"], 1, "k=10", path=wide.ya10)


def test_too_few_anchors_is_fine_when_allowed(wide, tmp_path):
    ok(invoke("translate", "--src", wide.x64, "--tgt-anchors", wide.ya10, "--method", "irp", "--allow-rank-deficient",
              "-o", tmp_path / "y.h5"))
    assert load(tmp_path / "y.h5").matrix.shape == (100, 64)


# ---------------------------------------------------------------------------------------------
# translate
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["translate", "stitch-run"])
def test_unknown_method(data, head, tmp_path, out, command):
    args = (["translate", "--src", data.x_h5, "--tgt-anchors", data.ya] if command == "translate" else
            ["stitch", "run", "--src", data.x_h5, "--tgt-anchors", data.ya, "--head", head])
    fails(data, tmp_path, [*args, "--method", "umeyama", "-o", out / "y.h5"], 2,
          "'--method' / '-m': 'umeyama' is not one of", "procrustes")


@pytest.mark.parametrize(
    "extra,fragment",
    [
        ([], "--tgt-anchors"),
        (["--tgt-anchors", "YA", "--map", "YA"], "either"),
        (["--tgt-anchors", "YA", "--method", "procrustes", "--center"], "option --center does not apply to method 'procrustes': it applies to irp"),
        (["--tgt-anchors", "YA", "--method", "linear", "--scaling", "bogus"], "'--scaling': 'bogus' is not one of"),
        (["--tgt-anchors", "YA", "--device", "tpu"], "'tpu'"),
    ],
    ids=["no-anchors-no-map", "both", "irp-option", "scaling", "device"],
)
def test_translate_usage_errors(data, tmp_path, out, extra, fragment):
    extra = [data.ya if a == "YA" else a for a in extra]
    fails(data, tmp_path, ["translate", "--src", data.x_h5, *extra, "-o", out / "y.h5"], 2, fragment)


def test_anchor_files_not_parallel(data, wide, tmp_path, out):
    """Anchor files are matched by id: target anchors missing from the source anchors are counted and named."""
    ok(invoke("anchors", data.x_h5, "-n", 10, "-o", tmp_path / "xa10.h5"))
    fails(data, tmp_path, ["translate", "--src", data.x_h5, "--src-anchors", tmp_path / "xa10.h5",
                           "--tgt-anchors", data.ya, "-o", out / "y.h5"], 1,
          f"{K - 10} of {K} anchor ids of {data.ya.name} are missing", "only 10 matched", path=tmp_path / "xa10.h5")


def test_map_of_the_wrong_kind(data, tmp_path, out):
    fails(data, tmp_path, ["translate", "--src", data.x_h5, "--map", data.x_h5, "-o", out / "y.h5"], 1,
          "not a relcli map", path=data.x_h5)


def test_map_of_another_dimension(data, wide, tmp_path, out):
    ok(invoke("translate", "--src", wide.x64, "--tgt-anchors", wide.y64, "--method", "linear",
              "--save-map", tmp_path / "m.safetensors", "-o", tmp_path / "y64.h5"))
    fails(data, tmp_path, ["translate", "--src", data.x_h5, "--map", tmp_path / "m.safetensors", "-o", out / "y.h5"],
          1, "dimension mismatch", "16", "64", path=data.x_h5)


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
def nan_lines(data, broken, head):
    x_nan = broken[0]
    return {
        "project": lambda o: ["project", x_nan, "--anchors", data.xa, "-o", o],
        "translate": lambda o: ["translate", "--src", x_nan, "--tgt-anchors", data.ya, "-o", o],
        "stitch-apply": lambda o: ["stitch", "apply", x_nan, "--head", head, "-o", o],
        "stitch-run": lambda o: ["stitch", "run", "--src", x_nan, "--tgt-anchors", data.ya, "--head", head, "-o", o],
    }


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
            "translate": ["translate", "--src", x_zero, "--tgt-anchors", data.ya]}[name]
    fails(data, tmp_path, [*args, "-o", out / "r.safetensors"], 1, "all zeros (no direction)", "'item-0007'",
          "--drop-invalid", path=x_zero)
    ok(invoke(*args, "--drop-invalid", "-o", out / "r.safetensors"))
    result = load(out / "r.safetensors")
    assert result.ids == [i for i in data.ids if i != "item-0007"]
    assert np.isfinite(result.matrix).all()


def test_zero_row_in_evaluate(data, broken, tmp_path):
    fails(data, tmp_path, ["evaluate", broken[1], "--reference", data.y_h5], 1, "all zeros (no direction)", "'item-0007'",
          path=broken[1])


# ---------------------------------------------------------------------------------------------
# an existing output survives a failing run over it
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".h5", ".safetensors"])
@pytest.mark.parametrize("name", ["project", "translate", "stitch-apply", "anchors", "invert", "too-few-anchors"])
def test_existing_output_is_left_intact(data, broken, head, relative, wide, tmp_path, out, name, suffix):
    target = out / f"result{suffix}"
    good = command_lines(data, head, relative)
    bad = nan_lines(data, broken, head)
    ok(invoke(*good[{"too-few-anchors": "translate"}.get(name, name)](target)))
    before = target.read_bytes()
    if name in bad:
        args = bad[name](target)
    elif name == "anchors":
        args = ["anchors", broken[0], "-n", 8, "-o", target]
    elif name == "invert":
        args = ["invert", relative, "--anchors", wide.ya10, "-o", target]
    else:
        args = ["translate", "--src", wide.x64, "--tgt-anchors", wide.ya10, "--method", "irp", "-o", target]
    fails(data, tmp_path, args, 1)
    assert target.read_bytes() == before
