"""The hostile-input catalogue: bad numbers in data, named by id, outputs that would be non-finite, and
empty inputs, one row, one class, id lists and pairs: errors that name the file (issue 12).
"""

from __future__ import annotations

import numpy as np
import pytest

from . import _files as F
from ._catalogue import Catalogue, base_path, EXT, GOOD_STATS, ROLES
from .conftest import IDS, ITEM_IDS, N, NAN_ITEMS, Spec, run_case

CATALOGUE = Catalogue()
case, add = CATALOGUE.case, CATALOGUE.add


# ---------------------------------------------------------------------------------------------
# 6. bad numbers in data, named by id (rows past the first chunk: --batch-size 16)
# ---------------------------------------------------------------------------------------------
PROBLEMS = {
    "nan": (np.nan, "NaN"),
    "inf": (-np.inf, "NaN/Inf"),
    "zero": (0.0, "zeros"),
    "overflow": (1e20, "flows"),
    "underflow": (1e-30, "flows"),
}
BATCH = ["--batch-size", 16]
NUMBER_ROLES = {
    # role: (problems that must be refused, extra options)
    "anchors": (("nan", "inf", "zero", "overflow", "underflow"), BATCH),
    "project": (("nan", "inf", "zero", "overflow", "underflow"), BATCH),
    "translate--src": (("nan", "inf"), BATCH),
    "stitch-fit": (("nan", "inf"), BATCH),
    "stitch-apply": (("nan", "inf"), BATCH),
    "stitch-run--src": (("nan", "inf"), BATCH),
    "evaluate": (("nan", "inf", "zero", "overflow", "underflow"), BATCH),
    "evaluate--reference": (("nan", "zero"), BATCH),
    "invert": (("nan", "inf"), BATCH),
}


def bad_rows(c) -> tuple[int, int]:
    """Two rows of the second chunk of 16 that are not anchors (anchor rows are checked first, as anchors)."""
    anchors = set(c.ids["xa_h5"]) | set(c.ids["ya_h5"])
    rows = [r for r in range(16, 32) if IDS[r] not in anchors]
    return rows[0], rows[-1]


def bad_rows_case(role: str, problem: str, fmt: str, extra: list):
    value, fragment = PROBLEMS[problem]
    base, line = ROLES[role]

    def make(ctx):
        rows = bad_rows(ctx.c)
        bad = F.set_rows(base_path(ctx.c, base, fmt), ctx.p("rows" + EXT[fmt]), {r: value for r in rows})
        return Spec([*line(ctx.c, bad, ctx.out), *extra], names=[bad], fragments=[fragment], ids=[IDS[r] for r in rows])
    add(f"bad-rows:{role}:{problem}:{fmt}", make)


for _role, (_problems, _extra) in NUMBER_ROLES.items():
    for _problem in _problems:
        for _fmt in ("h5", "st"):
            bad_rows_case(_role, _problem, _fmt, _extra)
for _problem in ("zero", "overflow"):
    for _fmt in ("h5", "st"):
        def _irp_rows(ctx, p=_problem, fmt=_fmt):
            value, fragment = PROBLEMS[p]
            rows = bad_rows(ctx.c)
            bad = F.set_rows(ctx.c.f("x", fmt), ctx.p("rows" + EXT[fmt]), {r: value for r in rows})
            return Spec(["translate", "--src", bad, "--tgt-anchors", ctx.c.ya_h5, "--method", "irp", "--rcond", "0.01",
                         "--batch-size", 16, "-o", ctx.out / "y.h5"], names=[bad], fragments=[fragment],
                        ids=[IDS[r] for r in rows])
        add(f"bad-rows:translate--src-irp:{_problem}:{_fmt}", _irp_rows)
        add(f"bad-rows:stitch-fit--anchors-input:{_problem}:{_fmt}",
            lambda ctx, p=_problem, fmt=_fmt: Spec(
                ["stitch", "fit", F.set_rows(ctx.c.f("y", fmt), ctx.p("rows" + EXT[fmt]), {r: PROBLEMS[p][0] for r in bad_rows(ctx.c)}),
                 "--anchors", ctx.c.ya_h5, "--max-iter", 5, "-o", ctx.out / "h.safetensors"],
                names=[ctx.p("rows" + EXT[fmt])], fragments=[PROBLEMS[p][1]], ids=[IDS[r] for r in bad_rows(ctx.c)]))

ANCHOR_ROW_ROLES = ("project--anchors", "invert--anchors", "translate--tgt-anchors", "translate--src-anchors",
                    "stitch-fit--anchors", "stitch-apply--anchors", "stitch-run--tgt-anchors")
for _role in ANCHOR_ROW_ROLES:
    for _fmt in ("h5", "st"):
        def _anchor_rows(ctx, role=_role, fmt=_fmt):
            base, line = ROLES[role]
            pristine = base_path(ctx.c, base, fmt)
            bad = F.set_rows(pristine, ctx.p("arows" + EXT[fmt]), {3: np.nan, 11: np.nan})
            ids = ctx.c.ids[f"{base}_{fmt}"]
            return Spec(line(ctx.c, bad, ctx.out), names=[bad], fragments=["NaN"], ids=[ids[3], ids[11]])
        add(f"bad-rows:{_role}:nan:{_fmt}", _anchor_rows)
for _role in ("project--anchors", "stitch-fit--anchors", "stitch-apply--anchors", "invert--anchors"):
    def _zero_anchor(ctx, role=_role):
        base, line = ROLES[role]
        bad = F.set_rows(base_path(ctx.c, base, "h5"), ctx.p("arows.h5"), {5: 0.0})
        return Spec(line(ctx.c, bad, ctx.out), names=[bad], fragments=["zeros"], ids=[ctx.c.ids[f"{base}_h5"][5]])
    add(f"bad-rows:{_role}:zero:h5", _zero_anchor)


@case("bad-rows:anchors-float16:inf")
def _(ctx):
    from relcli.io.embeddings import write_embeddings

    x = np.ones((N, 8), np.float16)
    x[9] = np.inf
    bad = write_embeddings(ctx.p("half.safetensors"), x, ids=IDS, allow_nonfinite=True)
    return Spec(["anchors", bad, "-n", 4, "-o", ctx.out / "a.h5"], names=[bad], ids=["id09"])


@case("bad-rows:project:int-matrix-zero-row")
def _(ctx):
    from relcli.io.embeddings import write_embeddings

    path = ctx.p("ints.h5")
    import h5py

    with h5py.File(path, "w") as f:
        data = np.arange(N * 8, dtype=np.int32).reshape(N, 8)
        data[30] = 0
        f["embeddings"] = data
    return Spec(["project", path, "--anchors", ctx.c.xa_h5, "-o", ctx.out / "r.h5"], names=[path], fragments=["zeros"], ids=[])


# outputs that would be non-finite: refused, naming the rows (never written)
@case("bad-output:translate:float16-overflow")
def _(ctx):
    row = bad_rows(ctx.c)[0]
    big = F.set_rows(ctx.c.x_h5, ctx.p("big.h5"), {row: 1e6})
    return Spec(["translate", "--src", big, "--tgt-anchors", ctx.c.ya_h5, "--method", "procrustes", "--dtype", "float16",
                 "-o", ctx.out / "y.h5"], names=[big], fragments=["float16"], ids=[IDS[row]])


@case("bad-output:embed:nan-encoder")
def _(ctx):
    return Spec(["embed", ctx.c.nan_items, "--encoder", f"torchscript:{ctx.c.nan_enc}", "--batch-size", 16, "-o",
                 ctx.out / "e.h5"], names=[ctx.c.nan_items], fragments=["NaN"], ids=[ITEM_IDS[r] for r in NAN_ITEMS])


@case("bad-output:embed:nan-encoder-safetensors")
def _(ctx):
    return Spec(["embed", ctx.c.nan_items, "--encoder", f"torchscript:{ctx.c.nan_enc}", "-o", ctx.out / "e.safetensors"],
                names=[ctx.c.nan_items], fragments=["NaN"], ids=[ITEM_IDS[r] for r in NAN_ITEMS])


@case("bad-output:embed:float16-overflow")
def _(ctx):
    return Spec(["embed", ctx.c.items, "--encoder", f"torchscript:{ctx.c.huge_enc}", "--dtype", "float16", "-o",
                 ctx.out / "e.safetensors"], names=[ctx.c.items], fragments=["float16"], ids=["it00"])


@case("bad-output:embed:normalize-overflow")
def _(ctx):
    return Spec(["embed", ctx.c.items, "--encoder", f"torchscript:{ctx.c.huge_enc}", "--normalize", "-o", ctx.out / "e.h5"],
                names=[ctx.c.items], ids=["it00"])


@case("bad-output:invert:target-norm-overflow")
def _(ctx):
    return Spec(["invert", ctx.c.rel_h5, "--anchors", ctx.c.ya_h5, "--rcond", "0.01", "--target-norm", "1e39", "-o",
                 ctx.out / "y.h5"], code=(1, 2), fragments=["target-norm"])


@case("bad-output:translate:rows-near-float32-max")
def _(ctx):
    rows = bad_rows(ctx.c)
    big = F.set_rows(ctx.c.x_h5, ctx.p("big.h5"), {rows[0]: 3e38, rows[1]: -3e38})
    return Spec(["translate", "--src", big, "--tgt-anchors", ctx.c.ya_h5, "--method", "linear", "-o", ctx.out / "y.h5"],
                names=[big], ids=[IDS[r] for r in rows], expect="ok-or-error")


@case("bad-output:stitch-apply:rows-near-float32-max")
def _(ctx):
    big = F.set_rows(ctx.c.y_h5, ctx.p("big.h5"), {9: 3e38})
    return Spec(["stitch", "apply", big, "--head", ctx.c.head, "-o", ctx.out / "p.h5"], names=[big], ids=["id09"],
                expect="ok-or-error")


@case("bad-numbers:translate:identical-anchors-irp")
def _(ctx):
    same = F.set_rows(ctx.c.ya_h5, ctx.p("ya_same.h5"), {i: F.get_array(ctx.c.ya_h5, "embeddings")[0] for i in range(16)})
    return Spec(["translate", "--src", ctx.c.x_h5, "--tgt-anchors", same, "--method", "irp", "-o", ctx.out / "y.h5"],
                names=[same], expect="ok-or-error")


@case("bad-numbers:translate:identical-anchors-auto")
def _(ctx):
    same = F.set_rows(ctx.c.ya_h5, ctx.p("ya_same.h5"), {i: F.get_array(ctx.c.ya_h5, "embeddings")[0] for i in range(16)})
    return Spec(["translate", "--src", ctx.c.x_h5, "--tgt-anchors", same, "-o", ctx.out / "y.h5"], names=[same],
                expect="ok-or-error")


@case("bad-numbers:translate:one-anchor")
def _(ctx):
    from relcli.io.embeddings import write_embeddings

    one = write_embeddings(ctx.p("one.h5"), F.get_array(ctx.c.y_h5, "embeddings")[:1], ids=IDS[:1])
    return Spec(["translate", "--src", ctx.c.x_h5, "--tgt-anchors", one, "--method", "procrustes", "-o", ctx.out / "y.h5"],
                names=[one], expect="ok-or-error")


# statistics that make the output non-finite: the issue saw translate and invert exit 0 with every row NaN
@case("bad-numbers:invert:anchors-with-huge-mean-norm")
def _(ctx):
    lie = F.set_meta(ctx.c.ya_h5, ctx.p("ya_lie.h5"), "source_stats", {**GOOD_STATS, "mean_norm": 1e300})
    return Spec(["invert", ctx.c.rel_h5, "--anchors", lie, "--rcond", "0.01", "-o", ctx.out / "y.h5"], names=[lie],
                fragments=["mean_norm"])


# ---------------------------------------------------------------------------------------------
# 7. empty inputs, one row, one class: errors that name the file
# ---------------------------------------------------------------------------------------------
def _rows_file(ctx, base="x", fmt="h5", rows=0, name=None):
    from relcli.io.embeddings import write_embeddings

    matrix = F.get_array(ctx.c.f(base, fmt), "embeddings")[:rows]
    labels = F.get_array(ctx.c.f(base, fmt), "labels")[:rows]
    return write_embeddings(ctx.p(name or f"{base}{rows}{EXT[fmt]}"), matrix, ids=IDS[:rows], labels=labels)


for _role, _expect in (("anchors", "error"), ("project", "ok-or-error"), ("translate--src", "ok-or-error"),
                       ("stitch-fit", "error"), ("stitch-apply", "error"), ("stitch-run--src", "error"), ("evaluate", "error"),
                       ("evaluate--reference", "error"), ("translate--tgt-anchors", "error"), ("project--anchors", "error")):
    for _fmt in ("h5", "st"):
        def _empty(ctx, role=_role, fmt=_fmt, expect=_expect):
            base, line = ROLES[role]
            if role.endswith("anchors"):
                from relcli.io.embeddings import write_embeddings

                bad = write_embeddings(ctx.p("empty" + EXT[fmt]), np.zeros((0, 8), np.float32), ids=[])
            else:
                bad = _rows_file(ctx, "x" if base == "x" else "y", fmt, 0)
            return Spec(line(ctx.c, bad, ctx.out), names=[bad], expect=expect)
        add(f"empty-input:{_role}:{_fmt}", _empty)


@case("one-row:evaluate")
def _(ctx):  # the default metrics that apply to one row: cosine and MSE (a rank among one row says nothing)
    one = _rows_file(ctx, "y", "h5", 1)
    return Spec(["evaluate", one, "--reference", ctx.c.y_h5, "--format", "json"], names=[one], expect="ok")


@case("one-row:evaluate-cka")
def _(ctx):
    one = _rows_file(ctx, "y", "st", 1)
    return Spec(["evaluate", one, "--reference", ctx.c.y_st, "--metrics", "cka"], names=[one])


@case("one-row:evaluate--ids")
def _(ctx):
    ids = ctx.p("one.txt")
    ids.write_text("id03\n")
    return Spec(["evaluate", ctx.c.y_h5, "--reference", ctx.c.y_st, "--ids", ids, "--format", "json"], names=[ctx.c.y_h5],
                expect="ok")


@case("one-row:stitch-fit")
def _(ctx):
    one = _rows_file(ctx, "y", "h5", 1)
    return Spec(["stitch", "fit", one, "-o", ctx.out / "h.safetensors"], names=[one])


@case("one-class:stitch-fit")
def _(ctx):
    one_class = F.set_array(ctx.c.y_h5, ctx.p("oneclass.h5"), "labels", np.ones(N, np.int64))
    return Spec(["stitch", "fit", one_class, "--max-iter", 5, "-o", ctx.out / "h.safetensors"], names=[one_class],
                fragments=["class"])


@case("one-class:stitch-fit-mlp-strings")
def _(ctx):
    one_class = F.set_array(ctx.c.y_st, ctx.p("oneclass.safetensors"), "labels", np.array(["cat"] * N))
    return Spec(["stitch", "fit", one_class, "--head", "mlp", "--epochs", 2, "-o", ctx.out / "h.safetensors"], names=[one_class],
                fragments=["class"])


@case("empty-selection:evaluate--ids")
def _(ctx):
    ids = ctx.p("none.txt")
    ids.write_text("nope\n")
    return Spec(["evaluate", ctx.c.y_h5, "--reference", ctx.c.y_st, "--ids", ids], names=[ctx.c.y_h5])


@case("empty-selection:evaluate--exclude-ids-all")
def _(ctx):
    return Spec(["evaluate", ctx.c.y_h5, "--reference", ctx.c.y_st, "--exclude-ids", ctx.c.y_h5], names=[ctx.c.y_h5])


@case("no-labels:evaluate-predictions")
def _(ctx):
    return Spec(["evaluate", ctx.c.pred_h5, "--reference", ctx.c.x_nolabels], names=[ctx.c.x_nolabels], fragments=["labels"])


@case("ids-file:evaluate--ids-bad-utf8")
def _(ctx):
    ids = ctx.p("ids.txt")
    ids.write_bytes(b"id01\n\xff\xfe\n")
    return Spec(["evaluate", ctx.c.y_h5, "--reference", ctx.c.y_st, "--ids", ids], names=[ids])


@case("ids-file:evaluate--exclude-ids-missing")
def _(ctx):
    return Spec(["evaluate", ctx.c.y_h5, "--reference", ctx.c.y_st, "--exclude-ids", ctx.p("none.txt")], names=[ctx.p("none.txt")])


@case("ids-file:evaluate--ids-no-ids")
def _(ctx):
    return Spec(["evaluate", ctx.c.y_h5, "--reference", ctx.c.y_st, "--ids", ctx.c.x_noids], names=[ctx.c.x_noids])


@case("ids-file:evaluate--ids-folder")
def _(ctx):
    folder = ctx.p("ids.txt")
    folder.mkdir()
    return Spec(["evaluate", ctx.c.y_h5, "--reference", ctx.c.y_st, "--ids", folder], names=[folder])


def _pairs_case(id, content: bytes | None, fragments=()):
    def make(ctx):
        pairs = ctx.p("pairs.tsv")
        if content is not None:
            pairs.write_bytes(content)
        return Spec(["anchors", ctx.c.y_h5, "--like", ctx.c.xa_h5, "--pairs", pairs, "-o", ctx.out / "a.h5"], names=[pairs],
                    fragments=list(fragments))
    add(f"pairs:anchors--pairs:{id}", make)


_pairs_case("missing", None)
_pairs_case("empty", b"", ["no id pairs"])
_pairs_case("one-column", b"id00\nid01\n", ["column"])
_pairs_case("bad-utf8", b"id00\t\xff\xfe\n")
_pairs_case("binary", bytes(range(256)) * 4)


@case("pairs:anchors--pairs-folder")
def _(ctx):
    folder = ctx.p("pairs.tsv")
    folder.mkdir()
    return Spec(["anchors", ctx.c.y_h5, "--like", ctx.c.xa_h5, "--pairs", folder, "-o", ctx.out / "a.h5"], names=[folder])


@case("pairs:anchors--pairs-none-match")
def _(ctx):
    pairs = ctx.p("pairs.tsv")
    pairs.write_text("".join(f"zz{i}\tyy{i}\n" for i in range(5)))
    return Spec(["anchors", ctx.c.y_h5, "--like", ctx.c.xa_h5, "--pairs", pairs, "-o", ctx.out / "a.h5"],
                names=[ctx.c.y_h5])


@pytest.mark.parametrize("case,mode", CATALOGUE.params())
def test_hostile(case, mode, corpus, case_dir):
    run_case(case, mode, corpus, case_dir)
