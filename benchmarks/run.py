"""End-to-end benchmark: whole ``relcli`` processes against the bare limits of the same work, and peers.

    python benchmarks/run.py                       # N = 100k, 1M, 4M rows × 768 (long; ~50 GB of disk at 4M)
    python benchmarks/run.py --quick               # N = 20k, 100k (a few minutes)
    python benchmarks/run.py --sizes 1000000 --skip-peers --csv /tmp/r.csv
    python benchmarks/run.py --install-peers       # once: benchmarks/.peers venv with latentis + isotrieve
    python benchmarks/run.py --peer-python /path/to/venv/bin/python

Data (generated per N in --workdir, not timed): N × 768 float32 rows of an "old" space x (x.h5,
x.safetensors, x.npy for the peers) and a "new" space y = x Q + small noise (y.h5, Q a random
orthogonal matrix), string ids (or ``--ids int``), written chunk by chunk with relcli's own
EmbeddingWriter; k = 1024 parallel anchors (xa.h5, ya.h5: rows of x and y spread over the file).
map.safetensors is fitted beforehand (``translate --src xa.h5 --tgt-anchors ya.h5 --method
procrustes --save-map``).

Measured, one process at a time: wall seconds and peak RSS (the child's own, from wait4) of whole
``relcli`` processes (import, read, compute, write; RELCLI_DEVICE=cpu): translate with --map (h5
and safetensors), translate with a fit (procrustes; auto = 5-fold cross-validation of 6 candidates),
anchors (fps, kmeans, random), project, evaluate --metrics cosine; once: ``info`` (no torch import)
and translate --map of a 1024-row file (the torch import cost), each against a bare interpreter.
Right after each step, in this process, its limit on the same shapes ("limit:" rows, medians):
torch.mm GEMM in 65536-row chunks (same thread count), h5py/safetensors read of the input and write
of the output's bytes, and read→GEMM→write in sequence. ratio = seconds / limit. Targets (issue 10):
translate/project with a map ≤ 1.25 × max(GEMM, read + write); anchors ≤ 60 s and ≤ 1 GiB at
1M × 768; auto's selection (auto − --map) ≤ 10 % of a 1M-row translate --map (estimated by a
linear fit over the sizes run when 1M is not among them). Limits exclude process start-up, so
small N cannot meet them: trust the ratios at N ≥ 1M. Peers on the same data (.npy), compared with
the relcli step doing the same job: a naive numpy script (load all, x @ W, np.save), latentis 0.0.8
Procrustes() and isotrieve 0.4.0's CLI (calibrate + transform), from --peer-python's environment;
a peer that cannot run, or would not fit in memory, gets a row saying why. Wall times are noisy on
a shared machine: ratios of neighbouring rows matter more than absolute seconds.
"""

from __future__ import annotations

import argparse
import csv
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _bench_data as bd  # noqa: E402
import _bench_peers as bp  # noqa: E402
from _bench_data import D, K, measure  # noqa: E402

_SCRIPT = Path(sys.executable).parent / "relcli"
RELCLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "relcli"]
M = 1_000_000
FIELDS = ["step", "N", "seconds", "peak_rss_mib", "limit", "limit_s", "ratio", "target", "meets", "note"]
RATIO = ("≤ 1.25 × limit", lambda n, s, rss, lim: s <= 1.25 * lim)
ANCHORS = ("≤ 60 s, ≤ 1 GiB at 1M", lambda n, s, rss, lim: (s <= 60 and rss <= 1024) if n == M else None)


class Bench:
    def __init__(self, env: dict):
        self.env, self.rows, self.runs, self.times = env, [], {}, {}

    def add(self, step, n, seconds=None, rss=None, limit="", limit_s=None, target="", meets=None, note=""):
        ratio = seconds / limit_s if seconds is not None and limit_s else None
        meets = "" if meets is None else ("yes" if meets else "NO")
        row = dict(zip(FIELDS, [step, n, seconds, rss, limit, limit_s, ratio, target, meets, note]))
        self.rows.append(row)
        print("  " + " | ".join(cells(row)), flush=True)

    def lim(self, n, name, fn, *args) -> float:
        seconds = fn(*args)
        self.runs.setdefault((n, name), []).append(seconds)
        return seconds

    def step(self, step, n, args, folder, limit=None, target=None, key=None, drop=()):
        """One whole relcli process, then (right after) its limit: one table row."""
        r = measure(RELCLI + [str(a) for a in args], folder, self.env)
        for name in drop:
            (folder / name).unlink(missing_ok=True)
        if r["rc"]:
            return self.add(step, n, note=f"FAILED {r['why']} [relcli {' '.join(map(str, args))}]")
        self.times[n, key or step] = r["seconds"]
        name, lim_s, note = limit() if limit else ("", None, "")
        text, check = target or ("", None)
        meets = check(n, r["seconds"], r["rss_mib"], lim_s) if check and lim_s else None
        self.add(step, n, r["seconds"], r["rss_mib"], name, lim_s, text, meets, note)

    def process_limit(self, name, argv, folder):
        r = measure(argv, folder, self.env)
        return name, r["seconds"], f"its peak RSS {r['rss_mib']:.0f} MiB"

    def limit_rows(self, n):
        for (size, name), runs in self.runs.items():
            if size == n:
                note = f"median of {len(runs)}, min {min(runs):.2f} s" if len(runs) > 1 else ""
                self.add("limit: " + name, n, statistics.median(runs), note=note)


def cells(row) -> list[str]:
    num = {"seconds": "{:.2f}", "peak_rss_mib": "{:.0f}", "limit_s": "{:.2f}", "ratio": "{:.2f}"}
    return [num[k].format(row[k]) if k in num and row[k] is not None else
            ("-" if row[k] is None else f"{row[k]:,}" if k == "N" else str(row[k])) for k in FIELDS]


def io_limit(b: Bench, n: int, src: Path, folder: Path, d_out: int = D, seq: bool = False):
    fmt = "h5" if src.suffix == ".h5" else "safetensors"
    read, write = (bd.h5_read, bd.h5_write) if fmt == "h5" else (bd.st_read, bd.st_write)

    def measure_limit():
        g = b.lim(n, f"GEMM N×{D}·{D}×{d_out} (torch.mm)", bd.gemm, n, d_out)
        r = b.lim(n, f"{fmt} read N×{D}", read, src)
        w = b.lim(n, f"{fmt} write N×{d_out}", write, folder / f"limit.{fmt}", n, d_out)
        note = f"GEMM {g:.2f}, read {r:.2f} + write {w:.2f}"
        if seq:
            s = b.lim(n, f"{fmt} read+GEMM+write in sequence", bd.sequence, src, folder / f"seq.{fmt}")
            o = b.lim(n, f"{fmt} read‖GEMM‖write overlapped (threads)", bd.overlapped, src, folder / f"ovl.{fmt}")
            note += f"; read+GEMM+write in sequence {s:.2f}, overlapped in threads {o:.2f}"
        return f"max(GEMM, {fmt} read+write)", max(g, r + w), note

    return measure_limit


def storage_cost(reference: Path, stored: Path) -> str:
    """What a half-precision output costs against the float32 one, row by row: cosine and relative error."""
    import torch

    from relcli.io.embeddings import open_embeddings

    cosines, errors = [], []
    with open_embeddings(reference) as full, open_embeddings(stored) as half:
        for (_, a), (_, h) in zip(full.iter_chunks(65536), half.iter_chunks(65536)):
            a, h = a.double(), h.double()
            cosines.append(torch.nn.functional.cosine_similarity(a, h, dim=1))
            errors.append(torch.linalg.vector_norm(a - h, dim=1) / torch.linalg.vector_norm(a, dim=1))
    cos, err = torch.cat(cosines), torch.cat(errors)
    return (f"row cosine to float32: mean {cos.mean():.7f}, min {cos.min():.7f}; relative row error: mean {err.mean():.1e}, "
            f"max {err.max():.1e}")


def run_size(b: Bench, n: int, folder: Path, args, first: bool) -> None:
    t0 = time.perf_counter()
    x_h5 = bd.write_space(folder / "x.h5", n, args.seed, "x", args.ids)
    bd.write_anchors(folder, n, args.seed, args.ids)
    bd.write_space(folder / "y.h5", n, args.seed, "y", args.ids)
    print(f"\nN = {n:,}: x.h5, y.h5, anchors written in {time.perf_counter() - t0:.0f} s ({folder})", flush=True)
    prep = measure(RELCLI + ["translate", "--src", "xa.h5", "--tgt-anchors", "ya.h5", "--method", "procrustes",
                             "--save-map", "map.safetensors", "-o", "tmp.h5"], folder, b.env)
    if prep["rc"]:
        b.add("prepare map.safetensors", n, note="FAILED " + prep["why"])
    read = lambda *paths: lambda: ("h5 read", sum(b.lim(n, f"h5 read N×{D}", bd.h5_read, p) for p in paths), "")  # noqa: E731

    if first:  # start-up costs, once
        b.step("info x.h5 (no torch import)", n, ["info", "x.h5"], folder,
               lambda: b.process_limit("python -c 'import h5py'", [sys.executable, "-c", "import h5py"], folder))
        b.step("translate --map, 1024 rows (torch import)", K, ["translate", "--src", "xa.h5", "--map", "map.safetensors",
               "-o", "tiny.h5"], folder, lambda: b.process_limit("python -c 'import torch'",
               [sys.executable, "-c", "import torch"], folder), drop=["tiny.h5"])
    b.step("translate --map, h5 → h5", n, ["translate", "--src", "x.h5", "--map", "map.safetensors", "-o", "out.h5"],
           folder, io_limit(b, n, x_h5, folder, seq=True), RATIO, key="map")
    b.step("evaluate --metrics cosine (out.h5 vs y.h5)", n, ["evaluate", "out.h5", "--reference", "y.h5", "--metrics",
           "cosine"], folder, read(folder / "out.h5", folder / "y.h5"))
    for dtype, out in (("float16", "out16.h5"), ("bfloat16", "out16.safetensors")):  # half-size storage, and its cost
        b.step(f"translate --map --dtype {dtype} → {out.split('.')[1]}", n, ["translate", "--src", "x.h5", "--map",
               "map.safetensors", "--dtype", dtype, "-o", out], folder, io_limit(b, n, x_h5, folder), key=dtype)
        if (folder / out).exists():
            b.add(f"  {dtype} output vs float32 output", n, note=storage_cost(folder / "out.h5", folder / out))
            (folder / out).unlink()
    for name in ("out.h5", "y.h5"):
        (folder / name).unlink(missing_ok=True)

    x_st = bd.write_space(folder / "x.safetensors", n, args.seed, "x", args.ids)
    b.step("translate --map, safetensors → safetensors", n, ["translate", "--src", x_st.name, "--map", "map.safetensors",
           "-o", "out.safetensors"], folder, io_limit(b, n, x_st, folder, seq=True), RATIO, drop=["out.safetensors"])
    x_st.unlink()

    for method, what in (("procrustes", "fit + its 5-fold CV"), ("auto", "5-fold CV of 6 candidates")):
        b.step(f"translate --method {method} ({what}), h5", n, ["translate", "--src", "x.h5", "--tgt-anchors", "ya.h5",
               "--method", method, "-o", "out.h5"], folder, io_limit(b, n, x_h5, folder), key=method, drop=["out.h5"])
    for strategy in ("fps", "kmeans", "random"):
        b.step(f"anchors -n {K} --strategy {strategy}", n, ["anchors", "x.h5", "-n", K, "--strategy", strategy, "-o",
               f"a_{strategy}.h5"], folder, read(x_h5), ANCHORS, drop=[] if strategy == "fps" else [f"a_{strategy}.h5"])
    if (folder / "a_fps.h5").exists():
        b.step(f"project --anchors (fps, {K} anchors), h5", n, ["project", "x.h5", "--anchors", "a_fps.h5", "-o",
               "rel.h5"], folder, io_limit(b, n, x_h5, folder, d_out=K), RATIO, drop=["rel.h5"])
    if not args.skip_peers:
        run_peers(b, n, folder, args)
    b.limit_rows(n)


def mem_available_mib() -> float:
    with open("/proc/meminfo") as handle:
        return next(int(line.split()[1]) for line in handle if line.startswith("MemAvailable:")) / 1024


def run_peers(b: Bench, n: int, folder: Path, args) -> None:
    bd.write_space(folder / "x.npy", n, args.seed, "x", args.ids)
    py = args.peer_python
    no_env = None if py and Path(py).exists() else (
        f"not run: no peer python at {py or HERE / '.peers/bin/python'} (--install-peers, or --peer-python PATH)")
    matrix_mib, avail = n * D * 4 / 2**20, mem_available_mib()
    peers = [
        ("naive numpy script (np.load all, x @ W, np.save)", "naive", "relcli translate --map, h5", "map",
         [[sys.executable, HERE / "_bench_peers.py", "naive", "x.npy", "W.npy", "out.npy"]], None),
        ("latentis 0.0.8 Procrustes() fit + transform", "latentis", "relcli translate --method procrustes", "procrustes",
         [[py, HERE / "_bench_peers.py", "latentis", "x.npy", "anchors_src.npy", "anchors_tgt.npy", "out.npy"]], no_env),
        ("isotrieve 0.4.0 CLI calibrate + transform", "isotrieve", "relcli translate --method auto", "auto",
         bp.isotrieve_commands(py, folder) if not no_env else [], no_env),
    ]
    for name, tool, ref_name, ref_key, commands, why in peers:
        need = bp.MEMORY_FACTOR[tool] * matrix_mib
        if not why and need > 0.9 * avail:
            why = f"not run: needs ~{need / 1024:.1f} GiB, {avail / 1024:.1f} GiB available"
        if not why and tool == "isotrieve" and not Path(commands[0][0]).exists():
            why = f"not run: no isotrieve CLI at {commands[0][0]}"
        shutil.rmtree(folder / "iso_out", ignore_errors=True)
        seconds, rss = 0.0, 0.0
        for argv in [] if why else commands:
            r = measure(argv, folder, b.env)
            if r["rc"]:
                why = f"FAILED {r['why']} [{' '.join(map(str, argv[1:]))}]"
                break
            seconds, rss = seconds + r["seconds"], max(rss, r["rss_mib"])
            if len(commands) > 1:
                b.add(f"  {tool} {argv[1]}", n, r["seconds"], r["rss_mib"])
        (folder / "out.npy").unlink(missing_ok=True)
        shutil.rmtree(folder / "iso_out", ignore_errors=True)
        if why:
            b.add(name, n, note=why)
        else:
            b.add(name, n, seconds, rss, ref_name, b.times.get((n, ref_key)))
    (folder / "x.npy").unlink()


def auto_selection_rows(b: Bench) -> None:
    """auto − translate --map at each N, against 10 % of a 1M-row translate --map."""
    maps = {n: s for (n, key), s in b.times.items() if key == "map"}
    if M in maps:
        ref, how = maps[M], "measured"
    elif len(maps) >= 2:  # t = a + b N through the sizes run
        xs, ys = list(maps), list(maps.values())
        mx, my = statistics.mean(xs), statistics.mean(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        ref, how = my + slope * (M - mx), "estimated by a linear fit over N = " + ", ".join(f"{x:,}" for x in xs)
    elif maps:
        (n0, s0), = maps.items()
        ref, how = s0 * M / n0, f"estimated ∝ N from N = {n0:,}"
    for (n, key), auto in sorted(b.times.items()):
        if key == "auto" and (n, "map") in b.times:
            sel = auto - b.times[n, "map"]
            b.add("auto's selection (auto − translate --map)", n, sel, None, "10% of 1M-row translate --map", 0.1 * ref,
                  "≤ 1 × limit", sel <= 0.1 * ref, f"1M-row translate --map {ref:.1f} s, {how}")


def install_peers(target: Path) -> None:
    print(f"installing {' '.join(bp.PACKAGES)} into {target} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(target)], check=True)
    subprocess.run([str(target / "bin/python"), "-m", "pip", "install", *bp.PACKAGES], check=True)


def print_table(rows) -> None:
    head = ["step", "N", "s", "peak RSS MiB", "limit", "limit s", "ratio", "target", "meets", "note"]
    table = [head] + [cells(r) for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(head) - 1)]
    for i, line in enumerate(table):
        print("  ".join(c.ljust(w) if j in (0, 4, 7) else c.rjust(w) for j, (c, w) in enumerate(zip(line, widths)))
              + "  " + line[-1])
        if i == 0:
            print("-" * (sum(widths) + 2 * len(widths) + 4))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000,4000000", help="comma-separated N (rows)")
    ap.add_argument("--quick", action="store_true", help="N = 20000,100000")
    ap.add_argument("--csv", type=Path, default=HERE / "results.csv")
    ap.add_argument("--workdir", type=Path, help="where the data goes (default: a temp dir under /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the generated data")
    ap.add_argument("--ids", choices=["str", "int"], default="str")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, help="torch/BLAS threads for relcli, peers and limits (default: torch's)")
    ap.add_argument("--skip-peers", action="store_true")
    default_peer = HERE / ".peers/bin/python"
    ap.add_argument("--peer-python", type=Path, default=default_peer if default_peer.exists() else None,
                    help="python of a venv with latentis 0.0.8 + isotrieve 0.4.0 (default: benchmarks/.peers)")
    ap.add_argument("--install-peers", action="store_true", help=f"create {HERE / '.peers'} (python -m venv + pip)")
    args = ap.parse_args()
    sizes = [20_000, 100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    if min(sizes) < K:
        ap.error(f"every N must be at least {K}")
    if args.install_peers and not args.skip_peers:
        install_peers(HERE / ".peers")
        args.peer_python = args.peer_python or HERE / ".peers/bin/python"

    import torch

    env = dict(os.environ, RELCLI_DEVICE="cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
        env.update({v: str(args.threads) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")})
    owned = args.workdir is None
    work = Path(tempfile.mkdtemp(prefix="relcli-bench-", dir="/tmp")) if owned else args.workdir
    work.mkdir(parents=True, exist_ok=True)
    free_gib = shutil.disk_usage(work).free / 2**30
    print(f"relcli benchmark: N = {', '.join(f'{n:,}' for n in sizes)} × {D}, k = {K}, ids {args.ids}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}; workdir {work} ({free_gib:.0f} GiB free)")
    if free_gib < 4.5 * max(sizes) * D * 4 / 2**30:
        print(f"warning: N = {max(sizes):,} needs about {4.5 * max(sizes) * D * 4 / 2**30:.0f} GiB of disk")
    b = Bench(env)
    try:
        for i, n in enumerate(sizes):
            folder = work / f"n{n}"
            if folder.exists():
                sys.exit(f"{folder} exists: choose another --workdir")
            folder.mkdir()
            try:
                run_size(b, n, folder, args, first=i == 0)
            finally:
                if not args.keep:
                    shutil.rmtree(folder, ignore_errors=True)
        auto_selection_rows(b)
    finally:
        if owned and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}; ratio = s / limit s; limits exclude process start-up\n")
    print_table(b.rows)
    args.csv.parent.mkdir(parents=True, exist_ok=True)
    with open(args.csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, FIELDS)
        writer.writeheader()
        writer.writerows({k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()} for r in b.rows)
    print(f"\nwrote {args.csv}")


if __name__ == "__main__":
    main()
