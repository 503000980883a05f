"""Kernel benchmark: relative projection, folded IRP and fitting, against their bare baselines.

    python benchmarks/bench_kernels.py            # n = 100k rows, d = 768 (about 1-2 min on 2 cores)
    python benchmarks/bench_kernels.py --quick    # n = 20k rows
    python benchmarks/bench_kernels.py --device cuda

Rows of the table (median wall time over --runs runs, the two sides of a comparison interleaved so
that machine noise hits both alike; float32; torch's default thread count):
  1. cosine relative_projection of n × 768 rows against 1024 anchors vs the bare ``X @ A.T`` of the
     same shapes. Target: ratio ≤ 1.2 (the normalisation must cost next to nothing).
  2. IRP.translate (one folded d_X × d_Y matmul) vs transform(relative_projection(x)) (project then
     invert: two n × k × d matmuls), k = 1024, d = 768. Target: speed-up ≥ 2.5.
  3. fit times at k = 2048, d = 768: IRP (SVD pseudo-inverse, with source anchors so the folded map
     is built too) and Procrustes (relcli.core.translate; "n/a" where it is not available).
The "check" column is the max abs difference between the two sides (same maths, so round-off only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from relcli.core.irp import IRP
from relcli.core.relative import relative_projection


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(fns: list, runs: int, device: torch.device) -> list[float]:
    """Median seconds of each function, running them in turn ``runs`` times (after one warm-up)."""
    times: list[list[float]] = [[] for _ in fns]
    for attempt in range(runs + 1):
        for i, fn in enumerate(fns):
            sync(device)
            start = time.perf_counter()
            out = fn()
            sync(device)
            if attempt:  # the first round warms up allocators and BLAS
                times[i].append(time.perf_counter() - start)
            del out
    return [statistics.median(t) for t in times]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 20k rows instead of 100k")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement (≥ 3)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = parser.parse_args(argv)
    runs = max(3, args.runs)
    device = torch.device(args.device)
    n, d, k_proj, k_fit = (20_000 if args.quick else 100_000), 768, 1024, 2048
    g = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=g).to(device)

    rows: list[tuple[str, str, str, str, str, str]] = []

    # 1. cosine relative projection vs the bare matmul --------------------------------------
    log(f"1/3 cosine projection, {n:,} x {d} vs {k_proj} anchors ...")
    x = randn(n, d)
    anchors = randn(k_proj, d)
    t_rel, t_mm = interleaved([lambda: relative_projection(x, anchors), lambda: x @ anchors.T], runs, device)
    unit_a = anchors / anchors.norm(dim=1, keepdim=True)
    check = (relative_projection(x[:2000], anchors) - (x[:2000] / x[:2000].norm(dim=1, keepdim=True)) @ unit_a.T)
    rows.append((
        f"cosine relative_projection {n // 1000}k x {d}, k={k_proj}",
        f"{t_rel:.3f}", f"X @ A.T {t_mm:.3f}", f"{t_rel / t_mm:.2f}x", "<= 1.20x",
        f"{check.abs().max().item():.1e}",
    ))

    # 2. folded IRP vs project then invert ----------------------------------------------------
    log(f"2/3 IRP translate vs project+invert, k={k_proj}, d={d} ...")
    target_anchors = randn(k_proj, d)
    irp = IRP().fit(target_anchors, anchors)
    t_fold, t_chain = interleaved(
        [lambda: irp.translate(x), lambda: irp.transform(relative_projection(x, anchors))], runs, device
    )
    diff = (irp.translate(x[:2000]) - irp.transform(relative_projection(x[:2000], anchors))).abs().max()
    rows.append((
        f"IRP translate (folded) {n // 1000}k x {d}, k={k_proj}",
        f"{t_fold:.3f}", f"project+invert {t_chain:.3f}", f"{t_chain / t_fold:.2f}x faster", ">= 2.50x",
        f"{diff.item():.1e}",
    ))
    del x

    # 3. fit times --------------------------------------------------------------------------------
    log(f"3/3 fit times, k={k_fit}, d={d} ...")
    src, tgt = randn(k_fit, d), randn(k_fit, d)
    (t_irp,) = interleaved([lambda: IRP().fit(tgt, src)], runs, device)
    rows.append((f"IRP fit k={k_fit}, d={d} (+ folded map, rcond=auto)", f"{t_irp:.3f}", "", "", "", ""))
    (t_irp_fixed,) = interleaved([lambda: IRP(rcond=1e-3).fit(tgt, src)], runs, device)
    rows.append((f"IRP fit k={k_fit}, d={d} (+ folded map, rcond=1e-3)", f"{t_irp_fixed:.3f}", "", "", "", ""))
    try:
        from relcli.core.translate import Procrustes
    except ImportError:
        rows.append((f"Procrustes fit k={k_fit}, d={d}", "n/a", "", "", "", ""))
    else:
        (t_pro,) = interleaved([lambda: Procrustes().fit(src, tgt)], runs, device)
        rows.append((f"Procrustes fit k={k_fit}, d={d}", f"{t_pro:.3f}", "", "", "", ""))

    from relcli.core.heads import LogisticHead, MLPHead

    g = torch.Generator().manual_seed(0)
    hx = torch.randn(10_000, 128, generator=g).to(device)
    hy = torch.randint(0, 10, (10_000,), generator=g).to(device)
    (t_log,) = interleaved([lambda: LogisticHead().fit(hx, hy)], runs, device)
    rows.append(("LogisticHead fit 10k x 128, 10 classes", f"{t_log:.3f}", "", "", "", ""))
    (t_mlp,) = interleaved([lambda: MLPHead().fit(hx, hy)], max(1, runs // 2), device)
    rows.append(("MLPHead fit 10k x 128, 10 classes, 200 epochs", f"{t_mlp:.3f}", "", "", "", ""))

    header = ("kernel", "seconds", "baseline (s)", "ratio", "target", "check")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"float32, median of {runs} runs")
    for line in (header, tuple("-" * w for w in widths), *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
