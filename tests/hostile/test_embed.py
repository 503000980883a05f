"""The hostile-input catalogue: ``embed``'s raw items and encoders (issue 12)."""

from __future__ import annotations

import numpy as np
import pytest

from . import _files as F
from ._catalogue import Catalogue, _replace
from .conftest import N, Spec, run_case

CATALOGUE = Catalogue()
case, add = CATALOGUE.case, CATALOGUE.add


# ---------------------------------------------------------------------------------------------
# 10. embed: raw items and encoders
# ---------------------------------------------------------------------------------------------
def embed_case(id: str, build, code=1, fragments=(), ids=(), encoder="enc", extra=(), names=None, api=True, stdin=None):
    def make(ctx):
        src = build(ctx)
        args = ["embed", src, "--encoder", f"torchscript:{getattr(ctx.c, encoder)}", *extra, "-o", ctx.out / "e.h5"]
        return Spec(args, code=code, names=[src] if names is None else names(ctx, src), fragments=list(fragments),
                    ids=list(ids), stdin=stdin)
    add(f"embed:{id}", make, api)


def _write(name: str, data: bytes):
    def build(ctx):
        path = ctx.p(name)
        path.write_bytes(data)
        return path
    return build


embed_case("txt-bad-utf8", _write("bad.txt", b"hello\nw\xfforld\n"), fragments=["UTF-8"])
embed_case("txt-empty", _write("empty.txt", b""), fragments=["empty"])
embed_case("txt-blank-lines", _write("blank.txt", b"a\n\n  \nb\n"), fragments=["empty"])
embed_case("csv-duplicate-id", _write("dup.csv", b"id,text\ndup,hello\nother,x\ndup,world\n"), fragments=["duplicate"], ids=["dup"])
embed_case("csv-no-text-column", _write("notext.csv", b"id,body\na,hello\n"), fragments=["text"])
embed_case("csv-empty-text", _write("emptytext.csv", b"id,text\na,hello\nb,\nc,  \n"), fragments=["empty"], ids=["b", "c"])
embed_case("csv-bad-utf8", _write("bad.csv", b"id,text\na,h\xffllo\n"))
embed_case("csv-ragged", _write("ragged.csv", b"id,text\na,b,c,d\n\"unterminated\n"))
embed_case("csv-header-only", _write("header.csv", b"id,text\n"), fragments=["empty"])
embed_case("jsonl-malformed", _write("bad.jsonl", b'{"text": "a"}\n{"text": \n'))
embed_case("jsonl-not-objects", _write("list.jsonl", b"[1, 2]\n[3, 4]\n"))
embed_case("jsonl-nested-deep", _write("deep.jsonl", b'{"text": ' + b"[" * 100000 + b"]" * 100000 + b"}\n"))
embed_case("tsv-duplicate-id-int", _write("dup.tsv", b"id\ttext\n7\ta\n7\tb\n"), fragments=["duplicate"])
embed_case("npy-pickled-objects", lambda ctx: (np.save(ctx.p("obj.npy"), np.array([{"a": 1}, None], dtype=object),
                                                       allow_pickle=True), ctx.p("obj.npy"))[1])
embed_case("npy-1d", lambda ctx: (np.save(ctx.p("flat.npy"), np.arange(10.0)), ctx.p("flat.npy"))[1])
embed_case("npy-strings", lambda ctx: (np.save(ctx.p("s.npy"), np.array([["a", "b"]] * 3)), ctx.p("s.npy"))[1])
embed_case("npy-truncated", lambda ctx: F.truncate(ctx.c.items_npy, ctx.p("t.npy"), 0.5))
embed_case("npy-zero-length", lambda ctx: F.empty(ctx.p("z.npy")))
embed_case("npy-zero-rows", lambda ctx: (np.save(ctx.p("z0.npy"), np.zeros((0, 4), np.float32)), ctx.p("z0.npy"))[1])
embed_case("npz-two-arrays", lambda ctx: (np.savez(ctx.p("two.npz"), a=np.zeros((3, 4)), b=np.zeros((3, 4))), ctx.p("two.npz"))[1],
           code=2, fragments=["--key"])
embed_case("npz-ids-wrong-length", lambda ctx: (np.savez(ctx.p("ids.npz"), x=np.zeros((3, 4), np.float32), ids=np.array(["a", "b"])),
                                                ctx.p("ids.npz"))[1], fragments=["ids"])
embed_case("npz-duplicate-ids", lambda ctx: (np.savez(ctx.p("dupids.npz"), x=np.ones((3, 4), np.float32),
                                                      ids=np.array(["a", "b", "a"])), ctx.p("dupids.npz"))[1],
           fragments=["duplicate"], ids=["a"])
embed_case("npz-garbage", lambda ctx: F.garbage(ctx.p("g.npz")))
embed_case("npz-key-missing", lambda ctx: ctx.c.items, code=2, fragments=["nope"], extra=["--key", "nope"])
embed_case("h5-items-garbage", lambda ctx: F.garbage(ctx.p("g.h5")))
embed_case("h5-items-truncated", lambda ctx: F.truncate(ctx.c.x_h5, ctx.p("t.h5"), 0.5))
embed_case("h5-items-ids-bad-utf8", lambda ctx: F.h5_edit(ctx.c.x_h5, ctx.p("u.h5"), _replace(
    "ids", np.array([b"\xff%d" % i for i in range(N)], dtype=object), dtype=__import__("h5py").vlen_dtype(bytes))), fragments=["UTF-8"])
embed_case("unknown-extension", _write("items.xyz", b"abc"), code=2, fragments=["xyz"])
embed_case("input-is-a-folder", lambda ctx: (ctx.p("dir.txt").mkdir(), ctx.p("dir.txt"))[1], fragments=["folder"])
embed_case("input-missing", lambda ctx: ctx.p("missing.npy"), fragments=["no such"])
embed_case("encoder-returns-1d", lambda ctx: ctx.c.items, encoder="flat_enc", names=lambda ctx, src: [ctx.c.flat_enc])
embed_case("encoder-fails", lambda ctx: ctx.c.items, encoder="broken_enc", names=lambda ctx, src: [ctx.c.broken_enc])


@case("embed:labels-wrong-length")
def _(ctx):
    np.save(ctx.p("labels.npy"), np.arange(N - 1))
    return Spec(["embed", ctx.c.items, "--encoder", f"torchscript:{ctx.c.enc}", "--labels", ctx.p("labels.npy"), "-o",
                 ctx.out / "e.h5"], names=[ctx.p("labels.npy")])


@case("embed:labels-2d")
def _(ctx):
    np.save(ctx.p("labels.npy"), np.zeros((N, 2)))
    return Spec(["embed", ctx.c.items, "--encoder", f"torchscript:{ctx.c.enc}", "--labels", ctx.p("labels.npy"), "-o",
                 ctx.out / "e.safetensors"], names=[ctx.p("labels.npy")])


@case("embed:labels-garbage")
def _(ctx):
    F.garbage(ctx.p("labels.npy"))
    return Spec(["embed", ctx.c.items, "--encoder", f"torchscript:{ctx.c.enc}", "--labels", ctx.p("labels.npy"), "-o",
                 ctx.out / "e.h5"], names=[ctx.p("labels.npy")])


@case("embed:labels-missing")
def _(ctx):
    return Spec(["embed", ctx.c.items, "--encoder", f"torchscript:{ctx.c.enc}", "--labels", ctx.p("labels.npy"), "-o",
                 ctx.out / "e.h5"], names=[ctx.p("labels.npy")])


@case("embed:labels-pickled")
def _(ctx):
    np.save(ctx.p("labels.npy"), np.array([object()] * N, dtype=object), allow_pickle=True)
    return Spec(["embed", ctx.c.items, "--encoder", f"torchscript:{ctx.c.enc}", "--labels", ctx.p("labels.npy"), "-o",
                 ctx.out / "e.h5"], names=[ctx.p("labels.npy")])


def _encoder_case(id, spec, code=1, fragments=(), names=None):
    def make(ctx):
        encoder = spec(ctx)
        return Spec(["embed", ctx.c.items, "--encoder", encoder, "-o", ctx.out / "e.h5"], code=code, fragments=list(fragments),
                    names=[] if names is None else names(ctx))
    add(f"embed:encoder-{id}", make)


_encoder_case("unknown-backend", lambda ctx: "bogus:x", code=2, fragments=["bogus"])
_encoder_case("no-argument", lambda ctx: "torchscript:", code=2, fragments=["torchscript"])
_encoder_case("no-colon", lambda ctx: "torchscript", code=2, fragments=["torchscript"])
_encoder_case("missing-file", lambda ctx: f"torchscript:{ctx.p('none.pt')}", names=lambda ctx: [ctx.p("none.pt")])
_encoder_case("garbage-file", lambda ctx: f"torchscript:{F.garbage(ctx.p('g.pt'))}", names=lambda ctx: [ctx.p("g.pt")])
_encoder_case("zero-length-file", lambda ctx: f"torchscript:{F.empty(ctx.p('z.pt'))}", names=lambda ctx: [ctx.p("z.pt")])
_encoder_case("truncated-file", lambda ctx: f"torchscript:{F.truncate(ctx.c.enc, ctx.p('t.pt'), 0.5)}",
              names=lambda ctx: [ctx.p("t.pt")])
_encoder_case("folder", lambda ctx: f"torchscript:{ctx.src}", names=lambda ctx: [ctx.src])
_encoder_case("hf-missing-folder", lambda ctx: f"hf:{ctx.p('nomodel')}", names=lambda ctx: [ctx.p("nomodel")])
_encoder_case("hf-empty-folder", lambda ctx: (ctx.p("emptymodel").mkdir(), f"hf:{ctx.p('emptymodel')}")[1],
              names=lambda ctx: [ctx.p("emptymodel")])
_encoder_case("onnx-garbage", lambda ctx: f"onnx:{F.garbage(ctx.p('m.onnx'))}", code=(1, 2), names=lambda ctx: [ctx.p("m.onnx")])


@case("embed:option-pooling-for-torchscript")
def _(ctx):
    return Spec(["embed", ctx.c.items, "--encoder", f"torchscript:{ctx.c.enc}", "--pooling", "mean", "-o", ctx.out / "e.h5"],
                code=2, fragments=["--pooling"])


@case("embed:option-prefix-for-arrays")
def _(ctx):
    return Spec(["embed", ctx.c.items, "--encoder", f"torchscript:{ctx.c.enc}", "--prefix", "query: ", "-o", ctx.out / "e.h5"],
                code=2, fragments=["--prefix"])


@case("embed:option-max-length-zero", api=False)
def _(ctx):
    return Spec(["embed", ctx.c.items, "--encoder", f"torchscript:{ctx.c.enc}", "--max-length", 0, "-o", ctx.out / "e.h5"],
                code=2, fragments=["--max-length"])


@case("embed:option-format-xml", api=False)
def _(ctx):
    return Spec(["embed", ctx.c.items, "--encoder", f"torchscript:{ctx.c.enc}", "--format", "xml", "-o", ctx.out / "e.h5"],
                code=2, fragments=["xml"])


@case("embed:stdin-empty", api=False)
def _(ctx):
    return Spec(["embed", "-", "--encoder", f"torchscript:{ctx.c.enc}", "-o", ctx.out / "e.h5"], names=["<stdin>"], stdin="")


@case("embed:stdin-bad-utf8", api=False)
def _(ctx):
    return Spec(["embed", "-", "--encoder", f"torchscript:{ctx.c.enc}", "-o", ctx.out / "e.h5"], names=["<stdin>"],
                stdin=b"ok\n\xff\xfe\n")


@case("embed:stdin-text-into-tensor-encoder", api=False)
def _(ctx):
    return Spec(["embed", "-", "--encoder", f"torchscript:{ctx.c.enc}", "-o", ctx.out / "e.h5"], names=["<stdin>"],
                stdin="hello\nworld\n")


@pytest.mark.parametrize("case,mode", CATALOGUE.params())
def test_hostile(case, mode, corpus, case_dir):
    run_case(case, mode, corpus, case_dir)
