"""Bad inputs, command by command (DESIGN §3, §6): ``anchors``, ``project`` / ``invert``, too few
anchors for IRP, and ``translate``.

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
    fails,
    head,  # noqa: F401 (a fixture)
    out,  # noqa: F401 (a fixture)
    relative,  # noqa: F401 (a fixture)
    wide,  # noqa: F401 (a fixture)
)
from .conftest import D, K, N, invoke, load, ok


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
    reversed_pairs = tmp_path / "reversed.tsv"  # a dictionary the wrong way round pairs nothing: say so
    reversed_pairs.write_text("".join(f"fr-{i}\ten-{i}\n" for i in range(N)))
    fails(data, tmp_path, ["anchors", fr, "--like", tmp_path / "en_a.h5", "--pairs", reversed_pairs, "-o", out / "r.h5"], 1,
          "none of the anchors of en_a.h5 has a pair in reversed.tsv with an id of this file", path=fr)


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


def test_source_anchors_beyond_the_target_anchors_are_counted(data, tmp_path, out):
    """The target anchors may be a subset of the source anchors (--like --drop-invalid leaves rows
    out); the ones left over are counted in a warning rather than dropped in silence."""
    target = load(data.ya)
    write_embeddings(tmp_path / "ya12.h5", target.matrix[:12], ids=target.ids[:12])
    result = ok(invoke("translate", "--src", data.x_h5, "--src-anchors", data.xa, "--tgt-anchors", tmp_path / "ya12.h5",
                       "-o", out / "y.h5"))
    assert f"{K - 12} of the {K} anchors of {data.xa.name} are not in ya12.h5: fitted on the 12 they share" in result.stderr


def test_map_of_the_wrong_kind(data, tmp_path, out):
    fails(data, tmp_path, ["translate", "--src", data.x_h5, "--map", data.x_h5, "-o", out / "y.h5"], 1,
          "not a relcli map", path=data.x_h5)


def test_map_of_another_dimension(data, wide, tmp_path, out):
    ok(invoke("translate", "--src", wide.x64, "--tgt-anchors", wide.y64, "--method", "linear",
              "--save-map", tmp_path / "m.safetensors", "-o", tmp_path / "y64.h5"))
    fails(data, tmp_path, ["translate", "--src", data.x_h5, "--map", tmp_path / "m.safetensors", "-o", out / "y.h5"],
          1, "dimension mismatch", "16", "64", path=data.x_h5)
