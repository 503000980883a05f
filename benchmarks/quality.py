"""Quality benchmark: zero-shot stitching and translation quality of every relcli method on sample_data/.

    python benchmarks/quality.py                 # full: 5 seeds, k in {64, 128, 256, 512, 1024} (~10-15 min, 2 cores)
    python benchmarks/quality.py --quick         # 2 seeds, k in {128, 512}, ablations at k = 512 only
    python benchmarks/quality.py --out benchmarks/quality_results.md

Drives the relcli command line in-process (typer's CliRunner on ``relcli.cli.app.app``; every call
must exit 0) on files in a temporary directory, following the protocol of examples/Makefile:

  1. embed the 1,797 sklearn digits once with the two real CNN encoders of sample_data/encoders
     (MNIST-trained and USPS-trained), 128-d each;
  2. per seed S: a random split of 1,200 "training" items (``anchors --strategy random --seed S``
     in the MNIST-net space, ``--like`` in the USPS-net space); a logistic head per space fitted on
     the training items only;
  3. per seed S, anchor count k and direction (MNIST-net -> USPS-net and back): k anchors chosen
     among the training items in the SOURCE space (``anchors --strategy fps --seed S``) and their
     parallel rows in the target space (``--like``);
  4. translate with each method, stitch (the target head on the translation), and score on the
     597 held-out items only (``evaluate --exclude-ids train.h5``): accuracy of the predictions,
     and cosine / top1 / mrr / cka of the translation against the true target embeddings.

Reported: mean ± std over seeds (population std, ddof = 0) per direction and k, plus the ablations
(IRP centring, rcond, δ/ω, direct-method scaling, anchor strategy). Files are reused across
configurations: embeddings once, split and heads once per seed, anchors once per (seed, k,
direction, strategy); translations and predictions are deleted once evaluated.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_data"
METHODS = ("irp", "procrustes", "linear", "affine", "ortho-linear")
DIRECT = ("procrustes", "linear", "ortho-linear")
SPACES = {"mnist": "MNIST-net", "usps": "USPS-net"}
DIRECTIONS = (("mnist", "usps"), ("usps", "mnist"))
RCONDS = ("0.001", "0.01", "0.03", "0.1", "0.2", "0.3")
DELTAS = ("0", "0.05", "0.1", "0.2")
OMEGAS = ("1", "4")
SCALINGS = ("standard", "isotropic", "none")
STRATEGIES = ("fps", "random", "kmeans", "per-class")
QUALITY = ("cosine", "top1", "mrr", "cka")
N_TRAIN = 1200


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def dname(direction: tuple[str, str]) -> str:
    return f"{SPACES[direction[0]]} → {SPACES[direction[1]]}"


class Cli:
    """relcli in-process; every call must exit 0. Keeps per-subcommand call counts and time."""

    def __init__(self) -> None:
        from typer.testing import CliRunner

        from relcli.cli.app import app

        self.app, self.runner = app, CliRunner()
        self.calls: dict[str, int] = defaultdict(int)
        self.seconds: dict[str, float] = defaultdict(float)

    def __call__(self, *args, allow_fail: bool = False):
        args = [str(a) for a in args]
        name = " ".join(args[:2]) if args[0] == "stitch" else args[0]
        start = time.perf_counter()
        result = self.runner.invoke(self.app, args, catch_exceptions=False)
        self.seconds[name] += time.perf_counter() - start
        self.calls[name] += 1
        if result.exit_code != 0 and not allow_fail:
            log(f"relcli {shlex.join(args)} exited {result.exit_code}\n--- stderr ---\n{result.stderr}\n--- stdout ---\n{result.stdout}")
        assert allow_fail or result.exit_code == 0, f"relcli {shlex.join(args)} exited {result.exit_code}"
        return result

    def evaluate(self, path: Path, reference: Path, exclude: Path, metrics: str | None = None) -> dict:
        extra = ["--metrics", metrics] if metrics else []
        out = self("evaluate", path, "--reference", reference, "--exclude-ids", exclude, *extra, "--format", "json", "-q")
        report = json.loads(out.stdout)
        return {"rows": report["rows"], **report["metrics"]}


def translation_info(path: Path) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["relcli.translation"])


class Bench:
    def __init__(self, cli: Cli, work: Path, seeds: list[int], ks: list[int], ablation_ks: list[int]):
        self.cli, self.work = cli, work
        self.seeds, self.ks, self.ablation_ks = seeds, ks, ablation_ks
        self.records: list[dict] = []
        self.held_out_rows: set[int] = set()

    # ------------------------------------------------------------------ files made once
    def embed(self) -> None:
        for space, enc in (("mnist", "mnist_cnn.pt"), ("usps", "usps_cnn.pt")):
            self.cli("embed", SAMPLE / "digits.npy", "--encoder", f"torchscript:{SAMPLE / 'encoders' / enc}",
                     "--labels", SAMPLE / "digits_labels.npy", "-o", self.emb(space), "-q")

    def emb(self, space: str) -> Path:
        return self.work / f"{space}.h5"

    def train(self, space: str, seed: int) -> Path:
        return self.work / f"train_{space}_s{seed}.h5"

    def head(self, space: str, seed: int) -> Path:
        return self.work / f"head_{space}_s{seed}.safetensors"

    def anchors(self, space: str, src: str, strategy: str, seed: int, k: int) -> Path:
        return self.work / f"anchors_{space}_from-{src}_{strategy}_s{seed}_k{k}.h5"

    def split_and_heads(self, seed: int) -> None:
        cli = self.cli
        cli("anchors", self.emb("mnist"), "-n", N_TRAIN, "--strategy", "random", "--seed", seed, "-o", self.train("mnist", seed), "-q")
        cli("anchors", self.emb("usps"), "--like", self.train("mnist", seed), "-o", self.train("usps", seed), "-q")
        for space in SPACES:
            cli("stitch", "fit", self.train(space, seed), "--head", "logistic", "-o", self.head(space, seed), "-q")

    def make_anchors(self, direction, strategy: str, seed: int, k: int) -> tuple[Path, Path]:
        src, tgt = direction
        a_src, a_tgt = self.anchors(src, src, strategy, seed, k), self.anchors(tgt, src, strategy, seed, k)
        if not a_src.exists():
            self.cli("anchors", self.train(src, seed), "-n", k, "--strategy", strategy, "--seed", seed, "-o", a_src, "-q")
            self.cli("anchors", self.emb(tgt), "--like", a_src, "-o", a_tgt, "-q")
        return a_src, a_tgt

    # ------------------------------------------------------------------ one configuration
    def record(self, section: str, direction, seed: int, k: int, config: str, **values) -> None:
        self.records.append({"section": section, "direction": direction, "seed": seed, "k": k, "config": config, **values})

    def stitch_and_score(self, predictions_input: Path, head: Path, direction, seed: int, extra=()) -> dict:
        src, tgt = direction
        preds = self.work / "preds.h5"
        self.cli("stitch", "apply", predictions_input, "--head", head, *extra, "-o", preds, "-q")
        scores = self.cli.evaluate(preds, self.emb(tgt), self.train("mnist", seed))
        preds.unlink()
        self.held_out_rows.add(scores["rows"])
        return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}

    def translation(self, section: str, direction, seed: int, k: int, config: str, anchors: tuple[Path, Path],
                    method: str, options=(), retry_rank_deficient: bool = False) -> dict:
        """translate -> stitch apply -> evaluate (predictions) and evaluate (translation); one record.

        With ``retry_rank_deficient`` (δ/ω pruning may leave fewer than d_Y anchors), a refusal of
        IRP (exit 1, "needs at least d_Y") is re-run with --allow-rank-deficient and marked refused.
        """
        src, tgt = direction
        out = self.work / "translated.h5"
        command = ["translate", "--src", self.emb(src), "--src-anchors", anchors[0], "--tgt-anchors", anchors[1],
                   "--method", method, *options, "--seed", seed, "-o", out, "-q"]
        result = self.cli(*command, allow_fail=retry_rank_deficient)
        refused = result.exit_code != 0
        if refused:
            assert "at least d_Y" in result.stderr, result.stderr
            self.cli(*command, "--allow-rank-deficient")
        info = translation_info(out)
        values = self.stitch_and_score(out, self.head(tgt, seed), direction, seed)
        values.update(self.cli.evaluate(out, self.emb(tgt), self.train("mnist", seed), ",".join(QUALITY)))
        values.pop("rows", None)
        if method == "irp":
            values["rcond_chosen"] = info.get("rcond_chosen")
            values["condition"] = max(info.get("condition_numbers") or [math.nan])
            values["rank"] = statistics.fmean(info.get("ranks") or [math.nan])
        values["refused"] = refused
        out.unlink()
        self.record(section, direction, seed, k, config, **values)
        return values

    # ------------------------------------------------------------------ sections
    def run(self) -> None:
        t0 = time.perf_counter()
        self.embed()
        for seed in self.seeds:
            self.split_and_heads(seed)
            for direction in DIRECTIONS:
                src, tgt = direction
                self.record("baseline", direction, seed, 0, "native",
                            **self.stitch_and_score(self.emb(tgt), self.head(tgt, seed), direction, seed))
                self.record("baseline", direction, seed, 0, "absolute",
                            **self.stitch_and_score(self.emb(src), self.head(tgt, seed), direction, seed))
                for k in self.ks:
                    self.main_grid(direction, seed, k)
                    if k in self.ablation_ks:
                        self.irp_ablations(direction, seed, k)
                    if k == 512:
                        self.scaling_ablation(direction, seed, k)
                        self.strategy_ablation(direction, seed, k)
            if seed == self.seeds[0]:
                self.spectra(seed)
            log(f"  seed {seed} done at {time.perf_counter() - t0:.0f}s ({sum(self.cli.calls.values())} relcli calls)")

    def spectra(self, seed: int) -> None:
        """Why IRP is ill-conditioned here: dead units and the shared positive direction of ReLU codes.

        Read straight from the files relcli wrote (h5py), no relcli call: per space, the units that
        are zero on every item, and the singular values of the row-normalised fps anchors (the
        matrix IRP pseudo-inverts), without and with centring on the anchor mean.
        """
        import h5py
        import numpy as np

        self.spectra_rows = []
        for space in SPACES:
            with h5py.File(self.emb(space), "r") as f:
                full = f["embeddings"][:].astype(np.float64)
            dead = int((full.std(axis=0) == 0).sum())
            for k in [k for k in self.ks if k in (128, 512, 1024)]:
                src = [d for d in DIRECTIONS if d[1] == space][0][0]  # the direction whose target is `space`
                with h5py.File(self.anchors(space, src, "fps", seed, k), "r") as f:
                    a = f["embeddings"][:].astype(np.float64)
                row = {"space": SPACES[space], "k": k, "dead": dead, "anchor_dead": int((a.std(axis=0) == 0).sum())}
                for label, m in (("raw", a), ("centred", a - a.mean(axis=0))):
                    unit = m / np.linalg.norm(m, axis=1, keepdims=True)
                    s = np.linalg.svd(unit, compute_uv=False)
                    row[label] = {"s1/s2": s[0] / s[1], "energy1": s[0] ** 2 / (s ** 2).sum(),
                                  **{f">{c:g}": int((s > c * s[0]).sum()) for c in (0.3, 0.1, 0.01, 1e-3)}}
                self.spectra_rows.append(row)

    def main_grid(self, direction, seed: int, k: int) -> None:
        src, tgt = direction
        anchors = self.make_anchors(direction, "fps", seed, k)
        # relreps baseline: a head on the target's relative representations, applied to the source's
        rel_head = self.work / "rel_head.safetensors"
        self.cli("stitch", "fit", self.train(tgt, seed), "--anchors", anchors[1], "-o", rel_head, "-q")
        self.record("main", direction, seed, k, "relative",
                    **self.stitch_and_score(self.emb(src), rel_head, direction, seed, ["--anchors", anchors[0]]))
        rel_head.unlink()
        for method in METHODS:
            options = ["--allow-rank-deficient"] if method == "irp" and k < 128 else []
            self.translation("main", direction, seed, k, method, anchors, method, options)

    def irp_ablations(self, direction, seed: int, k: int) -> None:
        anchors = self.make_anchors(direction, "fps", seed, k)
        self.translation("center", direction, seed, k, "center", anchors, "irp", ["--center"])
        for rcond in RCONDS:
            self.translation("rcond", direction, seed, k, rcond, anchors, "irp", ["--rcond", rcond])
            if k == 512:  # the centred grid (an extra, to judge auto under --center too) at k = 512 only
                self.translation("rcond-center", direction, seed, k, rcond, anchors, "irp", ["--rcond", rcond, "--center"])
        for delta in DELTAS:
            for omega in OMEGAS:
                if delta == "0" and omega == "1":
                    continue  # the default: the main grid's irp
                self.translation("delta-omega", direction, seed, k, f"{delta}|{omega}", anchors, "irp",
                                 ["--prune-threshold", delta, "--subspaces", omega], retry_rank_deficient=True)

    def scaling_ablation(self, direction, seed: int, k: int) -> None:
        anchors = self.make_anchors(direction, "fps", seed, k)
        for method in DIRECT:
            for scaling in SCALINGS:
                if scaling == "standard":
                    continue  # the default: the main grid
                self.translation("scaling", direction, seed, k, f"{method}|{scaling}", anchors, method, ["--scaling", scaling])

    def strategy_ablation(self, direction, seed: int, k: int) -> None:
        for strategy in STRATEGIES[1:]:
            anchors = self.make_anchors(direction, strategy, seed, k)
            for method in ("irp", "procrustes"):
                self.translation("strategy", direction, seed, k, f"{strategy}|{method}", anchors, method)


# ---------------------------------------------------------------------- aggregation and tables
def collect(records, section, direction, k, config, key):
    return [r[key] for r in records if r["section"] == section and r["direction"] == direction
            and r["k"] == k and r["config"] == config and r.get(key) is not None]


def mean_std(values) -> tuple[float, float]:
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.pstdev(values)


def fmt(values, digits: int = 3, pct: bool = False) -> str:
    if not values:
        return "–"
    m, s = mean_std(values)
    if pct:
        return f"{100 * m:.1f} ± {100 * s:.1f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(bench: Bench, args, elapsed: float, argv: list[str]) -> str:
    import relcli
    import torch

    R = bench.records
    ks, aks = bench.ks, bench.ablation_ks
    out: list[str] = []
    add = out.append
    held = ", ".join(str(n) for n in sorted(bench.held_out_rows))
    add("# relcli quality benchmark\n")
    add(f"- command: `{shlex.join(['python', 'benchmarks/quality.py', *argv])}` ({'quick' if args.quick else 'full'} mode)")
    add(f"- date: {dt.datetime.now().astimezone().isoformat(timespec='seconds')}; relcli {relcli.__version__}; "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads); Python {platform.python_version()}; "
        f"{os.cpu_count()} CPU cores; device cpu")
    add(f"- seeds: {', '.join(map(str, bench.seeds))} (seed S = the train split's `--strategy random --seed S` AND the "
        f"anchors' `--strategy fps --seed S`); anchor counts k: {', '.join(map(str, ks))}; IRP ablations at k = "
        f"{', '.join(map(str, aks))}; scaling and anchor-strategy ablations at k = 512")
    add(f"- total run time: {elapsed:.0f} s wall ({elapsed / 60:.1f} min), {args.cpu_seconds:.0f} s CPU (both grow "
        f"several-fold when other jobs share the 2 cores, as torch threads then spin-wait); {sum(bench.cli.calls.values())} in-process relcli calls "
        f"({', '.join(f'{n} {c}× {bench.cli.seconds[n]:.0f}s' for n, c in sorted(bench.cli.calls.items()))})")
    add("\n**Protocol** (examples/Makefile, repeated over seeds). The 1,797 sklearn digits are embedded once by two real CNN "
        "encoders (sample_data/encoders: MNIST-trained and USPS-trained, 128-d each). Per seed S, a random split puts "
        f"{N_TRAIN} items in training; the other {held} items are held out. Anchors are chosen among the training items in the "
        "SOURCE space (`anchors train_src.h5 -n k --strategy fps --seed S`) and taken `--like` in the target space. A "
        "logistic head is fitted on the target space's training items only. Every number is measured on the held-out items "
        "only (`evaluate --exclude-ids train.h5`). Stitching accuracy = the target head applied to: the true target "
        "embeddings (native), the untranslated source embeddings (absolute; both spaces are 128-d), the relreps baseline "
        "(`stitch fit usps_train.h5 --anchors usps_anchors.h5`, `stitch apply mnist.h5 --head rel_head --anchors "
        "mnist_anchors.h5`), or each method's translation (`translate --method M`, default options: IRP `--rcond auto`, "
        "no centring, δ = 0, ω = 1; direct methods `--scaling standard`). Translation quality = `evaluate --metrics "
        "cosine,top1,mrr,cka` of the translation against the true target embeddings (top1/mrr: retrieval among the "
        f"held-out rows). Cells: mean ± std over the {len(bench.seeds)} seeds (population std). Accuracies in %.\n")

    # ---- 1. stitching accuracy
    add("## 1. Stitching accuracy on held-out items (%)\n")
    add("native and absolute do not depend on k. † IRP at k = 64 < 128 = d_Y runs with `--allow-rank-deficient` "
        "(it refuses otherwise).\n")
    cols = ["native", "absolute", "relative", *METHODS]
    for direction in DIRECTIONS:
        add(f"### {dname(direction)}\n")
        rows = []
        for k in ks:
            row = [str(k)]
            for c in cols:
                if c in ("native", "absolute"):
                    v = collect(R, "baseline", direction, 0, c, "accuracy")
                else:
                    v = collect(R, "main", direction, k, c, "accuracy")
                cell = fmt(v, pct=True)
                if c == "irp" and k < 128 and v:
                    cell += " †"
                row.append(cell)
            rows.append(row)
        add(table(["k", *cols], rows) + "\n")

    # ---- 2. translation quality
    add("## 2. Translation quality on held-out items (vs the true target embeddings)\n")
    for direction in DIRECTIONS:
        add(f"### {dname(direction)}\n")
        rows = []
        for k in ks:
            for m in METHODS:
                label = m + (" †" if m == "irp" and k < 128 else "")
                rows.append([str(k), label] + [fmt(collect(R, "main", direction, k, m, q)) for q in QUALITY])
        add(table(["k", "method", *QUALITY], rows) + "\n")

    # ---- 3. IRP diagnostics
    add("## 3. IRP diagnostics (default options): cut-off chosen by `--rcond auto`, singular directions kept, "
        "condition number of the normalised target anchors\n")
    rows = []
    for direction in DIRECTIONS:
        for k in ks:
            chosen = collect(R, "main", direction, k, "irp", "rcond_chosen")
            ranks = collect(R, "main", direction, k, "irp", "rank")
            conds = [c for c in collect(R, "main", direction, k, "irp", "condition")]
            finite = [c for c in conds if math.isfinite(c)]
            cond = f"{statistics.median(finite):.2g}" if finite else "∞ (k < d)"
            choice = ", ".join(f"{c:g}" for c in chosen)
            rows.append([dname(direction), str(k), choice, fmt(ranks, 1), cond])
    add(table(["direction", "k", "auto's cut-off per seed", "rank kept", "median cond."], rows) + "\n")

    # ---- 3b. spectra
    add("**Why.** Both encoders end in ReLU: some units are dead on every item, and all codes share one positive "
        "direction. Singular values σ of the row-normalised fps anchors of the target space (seed "
        f"{bench.seeds[0]}; IRP pseudo-inverts this matrix): share of the energy in σ₁, σ₁/σ₂, and how many σ survive a "
        "cut-off c·σ₁ — raw (IRP's default) and centred on the anchor mean (`--center`).\n")
    rows = []
    for row in getattr(bench, "spectra_rows", []):
        for label in ("raw", "centred"):
            d = row[label]
            rows.append([row["space"], str(row["k"]), f"{row['dead']} / {row['anchor_dead']}", label, f"{d['energy1']:.2f}",
                         f"{d['s1/s2']:.1f}"] + [str(d[f">{c:g}"]) for c in (0.3, 0.1, 0.01, 1e-3)])
    add(table(["target space", "k", "dead units (all items / anchors)", "anchors", "σ₁²/Σσ²", "σ₁/σ₂",
               "#σ > 0.3σ₁", "#σ > 0.1σ₁", "#σ > 0.01σ₁", "#σ > 1e-3σ₁"], rows) + "\n")

    # ---- 4. rcond
    add("## 4. IRP cut-off: `--rcond auto` vs fixed values (accuracy %, no centring)\n")
    add("best fixed = the fixed cut-off with the highest mean accuracy in that row; gap = auto − best fixed "
        "(percentage points). The second table repeats the grid with `--center` (k = 512 only).\n")
    for section, base_section, base_config, label, row_ks in (
            ("rcond", "main", "irp", "not centred", aks),
            ("rcond-center", "center", "center", "centred (`--center`)", [k for k in aks if k == 512])):
        rows = []
        for direction in DIRECTIONS:
            for k in row_ks:
                auto = collect(R, base_section, direction, k, base_config, "accuracy")
                fixed = {c: collect(R, section, direction, k, c, "accuracy") for c in RCONDS}
                best = max(RCONDS, key=lambda c: mean_std(fixed[c])[0])
                gap = 100 * (mean_std(auto)[0] - mean_std(fixed[best])[0])
                rows.append([dname(direction), str(k), fmt(auto, pct=True)] + [fmt(fixed[c], pct=True) for c in RCONDS]
                            + [f"{best}: {fmt(fixed[best], pct=True)}", f"{gap:+.1f}"])
        add(f"**{label}**\n")
        add(table(["direction", "k", "auto", *RCONDS, "best fixed", "gap"], rows) + "\n")

    # ---- 5. centring
    add("## 5. IRP centring (`--center`, both with `--rcond auto`)\n")
    rows = []
    for direction in DIRECTIONS:
        for k in aks:
            for label, section, config in (("off", "main", "irp"), ("on", "center", "center")):
                rows.append([dname(direction), str(k), label, fmt(collect(R, section, direction, k, config, "accuracy"), pct=True)]
                            + [fmt(collect(R, section, direction, k, config, q)) for q in QUALITY]
                            + [", ".join(f"{c:g}" for c in collect(R, section, direction, k, config, "rcond_chosen")),
                               fmt(collect(R, section, direction, k, config, "rank"), 1)])
    add(table(["direction", "k", "center", "accuracy %", *QUALITY, "auto's cut-offs", "rank kept"], rows) + "\n")

    # ---- 6. δ/ω
    add("## 6. IRP anchor pruning δ (`--prune-threshold`) × subspaces ω (`--subspaces`), `--rcond auto`, no centring\n")
    add("Accuracy % (and mean cosine). ‡ = pruning left fewer than d_Y = 128 anchors in some seed, IRP refused, and the "
        "cell was re-run with `--allow-rank-deficient` (the refusal itself is correct behaviour).\n")
    rows = []
    for direction in DIRECTIONS:
        for k in aks:
            for delta in DELTAS:
                row = [dname(direction), str(k), delta]
                for omega in OMEGAS:
                    if delta == "0" and omega == "1":
                        section, config = "main", "irp"
                    else:
                        section, config = "delta-omega", f"{delta}|{omega}"
                    refused = any(r.get("refused") for r in R if r["section"] == section and r["direction"] == direction
                                  and r["k"] == k and r["config"] == config)
                    acc = fmt(collect(R, section, direction, k, config, "accuracy"), pct=True)
                    cos = fmt(collect(R, section, direction, k, config, "cosine"), 2)
                    row.append(f"{acc} ({cos}){' ‡' if refused else ''}")
                rows.append(row)
    add(table(["direction", "k", "δ", *(f"ω = {o}" for o in OMEGAS)], rows) + "\n")

    # ---- 7. scaling
    add("## 7. Direct methods: `--scaling` at k = 512 (accuracy %, cosine, cka)\n")
    rows = []
    for direction in DIRECTIONS:
        for method in DIRECT:
            for scaling in SCALINGS:
                section, config = ("main", method) if scaling == "standard" else ("scaling", f"{method}|{scaling}")
                rows.append([dname(direction), method, scaling + (" (default)" if scaling == "standard" else ""),
                             fmt(collect(R, section, direction, 512, config, "accuracy"), pct=True)]
                            + [fmt(collect(R, section, direction, 512, config, q)) for q in QUALITY])
    add(table(["direction", "method", "scaling", "accuracy %", *QUALITY], rows) + "\n")

    # ---- 8. anchor strategy
    add("## 8. Anchor strategy at k = 512 (chosen among the training items of the source space, seed S)\n")
    rows = []
    for direction in DIRECTIONS:
        for method in ("irp", "procrustes"):
            for strategy in STRATEGIES:
                section, config = ("main", method) if strategy == "fps" else ("strategy", f"{strategy}|{method}")
                rows.append([dname(direction), method, strategy, fmt(collect(R, section, direction, 512, config, "accuracy"), pct=True)]
                            + [fmt(collect(R, section, direction, 512, config, q)) for q in QUALITY])
    add(table(["direction", "method", "strategy", "accuracy %", *QUALITY], rows) + "\n")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, k in {128, 512}, ablations at k = 512 only")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "quality_results.md", help="Markdown file to write")
    parser.add_argument("--json", type=Path, default=None, help="also dump every raw record here")
    args = parser.parse_args(argv)
    seeds = [0, 1] if args.quick else [0, 1, 2, 3, 4]
    ks = [128, 512] if args.quick else [64, 128, 256, 512, 1024]
    ablation_ks = [512] if args.quick else [256, 512]
    os.environ.setdefault("RELCLI_DEVICE", "cpu")

    start, cpu_start = time.perf_counter(), time.process_time()
    cli = Cli()
    with tempfile.TemporaryDirectory(prefix="relcli-quality-") as tmp:
        bench = Bench(cli, Path(tmp), seeds, ks, ablation_ks)
        log(f"relcli quality benchmark ({'quick' if args.quick else 'full'}): seeds {seeds}, k {ks}, work dir {tmp}")
        bench.run()
    elapsed = time.perf_counter() - start
    args.cpu_seconds = time.process_time() - cpu_start
    text = report(bench, args, elapsed, argv)
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text + "\n", encoding="utf-8")
    if args.json is not None:
        args.json.write_text(json.dumps(bench.records, indent=1), encoding="utf-8")
    log(f"wrote {args.out} ({elapsed:.0f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
