"""I/O benchmark: relcli's streaming reader/writer against bare h5py and bare safetensors.

    python benchmarks/bench_io.py            # 1M x 768 float32 (3.1 GB per file), RSS at 1M and 4M rows
    python benchmarks/bench_io.py --quick    # 200k rows, RSS at 200k and 800k rows

Part 1, throughput (MB/s of matrix bytes, batch 65536 rows):
  write  relcli EmbeddingWriter (.h5 / .safetensors) vs h5py dataset slices (same row chunking as
         relcli) vs safetensors.torch.save_file of the whole tensor (which must hold it in memory);
         timed until the file is closed (page cache), then fsync'ed untimed.
  read   relcli iter_chunks vs h5py dataset slices vs safetensors safe_open().get_slice(), each
         chunk summed (safe_open slices are lazy); "cold" after evicting the file from the page
         cache (posix_fadvise DONTNEED), "warm" right after. Each cell is the best of --repeats.
Part 2, peak memory: a fresh process streams N rows through relcli's writer (chunks generated on
  the fly into one reused buffer), another streams them back through the reader; growth of VmHWM
  (peak RSS, /proc/self/status) over the value after imports. Budget: 300 MiB, independent of N.

Temp files go to a fresh folder under --tmp (default /tmp) and are deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MIB = 1 << 20
RSS_BUDGET_MIB = 300


def vm_kib(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def evict(path: Path) -> None:
    """Flush ``path`` and drop it from the page cache, so the next read comes from disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def spans(n: int, batch: int):
    for start in range(0, n, batch):
        yield start, min(start + batch, n)


# ---------------------------------------------------------------------------------------------
# Part 1: throughput
# ---------------------------------------------------------------------------------------------
def relcli_write(path: Path, n: int, chunk) -> None:
    from relcli.io.embeddings import EmbeddingWriter

    with EmbeddingWriter(path, n, chunk.shape[1], "float32") as writer:
        for start, stop in spans(n, chunk.shape[0]):
            writer.write(chunk[: stop - start])


def h5py_write(path: Path, n: int, chunk) -> None:
    import h5py

    dim = chunk.shape[1]
    block = chunk.numpy()
    rows_per_chunk = max(1, min(n, MIB // (dim * 4)))  # the row chunking relcli uses
    with h5py.File(path, "w") as f:
        data = f.create_dataset("embeddings", shape=(n, dim), dtype="float32", chunks=(rows_per_chunk, dim))
        for start, stop in spans(n, chunk.shape[0]):
            data[start:stop] = block[: stop - start]


def safetensors_write(path: Path, whole) -> None:
    from safetensors.torch import save_file

    save_file({"embeddings": whole}, str(path))


def touch(chunk) -> int:
    """Use every byte of a chunk (safe_open slices are lazy memory maps until touched)."""
    chunk.sum()
    return chunk.shape[0]


def relcli_read(path: Path, batch: int) -> int:
    from relcli.io.embeddings import open_embeddings

    rows = 0
    with open_embeddings(path) as f:
        for _, chunk in f.iter_chunks(batch):
            rows += touch(chunk)
    return rows


def h5py_read(path: Path, batch: int) -> int:
    import h5py
    import torch

    rows = 0
    with h5py.File(path, "r") as f:
        data = f["embeddings"]
        for start, stop in spans(data.shape[0], batch):
            rows += touch(torch.from_numpy(data[start:stop]))
    return rows


def safetensors_read(path: Path, batch: int) -> int:
    from safetensors import safe_open

    rows = 0
    with safe_open(str(path), framework="pt") as f:
        part = f.get_slice("embeddings")
        for start, stop in spans(part.get_shape()[0], batch):
            rows += touch(part[start:stop])
    return rows


def timed(fn, *args) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def throughput(folder: Path, n: int, dim: int, batch: int, repeats: int) -> dict[str, dict[str, float]]:
    import torch

    megabytes = n * dim * 4 / 1e6
    chunk = torch.rand(batch, dim, generator=torch.Generator().manual_seed(0))
    results: dict[str, dict[str, float]] = {}
    plans = [
        ("relcli .h5", "r.h5", lambda p: relcli_write(p, n, chunk), relcli_read),
        ("h5py", "b.h5", lambda p: h5py_write(p, n, chunk), h5py_read),
        ("relcli .safetensors", "r.safetensors", lambda p: relcli_write(p, n, chunk), relcli_read),
        ("safetensors", "b.safetensors", None, safetensors_read),
    ]
    for name, filename, write, read in plans:
        path = folder / filename
        whole = None
        if write is None:  # bare safetensors needs the whole tensor in memory
            whole = chunk.repeat(math.ceil(n / batch), 1)[:n].contiguous()
            write = lambda p: safetensors_write(p, whole)  # noqa: E731
        row = {"write": 0.0, "read cold": 0.0, "read warm": 0.0}
        for attempt in range(repeats):  # best of the repeats: the disk of a VM is noisy
            print(f"  {name}: round {attempt + 1} ...", file=sys.stderr, flush=True)
            seconds, _ = timed(write, path)
            row["write"] = max(row["write"], megabytes / seconds)
            evict(path)
            for kind in ("read cold", "read warm"):
                seconds, rows = timed(read, path, batch)
                assert rows == n, (name, rows)
                row[kind] = max(row[kind], megabytes / seconds)
            path.unlink()
        del whole
        results[name] = row
    return results


# ---------------------------------------------------------------------------------------------
# Part 2: peak memory, each phase in a fresh process
# ---------------------------------------------------------------------------------------------
def rss_child(phase: str, path: Path, n: int, dim: int, batch: int) -> None:
    import torch

    from relcli.io.embeddings import EmbeddingWriter, open_embeddings

    start_hwm, start_rss = vm_kib("VmHWM"), vm_kib("VmRSS")
    began = time.perf_counter()
    if phase == "write":
        generator = torch.Generator().manual_seed(0)
        buffer = torch.empty(batch, dim)
        with EmbeddingWriter(path, n, dim, "float32") as writer:
            for start, stop in spans(n, batch):
                block = buffer[: stop - start]
                block.uniform_(generator=generator)  # a new chunk, made on the fly in place
                writer.write(block)
    else:
        rows = 0
        with open_embeddings(path) as f:
            for _, chunk in f.iter_chunks(batch):
                rows += chunk.shape[0]
                del chunk  # a careful consumer holds one chunk at a time
        assert rows == n
    seconds = time.perf_counter() - began
    print(json.dumps({
        "growth_mib": (vm_kib("VmHWM") - start_hwm) / 1024,
        "start_rss_mib": start_rss / 1024,
        "seconds": seconds,
    }))


def peak_memory(folder: Path, rows_list: list[int], dim: int, batch: int, formats: list[str]) -> list[dict]:
    out = []
    for n in rows_list:
        for fmt in formats:
            path = folder / f"rss{fmt}"
            row = {"rows": n, "format": fmt}
            for phase in ("write", "read"):
                print(f"  {n:,} rows {fmt}: {phase} ...", file=sys.stderr, flush=True)
                done = subprocess.run(
                    [sys.executable, __file__, "--rss-child", phase, str(path), str(n), str(dim), str(batch)],
                    capture_output=True, text=True, check=False,
                )
                if done.returncode != 0:
                    raise SystemExit(f"rss child failed:\n{done.stderr[-3000:]}")
                row[phase] = json.loads(done.stdout.strip().splitlines()[-1])
                if phase == "write":
                    row["file_gb"] = path.stat().st_size / 1e9
                    evict(path)
            path.unlink()
            out.append(row)
    return out


# ---------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200k rows (RSS at 200k and 800k)")
    parser.add_argument("--rows", type=int, help="rows of the throughput file (default 1M, --quick 200k)")
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--batch", type=int, default=65536)
    parser.add_argument("--rss-rows", help="comma-separated row counts for the memory part")
    parser.add_argument("--repeats", type=int, default=2, help="best of this many rounds per throughput cell")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--tmp", default="/tmp", help="folder for the temp files (needs ~4x the file size)")
    parser.add_argument("--rss-child", nargs=5, metavar=("PHASE", "PATH", "ROWS", "DIM", "BATCH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        phase, path, n, dim, batch = args.rss_child
        rss_child(phase, Path(path), int(n), int(dim), int(batch))
        return

    n = args.rows or (200_000 if args.quick else 1_000_000)
    rss_rows = [int(r) for r in args.rss_rows.split(",")] if args.rss_rows else (
        [200_000, 800_000] if args.quick else [1_000_000, 4_000_000])
    folder = Path(tempfile.mkdtemp(prefix="relcli-bench-", dir=args.tmp))
    import h5py
    import safetensors
    import torch

    print(f"relcli I/O benchmark: torch {torch.__version__}, h5py {h5py.__version__} (HDF5 "
          f"{h5py.version.hdf5_version}), safetensors {safetensors.__version__}, {os.cpu_count()} CPUs, temp {folder}")
    failed = False
    try:
        if not args.skip_throughput:
            results = throughput(folder, n, args.dim, args.batch, args.repeats)
            print(f"\nThroughput, {n:,} x {args.dim} float32 ({n * args.dim * 4 / 1e9:.2f} GB), batch {args.batch:,}, "
                  f"MB/s, best of {args.repeats}")
            columns = ["write", "read cold", "read warm"]
            print(f"{'':22}" + "".join(f"{c:>12}" for c in columns))
            for name, row in results.items():
                print(f"{name:22}" + "".join(f"{row[c]:12.0f}" for c in columns))
            print("  safetensors write = save_file of the whole tensor held in memory; reads sum each chunk;\n"
                  "  cold = after fsync + posix_fadvise(DONTNEED) (a VM host cache may still serve it)")
        if not args.skip_rss:
            rows = peak_memory(folder, rss_rows, args.dim, args.batch, [".h5", ".safetensors"])
            chunk_mib = args.batch * args.dim * 4 / MIB
            print(f"\nPeak RSS growth over the start (VmHWM), batch {args.batch:,} x {args.dim} float32 "
                  f"= {chunk_mib:.0f} MiB per chunk; budget {RSS_BUDGET_MIB} MiB")
            print(f"{'rows':>10} {'format':>12} {'file GB':>8} {'write MiB':>10} {'read MiB':>9} "
                  f"{'write MB/s':>11} {'read MB/s':>10}  ok")
            for row in rows:
                w, r = row["write"], row["read"]
                ok = max(w["growth_mib"], r["growth_mib"]) <= RSS_BUDGET_MIB
                failed |= not ok
                mb = row["rows"] * args.dim * 4 / 1e6
                print(f"{row['rows']:>10,} {row['format']:>12} {row['file_gb']:8.2f} {w['growth_mib']:10.0f} "
                      f"{r['growth_mib']:9.0f} {mb / w['seconds']:11.0f} {mb / r['seconds']:10.0f}  "
                      f"{'yes' if ok else 'NO'}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if failed:
        raise SystemExit(f"peak RSS growth above {RSS_BUDGET_MIB} MiB")


if __name__ == "__main__":
    main()
