"""The hostile-input catalogue's shared part (issue 12, item 1): the case registry, every file role of
every subcommand, the builders that put a hostile file into a role, and which variants are left to the
full run (``exhaustive``).

The catalogue is one table of (input builder, command, exit code, message fragments), run through the
CLI and, where the same call exists, the Python API; it is split by family over the ``test_*.py``
files of this folder, each registering its cases in its own ``Catalogue``. Every case asserts the
contract of ``conftest.run_case``.
"""

from __future__ import annotations

from pathlib import Path

from . import _files as F
from .conftest import Case, Ctx, Spec, cases_params

#: every case of every family, by id (the size check counts them).
ALL: dict[str, Case] = {}


class Catalogue:
    """The cases of one family file: ``add``/``case`` register them, ``params`` makes the pytest params."""

    def __init__(self) -> None:
        self.cases: list[Case] = []

    def case(self, id: str, api: bool = True):
        def register(make):
            self.add(id, make, api)
            return make
        return register

    def add(self, id: str, make, api: bool = True) -> None:
        self.cases.append(Case(id, make, api))
        ALL[id] = self.cases[-1]

    def params(self):
        return cases_params(self.cases, exhaustive)


EXT = {"h5": ".h5", "st": ".safetensors"}

# ---------------------------------------------------------------------------------------------
# every file role of every subcommand: (pristine base, command line with the role's file f)
# ---------------------------------------------------------------------------------------------
ROLES = {
    "anchors": ("x", lambda c, f, o: ["anchors", f, "-n", 8, "-o", o / "a.h5"]),
    "anchors--like": ("xa", lambda c, f, o: ["anchors", c.y_h5, "--like", f, "-o", o / "a.safetensors"]),
    "project": ("x", lambda c, f, o: ["project", f, "--anchors", c.xa_h5, "-o", o / "r.h5"]),
    "project--anchors": ("xa", lambda c, f, o: ["project", c.x_h5, "--anchors", f, "-o", o / "r.safetensors"]),
    "invert": ("rel", lambda c, f, o: ["invert", f, "--anchors", c.ya_h5, "--rcond", "0.01", "-o", o / "y.h5"]),
    "invert--anchors": ("ya", lambda c, f, o: ["invert", c.rel_h5, "--anchors", f, "--rcond", "0.01", "-o", o / "y.safetensors"]),
    "translate--src": ("x", lambda c, f, o: ["translate", "--src", f, "--tgt-anchors", c.ya_h5, "--method", "procrustes",
                                             "-o", o / "y.h5"]),
    "translate--tgt-anchors": ("ya", lambda c, f, o: ["translate", "--src", c.x_h5, "--tgt-anchors", f, "--method", "irp",
                                                      "--rcond", "0.01", "-o", o / "y.safetensors"]),
    "translate--src-anchors": ("xa", lambda c, f, o: ["translate", "--src", c.x_h5, "--src-anchors", f, "--tgt-anchors",
                                                      c.ya_h5, "--method", "procrustes", "-o", o / "y.h5"]),
    "translate--map": ("map", lambda c, f, o: ["translate", "--src", c.x_h5, "--map", f, "-o", o / "y.h5"]),
    "stitch-fit": ("y", lambda c, f, o: ["stitch", "fit", f, "--max-iter", 5, "-o", o / "h.safetensors"]),
    "stitch-fit--anchors": ("ya", lambda c, f, o: ["stitch", "fit", c.y_h5, "--anchors", f, "--max-iter", 5,
                                                   "-o", o / "h.safetensors"]),
    "stitch-apply": ("y", lambda c, f, o: ["stitch", "apply", f, "--head", c.head, "-o", o / "p.h5"]),
    "stitch-apply--head": ("head", lambda c, f, o: ["stitch", "apply", c.y_h5, "--head", f, "-o", o / "p.safetensors"]),
    "stitch-apply--anchors": ("ya", lambda c, f, o: ["stitch", "apply", c.y_h5, "--head", c.relhead, "--anchors", f,
                                                     "-o", o / "p.h5"]),
    "stitch-run--src": ("x", lambda c, f, o: ["stitch", "run", "--src", f, "--tgt-anchors", c.ya_h5, "--head", c.head,
                                              "--method", "procrustes", "-o", o / "p.h5"]),
    "stitch-run--tgt-anchors": ("ya", lambda c, f, o: ["stitch", "run", "--src", c.x_h5, "--tgt-anchors", f, "--head",
                                                       c.head, "--method", "procrustes", "-o", o / "p.safetensors"]),
    "stitch-run--head": ("head", lambda c, f, o: ["stitch", "run", "--src", c.x_h5, "--tgt-anchors", c.ya_h5, "--head", f,
                                                  "--method", "procrustes", "-o", o / "p.h5"]),
    "evaluate": ("y", lambda c, f, o: ["evaluate", f, "--reference", c.y_h5, "--metrics", "cosine,cka"]),
    "evaluate--reference": ("y", lambda c, f, o: ["evaluate", c.y_st, "--reference", f, "--metrics", "cosine,cka"]),
    "evaluate--ids": ("xa", lambda c, f, o: ["evaluate", c.y_h5, "--reference", c.y_st, "--ids", f, "--metrics", "cosine"]),
    "info": ("x", lambda c, f, o: ["info", f]),
    "info--map": ("map", lambda c, f, o: ["info", f, "--format", "json"]),
}
ESTIMATOR_BASES = ("head", "map", "map_irp", "mlp", "relhead")


def base_path(c, base: str, fmt: str) -> Path:
    return getattr(c, base) if base in ESTIMATOR_BASES else c.f(base, fmt)


def role_formats(role: str) -> tuple[str, ...]:
    return ("st",) if ROLES[role][0] in ESTIMATOR_BASES else ("h5", "st")


def in_role(role: str, build, code=1, fragments=(), ids=(), fmt="h5", expect="error", names=None):
    """A Spec maker: ``build(ctx, base_path, fmt) -> hostile file`` put into ``role``'s command line."""
    base, line = ROLES[role]

    def make(ctx: Ctx) -> Spec:
        bad = build(ctx, base_path(ctx.c, base, fmt), fmt)
        ids_ = ids(ctx) if callable(ids) else ids
        return Spec(line(ctx.c, bad, ctx.out), code=code, names=[bad] if names is None else names(ctx, bad),
                    fragments=list(fragments), ids=list(ids_), expect=expect)
    return make



def _replace(name, data, **kw):
    def edit(f):
        del f[name]
        f.create_dataset(name, data=data, **kw)
    return edit


def _attr(key, value):
    def edit(f):
        f.attrs["relcli." + key] = value
    return edit



GOOD_STATS = {"n_rows": 40, "mean_norm": 2.5, "std_norm": 0.5}



def _state(key, value):
    return lambda s, d: F.edit_json_meta(s, d, "state", lambda st: {**st, key: value})


def _params(key, value):
    return lambda s, d: F.edit_json_meta(s, d, "params", lambda p: {**p, key: value})


def _tensor(name, change):
    def edit(s, d):
        tensors, metadata = F.st_tensors(s)
        changed = change(tensors.get(name))
        if changed is None:
            tensors.pop(name, None)
        else:
            tensors[name] = changed
        return F.st_write(d, tensors, metadata)
    return edit




CORRUPT_DEFAULT = {("truncated", "h5"), ("flipped", "st"), ("zero-length", "st"), ("garbage", "h5"), ("header-only", "st")}
ROWS_DEFAULT = {("nan", "h5"), ("inf", "st"), ("zero", "h5"), ("overflow", "st"), ("underflow", "h5")}
API_DEFAULT = {
    "relative-meta": {"similarities-bogus", "similarities-nested", "anchor_ids-missing", "anchor_ids-duplicate", "center-string"},
    "head-meta": {"estimator-translator", "weight-nan", "weight-int", "state-n_iter-string", "params-list", "kind-translator"},
    "map-meta": {"kind-head", "matrix-nan", "state-source_dim-string", "reverse-missing", "target_norm-negative", "matrix-huge"},
}


def exhaustive(case_id: str, mode: str) -> bool:
    """Which variants are redundant enough to leave to the full run (RELCLI_HOSTILE_FULL=1): the same
    hostile input in the other format, or through the API when it reaches the same reader."""
    family, role, *rest = case_id.split(":")
    if family == "corrupt":
        what, fmt = (rest + [None])[:2]
        if mode == "api":
            return what not in ("truncated", "missing") or (fmt == "st" and role_formats(role) != ("st",))
        return fmt is not None and role_formats(role) != ("st",) and (what, fmt) not in CORRUPT_DEFAULT
    if family in ("st-header", "st-ids", "h5-layout", "wrong-kind", "predictions-meta"):
        return mode == "api"
    if family == "anchors-meta":
        fmt = rest[-1]
        if mode == "api":
            return not (role == "translate--tgt-anchors" and fmt == "st")
        return role == "translate--tgt-anchors" and fmt == "h5"
    if family in API_DEFAULT:
        lie = rest[0]
        return mode == "api" and (lie not in API_DEFAULT[family] or rest[-1] == "st")
    if family == "bad-rows" and len(rest) == 2:
        problem, fmt = rest
        if mode == "api":
            return (problem, fmt) != ("nan", "h5")
        return (problem, fmt) not in ROWS_DEFAULT
    if family == "empty-input":
        return (mode == "api") == (rest[0] == "h5")
    return False

