"""The hostile-input catalogue: files of the wrong kind wherever a kind is expected (issue 12)."""

from __future__ import annotations

import pytest

from ._catalogue import Catalogue, in_role
from .conftest import Spec, run_case

CATALOGUE = Catalogue()
case, add = CATALOGUE.case, CATALOGUE.add


# ---------------------------------------------------------------------------------------------
# 5. wrong kinds wherever a kind is expected
# ---------------------------------------------------------------------------------------------
WRONG_KINDS = {
    "anchors": ["head", "map", "rel_h5", "pred_st"],
    "anchors--like": ["rel_h5", "pred_h5", "head"],
    "project": ["rel_st", "pred_h5", "head", "map"],
    "project--anchors": ["rel_h5", "rel_st", "pred_h5", "head", "map"],
    "invert": ["x_h5", "xa_h5", "pred_h5", "head", "map"],
    "invert--anchors": ["rel_st", "head", "pred_st"],
    "translate--src": ["pred_h5", "pred_st", "rel_h5", "head", "map"],
    "translate--tgt-anchors": ["rel_h5", "pred_st", "head", "map"],
    "translate--src-anchors": ["rel_st", "pred_h5", "head"],
    "translate--map": ["head", "relhead", "x_st", "ya_st", "rel_h5", "pred_st"],
    "stitch-fit": ["pred_h5", "pred_st", "rel_h5", "head", "map"],
    "stitch-fit--anchors": ["rel_h5", "pred_h5", "head"],
    "stitch-apply": ["rel_h5", "pred_st", "head", "map"],
    "stitch-apply--head": ["map", "map_irp", "x_st", "rel_st", "pred_h5", "ya_st"],
    "stitch-apply--anchors": ["rel_h5", "head"],
    "stitch-run--src": ["pred_h5", "rel_st", "head"],
    "stitch-run--tgt-anchors": ["rel_h5", "pred_h5", "head"],
    "stitch-run--head": ["map", "x_st"],
    "evaluate": ["rel_h5", "head", "map"],
    "evaluate--reference": ["pred_h5", "pred_st", "rel_st", "head", "map"],
    "evaluate--ids": ["head", "map"],
}
for _role, _kinds in WRONG_KINDS.items():
    for _kind in _kinds:
        add(f"wrong-kind:{_role}:{_kind}", in_role(_role, lambda ctx, base, fmt, k=_kind: getattr(ctx.c, k)))


@case("wrong-kind:stitch-run--head:relative-mode-head")
def _(ctx):
    return Spec(["stitch", "run", "--src", ctx.c.x_h5, "--tgt-anchors", ctx.c.ya_h5, "--head", ctx.c.relhead, "-o",
                 ctx.out / "p.h5"], code=2, names=[ctx.c.relhead])


@case("wrong-kind:stitch-apply:relative-head-without-anchors")
def _(ctx):
    return Spec(["stitch", "apply", ctx.c.y_h5, "--head", ctx.c.relhead, "-o", ctx.out / "p.h5"], code=2,
                names=[ctx.c.relhead], fragments=["--anchors"])


@case("wrong-kind:translate:save-map-is-output")
def _(ctx):
    same = ctx.out / "same.safetensors"
    return Spec(["translate", "--src", ctx.c.x_h5, "--tgt-anchors", ctx.c.ya_h5, "--save-map", same, "-o", same], code=2,
                names=[same], outputs=[same])


@case("wrong-kind:translate:save-map-is-output-by-another-name")
def _(ctx):
    same = ctx.out / "same.safetensors"
    other = ctx.out / "sub" / ".." / "same.safetensors"
    (ctx.out / "sub").mkdir()
    return Spec(["translate", "--src", ctx.c.x_h5, "--tgt-anchors", ctx.c.ya_h5, "--save-map", other, "-o", same], code=2,
                names=[other], outputs=[same])


@case("wrong-kind:translate:save-map-h5")
def _(ctx):
    return Spec(["translate", "--src", ctx.c.x_h5, "--tgt-anchors", ctx.c.ya_h5, "--save-map", ctx.out / "m.h5", "-o",
                 ctx.out / "y.h5"], code=2, names=[ctx.out / "m.h5"])


@case("wrong-kind:translate:save-map-is-a-folder")
def _(ctx):
    folder = ctx.out / "m.safetensors"
    folder.mkdir()
    return Spec(["translate", "--src", ctx.c.x_h5, "--tgt-anchors", ctx.c.ya_h5, "--method", "procrustes", "--save-map", folder,
                 "-o", ctx.out / "y.h5"], names=[folder], outputs=[ctx.out / "y.h5"])


@case("wrong-kind:stitch-fit:output-h5")
def _(ctx):
    return Spec(["stitch", "fit", ctx.c.y_h5, "-o", ctx.out / "h.h5"], code=2, names=[ctx.out / "h.h5"])


@case("wrong-kind:embed:labels-is-hdf5")
def _(ctx):
    return Spec(["embed", ctx.c.items, "--encoder", f"torchscript:{ctx.c.enc}", "--labels", ctx.c.x_h5, "-o", ctx.out / "e.h5"],
                names=[ctx.c.x_h5])


@case("wrong-kind:embed:encoder-is-a-head")
def _(ctx):
    return Spec(["embed", ctx.c.items, "--encoder", f"torchscript:{ctx.c.head}", "-o", ctx.out / "e.h5"], names=[ctx.c.head])


@case("wrong-kind:stitch-apply--head:torchscript-encoder-as-head")
def _(ctx):
    """A TorchScript module of the wrong input size used as a head: fails on the first batch."""
    return Spec(["stitch", "apply", ctx.c.y_h5, "--head", ctx.c.broken_enc, "-o", ctx.out / "p.h5"], names=[ctx.c.broken_enc])


@pytest.mark.parametrize("case,mode", CATALOGUE.params())
def test_hostile(case, mode, corpus, case_dir):
    run_case(case, mode, corpus, case_dir)
