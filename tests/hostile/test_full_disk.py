"""Full disk and file-size limits (issue 12, item 2), for every writing command and both formats.

Every command runs as its own process (the fork server ``_driver.py``: one import of torch, one fork
per run), because what used to go wrong here was a crash: every HDF5 writer segfaulted when a write
failed. Conditions:

- ``RLIMIT_FSIZE`` early (a few hundred bytes: the first writes fail) and late (one byte below the
  size of the output a run without the limit writes: the last write fails, where libhdf5 closes);
- a tiny tmpfs (``mount -t tmpfs -o size=256k``, root only; skipped with the reason elsewhere),
  full (no byte free) and almost full (a page short of the output);
- ``translate --save-map m.safetensors -o y.EXT`` with one of the two on the full filesystem and the
  other on a normal one: both files or neither.

Each failing run must: exit 1 (not a signal: no negative return code, no 139), print exactly one
line ``Error: ... cannot write ...`` naming the output that could not be written, print nothing on
stdout, and leave its folders exactly as they were (no output, no ``*.relcli-tmp``, nothing else).
One faithful run through ``python -m relcli`` with ``preexec_fn`` setting the limit checks the
console entry point itself.

By default only ``embed``, ``translate`` and ``translate --save-map`` (both formats, every
condition) and the two-output cross runs take part; the other commands are marked slow and run with
RELCLI_HOSTILE_FULL=1 or ``-m slow``. The driver makes only the runs of the selected tests.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import FORBIDDEN, ROOT, TEMP_SUFFIX

EXT = {"h5": ".h5", "st": ".safetensors"}


def command_lines(c, out: Path, fmt: str) -> dict[str, tuple[list, list[Path]]]:
    """name -> (arguments, outputs) of every writing command, writing into ``out``."""
    e = EXT[fmt]
    lines = {
        "embed": (["embed", c.items, "--encoder", f"torchscript:{c.enc}", "-o", out / f"e{e}"], [out / f"e{e}"]),
        "anchors": (["anchors", c.x_h5, "-n", 16, "-o", out / f"a{e}"], [out / f"a{e}"]),
        "anchors-like": (["anchors", c.y_st, "--like", c.xa_h5, "-o", out / f"ya{e}"], [out / f"ya{e}"]),
        "project": (["project", c.x_st, "--anchors", c.xa_h5, "-o", out / f"r{e}"], [out / f"r{e}"]),
        "invert": (["invert", c.rel_h5, "--anchors", c.ya_st, "--rcond", "0.01", "-o", out / f"i{e}"], [out / f"i{e}"]),
        "translate": (["translate", "--src", c.x_h5, "--tgt-anchors", c.ya_h5, "--method", "procrustes", "-o", out / f"t{e}"],
                      [out / f"t{e}"]),
        "translate-map": (["translate", "--src", c.x_h5, "--map", c.map, "-o", out / f"tm{e}"], [out / f"tm{e}"]),
        "translate-save-map": (["translate", "--src", c.x_h5, "--tgt-anchors", c.ya_h5, "--method", "linear", "--save-map",
                                out / "m.safetensors", "-o", out / f"y{e}"], [out / f"y{e}", out / "m.safetensors"]),
        "stitch-apply": (["stitch", "apply", c.y_h5, "--head", c.head, "-o", out / f"p{e}"], [out / f"p{e}"]),
        "stitch-run": (["stitch", "run", "--src", c.x_h5, "--tgt-anchors", c.ya_h5, "--head", c.head, "--method",
                        "procrustes", "-o", out / f"pr{e}"], [out / f"pr{e}"]),
    }
    if fmt == "st":
        lines["stitch-fit"] = (["stitch", "fit", c.y_h5, "--max-iter", 5, "-o", out / "h.safetensors"], [out / "h.safetensors"])
    return lines


def run_driver(jobs: list[dict], folder: Path) -> dict[str, dict]:
    spec = folder / "jobs.json"
    spec.write_text(json.dumps(jobs, default=str))
    results = folder / "results.jsonl"
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    env.pop("RELCLI_DEVICE", None)
    proc = subprocess.run([sys.executable, "-m", "tests.hostile._driver", str(spec), str(results)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"the driver failed ({proc.returncode}): {proc.stderr[-3000:]}"
    return {r["id"]: r for r in map(json.loads, results.read_text().splitlines())}


def check_failure(record: dict, outputs: list[Path], watched: dict[str, list[str]]) -> None:
    """Exit 1, one clean 'cannot write' line naming an output, nothing printed on stdout, folders unchanged."""
    rc, stderr = record["rc"], record["stderr"]
    detail = f"rc {rc}, limits {record.get('limits')}\nstderr: {stderr!r}\nstdout: {record.get('stdout', '')[:300]!r}"
    assert rc is not None and rc >= 0, f"killed by signal {-rc if rc else rc}; {detail}"
    assert rc == 1, f"expected exit 1; {detail}"
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), f"expected one 'Error:' line; {detail}"
    line = lines[0]
    assert "cannot write" in line, f"no 'cannot write'; {detail}"
    assert any(str(o) in line for o in outputs), f"names none of {[str(o) for o in outputs]}; {detail}"
    assert not FORBIDDEN.findall(line), f"forbidden words {FORBIDDEN.findall(line)}; {detail}"
    assert record["stdout"] == "", detail
    for folder, before in watched.items():
        after = record["listing"][folder]
        assert after == before, f"{folder} changed: {before} -> {after}; {detail}"
        assert not any(name.endswith(TEMP_SUFFIX) for name in after or []), detail


# ---------------------------------------------------------------------------------------------
# RLIMIT_FSIZE: early and late, every command, both formats
# ---------------------------------------------------------------------------------------------
#: commands whose every condition runs by default (both formats); the others are exhaustive variants,
#: marked slow (RELCLI_HOSTILE_FULL=1 or ``-m slow`` runs them). Each run is a process of its own, so
#: the plans below make only the runs of the tests selected.
DEFAULT_COMMANDS = ("embed", "translate", "translate-save-map")


def job_params(ids: list[str]) -> list:
    return [pytest.param(job, id=job, marks=[] if job.split(":")[0] in DEFAULT_COMMANDS + ("cross",) else [pytest.mark.slow])
            for job in ids]


def selected(request, test_name: str) -> set[tuple[str, str]]:
    """(command, format) of every selected test ``test_name``: the runs a module fixture must make."""
    wanted = set()
    for item in request.session.items:
        if getattr(item, "originalname", None) == test_name and hasattr(item, "callspec"):
            name, fmt, _ = item.callspec.params["job"].split(":")
            wanted.add((name, fmt))
    return wanted


def fsize_plan(corpus, base: Path, wanted: set[tuple[str, str]] | None = None):
    jobs, expectations = [], {}
    for fmt in ("h5", "st"):
        for name in command_lines(corpus, base, fmt):
            if wanted is not None and (name, fmt) not in wanted:
                continue
            folders = {}
            for condition in ("control", "early", "late"):
                out = base / f"{name}-{fmt}-{condition}"
                out.mkdir(parents=True)
                folders[condition] = out
            args, outputs = command_lines(corpus, folders["control"], fmt)[name]
            control = f"{name}:{fmt}:control"
            jobs.append({"id": control, "args": [str(a) for a in args], "measure": [str(o) for o in outputs],
                         "watch": [str(folders["control"])]})
            expectations[control] = ("ok", outputs, folders["control"])
            args, outputs = command_lines(corpus, folders["early"], fmt)[name]
            jobs.append({"id": f"{name}:{fmt}:early", "args": [str(a) for a in args], "rlimits": {"RLIMIT_FSIZE": 600},
                         "watch": [str(folders["early"])]})
            expectations[f"{name}:{fmt}:early"] = ("fail", outputs, folders["early"])
            args, outputs = command_lines(corpus, folders["late"], fmt)[name]
            control_outputs = command_lines(corpus, folders["control"], fmt)[name][1]
            variants = {"late": max} if len(outputs) == 1 else {"late": max, "late-second": min}
            for label, pick in variants.items():
                out = folders["late"] if label == "late" else base / f"{name}-{fmt}-{label}"
                out.mkdir(exist_ok=True)
                args, outputs = command_lines(corpus, out, fmt)[name]
                jobs.append({"id": f"{name}:{fmt}:{label}", "args": [str(a) for a in args], "watch": [str(out)],
                             "fsize_from": {"job": control, "paths": [str(o) for o in control_outputs], "delta": -1,
                                            "pick": pick.__name__}})
                expectations[f"{name}:{fmt}:{label}"] = ("fail", outputs, out)
    return jobs, expectations


@pytest.fixture(scope="module")
def fsize_results(corpus, tmp_path_factory, request):
    base = tmp_path_factory.mktemp("fsize")
    jobs, expectations = fsize_plan(corpus, base / "runs", selected(request, "test_file_size_limit"))
    return run_driver(jobs, base), expectations


FSIZE_IDS = [f"{name}:{fmt}:{cond}" for fmt in ("h5", "st")
             for name in ("embed", "anchors", "anchors-like", "project", "invert", "translate", "translate-map",
                          "translate-save-map", "stitch-apply", "stitch-run", *(["stitch-fit"] if fmt == "st" else []))
             for cond in ("early", "late", *(["late-second"] if name == "translate-save-map" else []))]


@pytest.mark.parametrize("job", job_params(FSIZE_IDS))
def test_file_size_limit(fsize_results, job):
    results, expectations = fsize_results
    name, fmt, _ = job.split(":")
    control = results[f"{name}:{fmt}:control"]
    assert control["rc"] == 0, f"the run without a limit failed: {control['stderr']}"
    kind, outputs, folder = expectations[job]
    check_failure(results[job], outputs, {str(folder): []})


def test_file_size_limit_through_python_m_relcli(corpus, tmp_path):
    """The console entry point itself, under RLIMIT_FSIZE set by preexec_fn: both outputs or neither."""
    limit = 4096

    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    out = tmp_path / "out"
    out.mkdir()
    y, m = out / "y.h5", out / "m.safetensors"
    proc = subprocess.run([sys.executable, "-m", "relcli", "translate", "--src", str(corpus.x_h5), "--tgt-anchors",
                           str(corpus.ya_h5), "--method", "linear", "--save-map", str(m), "-o", str(y)],
                          preexec_fn=limited, capture_output=True, text=True, cwd=ROOT, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    record = {"rc": proc.returncode, "stderr": proc.stderr, "stdout": proc.stdout,
              "listing": {str(out): sorted(p.name for p in out.iterdir())}}
    check_failure(record, [y, m], {str(out): []})


# ---------------------------------------------------------------------------------------------
# a tiny filesystem: full, and almost full
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_fs(tmp_path_factory):
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root on Linux")
    mount = tmp_path_factory.mktemp("tinyfs")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def tmpfs_plan(corpus, mount: Path, disk: Path, wanted: set[tuple[str, str]] | None = None):
    filler = mount / "filler"
    jobs, expectations = [], {}
    for fmt in ("h5", "st"):
        for name in command_lines(corpus, disk, fmt):
            if wanted is not None and (name, fmt) not in wanted:
                continue
            control_dir = disk / f"{name}-{fmt}-control"
            control_dir.mkdir(parents=True)
            args, control_outputs = command_lines(corpus, control_dir, fmt)[name]
            control = f"{name}:{fmt}:control"
            jobs.append({"id": control, "args": [str(a) for a in args], "measure": [str(o) for o in control_outputs]})
            for condition in ("full", "almost"):
                out = mount / f"{name}-{fmt}-{condition}"
                out.mkdir()
                args, outputs = command_lines(corpus, out, fmt)[name]
                fill = {"filler": str(filler), "free": 0} if condition == "full" else {
                    "filler": str(filler), "free_from": {"job": control, "paths": [str(o) for o in control_outputs]}}
                jobs.append({"id": f"{name}:{fmt}:{condition}", "args": [str(a) for a in args], "watch": [str(out)],
                             "fill": fill})
                expectations[f"{name}:{fmt}:{condition}"] = (outputs, {str(out): []})
    # --save-map on the full filesystem and -o on a normal one, and the other way round
    for fmt in ("h5", "st"):
        for where in ("map-on-full", "output-on-full"):
            if wanted is not None and ("cross", fmt) not in wanted:
                continue
            full_dir, disk_dir = mount / f"cross-{fmt}-{where}", disk / f"cross-{fmt}-{where}"
            full_dir.mkdir()
            disk_dir.mkdir()
            y = (full_dir if where == "output-on-full" else disk_dir) / f"y{EXT[fmt]}"
            m = (full_dir if where == "map-on-full" else disk_dir) / "m.safetensors"
            jobs.append({"id": f"cross:{fmt}:{where}", "args": [str(a) for a in (
                "translate", "--src", corpus.x_h5, "--tgt-anchors", corpus.ya_h5, "--method", "linear", "--save-map", m, "-o", y)],
                "watch": [str(full_dir), str(disk_dir)], "fill": {"filler": str(filler), "free": 0}})
            expectations[f"cross:{fmt}:{where}"] = ([m if where == "map-on-full" else y], {str(full_dir): [], str(disk_dir): []})
    return jobs, expectations


@pytest.fixture(scope="module")
def tmpfs_results(corpus, tiny_fs, tmp_path_factory, request):
    base = tmp_path_factory.mktemp("tmpfs-runs")
    jobs, expectations = tmpfs_plan(corpus, tiny_fs, base / "disk", selected(request, "test_full_filesystem"))
    return run_driver(jobs, base), expectations


TMPFS_IDS = [f"{name}:{fmt}:{cond}" for fmt in ("h5", "st")
             for name in ("embed", "anchors", "anchors-like", "project", "invert", "translate", "translate-map",
                          "translate-save-map", "stitch-apply", "stitch-run", *(["stitch-fit"] if fmt == "st" else []))
             for cond in ("full", "almost")]
CROSS_IDS = [f"cross:{fmt}:{where}" for fmt in ("h5", "st") for where in ("map-on-full", "output-on-full")]


@pytest.mark.parametrize("job", job_params(TMPFS_IDS + CROSS_IDS))
def test_full_filesystem(tmpfs_results, job):
    results, expectations = tmpfs_results
    if not job.startswith("cross:"):
        name, fmt, _ = job.split(":")
        control = results[f"{name}:{fmt}:control"]
        assert control["rc"] == 0, f"the run on a normal disk failed: {control['stderr']}"
    outputs, watched = expectations[job]
    check_failure(results[job], outputs, watched)


# ---------------------------------------------------------------------------------------------
# a dimension so large that a d x d map cannot exist: refused up front, under an address-space limit
# ---------------------------------------------------------------------------------------------
def test_huge_dimension_is_refused_cleanly(corpus, tmp_path):
    """The issue's 200,000-d input made Procrustes try to allocate 320 GB. Run under RLIMIT_AS (current
    size + 3 GiB), so a regression fails fast instead of hurting a shared machine."""
    import numpy as np

    from relcli.io.embeddings import write_embeddings

    rng = np.random.default_rng(0)
    ids = [f"r{i}" for i in range(12)]
    src = write_embeddings(tmp_path / "wide_x.safetensors", rng.standard_normal((12, 200_000)).astype(np.float32), ids=ids)
    tgt = write_embeddings(tmp_path / "wide_y.h5", rng.standard_normal((12, 200_000)).astype(np.float32), ids=ids)
    jobs = []
    for method in ("procrustes", "linear", "ortho-linear", "auto"):
        out = tmp_path / f"out-{method}"
        out.mkdir()
        jobs.append({"id": method, "args": ["translate", "--src", str(src), "--tgt-anchors", str(tgt), "--method", method,
                                             "-o", str(out / "y.h5")], "as_extra": 3 << 30, "watch": [str(out)], "timeout": 120})
    jobs.append({"id": "anchors-fps", "args": ["anchors", str(src), "-n", 4, "-o", str(tmp_path / "a.h5")],
                 "as_extra": 3 << 30, "timeout": 120})
    results = run_driver(jobs, tmp_path)
    problems = []
    for method in ("procrustes", "linear", "ortho-linear", "auto"):
        r = results[method]
        lines = r["stderr"].splitlines()
        ok = (r["rc"] in (1, 2) and len(lines) == 1 and lines[0].startswith("Error: ") and not FORBIDDEN.findall(lines[0])
              and (str(src) in lines[0] or str(tgt) in lines[0]) and "out of memory" not in lines[0]
              and r["listing"][str(tmp_path / f"out-{method}")] == [])
        if not ok:
            problems.append(f"{method}: rc {r['rc']}, stderr {r['stderr']!r}, left {r['listing']}")
    assert results["anchors-fps"]["rc"] == 0, results["anchors-fps"]["stderr"]
    assert not problems, "\n".join(problems)
