"""``relcli embed`` (issues 5 and 11) on tables and text lines, through a deterministic fake text
encoder (a hashed character-trigram bag, like llm's ``EmbedDemo``) registered through the
``relcli.encoders`` entry-point group, exactly the way a plugin package registers one: ids and
labels carried along, columns by name, ``--skip-empty``, stdin, ``--prefix``, length-sorted batches.

Inputs and outputs live in ``tmp_path``; nothing is written into the repository.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from relcli.api.embed import DEFAULT_TEXT_BATCH, TEXT_CHUNK_BATCHES

from ._embed_helpers import (
    DOC_IDS,
    SENTIMENT,
    TEXTS,
    _save,
    _stdin,
    fake_encoder,  # noqa: F401 (a fixture)
    longest_first,
    ngram_bag,
    write_lines,
    write_table,
)
from .conftest import invoke, load, ok


# ---------------------------------------------------------------------------------------------
# Tables and text lines (fake plugin encoder)
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix, out_suffix", [(".csv", ".h5"), (".tsv", ".safetensors"), (".jsonl", ".h5"), (".jsonl", ".safetensors")])
def test_table_with_string_ids_and_labels(tmp_path, fake_encoder, suffix, out_suffix):
    texts = [t.replace("\t", " ") for t in TEXTS] if suffix == ".tsv" else TEXTS
    src = write_table(tmp_path / f"docs{suffix}", {"doc_id": DOC_IDS, "body": texts, "sentiment": SENTIMENT})
    out = tmp_path / f"docs{out_suffix}"
    ok(invoke("embed", src, "--encoder", "ngram:", "--text-column", "body", "--id-column", "doc_id",
              "--label-column", "sentiment", "--batch-size", 2, "-o", out))
    got = load(out)
    assert got.ids == DOC_IDS  # in the file's order, not sorted
    assert got.labels == SENTIMENT
    assert fake_encoder.all_seen() == longest_first(texts)  # length-sorted batches ...
    assert [len(b) for b in fake_encoder.seen] == [2, 2, 1]
    # ... and the rows back in the input's order
    np.testing.assert_allclose(got.matrix, ngram_bag(texts).float().numpy(), rtol=0, atol=0)
    assert got.attrs["encoder"] == "ngram:"


def test_table_default_text_column_and_integer_ids(tmp_path, fake_encoder):
    src = write_table(tmp_path / "t.csv", {"text": TEXTS, "n": [10, 3, 7, 1, 99], "y": [1, 0, 1, 0, 2]})
    out = tmp_path / "t.safetensors"
    ok(invoke("embed", src, "-e", "ngram:", "--id-column", "n", "--label-column", "y", "-o", out))
    got = load(out)
    assert got.ids == [10, 3, 7, 1, 99] and got.labels == [1, 0, 1, 0, 2]
    np.testing.assert_allclose(got.matrix, ngram_bag(TEXTS).float().numpy(), rtol=0, atol=0)


def test_table_without_id_column_numbers_the_rows(tmp_path, fake_encoder):
    src = write_table(tmp_path / "t.jsonl", {"text": TEXTS, "other": list(range(5))})
    out = tmp_path / "t.h5"
    ok(invoke("embed", src, "-e", "ngram:", "--normalize", "-o", out))
    got = load(out)
    assert got.ids == list(range(5)) and got.labels is None
    ref = ngram_bag(TEXTS)
    np.testing.assert_allclose(got.matrix, (ref / ref.norm(dim=1, keepdim=True)).float().numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "suffix",
    [
        ".csv",
        ".jsonl",
    ],
)
def test_table_values_are_taken_verbatim(tmp_path, fake_encoder, suffix):
    """Texts, string ids and string labels that look like numbers or NA reach the file unchanged."""
    texts = ["NA", "1.50", "None", "007", "null"]
    ids = ["007", "7", "010", "10", "3"]  # distinct as strings, not as numbers
    labels = ["1", "01", "2", "3", "4"]
    src = tmp_path / f"v{suffix}"
    if suffix == ".csv":
        rows = ["id,text,label"] + [f"{i},{t},{l}" for i, t, l in zip(ids, texts, labels)]
        write_lines(src, rows)
    else:
        write_lines(src, [json.dumps({"id": i, "text": t, "label": l}) for i, t, l in zip(ids, texts, labels)])
    out = tmp_path / "v.safetensors"
    ok(invoke("embed", src, "-e", "ngram:", "--id-column", "id", "--label-column", "label", "-o", out))
    got = load(out)
    assert sorted(fake_encoder.all_seen()) == sorted(texts)
    assert got.ids == ids and got.labels == labels
    np.testing.assert_allclose(got.matrix, ngram_bag(texts).float().numpy(), rtol=0, atol=0)


def test_txt_one_item_per_line(tmp_path, fake_encoder):
    lines = ["first line", "  second, with spaces  ", "3", "ünïcode — ok", "last"]
    src = tmp_path / "lines.txt"
    src.write_bytes(("\r\n".join(lines[:2]) + "\n" + "\n".join(lines[2:]) + "\n").encode("utf-8"))  # CRLF and LF
    out = tmp_path / "lines.h5"
    ok(invoke("embed", src, "-e", "ngram:", "--labels", _save(tmp_path / "l.npy", np.arange(5) % 2), "-o", out))
    got = load(out)
    assert sorted(fake_encoder.all_seen()) == sorted(lines)
    assert got.ids == list(range(5)) and got.labels == [0, 1, 0, 1, 0]
    np.testing.assert_allclose(got.matrix, ngram_bag(lines).float().numpy(), rtol=0, atol=0)


def test_whole_number_float_labels_are_stored_as_integers(tmp_path, fake_encoder):
    """A label array saved as float (np.save of 1.0, 2.0) holds classes: stored as 1, 2, not '1.0'."""
    src = write_lines(tmp_path / "lines.txt", ["a", "b", "c"])
    out = tmp_path / "lines.h5"
    ok(invoke("embed", src, "-e", "ngram:", "--labels", _save(tmp_path / "l.npy", np.array([2.0, 0.0, 1.0])), "-o", out))
    assert load(out).labels == [2, 0, 1]


def test_json_number_labels_that_are_whole_are_integers_and_fractions_are_named(tmp_path, fake_encoder):
    src = write_lines(tmp_path / "items.jsonl", [json.dumps({"text": t, "label": l}) for t, l in (("a", 1.0), ("b", 2))])
    ok(invoke("embed", src, "-e", "ngram:", "-o", tmp_path / "o.h5"))
    assert load(tmp_path / "o.h5").labels == [1, 2]
    bad = write_lines(tmp_path / "bad.jsonl", [json.dumps({"text": t, "label": l}) for t, l in (("a", 2), ("b", 0.5))])
    result = invoke("embed", bad, "-e", "ngram:", "-o", tmp_path / "bad.h5")
    assert result.exit_code == 1 and "labels must be integers or text; row 1 holds 0.5" in result.stderr
    assert not (tmp_path / "bad.h5").exists()


def test_txt_lines_are_split_on_newlines_only(tmp_path, fake_encoder):
    lines = ["page one\x0cpage two", "a\u2028b", "c\x85d", "plain"]
    src = tmp_path / "odd.txt"
    src.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    out = tmp_path / "odd.h5"
    ok(invoke("embed", src, "-e", "ngram:", "-o", out))
    assert sorted(fake_encoder.all_seen()) == sorted(lines)
    np.testing.assert_allclose(load(out).matrix, ngram_bag(lines).float().numpy(), rtol=0, atol=0)


# ---------------------------------------------------------------------------------------------
# Inputs (issue 11): id/label columns by name, empty texts, stdin, --prefix
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_id_and_label_columns_are_used_by_name(tmp_path, fake_encoder, suffix):
    src = write_table(tmp_path / f"t{suffix}", {"label": SENTIMENT, "text": TEXTS if suffix != ".tsv" else
                                                [t.replace("\t", " ") for t in TEXTS], "id": DOC_IDS})
    out = tmp_path / "t.h5"
    ok(invoke("embed", src, "-e", "ngram:", "-o", out))
    got = load(out)
    assert got.ids == DOC_IDS and got.labels == SENTIMENT


def test_named_columns_win_over_id_and_label(tmp_path, fake_encoder):
    src = write_table(tmp_path / "t.jsonl", {"text": TEXTS, "id": DOC_IDS, "key": [5, 4, 3, 2, 1],
                                             "label": SENTIMENT, "y": [1, 0, 1, 0, 2]})
    out = tmp_path / "t.safetensors"
    ok(invoke("embed", src, "-e", "ngram:", "--id-column", "key", "--label-column", "y", "-o", out))
    got = load(out)
    assert got.ids == [5, 4, 3, 2, 1] and got.labels == [1, 0, 1, 0, 2]


def test_empty_column_names_turn_the_defaults_off(tmp_path, fake_encoder):
    src = write_table(tmp_path / "t.csv", {"text": TEXTS, "id": ["x", "x", "y", "z", "w"], "label": SENTIMENT})
    out = tmp_path / "t.h5"
    ok(invoke("embed", src, "-e", "ngram:", "--id-column", "", "--label-column", "", "-o", out))
    got = load(out)
    assert got.ids == list(range(5)) and got.labels is None


def test_integer_id_column_by_name(tmp_path, fake_encoder):
    src = write_table(tmp_path / "t.jsonl", {"id": [10, 3, 7, 1, 99], "text": TEXTS})
    ok(invoke("embed", src, "-e", "ngram:", "-o", tmp_path / "t.h5"))
    assert load(tmp_path / "t.h5").ids == [10, 3, 7, 1, 99]


def test_skip_empty_leaves_the_rows_out(tmp_path, fake_encoder):
    src = tmp_path / "n.jsonl"
    rows = [("a", "fine", "x"), ("b", None, "y"), ("c", "also fine", "z"), ("d", "", "w")]
    write_lines(src, [json.dumps({"id": i, "text": t, "label": l}) for i, t, l in rows])
    out = tmp_path / "n.h5"
    result = ok(invoke("embed", src, "-e", "ngram:", "--skip-empty", "-o", out))
    assert "skipped 2 row(s) (ids 'b', 'd') with an empty text" in result.stderr
    got = load(out)
    assert got.ids == ["a", "c"] and got.labels == ["x", "z"]
    np.testing.assert_allclose(got.matrix, ngram_bag(["fine", "also fine"]).float().numpy(), rtol=0, atol=0)
    assert got.attrs["skipped_empty"] == 2 and got.attrs["provenance"]["parameters"]["skip_empty"] is True
    # -q: the warning goes too
    assert ok(invoke("embed", src, "-e", "ngram:", "--skip-empty", "-q", "-o", out)).stderr == ""


def test_skip_empty_keeps_row_numbers_as_ids(tmp_path, fake_encoder):
    txt = write_lines(tmp_path / "e.txt", ["one", "", "three"])
    out = tmp_path / "e.h5"
    ok(invoke("embed", txt, "-e", "ngram:", "--skip-empty", "-o", out))
    assert load(out).ids == [0, 2]  # the input's row numbers, not renumbered


def test_stdin_lines(tmp_path, fake_encoder):
    out = tmp_path / "s.h5"
    lines = ["first", "second one", "third"]
    result = ok(_stdin(["embed", "-", "-e", "ngram:", "-o", out], "\n".join(lines) + "\n"))
    assert "wrote 3 x" in result.stderr
    got = load(out)
    assert got.ids == [0, 1, 2]
    np.testing.assert_allclose(got.matrix, ngram_bag(lines).float().numpy(), rtol=0, atol=0)
    parameters = got.attrs["provenance"]["parameters"]
    assert parameters["input"] == "-"
    assert parameters["stdin_sha256"] == __import__("hashlib").sha256(("\n".join(lines) + "\n").encode()).hexdigest()
    assert got.attrs["provenance"]["inputs"] == []


def test_stdin_jsonl_is_detected(tmp_path, fake_encoder):
    out = tmp_path / "s.safetensors"
    data = "\n".join(json.dumps({"id": i, "text": t, "label": l}) for i, t, l in zip(DOC_IDS, TEXTS, SENTIMENT)) + "\n"
    ok(_stdin(["embed", "-", "-e", "ngram:", "-o", out], data))
    got = load(out)
    assert got.ids == DOC_IDS and got.labels == SENTIMENT
    np.testing.assert_allclose(got.matrix, ngram_bag(TEXTS).float().numpy(), rtol=0, atol=0)


def test_stdin_format_option(tmp_path, fake_encoder):
    line = json.dumps({"text": "a json line"})
    ok(_stdin(["embed", "-", "-e", "ngram:", "--format", "txt", "-o", tmp_path / "a.h5"], line + "\n"))
    assert fake_encoder.all_seen() == [line]  # taken as one text line, braces and all
    fake_encoder.seen.clear()
    ok(_stdin(["embed", "-", "-e", "ngram:", "--format", "csv", "-o", tmp_path / "b.h5"], "id,text\nk1,hello\nk2,world\n"))
    assert load(tmp_path / "b.h5").ids == ["k1", "k2"] and sorted(fake_encoder.all_seen()) == ["hello", "world"]


def test_prefix_is_put_before_every_text(tmp_path, fake_encoder):
    src = write_lines(tmp_path / "p.txt", ["how much protein", "a doc"])
    out = tmp_path / "p.h5"
    ok(invoke("embed", src, "-e", "ngram:", "--prefix", "query: ", "-o", out))
    assert sorted(fake_encoder.all_seen()) == ["query: a doc", "query: how much protein"]
    got = load(out)
    np.testing.assert_allclose(got.matrix, ngram_bag(["query: how much protein", "query: a doc"]).float().numpy(), atol=0)
    assert got.attrs["provenance"]["parameters"]["prefix"] == "query: "


def test_length_sorted_batches_keep_the_input_order(tmp_path, fake_encoder):
    """70 texts of shuffled lengths, batch 4: chunks of 64 rows, each sorted longest first, written in order."""
    rng = np.random.default_rng(0)
    texts = [f"{i} " + "w" * int(n) for i, n in enumerate(rng.integers(1, 60, size=70))]
    src = write_lines(tmp_path / "s.txt", texts)
    out = tmp_path / "s.h5"
    ok(invoke("embed", src, "-e", "ngram:", "--batch-size", 4, "-o", out))
    chunk = 4 * TEXT_CHUNK_BATCHES
    assert fake_encoder.all_seen() == longest_first(texts[:chunk]) + longest_first(texts[chunk:])
    assert all(len(b) == 4 for b in fake_encoder.seen[:-1]) and len(fake_encoder.seen[-1]) == 70 - 68
    got = load(out)
    assert got.ids == list(range(70))
    np.testing.assert_allclose(got.matrix, ngram_bag(texts).float().numpy(), rtol=0, atol=0)


def test_default_text_batch(tmp_path, fake_encoder):
    src = write_lines(tmp_path / "d.txt", [f"text number {i}" for i in range(DEFAULT_TEXT_BATCH + 5)])
    ok(invoke("embed", src, "-e", "ngram:", "-o", tmp_path / "d.h5"))
    assert [len(b) for b in fake_encoder.seen] == [DEFAULT_TEXT_BATCH, 5]
    assert load(tmp_path / "d.h5").attrs["provenance"]["parameters"]["batch_size"] == DEFAULT_TEXT_BATCH
