"""Quality report: does relcli pick what works for a pair, and does its estimate tell the truth?

    python benchmarks/quality.py                    # both sample pairs, 5 seeds, k from 64 to 2048
    python benchmarks/quality.py --quick            # 2 seeds, k in {128, 512}
    python benchmarks/quality.py --ks 64,128,256 --merge-json old.json --json new.json   # rerun some k
    python benchmarks/quality.py --out benchmarks/quality_results.md --json benchmarks/quality_results.json

Runs on ``relcli.api`` (the library twin of the CLI) over files in a temporary folder. For each
sample pair (the two digit CNNs; MiniLM and e5 on WordNet glosses), both directions, each seed
and anchor count k:

  1. a seeded split: 25 % of the items are held out for judging, never seen by any fit; the rest
     is the pool anchors and heads come from;
  2. a logistic head (``stitch fit``) and an independent nearest-class-mean classifier are fitted on
     the pool's native target embeddings;
  3. k anchors are chosen in the source pool (``anchors``, the default strategy) and taken
     ``--like`` in the target space;
  4. every method and ``auto`` translates the held-out source rows (``translate``, with
     ``--confidence`` and ``--save-map``) and its reverse map translates the held-out target rows
     back (``translate --map --reverse``, the query side).

Judged on held-out items only, against the true target embeddings: stitched accuracy with relcli's
head and with the independent classifier (as a fraction of the head on native embeddings), neighbour
recall@10 corpus-side (translated corpus, native target queries) and query-side (queries
translated back into the source space, native source corpus), row cosine, relcli's quality
estimate next to those, and how well the per-row confidence ranks rows by their true error
(Spearman between confidence and row cosine).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from relcli.core.selection import POOR_SCORE

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "sample_data"
METHODS = (("auto", {}), ("irp", {"center": False, "allow_rank_deficient": True}),
           ("irp", {"center": True, "allow_rank_deficient": True}), ("procrustes", {}),
           ("procrustes", {"scaling": "isotropic"}), ("linear", {}),
           ("linear", {"rcond": 1e-3}), ("ortho-linear", {}))
# the truth's verdict on a run: collapsed when stitching falls below half the native accuracy or
# corpus-side neighbours are lost (recall@10 < 0.1); good when stitching keeps ≥ 0.9 of native
COLLAPSE_ACCURACY, COLLAPSE_RECALL, GOOD_ACCURACY = 0.5, 0.1, 0.9


@dataclass(frozen=True)
class Pair:
    name: str
    a: tuple[str, Path]
    b: tuple[str, Path]
    ks: tuple[int, ...]


PAIRS = {
    "digits": Pair("digits (two CNNs, 128-d)", ("MNIST-net", SAMPLE / "mnist.h5"), ("USPS-net", SAMPLE / "usps.safetensors"),
                   (64, 128, 256, 512, 1024)),
    "text": Pair("WordNet glosses (MiniLM-L6, e5-small; 384-d)", ("MiniLM", SAMPLE / "wordnet_minilm.h5"),
                 ("e5", SAMPLE / "wordnet_e5.safetensors"), (64, 128, 256, 512, 1024, 2048)),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def method_name(method: str, options: dict) -> str:
    return (method + (" --center" if options.get("center") else "") + (f" --rcond {options['rcond']:g}" if "rcond" in options else "")
            + (f" --scaling {options['scaling']}" if "scaling" in options else ""))


def verdict(record: dict) -> str:
    """'collapse', 'good' or 'fair', by the true held-out figures (never by relcli's estimate)."""
    if record["accuracy"] < COLLAPSE_ACCURACY or record["recall_corpus"] < COLLAPSE_RECALL:
        return "collapse"
    return "good" if record["accuracy"] >= GOOD_ACCURACY else "fair"


def load(path: Path):
    from relcli.io.embeddings import open_embeddings

    with open_embeddings(path) as f:
        return f.read_all().float().numpy(), f.row_keys(), None if f.labels is None else f.labels.astype(str)


def subset(src: Path, rows: np.ndarray, out: Path) -> Path:
    from relcli.io.embeddings import open_embeddings, write_embeddings

    with open_embeddings(src) as f:
        matrix = f.read_rows(rows).float()
        write_embeddings(out, matrix, ids=f.ids[rows], labels=None if f.labels is None else f.labels[rows])
    return out


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)


def knn(queries: np.ndarray, corpus: np.ndarray, m: int = 10) -> np.ndarray:
    """Indices of the m nearest corpus rows by cosine, the query's own row (same index) left out."""
    sims = unit(queries) @ unit(corpus).T
    np.fill_diagonal(sims, -np.inf)
    return np.argsort(-sims, axis=1)[:, :m]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found.tolist(), truth.tolist())]))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def nearest_mean(train_x: np.ndarray, train_y: np.ndarray):
    """An independent classifier: the class of the nearest class mean by cosine."""
    classes = np.unique(train_y)
    means = unit(np.stack([train_x[train_y == c].mean(axis=0) for c in classes]))
    return lambda x: classes[np.argmax(unit(x) @ means.T, axis=1)]


def run_setting(pair: Pair, src, tgt, seed: int, k: int, work: Path, native: dict) -> list[dict]:
    """Every method at one (direction, seed, k); returns one record per method."""
    from relcli import api

    (src_name, src_pool, src_test), (tgt_name, tgt_pool, tgt_test) = src, tgt
    xa, ya = work / f"xa_{k}.h5", work / f"ya_{k}.h5"
    api.anchors(src_pool, output=xa, n_anchors=k, seed=seed)
    api.anchors(tgt_pool, output=ya, like=xa)
    x_true, _, _ = load(src_test)
    y_true, _, y_labels = load(tgt_test)
    truth_nn_y, truth_nn_x = knn(y_true, y_true), knn(x_true, x_true)
    records = []
    for method, options in METHODS:
        name = method_name(method, options)
        out, mapped, back = work / "t.h5", work / "m.safetensors", work / "q.h5"
        started = time.perf_counter()
        result = api.translate(src_test, output=out, src_anchors=xa, tgt_anchors=ya, method=method, confidence=True,
                               save_map=mapped, seed=seed, **options)
        seconds = time.perf_counter() - started
        api.translate(tgt_test, output=back, map=mapped, reverse=True)
        y_hat, _, _ = load(out)
        x_back, _, _ = load(back)
        predictions = work / "p.h5"
        api.stitch_apply(out, head=native["head"], output=predictions)
        _, _, predicted = load(predictions)
        from relcli.io.embeddings import open_embeddings

        with open_embeddings(out) as f:
            confidence = f.array("confidence").numpy()
        row_cos = np.sum(unit(y_hat) * unit(y_true), axis=1)
        estimate = result.scores["estimate"]
        records.append({
            "method": name, "chosen": result.parameters["selection"]["chosen"], "k": k, "seed": seed,
            "estimate": estimate["score"], "spread": estimate["spread"], "estimate_chance_corrected": True,
            **{f"estimate_{name}": estimate[name] for name in ("mrr", "recall10", "r2")},
            "accuracy": float(np.mean(predicted == y_labels)) / native["accuracy"],
            "independent": float(np.mean(native["classifier"](y_hat) == y_labels)) / native["independent"],
            "recall_corpus": recall(knn(y_true, y_hat), truth_nn_y),
            "recall_query": recall(knn(x_back, x_true), truth_nn_y),
            "recall_query_native": recall(truth_nn_x, truth_nn_y),
            "cosine": float(row_cos.mean()), "confidence_rho": spearman(confidence, row_cos), "seconds": seconds,
        })
    return records


def run_pair(key: str, pair: Pair, seeds: list[int], ks: list[int], root: Path) -> list[dict]:
    from relcli import api

    (name_a, path_a), (name_b, path_b) = pair.a, pair.b
    _, keys, labels = load(path_a)
    n = len(keys)
    records = []
    for seed in seeds:
        order = np.random.default_rng(seed).permutation(n)
        test, pool = np.sort(order[: n // 4]), np.sort(order[n // 4:])
        work = root / f"{key}_{seed}"
        work.mkdir()
        files = {}
        for name, path in ((name_a, path_a), (name_b, path_b)):
            files[name] = (name, subset(path, pool, work / f"{name}_pool.h5"), subset(path, test, work / f"{name}_test.h5"))
        natives = {}
        for name in (name_a, name_b):
            head = work / f"{name}_head.safetensors"
            api.stitch_fit(files[name][1], output=head)
            pool_x, _, pool_y = load(files[name][1])
            test_x, _, test_y = load(files[name][2])
            predictions = work / f"{name}_native.h5"
            api.stitch_apply(files[name][2], head=head, output=predictions)
            classifier = nearest_mean(pool_x, pool_y)
            natives[name] = {"head": head, "accuracy": float(np.mean(load(predictions)[2] == test_y)),
                             "classifier": classifier, "independent": float(np.mean(classifier(test_x) == test_y))}
        for src, tgt in ((name_a, name_b), (name_b, name_a)):
            for k in ks:
                if k > len(pool):
                    continue
                started = time.perf_counter()
                for record in run_setting(pair, files[src], files[tgt], seed, k, work, natives[tgt]):
                    records.append({"pair": key, "direction": f"{src} -> {tgt}", "native_accuracy": natives[tgt]["accuracy"],
                                    **record})
                log(f"{key} {src}->{tgt} seed {seed} k {k}: {time.perf_counter() - started:.1f} s")
    return records


FIELDS = ("estimate", "accuracy", "independent", "recall_corpus", "recall_query", "cosine", "confidence_rho", "seconds")


def aggregate(records: list[dict]) -> dict[tuple, dict]:
    """Mean and std over seeds per (pair, direction, k, method); the method auto chose most often."""
    groups: dict[tuple, list[dict]] = {}
    for r in records:
        groups.setdefault((r["pair"], r["direction"], r["k"], r["method"]), []).append(r)
    table = {}
    for key, rows in groups.items():
        entry = {f: (float(np.mean([r[f] for r in rows])), float(np.std([r[f] for r in rows]))) for f in FIELDS}
        chosen = [r["chosen"] for r in rows]
        entry["chosen"] = max(set(chosen), key=chosen.count) + (f" ({chosen.count(max(set(chosen), key=chosen.count))}/{len(rows)})"
                                                               if len(set(chosen)) > 1 else "")
        entry["native_accuracy"] = float(np.mean([r["native_accuracy"] for r in rows]))
        table[key] = entry
    return table


def pm(value: tuple[float, float], digits: int = 3) -> str:
    return f"{value[0]:.{digits}f} ± {value[1]:.{digits}f}"


def paired(records: list[dict], setting: tuple, field: str, best: str) -> str:
    """auto against ``best`` seed by seed: the standard error of the paired difference, and the seeds
    where auto is within a point of it (a miss on one seed, or on every seed, reads differently)."""
    def values(method):
        return {r["seed"]: r[field] for r in records if (r["pair"], r["direction"], r["k"]) == setting and r["method"] == method}
    mine, theirs = values("auto"), values(best)
    diffs = np.array([mine[s] - theirs[s] for s in sorted(mine) if s in theirs])
    error = diffs.std(ddof=1) / np.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
    return f"paired SE {error * 100:.1f}, within a point on {int((diffs >= -0.01).sum())} of {len(diffs)} seeds"


def targets(records: list[dict], table: dict) -> list[str]:
    """The issue's targets, checked on the records."""
    lines = []
    settings = sorted({(r["pair"], r["direction"], r["k"]) for r in records})
    shortfalls = []
    for setting in settings:
        rows = {m: table[(*setting, m)] for (p, d, k, m) in table if (p, d, k) == setting}
        for field in ("accuracy", "recall_corpus"):
            best = max((m for m in rows if m != "auto"), key=lambda m: rows[m][field][0])
            shortfalls.append((rows[best][field][0] - rows["auto"][field][0], field, setting, best))
    worst = max(shortfalls)
    within = sum(1 for s in shortfalls if s[0] <= 0.01)
    misses = ", ".join(f"{f} {d} k={k} −{gap * 100:.1f} (best {best}; {paired(records, (p, d, k), f, best)})"
                       for gap, f, (p, d, k), best in sorted(shortfalls, reverse=True) if gap > 0.01)
    lines.append(f"- auto within 1 point of the best single method: {within} of {len(shortfalls)} (setting, metric) pairs; "
                 f"largest shortfall {worst[0] * 100:.1f} points ({worst[1]}, {worst[2][0]} {worst[2][1]} k={worst[2][2]})"
                 + (f"; misses (points): {misses}" if misses else ""))
    collapsed = [r for r in records if verdict(r) == "collapse"]
    lines.append(f"- collapses (stitched accuracy < {COLLAPSE_ACCURACY} × native or corpus recall@10 < {COLLAPSE_RECALL}): "
                 f"{len(collapsed)} runs of {len(records)}, {sum(r['method'] == 'auto' for r in collapsed)} of them auto")
    good = [r["estimate"] for r in records if verdict(r) == "good"]
    bad = [r["estimate"] for r in collapsed]
    if bad and good:
        separated = "separates them from the good runs with no overlap" if max(bad) < min(good) else "overlaps the good runs"
        lines.append(f"- the estimate {separated}: collapsed runs {min(bad):.3f}..{max(bad):.3f}, good runs "
                     f"(accuracy ≥ {GOOD_ACCURACY} × native) {min(good):.3f}..{max(good):.3f}; relcli warns below {POOR_SCORE}")
        for who, runs in (("every method", records), ("auto", [r for r in records if r["method"] == "auto"])):
            warned = {v: sum(1 for r in runs if verdict(r) == v and r["estimate"] < POOR_SCORE) for v in ("collapse", "good")}
            total = {v: sum(1 for r in runs if verdict(r) == v) for v in ("collapse", "good")}
            lines.append(f"- the warning, {who}: {warned['collapse']} of {total['collapse']} collapsed runs warned, "
                         f"{warned['good']} of {total['good']} good runs warned")
    rhos = []
    for setting in settings:
        rows = [r for r in records if (r["pair"], r["direction"], r["k"]) == setting and r["method"] != "auto"]
        for seed in {r["seed"] for r in rows}:
            chunk = [r for r in rows if r["seed"] == seed]
            if len({r["recall_corpus"] for r in chunk}) > 1:
                rhos.append(spearman(np.array([r["estimate"] for r in chunk]), np.array([r["recall_corpus"] for r in chunk])))
    lines.append(f"- the estimate ranks the methods as the truth (corpus recall@10) does: mean Spearman {np.mean(rhos):.2f} "
                 f"over {len(rhos)} (setting, seed) groups; {sum(r > 0 for r in rhos)} positive")
    auto_rho = [r["confidence_rho"] for r in records if r["method"] == "auto"]
    lines.append(f"- per-row confidence vs the row's true cosine (auto): mean Spearman {np.mean(auto_rho):.2f} "
                 f"(min {np.min(auto_rho):.2f})")
    text = {(d, k): v for (p, d, k, m), v in table.items() if p == "text" and m == "auto"}
    if text:
        lowest = min(v["accuracy"][0] for v in text.values())
        met = sorted(key for key, v in text.items() if v["accuracy"][0] >= 0.97)
        lines.append(f"- text pair, auto: stitched accuracy with relcli's head ≥ {lowest:.3f} × native (target 0.97; met at "
                     + (", ".join(f"{d} k={k}" for d, k in met) or "no setting") + ")")
        ridge = [(d, k, v["recall_corpus"][0] - table[("text", d, k, "linear --rcond 0.001")]["recall_corpus"][0])
                 for (d, k), v in text.items() if k < 384 and ("text", d, k, "linear --rcond 0.001") in table]
        if ridge:
            lines.append("- text pair, k < d: auto's corpus recall@10 minus a fixed-cut-off least squares (the old default): "
                         + ", ".join(f"{d} k={k}: {gain:+.3f}" for d, k, gain in sorted(ridge)))
    return lines


def gate_table(records: list[dict]) -> list[str]:
    """How the estimate separates runs the truth calls collapsed, fair and good."""
    out = ["| true verdict | runs | estimate min | estimate median | estimate max | warned (estimate < "
           f"{POOR_SCORE}) |", "|---|---|---|---|---|---|"]
    for name in ("collapse", "fair", "good"):
        values = np.array([r["estimate"] for r in records if verdict(r) == name])
        if len(values):
            out.append(f"| {name} | {len(values)} | {values.min():.3f} | {np.median(values):.3f} | {values.max():.3f} | "
                       f"{int((values < POOR_SCORE).sum())} |")
    return out


def render(records: list[dict], args, elapsed: float) -> str:
    import relcli

    table = aggregate(records)
    out = ["# relcli quality report", ""]
    kept = sum(bool(r.get("kept")) for r in records)
    where = f" for the runs made here ({kept} of {len(records)} kept from an earlier --json by --merge-json)" if kept else ""
    out.append(f"`python benchmarks/quality.py{' --quick' if args.quick else ''}`; relcli {relcli.__version__}, "
               f"{platform.python_implementation()} {platform.python_version()}, {elapsed / 60:.1f} min on this machine{where}; "
               f"seeds {args.seeds}. Values are means ± std over seeds; accuracy and independent are fractions of the "
               "native accuracy (the same head on the true target embeddings).")
    earlier = sum(not r.get("estimate_chance_corrected") for r in records)
    if earlier:
        out.append(f"\n{earlier} of {len(records)} runs (k ∈ {sorted({r['k'] for r in records if not r.get('estimate_chance_corrected')})}) "
                   "come from an earlier run whose estimate had no chance correction (it differs by at most "
                   "(H_k/k + 10/(k−1))/3: 0.011 at k = 512, 0.006 at 1024, 0.003 at 2048).")
    out += ["", "## Targets", "", *targets(records, table), "", "## The gate", "",
            f"Every run, classed by the truth: collapse (stitched accuracy < {COLLAPSE_ACCURACY} × native or corpus "
            f"recall@10 < {COLLAPSE_RECALL}), good (accuracy ≥ {GOOD_ACCURACY} × native), fair (between); next to relcli's "
            "estimate (what `--min-score` gates on and the warning reads).", "", *gate_table(records), ""]
    for key in sorted({r["pair"] for r in records}):
        out += [f"## {PAIRS[key].name}", ""]
        for direction in sorted({r["direction"] for r in records if r["pair"] == key}):
            native = np.mean([r["native_accuracy"] for r in records if r["pair"] == key and r["direction"] == direction])
            out += [f"### {direction} (native accuracy {native:.3f})", "",
                    "| k | method | estimate | accuracy | independent | recall@10 corpus | recall@10 query | cosine | conf. ρ |",
                    "|---|---|---|---|---|---|---|---|---|"]
            for k in sorted({r["k"] for r in records if r["pair"] == key}):
                for method, options in METHODS:
                    name = method_name(method, options)
                    v = table.get((key, direction, k, name))
                    if v is None:
                        continue
                    label = f"auto → {v['chosen']}" if name == "auto" else name
                    out.append(f"| {k} | {label} | {pm(v['estimate'])} | {pm(v['accuracy'])} | {pm(v['independent'])} | "
                               f"{pm(v['recall_corpus'])} | {pm(v['recall_query'])} | {pm(v['cosine'])} | {v['confidence_rho'][0]:.2f} |")
            out.append("")
    return "\n".join(out) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, k in {128, 512}")
    parser.add_argument("--pairs", default="digits,text", help="comma-separated: digits, text")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "quality_results.md")
    parser.add_argument("--json", type=Path, default=None, help="also write every record as JSON")
    parser.add_argument("--from-json", type=Path, default=None, help="render the records of an earlier --json run")
    parser.add_argument("--ks", default=None, help="comma-separated anchor counts (default: every k of each pair)")
    parser.add_argument("--merge-json", type=Path, default=None,
                        help="an earlier --json run: its records for settings not run now are kept in the report")
    args = parser.parse_args()
    args.seeds = [0, 1] if args.quick else [0, 1, 2, 3, 4]
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        args.seeds, args.quick = saved["seeds"], saved["quick"]
        text = render(saved["records"], args, saved["seconds"])
        args.out.write_text(text)
        print(text)
        return
    started = time.perf_counter()
    records = []
    with tempfile.TemporaryDirectory(prefix="relcli-quality-") as tmp:
        for key in args.pairs.split(","):
            pair = PAIRS[key.strip()]
            ks = [k for k in pair.ks if (not args.quick or k in (128, 512)) and (not args.ks or str(k) in args.ks.split(","))]
            records += run_pair(key.strip(), pair, args.seeds, ks, Path(tmp))
    seconds = time.perf_counter() - started
    if args.merge_json:
        earlier = json.loads(args.merge_json.read_text())
        done = {(r["pair"], r["direction"], r["k"], r["method"], r["seed"]) for r in records}
        records += [{**r, "kept": True} for r in earlier["records"]
                    if (r["pair"], r["direction"], r["k"], r["method"], r["seed"]) not in done]
    if args.json:  # first: a rendering bug must not lose the run
        args.json.write_text(json.dumps({"seeds": args.seeds, "quick": args.quick, "seconds": seconds, "records": records}, indent=1))
    text = render(records, args, seconds)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
