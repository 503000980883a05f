"""The hostile-input catalogue: bad options, through the CLI and the Python API, and the API's own hostile
values (issue 12).
"""

from __future__ import annotations

import pytest

from ._catalogue import Catalogue, base_path, ESTIMATOR_BASES, ROLES
from .conftest import Spec, run_case

CATALOGUE = Catalogue()
case, add = CATALOGUE.case, CATALOGUE.add


# ---------------------------------------------------------------------------------------------
# 8. bad options (parser errors are CLI-only; relcli's own checks run through the API too)
# ---------------------------------------------------------------------------------------------
def opt_case(id: str, role: str, extra: list, fragments=(), code=2, api=True, names=None, expect="error"):
    base, line = ROLES[role]

    def make(ctx):
        f = base_path(ctx.c, base, "h5" if base not in ESTIMATOR_BASES else "st")
        args = [a(ctx) if callable(a) else a for a in extra]
        return Spec([*line(ctx.c, f, ctx.out), *args], code=code, fragments=list(fragments),
                    names=[] if names is None else names(ctx, f), expect=expect)
    add(f"option:{role}:{id}", make, api)


opt_case("n-zero", "anchors", ["-n", 0], ["-n"], api=False)
opt_case("n-text", "anchors", ["-n", "many"], ["-n"], api=False)
opt_case("n-huge", "anchors", ["-n", 10**20], ["-n"], code=1, names=lambda ctx, f: [f])
opt_case("strategy-bogus", "anchors", ["--strategy", "bogus"], ["bogus"])
opt_case("seed-negative", "anchors", ["--seed", -1], ["--seed"])
opt_case("seed-2^64", "translate--src", ["--seed", 2**64], ["--seed"])
opt_case("seed-2^63", "anchors", ["--seed", 2**63], ["--seed"])
opt_case("seed-text", "anchors", ["--seed", "abc"], ["--seed"], api=False)
opt_case("seed-float", "invert", ["--seed", "1.5"], ["--seed"], api=False)
opt_case("batch-size-zero", "project", ["--batch-size", 0], ["--batch-size"])
opt_case("batch-size-negative", "stitch-apply", ["--batch-size", -3], ["--batch-size"])
opt_case("batch-size-text", "evaluate", ["--batch-size", "lots"], ["--batch-size"], api=False)
opt_case("rcond-above-one", "invert", ["--rcond", "1.5"], ["--rcond"], api=False)
opt_case("rcond-nan", "translate--src", ["--method", "linear", "--rcond", "nan"], ["--rcond"], api=False)
opt_case("rcond-inf", "translate--src", ["--method", "linear", "--rcond", "inf"], ["--rcond"], api=False)
opt_case("rcond-negative", "stitch-run--src", ["--rcond", "-0.1"], ["--rcond"], api=False)
opt_case("rcond-text", "invert", ["--rcond", "tiny"], ["--rcond"], api=False)
opt_case("prune-threshold-2", "invert", ["--prune-threshold", 2], ["--prune-threshold"], api=False)
opt_case("subspaces-zero", "invert", ["--subspaces", 0], ["--subspaces"], api=False)
opt_case("subspaces-past-k", "invert", ["--subspaces", 10**9], ["subspaces=1000000000", "target anchors"])
opt_case("target-norm-negative", "invert", ["--target-norm", -1], ["--target-norm"], api=False)
opt_case("target-norm-zero", "invert", ["--target-norm", 0], ["--target-norm"])
opt_case("target-norm-nan", "invert", ["--target-norm", "nan"], ["--target-norm"])
opt_case("target-norm-inf", "invert", ["--target-norm", "inf"], ["--target-norm"])
opt_case("min-score-text", "translate--src", ["--min-score", "high"], ["--min-score"], api=False)
opt_case("min-score-nan", "translate--src", ["--min-score", "nan"], ["--min-score"])
opt_case("device-tpu", "project", ["--device", "tpu"], ["tpu"])
opt_case("device-cuda-99", "project", ["--device", "cuda:99"], ["cuda:99"])
opt_case("device-empty", "translate--src", ["--device", "cuda:x"], ["cuda:x"])
opt_case("dtype-float8", "project", ["--dtype", "float8"], ["float8"])
opt_case("dtype-bfloat16-into-h5", "project", ["--dtype", "bfloat16"], ["bfloat16"])
opt_case("key-missing", "project", ["--key", "nope"], ["nope"], names=lambda ctx, f: [f])
opt_case("key-is-ids", "project", ["--key", "ids"], ["ids"], code=(1, 2), names=lambda ctx, f: [f])
opt_case("similarity-bogus", "project", ["-s", "bogus"], ["bogus"])
opt_case("similarity-empty", "project", ["-s", ",,"], [], expect="ok-or-error")
opt_case("aggregate-bogus", "project", ["-s", "cosine,l1", "--aggregate", "mean"], ["mean"])
opt_case("method-bogus", "translate--src", ["--method", "umeyama"], ["umeyama"])
opt_case("scaling-bogus", "translate--src", ["--scaling", "bogus"], ["bogus"])
opt_case("center-with-procrustes", "translate--src", ["--center"], ["--center"])
opt_case("reverse-without-map", "translate--src", ["--reverse"], ["--reverse"])
opt_case("map-with-method", "translate--map", ["--method", "linear"], ["--map"])
opt_case("map-with-min-score", "translate--map", ["--min-score", "0.5"], ["--min-score"])
opt_case("map-and-tgt-anchors", "translate--map", ["--tgt-anchors", lambda ctx: ctx.c.ya_h5], ["--map"])
opt_case("like-and-n", "anchors--like", ["-n", 4], ["-n"])
opt_case("target-without-pairs", "anchors", ["--target", lambda ctx: ctx.c.y_h5], ["--target"])
opt_case("head-svm", "stitch-fit", ["--head", "svm"], ["svm"])
opt_case("l2-negative", "stitch-fit", ["--l2", -1], ["--l2"], api=False)
opt_case("l2-nan", "stitch-fit", ["--l2", "nan"], ["l2"])
opt_case("max-iter-zero", "stitch-fit", ["--max-iter", 0], ["max-iter"], api=False)
opt_case("hidden-zero", "stitch-fit", ["--head", "mlp", "--hidden", 0], ["hidden"], api=False)
opt_case("hidden-past-int64", "stitch-fit", ["--head", "mlp", "--hidden", 10**20], ["hidden"])
opt_case("metrics-bogus", "evaluate", ["--metrics", "cosine,bogus"], ["bogus"])
opt_case("metrics-empty", "evaluate", ["--metrics", ","], [], expect="ok-or-error")
opt_case("gate-no-value", "evaluate", ["--min", "cosine"], ["--min"], api=False)
opt_case("gate-nan", "evaluate", ["--min", "cosine=nan"], ["--min"])
opt_case("gate-unknown", "evaluate", ["--max", "bogus=1"], ["bogus"])
opt_case("query-sample-zero", "evaluate", ["--query-sample", 0], ["--query-sample"], api=False)
opt_case("query-batch-zero", "evaluate", ["--query-batch", 0], ["--query-batch"], api=False)
opt_case("format-xml", "evaluate", ["--format", "xml"], ["xml"], api=False)
opt_case("info-format-xml", "info", ["--format", "xml"], ["xml"], api=False)
opt_case("unknown-option", "project", ["--bogus"], ["--bogus"], api=False)
opt_case("extra-argument", "project", ["surplus.h5"], ["surplus.h5"], api=False)


@case("option:project:missing-output", api=False)
def _(ctx):
    return Spec(["project", ctx.c.x_h5, "--anchors", ctx.c.xa_h5], code=2, fragments=["-o"])


@case("option:project:missing-everything", api=False)
def _(ctx):
    return Spec(["project"], code=2, fragments=["input"])


@case("option:relcli:unknown-command", api=False)
def _(ctx):
    return Spec(["projekt", ctx.c.x_h5], code=2, fragments=["projekt"])


@case("option:stitch:unknown-subcommand", api=False)
def _(ctx):
    return Spec(["stitch", "fitt", ctx.c.y_h5], code=2, fragments=["fitt"])


@case("option:project:input-starts-with-dash", api=False)
def _(ctx):
    return Spec(["project", "-x.h5", "--anchors", ctx.c.xa_h5, "-o", ctx.out / "r.h5"], code=2, fragments=["-x"])



# ---------------------------------------------------------------------------------------------
# the Python API's own hostile values (the CLI's parser makes these impossible there)
# ---------------------------------------------------------------------------------------------
API_ONLY = {
    "anchors-n-true": lambda c, o: ("anchors", [c.x_h5], dict(output=o / "a.h5", n_anchors=True)),
    "anchors-n-float": lambda c, o: ("anchors", [c.x_h5], dict(output=o / "a.h5", n_anchors=2.5)),
    "anchors-seed-float": lambda c, o: ("anchors", [c.x_h5], dict(output=o / "a.h5", n_anchors=4, seed=1.5)),
    "anchors-batch-size-float": lambda c, o: ("anchors", [c.x_h5], dict(output=o / "a.h5", n_anchors=4, batch_size=2.5)),
    "project-similarity-bogus": lambda c, o: ("project", [c.x_h5], dict(anchors=c.xa_h5, output=o / "r.h5", similarity="bogus")),
    "project-aggregate-bogus": lambda c, o: ("project", [c.x_h5], dict(anchors=c.xa_h5, output=o / "r.h5",
                                                                       similarity=["cosine", "l1"], aggregate="mean")),
    "invert-rcond-2": lambda c, o: ("invert", [c.rel_h5], dict(anchors=c.ya_h5, output=o / "y.h5", rcond=2.0)),
    "invert-rcond-text": lambda c, o: ("invert", [c.rel_h5], dict(anchors=c.ya_h5, output=o / "y.h5", rcond="tiny")),
    "invert-prune-2": lambda c, o: ("invert", [c.rel_h5], dict(anchors=c.ya_h5, output=o / "y.h5", prune_threshold=2.0)),
    "invert-subspaces-0": lambda c, o: ("invert", [c.rel_h5], dict(anchors=c.ya_h5, output=o / "y.h5", subspaces=0)),
    "invert-target-norm-negative": lambda c, o: ("invert", [c.rel_h5], dict(anchors=c.ya_h5, output=o / "y.h5", target_norm=-1.0)),
    "translate-rcond-nan": lambda c, o: ("translate", [c.x_h5], dict(tgt_anchors=c.ya_h5, output=o / "y.h5", method="linear",
                                                                     rcond=float("nan"))),
    "translate-seed-2^64": lambda c, o: ("translate", [c.x_h5], dict(tgt_anchors=c.ya_h5, output=o / "y.h5", seed=2**64)),
    "translate-seed-negative": lambda c, o: ("translate", [c.x_h5], dict(tgt_anchors=c.ya_h5, output=o / "y.h5", seed=-1)),
    "translate-batch-size-zero": lambda c, o: ("translate", [c.x_h5], dict(tgt_anchors=c.ya_h5, output=o / "y.h5", batch_size=0)),
    "translate-min-score-text": lambda c, o: ("translate", [c.x_h5], dict(tgt_anchors=c.ya_h5, output=o / "y.h5", min_score="x")),
    "stitch-fit-l2-negative": lambda c, o: ("stitch_fit", [c.y_h5], dict(output=o / "h.safetensors", l2=-1.0)),
    "stitch-fit-max-iter-zero": lambda c, o: ("stitch_fit", [c.y_h5], dict(output=o / "h.safetensors", max_iter=0)),
    "stitch-fit-hidden-zero": lambda c, o: ("stitch_fit", [c.y_h5], dict(output=o / "h.safetensors", head="mlp", hidden=0)),
    "stitch-fit-epochs-float": lambda c, o: ("stitch_fit", [c.y_h5], dict(output=o / "h.safetensors", head="mlp", epochs=1.5)),
    "stitch-fit-head-bogus": lambda c, o: ("stitch_fit", [c.y_h5], dict(output=o / "h.safetensors", head="svm")),
    "stitch-apply-batch-size-negative": lambda c, o: ("stitch_apply", [c.y_h5], dict(head=c.head, output=o / "p.h5", batch_size=-1)),
    "evaluate-gate-text": lambda c, o: ("evaluate", [c.y_h5], dict(reference=c.y_st, min={"cosine": "high"})),
    "evaluate-gate-not-dict": lambda c, o: ("evaluate", [c.y_h5], dict(reference=c.y_st, min="cosine=0.5")),
    "evaluate-gate-bool": lambda c, o: ("evaluate", [c.y_h5], dict(reference=c.y_st, max={"mse": True})),
    "evaluate-query-sample-zero": lambda c, o: ("evaluate", [c.y_h5], dict(reference=c.y_st, query_sample=0)),
    "evaluate-query-batch-zero": lambda c, o: ("evaluate", [c.y_h5], dict(reference=c.y_st, query_batch=0)),
    "evaluate-metrics-bogus": lambda c, o: ("evaluate", [c.y_h5], dict(reference=c.y_st, metrics=["cosine", "bogus"])),
    "embed-batch-size-zero": lambda c, o: ("embed", [c.items], dict(encoder=f"torchscript:{c.enc}", output=o / "e.h5", batch_size=0)),
    "embed-max-length-negative": lambda c, o: ("embed", [c.items], dict(encoder=f"torchscript:{c.enc}", output=o / "e.h5",
                                                                        max_length=-1)),
    "embed-dtype-bogus": lambda c, o: ("embed", [c.items], dict(encoder=f"torchscript:{c.enc}", output=o / "e.h5", dtype="float8")),
    "embed-format-bogus": lambda c, o: ("embed", [c.items], dict(encoder=f"torchscript:{c.enc}", output=o / "e.h5", format="xml")),
    "anchors-strategy-bogus": lambda c, o: ("anchors", [c.x_h5], dict(output=o / "a.h5", n_anchors=4, strategy="bogus")),
    "anchors-dtype-bogus": lambda c, o: ("anchors", [c.x_h5], dict(output=o / "a.h5", n_anchors=4, dtype="float128")),
}


@pytest.mark.parametrize("name", sorted(API_ONLY))
def test_api_only_hostile_values(corpus, tmp_path, name):
    """Values only a Python caller can pass: a UsageError (exit code 2), one line, no output."""
    from relcli import api
    from relcli.errors import RelcliError

    from .conftest import check_message, snapshot, temps_in

    out = tmp_path / "out"
    out.mkdir()
    function, args, kwargs = API_ONLY[name](corpus, out)
    before = snapshot(corpus.folder)
    try:
        getattr(api, function)(*args, **kwargs)
    except RelcliError as exc:
        assert exc.exit_code == 2, f"exit_code {exc.exit_code}: {exc}"
        assert "\n" not in str(exc), str(exc)
        check_message(str(exc))
    except BaseException as exc:  # noqa: BLE001
        raise AssertionError(f"{type(exc).__name__}: {exc}") from exc
    else:
        raise AssertionError("accepted")
    assert list(out.iterdir()) == [] and not temps_in(out)
    assert snapshot(corpus.folder) == before


@pytest.mark.parametrize("case,mode", CATALOGUE.params())
def test_hostile(case, mode, corpus, case_dir):
    run_case(case, mode, corpus, case_dir)
