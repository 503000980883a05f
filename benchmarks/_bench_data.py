"""Helpers of benchmarks/run.py: synthetic data, whole-process timing, and the bare "limits".

Data: x ~ N(0, 1/d) float32 (N × D), y = x Q + 0.05·N(0, 1/d) with Q a random orthogonal D × D.
Row chunk c is drawn from its own seeded generator (x first, then y's noise), so any file (x or y,
any format) can be written on its own, chunk by chunk, and all agree. .h5/.safetensors files go
through relcli's own ``EmbeddingWriter``; .npy files (for the peers) through a numpy memmap.

Limits run in the calling process over 65536-row chunks with torch's default thread count (the
same as a relcli child's): a GEMM that reuses one input and one output buffer (compute only),
h5py/safetensors reads of the benchmark file, writes of the same bytes, and read→GEMM→write.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

D, K, CHUNK, NOISE = 768, 1024, 65536, 0.05


# ----------------------------------------------------------------------------- data
def anchor_rows(n: int, k: int = K) -> np.ndarray:
    """k rows spread evenly over the file (distinct when n >= k)."""
    return (np.arange(k, dtype=np.int64) * n) // k


def make_ids(rows, kind: str):
    return np.asarray(rows, dtype=np.int64) if kind == "int" else [f"row{i}" for i in rows]


def rotation(seed: int) -> np.ndarray:
    q, _ = np.linalg.qr(np.random.default_rng([seed, 0]).standard_normal((D, D)))
    return q.astype(np.float32)


def chunk(seed: int, c: int, n: int, q: np.ndarray, need_y: bool):
    lo, hi = c * CHUNK, min(n, (c + 1) * CHUNK)
    rng = np.random.default_rng([seed, 1, c])
    scale = np.float32(1 / np.sqrt(D))
    x = rng.standard_normal((hi - lo, D), dtype=np.float32) * scale
    if not need_y:
        return lo, hi, x, None
    y = x @ q
    y += np.float32(NOISE) * scale * rng.standard_normal((hi - lo, D), dtype=np.float32)
    return lo, hi, x, y


def write_space(path: Path, n: int, seed: int, which: str, ids_kind: str) -> Path:
    """x or y (N × D) written chunk by chunk (memory stays at a few chunks)."""
    q = rotation(seed)
    chunks = range((n + CHUNK - 1) // CHUNK)
    if path.suffix == ".npy":
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, D))
        for c in chunks:
            lo, hi, x, y = chunk(seed, c, n, q, which == "y")
            out[lo:hi] = y if which == "y" else x
        out.flush()
        del out
        return path
    from relcli.io.embeddings import EmbeddingWriter

    with EmbeddingWriter(path, n, D) as writer:
        for c in chunks:
            lo, hi, x, y = chunk(seed, c, n, q, which == "y")
            writer.write(y if which == "y" else x, ids=make_ids(range(lo, hi), ids_kind))
    return path


def write_anchors(folder: Path, n: int, seed: int, ids_kind: str) -> None:
    """xa.h5 / ya.h5: the K rows at anchor_rows(n) of x and y (same ids as in x.h5); the same as
    anchors_src.npy / anchors_tgt.npy for the peers; W.npy = Q (the naive script's map)."""
    from relcli.io.embeddings import write_embeddings

    rows, q = anchor_rows(n), rotation(seed)
    xa, ya = np.empty((K, D), np.float32), np.empty((K, D), np.float32)
    for c in np.unique(rows // CHUNK):
        lo, hi, x, y = chunk(seed, int(c), n, q, True)
        mine = np.flatnonzero((rows >= lo) & (rows < hi))
        xa[mine], ya[mine] = x[rows[mine] - lo], y[rows[mine] - lo]
    ids = make_ids(rows.tolist(), ids_kind)
    write_embeddings(folder / "xa.h5", xa, ids=ids)
    write_embeddings(folder / "ya.h5", ya, ids=ids)
    np.save(folder / "anchors_src.npy", xa)
    np.save(folder / "anchors_tgt.npy", ya)
    np.save(folder / "W.npy", q)


# ----------------------------------------------------------------------------- processes
TIME = "/usr/bin/time"


def measure(argv: list[str], cwd: Path, env: dict | None = None) -> dict:
    """Run one process to the end: wall seconds, its peak RSS, exit code, last error line.

    Peak RSS comes from GNU time (%M), which forks the command from its own small image: a child
    of this (large) process would inherit our high-water mark through fork/exec in getrusage/wait4.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss:
        wrap = [TIME, "-f", "%M", "-o", rss.name] if os.path.exists(TIME) else []
        t0 = time.perf_counter()
        proc = subprocess.Popen(wrap + [str(a) for a in argv], cwd=cwd, stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = rc = os.waitstatus_to_exitcode(status)
        err.seek(0)
        out.seek(0)
        lines = [s for s in (err.read() + out.read()).decode(errors="replace").splitlines() if s.strip()]
        kib = rss.read().split()
    rss_mib = int(kib[-1]) / 1024 if wrap and kib and kib[-1].isdigit() else usage.ru_maxrss / 1024  # else an upper bound
    why = ""
    if rc:
        why = f"rc={rc}: " + (lines[-1].strip()[:200] if lines else "no output")
        if rc in (-9, 137) or "signal 9" in " ".join(lines[-2:]):
            why = "killed by SIGKILL (out of memory?)"
    return {"seconds": seconds, "rss_mib": rss_mib, "rc": rc, "why": why}


# ----------------------------------------------------------------------------- limits
def _spans(n: int):
    for lo in range(0, n, CHUNK):
        yield lo, min(n, lo + CHUNK)


def _buffers(d_out: int):
    import torch

    g = torch.Generator().manual_seed(0)
    return torch.randn(CHUNK, D, generator=g), torch.randn(D, d_out, generator=g) / D**0.5


def gemm(n: int, d_out: int = D) -> float:
    """N × 768 by 768 × d_out with torch.mm in 65536-row chunks (one reused input/output buffer)."""
    import torch

    x, w = _buffers(d_out)
    out = torch.empty(CHUNK, d_out)
    torch.mm(x[:256], w)  # warm-up (thread pool, BLAS init)
    t0 = time.perf_counter()
    for lo, hi in _spans(n):
        torch.mm(x[: hi - lo], w, out=out[: hi - lo])
    return time.perf_counter() - t0


def h5_read(path: Path) -> float:
    import h5py

    t0 = time.perf_counter()
    with h5py.File(path, "r") as f:
        ds = f["embeddings"]
        buf = np.empty((CHUNK, ds.shape[1]), ds.dtype)
        for lo, hi in _spans(ds.shape[0]):
            ds.read_direct(buf, np.s_[lo:hi], np.s_[0 : hi - lo])
    return time.perf_counter() - t0


def h5_write(path: Path, n: int, d: int = D) -> float:
    import h5py

    buf = np.random.default_rng(0).standard_normal((CHUNK, d), dtype=np.float32)
    t0 = time.perf_counter()
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("embeddings", (n, d), "float32")
        for lo, hi in _spans(n):
            ds[lo:hi] = buf[: hi - lo]
    seconds = time.perf_counter() - t0
    path.unlink()
    return seconds


def st_read(path: Path) -> float:
    from safetensors import safe_open

    import torch

    buf = torch.empty(CHUNK, D)
    t0 = time.perf_counter()
    with safe_open(str(path), "pt") as f:
        sl = f.get_slice("embeddings")
        for lo, hi in _spans(sl.get_shape()[0]):
            buf[: hi - lo].copy_(sl[lo:hi])  # slices may be lazy views of the mapped file: copy them
    return time.perf_counter() - t0


def _st_open(path: Path, n: int, d: int):
    """A safetensors file written by hand (header, then raw rows): save_file would need the whole
    matrix in memory, twice."""
    header = json.dumps({"embeddings": {"dtype": "F32", "shape": [n, d], "data_offsets": [0, n * d * 4]}}).encode()
    header += b" " * (-len(header) % 8)
    handle = open(path, "wb")  # noqa: SIM115
    handle.write(struct.pack("<Q", len(header)) + header)
    return handle


def st_write(path: Path, n: int, d: int = D) -> float:
    buf = np.random.default_rng(0).standard_normal((CHUNK, d), dtype=np.float32)
    t0 = time.perf_counter()
    with _st_open(path, n, d) as handle:
        for lo, hi in _spans(n):
            handle.write(buf[: hi - lo])
    seconds = time.perf_counter() - t0
    path.unlink()
    return seconds


def overlapped(src: Path, dst: Path) -> float:
    """The same work pipelined as relcli does it: a thread reads the next chunk and another writes the
    previous one while this one is multiplied (queues of one; no ids, no checks). On a machine where
    the GEMM keeps every core busy, this, not max(GEMM, read + write), is what overlap can reach."""
    import queue
    import threading

    import torch

    _, w = _buffers(D)
    done = object()
    t0 = time.perf_counter()
    if src.suffix == ".h5":
        import h5py

        source, sink = h5py.File(src, "r"), h5py.File(dst, "w")
        ds = source["embeddings"]
        n = ds.shape[0]
        out = sink.create_dataset("embeddings", (n, D), "float32")
        read = lambda lo, hi: torch.from_numpy(ds[lo:hi])  # noqa: E731
        write = lambda lo, hi, block: out.__setitem__(slice(lo, hi), block)  # noqa: E731
        close = lambda: (source.close(), sink.close())  # noqa: E731
    else:
        from safetensors import safe_open

        source = safe_open(str(src), "pt")
        sl = source.get_slice("embeddings")
        n = sl.get_shape()[0]
        handle = _st_open(dst, n, D)
        read = lambda lo, hi: sl[lo:hi].clone()  # noqa: E731
        write = lambda lo, hi, block: handle.write(block)  # noqa: E731
        close = handle.close
    inbox, outbox = queue.Queue(maxsize=1), queue.Queue(maxsize=1)

    def reader():
        for lo, hi in _spans(n):
            inbox.put((lo, hi, read(lo, hi)))
        inbox.put(done)

    def writer():
        while (item := outbox.get()) is not done:
            write(*item)

    threads = [threading.Thread(target=reader), threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    while (item := inbox.get()) is not done:
        lo, hi, block = item
        outbox.put((lo, hi, torch.mm(block, w).numpy()))
    outbox.put(done)
    for thread in threads:
        thread.join()
    close()
    seconds = time.perf_counter() - t0
    dst.unlink()
    return seconds


def sequence(src: Path, dst: Path) -> float:
    """Read a chunk, GEMM it, write it, chunk after chunk (no overlap), in src's format."""
    import torch

    _, w = _buffers(D)
    t0 = time.perf_counter()
    if src.suffix == ".h5":
        import h5py

        with h5py.File(src, "r") as f, h5py.File(dst, "w") as g:
            ds = f["embeddings"]
            n = ds.shape[0]
            out = g.create_dataset("embeddings", (n, D), "float32")
            buf = np.empty((CHUNK, D), np.float32)
            for lo, hi in _spans(n):
                ds.read_direct(buf, np.s_[lo:hi], np.s_[0 : hi - lo])
                out[lo:hi] = torch.mm(torch.from_numpy(buf[: hi - lo]), w).numpy()
    else:
        from safetensors import safe_open

        with safe_open(str(src), "pt") as f:
            sl = f.get_slice("embeddings")
            n = sl.get_shape()[0]
            with _st_open(dst, n, D) as handle:
                for lo, hi in _spans(n):
                    handle.write(torch.mm(sl[lo:hi], w).numpy())
    seconds = time.perf_counter() - t0
    dst.unlink()
    return seconds
