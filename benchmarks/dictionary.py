"""Word translation from a dictionary: does ``auto`` pick what finds the right word?

    python benchmarks/dictionary.py            # three synthetic MUSE-like pairs, about 3 minutes
    python benchmarks/dictionary.py --quick    # the first pair only

Each pair is built as bilingual word vectors are: 20,000 source words of 300 dimensions (an
anisotropic spectrum, log-normal norms, a shared offset), their translations a rotation of them
plus noise, and 30 % of the words with a second translation (a many-to-many dictionary, as MUSE's
are). Through ``relcli.api`` as a user runs it: ``anchors -n 2000 --pairs train --target`` draws
anchors among the first 5,000 words that have a translation, ``--like --pairs`` takes every
partner, ``translate`` maps the whole vocabulary, and ``evaluate --pairs`` scores precision@1 (and
CSLS) on the dictionary of words 5,000-6,500, searched among all target words.

Rows: ``auto`` (the dictionary makes it score retrieval alone), ``auto --objective all`` (retrieval
and reconstruction R², what ``auto`` weighed before for every pair), and each method on its own.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: (noise, offset, anchor strategy): noise in units of the mean spectrum, offset added to every dimension
PAIRS = ((2.0, 1.0, "fps"), (3.0, 2.0, "fps"), (2.0, 1.0, "random"))
RUNS = (("auto", {}), ("auto", {"objective": "all"}), ("procrustes", {}), ("procrustes", {"scaling": "isotropic"}),
        ("linear", {}), ("irp", {"center": True}), ("ortho-linear", {}))
WORDS, DIM, ANCHORS, TWINS = 20_000, 300, 2_000, 0.3


def write_pair(folder: Path, noise: float, offset: float, seed: int = 0) -> None:
    """src.npy / tgt.npy with their ids, train.txt (words 0-4,999) and test.txt (5,000-6,499)."""
    rng = np.random.default_rng(seed)
    spectrum = np.linspace(3, 0.5, DIM)
    x = rng.standard_normal((WORDS, DIM)) * spectrum * np.exp(0.5 * rng.standard_normal((WORDS, 1))) + offset
    rotation, _ = np.linalg.qr(rng.standard_normal((DIM, DIM)))
    y = x @ rotation + noise * spectrum.mean() * rng.standard_normal((WORDS, DIM))
    twin = np.flatnonzero(rng.random(WORDS) < TWINS)
    y2 = x[twin] @ rotation + noise * spectrum.mean() * rng.standard_normal((len(twin), DIM))
    np.save(folder / "src.npy", x.astype(np.float32))
    (folder / "src.ids.txt").write_text("".join(f"s{i}\n" for i in range(WORDS)))
    np.save(folder / "tgt.npy", np.vstack([y, y2]).astype(np.float32))
    (folder / "tgt.ids.txt").write_text("".join(f"t{i}\n" for i in range(WORDS)) + "".join(f"t{i}b\n" for i in twin))
    has_twin = set(twin.tolist())
    for name, words in (("train", range(5000)), ("test", range(5000, 6500))):
        lines = [f"s{i} t{i}\n" + (f"s{i} t{i}b\n" if i in has_twin else "") for i in words]
        (folder / f"{name}.txt").write_text("".join(lines))


def run_pair(folder: Path, strategy: str) -> list[tuple[str, str, float, float, float]]:
    """(run, chosen method, estimate, precision@1, CSLS precision@1) of every run."""
    from relcli import api

    api.import_file(folder / "src.npy", output=folder / "src.h5")
    api.import_file(folder / "tgt.npy", output=folder / "tgt.h5")
    api.anchors(folder / "src.h5", n_anchors=ANCHORS, strategy=strategy, pairs=folder / "train.txt",
                target=folder / "tgt.h5", output=folder / "src_a.h5")
    api.anchors(folder / "tgt.h5", like=folder / "src_a.h5", pairs=folder / "train.txt", output=folder / "tgt_a.h5")
    rows = []
    for method, options in RUNS:
        out = folder / "out.h5"
        result = api.translate(folder / "src.h5", src_anchors=folder / "src_a.h5", tgt_anchors=folder / "tgt_a.h5",
                               method=method, output=out, **options)
        selection = result.parameters["selection"]
        scores = api.evaluate(out, reference=folder / "tgt.h5", pairs=folder / "test.txt", metrics="top1,csls_top1")
        name = method + "".join(f" --{k} {v}" if v is not True else f" --{k}" for k, v in options.items())
        rows.append((name, f"{selection['chosen']} ({selection['objective']})", selection["estimate"]["score"],
                     scores.metrics["top1"], scores.metrics["csls_top1"]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first pair only")
    args = parser.parse_args()
    started = time.perf_counter()
    print("| pair (noise, offset, anchors) | run | chose (objective) | estimate | P@1 | CSLS P@1 |")
    print("|---|---|---|---|---|---|")
    for noise, offset, strategy in PAIRS[:1] if args.quick else PAIRS:
        with tempfile.TemporaryDirectory(prefix="relcli-dictionary-") as tmp:
            write_pair(Path(tmp), noise, offset)
            for name, chosen, estimate, top1, csls in run_pair(Path(tmp), strategy):
                print(f"| {noise:g}, {offset:g}, {strategy} | {name} | {chosen} | {estimate:.3f} | {top1:.3f} | {csls:.3f} |",
                      flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
