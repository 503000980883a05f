"""The hostile-input catalogue: corrupt files in every file role of every subcommand (both formats), lying
safetensors headers and lying HDF5 layouts (issue 12, item 1; see ``_catalogue``).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from . import _files as F
from ._catalogue import Catalogue, _attr, base_path, EXT, in_role, _replace, role_formats, ROLES
from .conftest import IDS, N, Spec, run_case

CATALOGUE = Catalogue()
case, add = CATALOGUE.case, CATALOGUE.add


# ---------------------------------------------------------------------------------------------
# 1. corrupt files in every role, both formats
# ---------------------------------------------------------------------------------------------
def _name(ctx, fmt, stem="bad"):
    return ctx.p(stem + EXT[fmt])


CORRUPTIONS = {
    "zero-length": lambda ctx, base, fmt: F.empty(_name(ctx, fmt)),
    "truncated": lambda ctx, base, fmt: F.truncate(base, _name(ctx, fmt), 0.5),
    "header-only": lambda ctx, base, fmt: F.truncate(base, _name(ctx, fmt), 100 if fmt == "h5" else 8),
    "garbage": lambda ctx, base, fmt: F.garbage(_name(ctx, fmt)),
    # HDF5: the root group's object header address in the superblock; safetensors: the header's '{'
    "flipped": lambda ctx, base, fmt: F.flip(base, _name(ctx, fmt), list(range(64, 72)) if fmt == "h5" else 8),
}
for _role in ROLES:
    for _fmt in role_formats(_role):
        for _what, _build in CORRUPTIONS.items():
            add(f"corrupt:{_role}:{_what}:{_fmt}", in_role(_role, _build, fmt=_fmt))
    add(f"corrupt:{_role}:missing", in_role(_role, lambda ctx, base, fmt: ctx.p("missing" + base.suffix), fragments=["no such"]))
    add(f"corrupt:{_role}:folder", in_role(_role, lambda ctx, base, fmt: (ctx.p("dir" + base.suffix)).mkdir() or ctx.p("dir" + base.suffix),
                                           fragments=["folder"]))

# byte flips inside HDF5's own structures (superblock addresses, the first object header)
for _offset in (24, 40, 96, 800):
    add(f"corrupt:project:h5-flip@{_offset}", in_role("project", lambda ctx, base, fmt, o=_offset: F.flip(base, ctx.p("bad.h5"),
                                                                                                       list(range(o, o + 4)))))

# ---------------------------------------------------------------------------------------------
# 2. lying safetensors headers
# ---------------------------------------------------------------------------------------------
def st_header_case(id: str, edit, role="project", base=None, code=1, fragments=()):
    def build(ctx, pristine, fmt):
        source = base_path(ctx.c, base, "st") if base else pristine
        return F.st_edit(source, ctx.p("bad.safetensors"), edit)
    add(f"st-header:{role}:{id}", in_role(role, build, code=code, fragments=fragments, fmt="st"))


def _entry(name, **changes):
    def edit(header):
        header[name].update(changes)
    return edit


def _raw(text: str | bytes):
    return lambda header: text


def _deep(n: int):
    return "[" * n + "]" * n


st_header_case("not-json", _raw("{not json at all"), fragments=["JSON"])
st_header_case("json-array", _raw("[1, 2, 3]"))
st_header_case("json-string", _raw('"embeddings"'))
st_header_case("nested-100k", _raw('{"a": ' + _deep(100_000) + "}"))
st_header_case("nested-metadata", lambda h: h["__metadata__"].update({"relcli.provenance": _deep(50_000)}))
st_header_case("nested-entry", lambda h: h["embeddings"].update({"shape": json.loads(_deep(60))}))
st_header_case("invalid-utf8", _raw(b'{"__metadata__": {"relcli.kind": "\xff\xfe"}}'))
st_header_case("negative-shape", _entry("embeddings", shape=[-40, 8]), fragments=["shape"])
st_header_case("overflowing-shape", _entry("embeddings", shape=[2**64 + 40, 8]), fragments=["shape"])
st_header_case("huge-shape-consistent", _entry("embeddings", shape=[2**40, 8], data_offsets=[0, 2**40 * 32]))
st_header_case("float-shape", _entry("embeddings", shape=[40.0, 8]), fragments=["shape"])
st_header_case("string-shape", _entry("embeddings", shape="40x8"), fragments=["shape"])
st_header_case("shape-mismatch", _entry("embeddings", shape=[41, 8]))
st_header_case("offsets-past-end", _entry("embeddings", shape=[40000, 8], data_offsets=[0, 40000 * 32]))
st_header_case("offsets-reversed", _entry("embeddings", data_offsets=[1280, 0]))
st_header_case("offsets-negative", _entry("embeddings", data_offsets=[-32, 1248]))
st_header_case("offsets-float", _entry("embeddings", data_offsets=[0.0, 1280.0]))
st_header_case("offsets-huge", _entry("embeddings", data_offsets=[2**64, 2**64 + 1280]))
st_header_case("overlap", lambda h: h["labels"].update(data_offsets=[0, h["labels"]["data_offsets"][1] - h["labels"]["data_offsets"][0]]))
st_header_case("unknown-dtype", _entry("embeddings", dtype="F8"), fragments=["dtype"])
st_header_case("dtype-number", _entry("embeddings", dtype=4), fragments=["dtype"])
st_header_case("bool-matrix", _entry("embeddings", dtype="BOOL", shape=[40, 32]))
st_header_case("f64-same-bytes", _entry("embeddings", dtype="F64"))
st_header_case("matrix-1d", _entry("embeddings", shape=[320]))
st_header_case("matrix-3d", _entry("embeddings", shape=[40, 2, 4]))
st_header_case("matrix-scalar", _entry("embeddings", shape=[], data_offsets=[0, 4]))
st_header_case("extra-key", _entry("embeddings", extra=1))
st_header_case("entry-not-object", lambda h: h.update(embeddings=[1, 2]))
st_header_case("metadata-not-object", lambda h: h.update(__metadata__="relcli"))
st_header_case("metadata-number-value", lambda h: h["__metadata__"].update({"relcli.kind": 5}))
st_header_case("metadata-kind-bogus", lambda h: h["__metadata__"].update({"relcli.kind": '"bogus"'}), fragments=["kind"])
st_header_case("metadata-kind-not-json", lambda h: h["__metadata__"].update({"relcli.kind": "embeddings"}))
st_header_case("metadata-kind-list", lambda h: h["__metadata__"].update({"relcli.kind": '["embeddings"]'}), fragments=["kind"])
st_header_case("metadata-kind-object", lambda h: h["__metadata__"].update({"relcli.kind": '{"a": 1}'}), fragments=["kind"])
st_header_case("metadata-format-bogus", lambda h: h["__metadata__"].update({"relcli.format": "{{"}))
st_header_case("no-matrix", lambda h: h.pop("embeddings") and None)


add("st-header:project:two-matrices", in_role("project", lambda ctx, base, fmt: F.st_write(
    ctx.p("two.safetensors"), {"other": np.ones((N, 8), np.float32), "more": np.ones((N, 8), np.float32)}, {}), fmt="st", code=2,
    fragments=["--key"]))
st_header_case("ids-wrong-length", lambda h: h["ids_offsets"].update(shape=[40], data_offsets=[h["ids_offsets"]["data_offsets"][0],
                                                                                               h["ids_offsets"]["data_offsets"][1] - 8]))
st_header_case("ids-float", lambda h: h["labels"].update(dtype="F64"), fragments=["labels"])
st_header_case("labels-2d", lambda h: h["labels"].update(shape=[20, 2]), fragments=["labels"])


@case("st-header:project:length-beyond-file")
def _(ctx):
    header, data = F.st_load(ctx.c.x_st)
    bad = F.st_dump(ctx.p("bad.safetensors"), header, data, length=10**7)
    return Spec(["project", bad, "--anchors", ctx.c.xa_h5, "-o", ctx.out / "r.h5"], names=[bad])


@case("st-header:project:length-short")
def _(ctx):
    raw = ctx.c.x_st.read_bytes()
    length = int.from_bytes(raw[:8], "little")
    bad = ctx.p("bad.safetensors")
    bad.write_bytes((length - 40).to_bytes(8, "little") + raw[8:])
    return Spec(["project", bad, "--anchors", ctx.c.xa_h5, "-o", ctx.out / "r.h5"], names=[bad])


@case("st-header:project:length-max")
def _(ctx):
    raw = ctx.c.x_st.read_bytes()
    bad = ctx.p("bad.safetensors")
    bad.write_bytes((2**64 - 1).to_bytes(8, "little") + raw[8:])
    return Spec(["project", bad, "--anchors", ctx.c.xa_h5, "-o", ctx.out / "r.h5"], names=[bad])


def _st_ids(edit_tensors):
    """A safetensors embeddings file whose tensors are edited (well-formed header)."""
    def build(ctx, base, fmt):
        tensors, metadata = F.st_tensors(ctx.c.x_st)
        edit_tensors(tensors)
        return F.st_write(ctx.p("bad.safetensors"), tensors, metadata)
    return build


add("st-ids:project:duplicate-ids", in_role("project", _st_ids(lambda t: t.update(
    ids_utf8=np.frombuffer(b"".join(b"id00" for _ in range(N)), dtype=np.uint8))), fmt="st", fragments=["duplicate", "id00"]))
add("st-ids:project:offsets-mismatch", in_role("project", _st_ids(lambda t: t["ids_offsets"].__setitem__(-1, 999)), fmt="st",
                                               fragments=["ids"]))
add("st-ids:project:offsets-decreasing", in_role("project", _st_ids(lambda t: t["ids_offsets"].__setitem__(3, 100)), fmt="st",
                                                 fragments=["ids"]))
add("st-ids:project:utf8-invalid", in_role("project", _st_ids(lambda t: t["ids_utf8"].__setitem__(0, 0xFF)), fmt="st",
                                           fragments=["UTF-8"]))
add("st-ids:project:offsets-2d", in_role("project", _st_ids(lambda t: t.update(ids_offsets=np.zeros((41, 1), np.int64))),
                                         fmt="st"))
add("st-ids:project:ids-int-wrong-length", in_role("project", _st_ids(lambda t: [t.pop("ids_utf8"), t.pop("ids_offsets"),
                                                                                 t.update(ids=np.arange(39))]), fmt="st",
                                                   fragments=["39 ids"]))
add("st-ids:stitch-fit:labels-wrong-length", in_role("stitch-fit", _st_ids(lambda t: t.update(labels=t["labels"][:30])), fmt="st",
                                                     fragments=["labels"]))

# ---------------------------------------------------------------------------------------------
# 3. lying HDF5 layouts
# ---------------------------------------------------------------------------------------------
def h5_case(id: str, edit, role="project", code=1, fragments=(), expect="error"):
    add(f"h5-layout:{role}:{id}", in_role(role, lambda ctx, base, fmt: F.h5_edit(base, ctx.p("bad.h5"), edit), code=code,
                                          fragments=fragments, expect=expect))



_X = np.zeros((N, 8), np.float32)
h5_case("kind-bogus", _attr("kind", "bogus"), fragments=["kind"])
h5_case("kind-number", _attr("kind", 5), fragments=["kind"])
h5_case("kind-array", _attr("kind", np.array([1, 2])), fragments=["kind"])
h5_case("kind-bad-utf8", _attr("kind", np.bytes_(b"\xff\xfe")), fragments=["UTF-8"])
h5_case("provenance-bad-json", _attr("provenance", "{oops"), fragments=["JSON"])
h5_case("provenance-nested", _attr("provenance", _deep(100_000)))
h5_case("matrix-1d", _replace("embeddings", np.zeros(320, np.float32)))
h5_case("matrix-3d", _replace("embeddings", np.zeros((N, 2, 4), np.float32)))
h5_case("matrix-scalar", _replace("embeddings", np.float32(1.0)))
h5_case("matrix-strings", _replace("embeddings", np.array([["a"] * 8] * N, dtype=object), dtype=__import__("h5py").string_dtype()))
h5_case("matrix-bool", _replace("embeddings", np.ones((N, 8), bool)))
h5_case("matrix-complex", _replace("embeddings", np.ones((N, 8), np.complex64)))
h5_case("matrix-compound", _replace("embeddings", np.zeros((N, 8), dtype=[("a", "f4"), ("b", "i4")])))
h5_case("matrix-group", lambda f: (f.__delitem__("embeddings"), f.create_group("embeddings")))
h5_case("matrix-softlink-loop", lambda f: (f.__delitem__("embeddings"), f.__setitem__("embeddings", __import__("h5py").SoftLink("/embeddings"))))
h5_case("matrix-external-link", lambda f: (f.__delitem__("embeddings"),
                                          f.__setitem__("embeddings", __import__("h5py").ExternalLink("/etc/hostname", "/x"))))
h5_case("matrix-zero-dims", _replace("embeddings", np.zeros((N, 0), np.float32)))
h5_case("ids-wrong-length", _replace("ids", np.array(IDS[:39], dtype=object), dtype=__import__("h5py").string_dtype()),
        fragments=["39 ids"])
h5_case("ids-duplicate", _replace("ids", np.array(["dup"] * N, dtype=object), dtype=__import__("h5py").string_dtype()),
        fragments=["duplicate", "dup"])
h5_case("ids-2d", _replace("ids", np.arange(N).reshape(20, 2)), fragments=["ids"])
h5_case("ids-float", _replace("ids", np.arange(N, dtype=np.float64)), fragments=["ids"])
h5_case("ids-bad-utf8", _replace("ids", np.array([b"\xff%d" % i for i in range(N)], dtype=object),
                                 dtype=__import__("h5py").vlen_dtype(bytes)), fragments=["UTF-8"])
h5_case("ids-group", lambda f: (f.__delitem__("ids"), f.create_group("ids")), fragments=["ids"])
h5_case("labels-wrong-length", _replace("labels", np.arange(7)), role="stitch-fit", fragments=["labels"])
h5_case("labels-compound", _replace("labels", np.zeros(N, dtype=[("a", "f4")])), role="stitch-fit", fragments=["labels"])


@pytest.mark.parametrize("case,mode", CATALOGUE.params())
def test_hostile(case, mode, corpus, case_dir):
    run_case(case, mode, corpus, case_dir)
