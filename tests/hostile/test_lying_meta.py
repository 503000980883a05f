"""The hostile-input catalogue: lying metadata of every kind relcli writes (anchors' statistics, relative
layouts, predictions, heads, maps), refused at the door naming the file and the field (issue 12).
"""

from __future__ import annotations

import numpy as np
import pytest

from . import _files as F
from ._catalogue import Catalogue, EXT, GOOD_STATS, in_role, _params, _state, _tensor
from .conftest import IDS, N, Spec, run_case

CATALOGUE = Catalogue()
case, add = CATALOGUE.case, CATALOGUE.add


# ---------------------------------------------------------------------------------------------
# 4. lying metadata of every kind
# ---------------------------------------------------------------------------------------------
ANCHOR_LIES = {
    "stats-n_rows-many": (lambda src, dst: F.set_meta(src, dst, "source_stats", {**GOOD_STATS, "n_rows": "many"}), "n_rows"),
    "stats-n_rows-zero": (lambda src, dst: F.set_meta(src, dst, "source_stats", {**GOOD_STATS, "n_rows": 0}), "n_rows"),
    "stats-n_rows-float": (lambda src, dst: F.set_meta(src, dst, "source_stats", {**GOOD_STATS, "n_rows": 1.5}), "n_rows"),
    "stats-n_rows-bool": (lambda src, dst: F.set_meta(src, dst, "source_stats", {**GOOD_STATS, "n_rows": True}), "n_rows"),
    "stats-no-mean_norm": (lambda src, dst: F.set_meta(src, dst, "source_stats", {"n_rows": 40, "std_norm": 0.5}), "mean_norm"),
    "stats-mean_norm-inf": (lambda src, dst: F.set_meta(src, dst, "source_stats", {**GOOD_STATS, "mean_norm": float("inf")}),
                            "mean_norm"),
    "stats-mean_norm-nan": (lambda src, dst: F.set_meta(src, dst, "source_stats", {**GOOD_STATS, "mean_norm": float("nan")}),
                            "mean_norm"),
    "stats-mean_norm-negative": (lambda src, dst: F.set_meta(src, dst, "source_stats", {**GOOD_STATS, "mean_norm": -1}),
                                 "mean_norm"),
    "stats-mean_norm-zero": (lambda src, dst: F.set_meta(src, dst, "source_stats", {**GOOD_STATS, "mean_norm": 0}), "mean_norm"),
    "stats-mean_norm-string": (lambda src, dst: F.set_meta(src, dst, "source_stats", {**GOOD_STATS, "mean_norm": "2.5"}),
                               "mean_norm"),
    "stats-mean_norm-huge": (lambda src, dst: F.set_meta(src, dst, "source_stats", {**GOOD_STATS, "mean_norm": 1e300}),
                             "mean_norm"),
    "stats-std_norm-negative": (lambda src, dst: F.set_meta(src, dst, "source_stats", {**GOOD_STATS, "std_norm": -1}), "std_norm"),
    "stats-list": (lambda src, dst: F.set_meta(src, dst, "source_stats", [1, 2, 3]), "source_stats"),
    "stats-bad-json": (lambda src, dst: F.set_meta(src, dst, "source_stats", "{oops", raw=True), "source_stats"),
    "stats-missing": (lambda src, dst: F.del_meta(src, dst, "source_stats"), "source_stats"),
    "space_mean-missing": (lambda src, dst: F.set_array(src, dst, "space_mean", None), "space_mean"),
    "space_mean-short": (lambda src, dst: F.set_array(src, dst, "space_mean", np.zeros(7, np.float32)), "space_mean"),
    "space_mean-nan": (lambda src, dst: F.set_array(src, dst, "space_mean", np.full(8, np.nan, np.float32)), "space_mean"),
    "space_std-negative": (lambda src, dst: F.set_array(src, dst, "space_std", -np.ones(8, np.float32)), "space_std"),
    "space_std-2d": (lambda src, dst: F.set_array(src, dst, "space_std", np.ones((1, 8), np.float32)), "space_std"),
    "space_std-inf": (lambda src, dst: F.set_array(src, dst, "space_std", np.full(8, np.inf, np.float32)), "space_std"),
    "source_ids-wrong-count": (lambda src, dst: F.set_array(src, dst, "source_ids", np.array(["a", "b", "c"])), "source_ids"),
}


def anchor_lie(role: str, lie: str, fmt: str):
    edit, field = ANCHOR_LIES[lie]
    add(f"anchors-meta:{role}:{lie}:{fmt}", in_role(role, lambda ctx, base, f: edit(base, ctx.p("lie" + EXT[f])), fmt=fmt,
                                                    fragments=[field]))


for _lie in ANCHOR_LIES:
    for _fmt in ("h5", "st"):
        anchor_lie("translate--tgt-anchors", _lie, _fmt)  # IRP restores the target's mean norm from these
    anchor_lie("invert--anchors", _lie, "h5")
for _role in ("project--anchors", "translate--src-anchors", "stitch-fit--anchors", "stitch-apply--anchors",
              "stitch-run--tgt-anchors"):
    for _lie in ("stats-n_rows-many", "stats-mean_norm-inf", "space_mean-short"):
        anchor_lie(_role, _lie, "st")


# the issue's own example: anchors whose statistics hold Infinity -> translate and invert exited 0 with every row non-finite
@case("anchors-meta:translate-default:stats-mean_norm-inf")
def _(ctx):
    lie = F.set_meta(ctx.c.ya_h5, ctx.p("ya_lie.h5"), "source_stats", {**GOOD_STATS, "mean_norm": float("inf")})
    return Spec(["translate", "--src", ctx.c.x_h5, "--tgt-anchors", lie, "-o", ctx.out / "y.h5"], names=[lie],
                fragments=["mean_norm"])


def _dup_anchor_ids(src):
    ids = list(F.get_array(src, "anchor_ids")) if F.is_h5(src) else None
    if ids is None:
        tensors, _ = F.st_tensors(src)
        blob, offsets = tensors["anchor_ids_utf8"].tobytes(), tensors["anchor_ids_offsets"]
        ids = [blob[offsets[i]:offsets[i + 1]].decode() for i in range(len(offsets) - 1)]
    ids = [i.decode() if isinstance(i, bytes) else str(i) for i in ids]
    return np.array([ids[0], ids[0], *ids[2:]])


RELATIVE_LIES = {
    "similarities-bogus": (lambda s, d: F.set_meta(s, d, "similarities", ["bogus"]), "similarities"),
    "similarities-string": (lambda s, d: F.set_meta(s, d, "similarities", "cosine"), "similarities"),
    "similarities-empty": (lambda s, d: F.set_meta(s, d, "similarities", []), "similarities"),
    "similarities-nested": (lambda s, d: F.set_meta(s, d, "similarities", [["cosine"]]), "similarities"),
    "aggregate-bogus": (lambda s, d: F.set_meta(s, d, "aggregate", "mean"), "aggregate"),
    "aggregate-number": (lambda s, d: F.set_meta(s, d, "aggregate", 3), "aggregate"),
    "center-string": (lambda s, d: F.set_meta(s, d, "center", "yes"), "center"),
    "center-number": (lambda s, d: F.set_meta(s, d, "center", 1), "center"),
    "anchor_ids-missing": (lambda s, d: F.set_array(s, d, "anchor_ids", None), "anchor_ids"),
    "anchor_ids-short": (lambda s, d: F.set_array(s, d, "anchor_ids", np.array(IDS[:15])), "anchor ids"),
    # one anchor listed twice (and another not at all): every id is among the target anchors, counts agree
    "anchor_ids-duplicate": (lambda s, d: F.set_array(s, d, "anchor_ids", _dup_anchor_ids(s)), "anchor"),
    "anchor_ids-2d": (lambda s, d: F.set_array(s, d, "anchor_ids", np.arange(16).reshape(8, 2)), "anchor_ids"),
    "blocks-lie": (lambda s, d: F.set_meta(s, d, "similarities", ["cosine", "l1"]), "columns"),
    "similarities-bad-json": (lambda s, d: F.set_meta(s, d, "similarities", '["cosine"', raw=True), "similarities"),
}
for _lie, (_edit, _field) in RELATIVE_LIES.items():
    for _fmt in ("h5", "st"):
        add(f"relative-meta:invert:{_lie}:{_fmt}", in_role("invert", lambda ctx, base, f, e=_edit: e(base, ctx.p("lie" + EXT[f])),
                                                           fmt=_fmt, fragments=[_field]))


@case("relative-meta:invert:anchor-ids-not-parallel")
def _(ctx):
    """The relative file names anchors the target anchors file does not hold (all renamed)."""
    lie = F.set_array(ctx.c.rel_h5, ctx.p("lie.h5"), "anchor_ids", np.array([f"zz{i}" for i in range(16)]))
    return Spec(["invert", lie, "--anchors", ctx.c.ya_h5, "-o", ctx.out / "y.h5"], names=[lie], fragments=["16 of the 16"])


PREDICTION_LIES = {
    "labels-missing": (lambda s, d: F.set_array(s, d, "labels", None), "labels"),
    "labels-short": (lambda s, d: F.set_array(s, d, "labels", np.arange(5)), "labels"),
    "ids-missing-rows": (lambda s, d: F.set_array(s, d, "ids", np.array([f"zz{i}" for i in range(N)])), "missing"),
}
for _lie, (_edit, _field) in PREDICTION_LIES.items():
    for _fmt in ("h5", "st"):
        def _pred(ctx, e=_edit, fmt=_fmt, field=_field):
            lie = e(ctx.c.f("pred", fmt), ctx.p("lie" + EXT[fmt]))
            names = [ctx.c.y_h5] if field == "missing" else [lie]
            return Spec(["evaluate", lie, "--reference", ctx.c.y_h5, "--format", "json"], names=names, fragments=[field])
        add(f"predictions-meta:evaluate:{_lie}:{_fmt}", _pred)


HEAD_LIES = {
    "kind-translator": (lambda s, d: F.set_meta(s, d, "kind", "translator"), "head"),
    "kind-missing": (lambda s, d: F.del_meta(s, d, "kind"), "head"),
    "kind-embeddings": (lambda s, d: F.set_meta(s, d, "kind", "embeddings"), ""),
    "estimator-bogus": (lambda s, d: F.set_meta(s, d, "estimator", "Bogus"), "estimator"),
    "estimator-missing": (lambda s, d: F.del_meta(s, d, "estimator"), "estimator"),
    "estimator-number": (lambda s, d: F.set_meta(s, d, "estimator", 7), "estimator"),
    "estimator-mlp": (lambda s, d: F.set_meta(s, d, "estimator", "MLPHead"), "MLPHead"),
    "estimator-translator": (lambda s, d: F.set_meta(s, d, "estimator", "Procrustes"), "Procrustes"),
    "params-list": (lambda s, d: F.set_meta(s, d, "params", []), "params"),
    "params-unknown": (_params("zzz", 1), "zzz"),
    "params-l2-string": (_params("l2", "x"), "l2"),
    "params-max_iter-negative": (_params("max_iter", -5), "max_iter"),
    "params-bad-json": (lambda s, d: F.set_meta(s, d, "params", "{", raw=True), "params"),
    "state-list": (lambda s, d: F.set_meta(s, d, "state", [1]), "state"),
    "state-n_iter-string": (_state("n_iter_", "x"), "n_iter_"),
    "state-n_iter-float": (_state("n_iter_", 1.5), "n_iter_"),
    "state-loss-nan": (_state("loss_", float("nan")), "loss_"),
    "state-loss-bool": (_state("loss_", True), "loss_"),
    "state-unknown": (_state("zzz_", 1), "zzz_"),
    "state-missing-n_iter": (lambda s, d: F.edit_json_meta(s, d, "state", lambda st: {k: v for k, v in st.items() if k != "n_iter_"}),
                             "n_iter_"),
    "weight-nan": (_tensor("weight_", lambda w: np.full_like(w, np.nan)), "weight_"),
    "weight-shape": (_tensor("weight_", lambda w: w[:, :7].copy()), "weight_"),
    "weight-1d": (_tensor("weight_", lambda w: w.reshape(-1)), "weight_"),
    "weight-missing": (_tensor("weight_", lambda w: None), "weight_"),
    "weight-int": (_tensor("weight_", lambda w: np.ones(w.shape, np.int64)), "weight_"),
    "weight-bool": (_tensor("weight_", lambda w: np.ones(w.shape, bool)), "weight_"),
    "bias-int": (_tensor("bias_", lambda w: np.zeros(w.shape, np.int32)), "bias_"),
    "classes-float": (_tensor("classes_", lambda c: c.astype(np.float32)), "classes_"),
    "classes-one": (_tensor("classes_", lambda c: c[:1].copy()), "classes"),
    "input_std-zero": (_tensor("input_std_", lambda s: np.zeros_like(s)), "input_std_"),
    "input_mean-inf": (_tensor("input_mean_", lambda s: np.full_like(s, np.inf)), "input_mean_"),
    "extra-tensor": (_tensor("zzz_", lambda _: np.zeros(3, np.float32)), "zzz_"),
    "class_names-short": (lambda s, d: F.set_meta(s, d, "class_names", ["a"]), "class_names"),
    "class_names-string": (lambda s, d: F.set_meta(s, d, "class_names", "abc"), "class_names"),
    "relative-string": (lambda s, d: F.set_meta(s, d, "relative", "yes"), "relative"),
    "relative-no-keys": (lambda s, d: F.set_meta(s, d, "relative", {"similarities": ["cosine"]}), "relative"),
}
#: integer or boolean tensors where relcli writes floats: read consistently (converted) or refused cleanly
TOLERATED = {"weight-int", "weight-bool", "bias-int", "matrix-int"}


def _expect(lie: str) -> str:
    return "ok-or-error" if lie in TOLERATED else "error"


for _lie, (_edit, _field) in HEAD_LIES.items():
    add(f"head-meta:stitch-apply--head:{_lie}", in_role("stitch-apply--head", lambda ctx, base, f, e=_edit: e(base, ctx.p("lie.safetensors")),
                                                        fmt="st", fragments=[_field] if _field else [], expect=_expect(_lie)))
for _lie in ("estimator-translator", "state-n_iter-string", "weight-nan", "weight-int", "classes-float", "params-list"):
    _edit, _field = HEAD_LIES[_lie]
    add(f"head-meta:stitch-run--head:{_lie}", in_role("stitch-run--head", lambda ctx, base, f, e=_edit: e(base, ctx.p("lie.safetensors")),
                                                      fmt="st", fragments=[_field], expect=_expect(_lie)))
    add(f"head-meta:info:{_lie}", in_role("info--map", lambda ctx, base, f, e=_edit: e(ctx.c.head, ctx.p("lie.safetensors")),
                                          fmt="st", fragments=[_field], expect=_expect(_lie)))


@case("head-meta:stitch-apply--head:mlp-hidden-mismatch")
def _(ctx):
    lie = _tensor("b1_", lambda b: np.zeros(b.shape[0] + 1, b.dtype))(ctx.c.mlp, ctx.p("lie.safetensors"))
    return Spec(["stitch", "apply", ctx.c.y_h5, "--head", lie, "-o", ctx.out / "p.h5"], names=[lie], fragments=["b1_"])


@case("head-meta:stitch-apply--head:relative-keys-unknown")
def _(ctx):
    """A relative-mode head naming anchors the given anchors file does not hold."""
    lie = F.edit_json_meta(ctx.c.relhead, ctx.p("lie.safetensors"), "relative",
                           lambda r: {**r, "anchor_keys": [f"zz{i}" for i in range(len(r["anchor_keys"]))]})
    return Spec(["stitch", "apply", ctx.c.y_h5, "--head", lie, "--anchors", ctx.c.ya_h5, "-o", ctx.out / "p.h5"],
                names=[ctx.c.ya_h5], fragments=["missing"])


MAP_LIES = {
    "kind-head": (lambda s, d: F.set_meta(s, d, "kind", "head"), "map"),
    "estimator-head": (lambda s, d: F.set_meta(s, d, "estimator", "LogisticHead"), "LogisticHead"),
    "estimator-bogus": (lambda s, d: F.set_meta(s, d, "estimator", "Umeyama"), "Umeyama"),
    "params-scaling-bogus": (_params("scaling", "bogus"), "scaling"),
    "params-rcond-2": (_params("rcond", 2), "rcond"),
    "params-string": (lambda s, d: F.set_meta(s, d, "params", "x"), "params"),
    "state-source_dim-string": (_state("source_dim_", "x"), "source_dim_"),
    "state-source_dim-mismatch": (_state("source_dim_", 7), "state"),
    "state-source_dim-bool": (_state("source_dim_", True), "source_dim_"),
    "state-target_dim-zero": (_state("target_dim_", 0), "target_dim_"),
    "matrix-nan": (_tensor("matrix_", lambda m: np.full_like(m, np.nan)), "matrix_"),
    "matrix-shape": (_tensor("matrix_", lambda m: m[:, :7].copy()), "matrix_"),
    "matrix-missing": (_tensor("matrix_", lambda m: None), "matrix_"),
    "matrix-int": (_tensor("matrix_", lambda m: np.ones(m.shape, np.int64)), "matrix_"),
    "matrix-huge": (_tensor("matrix_", lambda m: np.full_like(m, 3e38)), "matrix_"),
    "source_scale-zero": (_tensor("source_scale_", lambda s: np.zeros_like(s)), "source_scale_"),
    "target_mean-short": (_tensor("target_mean_", lambda s: s[:3].copy()), "target_mean_"),
}
for _lie, (_edit, _field) in MAP_LIES.items():
    add(f"map-meta:translate--map:{_lie}", in_role("translate--map", lambda ctx, base, f, e=_edit: e(base, ctx.p("lie.safetensors")),
                                                   fmt="st", fragments=[_field], expect=_expect(_lie)))
for _lie in ("estimator-head", "state-source_dim-mismatch", "matrix-nan", "matrix-int"):
    _edit, _field = MAP_LIES[_lie]
    add(f"map-meta:info:{_lie}", in_role("info--map", lambda ctx, base, f, e=_edit: e(base, ctx.p("lie.safetensors")), fmt="st",
                                         fragments=[_field], expect=_expect(_lie)))

#: a garbled space record (relcli.space, a map's relcli.spaces) is refused wherever it is read
SPACE_LIES = {
    "space-string": (lambda s, d: F.set_meta(s, d, "space", "mnist"), "relcli.space"),
    "space-no-fingerprint": (lambda s, d: F.set_meta(s, d, "space", {"name": "m", "dim": 8}), "relcli.space"),
    "space-dim-bool": (lambda s, d: F.set_meta(s, d, "space", {"name": "m", "fingerprint": "ab", "dim": True}), "relcli.space"),
    "space-bad-json": (lambda s, d: F.set_meta(s, d, "space", "{oops", raw=True), "space"),
}
for _lie, (_edit, _field) in SPACE_LIES.items():
    for _role in ("project--anchors", "translate--src-anchors", "translate--tgt-anchors", "invert--anchors"):
        for _fmt in ("h5", "st"):
            add(f"space-meta:{_role}:{_lie}:{_fmt}", in_role(_role, lambda ctx, base, f, e=_edit: e(base, ctx.p("lie" + EXT[f])),
                                                           fmt=_fmt, fragments=[_field]))
    add(f"space-meta:stitch-apply--head:{_lie}", in_role("stitch-apply--head", lambda ctx, base, f, e=_edit: e(base, ctx.p("lie.safetensors")),
                                                        fmt="st", fragments=[_field]))
for _lie, (_value, _field) in {"spaces-list": ([1], "relcli.spaces"), "spaces-source-string": ({"source": "x"}, "relcli.spaces.source"),
                               "spaces-target-no-dim": ({"target": {"name": "m", "fingerprint": "ab"}}, "relcli.spaces.target")}.items():
    add(f"space-meta:translate--map:{_lie}", in_role("translate--map", lambda ctx, base, f, v=_value: F.set_meta(
        base, ctx.p("lie.safetensors"), "spaces", v), fmt="st", fragments=[_field]))

REVERSE_LIES = {
    "reverse-missing": (lambda s, d: F.del_meta(s, d, "reverse"), "reverse"),
    "reverse-string": (lambda s, d: F.set_meta(s, d, "reverse", "x"), "reverse"),
    "reverse-estimator-bogus": (lambda s, d: F.edit_json_meta(s, d, "reverse", lambda r: {**r, "estimator": "Bogus"}), "Bogus"),
    "reverse-state-list": (lambda s, d: F.edit_json_meta(s, d, "reverse", lambda r: {**r, "state": [1]}), "state"),
    "reverse-tensor-missing": (_tensor("reverse.matrix_", lambda m: None), "matrix_"),
    "reverse-tensor-nan": (_tensor("reverse.matrix_", lambda m: np.full_like(m, np.nan)), "matrix_"),
}
for _lie, (_edit, _field) in REVERSE_LIES.items():
    def _rev(ctx, e=_edit, field=_field):
        lie = e(ctx.c.map, ctx.p("lie.safetensors"))
        return Spec(["translate", "--src", ctx.c.y_h5, "--map", lie, "--reverse", "-o", ctx.out / "x.h5"], names=[lie],
                    fragments=[field])
    add(f"map-meta:translate--reverse:{_lie}", _rev)

IRP_LIES = {
    "target_norm-negative": (_state("target_norm_", -1.0), "target_norm_"),
    "target_norm-huge": (_state("target_norm_", 1e300), "target_norm_"),
    "map-nan": (_tensor("map_", lambda m: np.full_like(m, np.nan)), "map_"),
    "ranks-string": (_state("ranks_", "x"), "ranks_"),
    "rcond-inf": (_state("rcond_", float("inf")), "rcond_"),
}
for _lie, (_edit, _field) in IRP_LIES.items():
    def _irp(ctx, e=_edit, field=_field):
        lie = e(ctx.c.map_irp, ctx.p("lie.safetensors"))
        return Spec(["translate", "--src", ctx.c.x_h5, "--map", lie, "-o", ctx.out / "y.h5"], names=[lie], fragments=[field])
    add(f"map-meta:translate--map-irp:{_lie}", _irp)


@case("map-meta:translate--map:relabelled-head-as-map")
def _(ctx):
    lie = F.set_meta(ctx.c.head, ctx.p("lie.safetensors"), "kind", "translator")
    return Spec(["translate", "--src", ctx.c.y_h5, "--map", lie, "-o", ctx.out / "y.h5"], names=[lie])


@case("map-meta:stitch-apply--head:map-relabelled-as-head")
def _(ctx):
    """The issue's example: a saved map relabelled as a head."""
    lie = F.set_meta(ctx.c.map, ctx.p("lie.safetensors"), "kind", "head")
    return Spec(["stitch", "apply", ctx.c.y_h5, "--head", lie, "-o", ctx.out / "p.h5"], names=[lie])


@pytest.mark.parametrize("case,mode", CATALOGUE.params())
def test_hostile(case, mode, corpus, case_dir):
    run_case(case, mode, corpus, case_dir)
