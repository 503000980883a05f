"""Run many ``relcli`` command lines as separate processes, cheaply: a fork server.

``python -m tests.hostile._driver JOBS.json RESULTS.jsonl`` (from the repository root) imports torch,
h5py and relcli once, then forks one child per job. The child sets the job's resource limits
(``RLIMIT_FSIZE``: Python ignores SIGXFSZ, so writes past it fail with EFBIG; ``RLIMIT_AS``), points
stdin/stdout/stderr at files, and runs the real console entry point, ``relcli.cli.main``; its
``SystemExit`` unwinds to the top of this script, so the child ends with a normal interpreter
shutdown, where a crash of a native library at exit would show. The parent records each child's
exit status (negative: killed by that signal, e.g. -11 for a segfault, -14 for the per-job alarm)
and what it printed, one JSON line per job. A job whose child crashes never stops the others.

A job: {"id", "args", "cwd", "rlimits": {"RLIMIT_FSIZE": bytes}, "as_extra": bytes (RLIMIT_AS =
current size + this), "fsize_from": {"job": id, "paths": [...], "delta": -1} (RLIMIT_FSIZE = the
largest of those files as the earlier job left them, plus delta), "timeout": seconds, "stdin": text,
"watch": [folders whose listing is recorded after the job]}.
"""

from __future__ import annotations

import gc
import json
import os
import resource
import signal
import sys
import time
from pathlib import Path


def _warm() -> None:
    """Import what the commands import lazily, once, in the parent (so children start warm).
    One thread: no OpenMP pool exists at fork time."""
    import torch

    torch.set_num_threads(1)
    import h5py  # noqa: F401
    import numpy  # noqa: F401
    import pandas  # noqa: F401
    import rich.console  # noqa: F401
    import rich.table  # noqa: F401
    import torch._dynamo  # noqa: F401  (torch.optim's L-BFGS step imports it: seconds)
    import torch.optim  # noqa: F401

    import relcli.api  # noqa: F401
    import relcli.cli.app  # noqa: F401
    import relcli.core.heads  # noqa: F401
    import relcli.core.irp  # noqa: F401
    import relcli.core.selection  # noqa: F401
    import relcli.core.translate  # noqa: F401
    import relcli.encoders  # noqa: F401
    import relcli.io.items  # noqa: F401


def _vm_size() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def _listing(folders) -> dict[str, list[str]]:
    found = {}
    for folder in folders or []:
        path = Path(folder)
        found[folder] = sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else None
    return found


PAGE = 4096


def _fill(filler: Path, free: int) -> int:
    """Make the filler file leave ``free`` bytes (rounded to pages) on its filesystem; returns what is free."""
    filler.write_bytes(b"")
    stats = os.statvfs(filler.parent)
    available = stats.f_bavail * stats.f_frsize
    remaining = max(available - free, 0)
    block = b"\0" * (1 << 16)
    with open(filler, "wb") as handle:
        try:
            while remaining > 0:
                remaining -= handle.write(block[: min(remaining, len(block))])
            handle.flush()
        except OSError:
            pass
    stats = os.statvfs(filler.parent)
    return stats.f_bavail * stats.f_frsize


def _child(job: dict, workdir: Path, limits: dict[str, int]) -> None:
    """In the forked child: redirect, limit, run relcli. Returns only by raising SystemExit."""
    os.chdir(job.get("cwd") or workdir)
    stdin = workdir / f"{job['id']}.stdin"
    stdin.write_bytes((job.get("stdin") or "").encode())
    for fd, path, flags in ((0, stdin, os.O_RDONLY), (1, workdir / f"{job['id']}.stdout", os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
                            (2, workdir / f"{job['id']}.stderr", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)):
        handle = os.open(path, flags, 0o644)
        os.dup2(handle, fd)
        os.close(handle)
    for name, value in limits.items():
        resource.setrlimit(getattr(resource, name), (value, value))
    signal.alarm(int(job.get("timeout", 120)))
    sys.argv = ["relcli", *job["args"]]
    from relcli.cli import main

    main()
    raise SystemExit(0)


def run(jobs: list[dict], results: Path) -> None:
    workdir = results.parent / (results.name + ".io")
    workdir.mkdir(exist_ok=True)
    _warm()
    # what the imports made goes to the collector's permanent generation: the children's garbage collection
    # and their (normal) interpreter shutdown skip it, which halves each run (and keeps the pages shared)
    gc.freeze()
    sizes: dict[str, dict[str, int]] = {}
    with open(results, "w") as out:
        for job in jobs:
            limits = dict(job.get("rlimits") or {})
            source = job.get("fsize_from")
            if source:
                measured = sizes.get(source["job"], {})
                known = [measured[p] for p in source["paths"] if measured.get(p) is not None]
                if not known:
                    out.write(json.dumps({"id": job["id"], "rc": None, "error": f"no sizes from job {source['job']}"}) + "\n")
                    continue
                pick = min if source.get("pick") == "min" else max
                limits["RLIMIT_FSIZE"] = pick(known) + int(source.get("delta", -1))
            if job.get("fill"):
                fill = job["fill"]
                free = fill.get("free", 0)
                if "free_from" in fill:
                    measured = sizes.get(fill["free_from"]["job"], {})
                    known = [measured[p] for p in fill["free_from"]["paths"] if measured.get(p) is not None]
                    free = max(0, ((max(known) - 1) // PAGE) * PAGE) if known else 0
                record_free = _fill(Path(fill["filler"]), free)
            else:
                record_free = None
            if job.get("as_extra"):
                limits["RLIMIT_AS"] = _vm_size() + int(job["as_extra"])
            sys.stdout.flush()
            sys.stderr.flush()
            out.flush()
            started = time.monotonic()
            pid = os.fork()
            if pid == 0:
                _child(job, workdir, limits)  # raises SystemExit: the child ends at the top of this script
            _, status = os.waitpid(pid, 0)
            rc = os.waitstatus_to_exitcode(status)
            record = {
                "id": job["id"], "rc": rc, "elapsed": round(time.monotonic() - started, 3), "limits": limits,
                "stdout": (workdir / f"{job['id']}.stdout").read_text(errors="replace"),
                "stderr": (workdir / f"{job['id']}.stderr").read_text(errors="replace"),
                "listing": _listing(job.get("watch")), "free_before": record_free,
            }
            sizes[job["id"]] = {p: (os.path.getsize(p) if os.path.exists(p) else None) for p in job.get("measure", [])}
            record["sizes"] = sizes[job["id"]]
            out.write(json.dumps(record) + "\n")
            out.flush()


if __name__ == "__main__":
    run(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
