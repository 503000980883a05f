"""The hostile-input catalogue: long names and odd paths (issue 12)."""

from __future__ import annotations

from pathlib import Path

import pytest

from . import _files as F
from ._catalogue import Catalogue
from .conftest import Spec, run_case

CATALOGUE = Catalogue()
case, add = CATALOGUE.case, CATALOGUE.add


# ---------------------------------------------------------------------------------------------
# 9. long names and odd paths
# ---------------------------------------------------------------------------------------------
def _proj(ctx, output, src=None):
    return ["project", src or ctx.c.x_h5, "--anchors", ctx.c.xa_h5, "-o", output]


@case("path:output-name-256-bytes")
def _(ctx):
    out = ctx.out / ("o" * 253 + ".h5")
    return Spec(_proj(ctx, out), code=2, names=[out], fragments=["255"])


@case("path:output-name-multibyte-over-255-bytes")
def _(ctx):
    out = ctx.out / ("é" * 127 + ".h5")  # 130 characters, 257 bytes
    return Spec(_proj(ctx, out), code=2, names=[out], fragments=["255"])


@case("path:output-folder-name-too-long")
def _(ctx):
    out = ctx.out / ("d" * 300) / "r.h5"
    return Spec(_proj(ctx, out), names=[out.parent])


@case("path:input-name-too-long")
def _(ctx):
    src = ctx.src / ("i" * 300 + ".h5")
    return Spec(_proj(ctx, ctx.out / "r.h5", src=src), names=[src])


@case("path:output-name-255-bytes-succeeds")
def _(ctx):
    return Spec(_proj(ctx, ctx.out / ("o" * 252 + ".h5")), expect="ok")


@case("path:output-name-250-bytes-safetensors-succeeds")
def _(ctx):
    return Spec(_proj(ctx, ctx.out / ("s" * 238 + ".safetensors")), expect="ok")


@case("path:output-save-map-names-255-bytes-succeed")
def _(ctx):
    return Spec(["translate", "--src", ctx.c.x_h5, "--tgt-anchors", ctx.c.ya_h5, "--method", "procrustes", "--save-map",
                 ctx.out / ("m" * 243 + ".safetensors"), "-o", ctx.out / ("y" * 252 + ".h5")], expect="ok")


@case("path:output-folder-missing")
def _(ctx):
    out = ctx.out / "no" / "such" / "r.h5"
    return Spec(_proj(ctx, out), names=[out], fragments=["does not exist"])


@case("path:output-folder-is-a-file")
def _(ctx):
    out = ctx.c.x_h5 / "r.h5"
    return Spec(_proj(ctx, out), names=[out])


@case("path:output-is-a-folder")
def _(ctx):
    out = ctx.out / "r.h5"
    out.mkdir()
    return Spec(_proj(ctx, out), names=[out], fragments=["folder"])


@case("path:output-dash")
def _(ctx):
    return Spec(_proj(ctx, "-"), code=2, fragments=["extension"])


@case("path:output-empty-string")
def _(ctx):
    return Spec(_proj(ctx, ""), code=2, fragments=["extension"])


@case("path:output-bare-extension")
def _(ctx):
    return Spec(_proj(ctx, ctx.out / ".h5"), code=2, fragments=["extension"])


@case("path:output-unknown-extension")
def _(ctx):
    return Spec(_proj(ctx, ctx.out / "r.npy"), code=2, names=[ctx.out / "r.npy"], fragments=["extension"])


@case("path:output-in-proc")
def _(ctx):
    return Spec(_proj(ctx, Path("/proc/relcli-hostile.h5")), names=["/proc/relcli-hostile.h5"], fragments=["cannot write"])


@case("path:output-in-sys")
def _(ctx):
    return Spec(_proj(ctx, Path("/sys/relcli-hostile.safetensors")), names=["/sys/relcli-hostile.safetensors"],
                fragments=["cannot write"])


@case("path:output-through-dangling-symlink-folder")
def _(ctx):
    link = ctx.out / "gone"
    link.symlink_to(ctx.out / "nowhere")
    out = link / "r.h5"
    return Spec(_proj(ctx, out), names=[out], outputs=[out])


@case("path:input-dangling-symlink")
def _(ctx):
    link = ctx.p("link.h5")
    link.symlink_to(ctx.p("nowhere.h5"))
    return Spec(_proj(ctx, ctx.out / "r.h5", src=link), names=[link])


@case("path:input-symlink-loop")
def _(ctx):
    a, b = ctx.p("a.h5"), ctx.p("b.h5")
    a.symlink_to(b)
    b.symlink_to(a)
    return Spec(_proj(ctx, ctx.out / "r.h5", src=a), names=[a])


@case("path:input-dev-null")
def _(ctx):
    return Spec(_proj(ctx, ctx.out / "r.h5", src=Path("/dev/null")), names=["/dev/null"])


@case("path:input-dev-zero-as-safetensors")
def _(ctx):
    link = ctx.p("zero.safetensors")
    link.symlink_to("/dev/zero")
    return Spec(_proj(ctx, ctx.out / "r.h5", src=link), names=[link])


@case("path:input-dev-zero-as-h5")
def _(ctx):
    link = ctx.p("zero.h5")
    link.symlink_to("/dev/zero")
    return Spec(_proj(ctx, ctx.out / "r.h5", src=link), names=[link])


@case("path:input-newline-in-name-missing")
def _(ctx):
    src = ctx.p("bad\nname.h5")
    return Spec(_proj(ctx, ctx.out / "r.h5", src=src), names=["bad", "name.h5"])


@case("path:input-newline-in-name-corrupt")
def _(ctx):
    src = F.garbage(ctx.p("evil\nError: all good.h5"))
    return Spec(_proj(ctx, ctx.out / "r.h5", src=src), names=["evil", "all good.h5"])


@case("path:anchors-newline-in-name-wrong-kind")
def _(ctx):
    src = F.copy(ctx.c.rel_h5, ctx.p("rel\nx.h5"))
    return Spec(["project", ctx.c.x_h5, "--anchors", src, "-o", ctx.out / "r.h5"], names=["rel", "x.h5"])


@case("path:output-newline-in-name-succeeds")
def _(ctx):
    return Spec(_proj(ctx, ctx.out / "odd\nname.h5"), expect="ok")


@case("path:output-unicode-and-spaces-succeeds")
def _(ctx):
    return Spec(_proj(ctx, ctx.out / "ünï cödé ✓ [1] *.safetensors"), expect="ok")


@case("path:output-same-as-input-succeeds")
def _(ctx):
    mine = F.copy(ctx.c.x_h5, ctx.p("mine.h5"))
    return Spec(["translate", "--src", mine, "--tgt-anchors", ctx.c.ya_h5, "--method", "procrustes", "-o", mine],
                expect="ok", outputs=[mine])


@case("path:output-glob-characters-stale-temp-cleaning")
def _(ctx):
    out = ctx.out / "r[*?].h5"
    return Spec(_proj(ctx, out), expect="ok")


@pytest.mark.parametrize("case,mode", CATALOGUE.params())
def test_hostile(case, mode, corpus, case_dir):
    run_case(case, mode, corpus, case_dir)
