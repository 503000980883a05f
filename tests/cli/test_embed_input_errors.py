"""``relcli embed``: bad inputs (items, labels, columns, empty texts, duplicate ids, encodings,
output paths, failures after writing began).

Every failure: exit code, one ``Error:`` line naming the file and the problem, no traceback,
and no output or temp file left behind.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from relcli.api.embed import TEXT_CHUNK_BATCHES

from ._embed_helpers import (
    ENCODERS,
    FAKE_DIM,
    TEXTS,
    _save,
    _stdin,
    fails,
    fake_encoder,  # noqa: F401 (a fixture)
    message_after,
    ngram_bag,
    small_digits,  # noqa: F401 (a fixture)
    table,  # noqa: F401 (a fixture)
    write_lines,
    write_table,
)
from .conftest import assert_clean_error, invoke, load, ok


# ---------------------------------------------------------------------------------------------
# Missing or empty inputs and columns
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("option", ["--text-column", "--id-column", "--label-column"])
def test_missing_column(tmp_path, fake_encoder, table, option):
    fails(tmp_path, ["embed", table, "-e", "ngram:", option, "nope", "-o", tmp_path / "o.h5"], 1,
          "'nope'", "columns: id, text, label", path=table)


def test_missing_default_text_column(tmp_path, fake_encoder):
    src = write_table(tmp_path / "b.tsv", {"body": TEXTS})
    fails(tmp_path, ["embed", src, "-e", "ngram:", "-o", tmp_path / "o.h5"], 1, "'text'", "--text-column", path=src)


@pytest.mark.parametrize("name, content", [
    ("lines.txt", b""),
    ("header.csv", b"id,text\n"),
    ("header.tsv", b"id\ttext\n"),
    pytest.param("rows.jsonl", b""),
])
def test_empty_input(tmp_path, fake_encoder, name, content):
    src = tmp_path / name
    src.write_bytes(content)
    line = fails(tmp_path, ["embed", src, "-e", "ngram:", "-o", tmp_path / "o.safetensors"], 1, path=src)
    assert message_after(line, src) == "is empty: nothing to embed"
    assert fake_encoder.seen == []


def test_zero_byte_csv(tmp_path, fake_encoder):
    src = tmp_path / "zero.csv"
    src.write_bytes(b"")
    line = fails(tmp_path, ["embed", src, "-e", "ngram:", "-o", tmp_path / "o.h5"], 1, path=src)
    problem = message_after(line, src)
    assert "empty" in problem or problem.startswith("cannot read the table"), problem


def test_missing_input(tmp_path, fake_encoder):
    fails(tmp_path, ["embed", tmp_path / "nope.txt", "-e", "ngram:", "-o", tmp_path / "o.h5"], 1,
          "no such file", path=tmp_path / "nope.txt")


def test_tensor_encoder_on_text_input(tmp_path):
    src = write_lines(tmp_path / "t.txt", ["a", "b"])
    fails(tmp_path, ["embed", src, "-e", f"torchscript:{ENCODERS['mnist']}", "-o", tmp_path / "o.h5"], 1,
          "takes tensor input", "holds text items", path=src)


def test_text_encoder_on_array_input(tmp_path, fake_encoder, small_digits):
    fails(tmp_path, ["embed", small_digits, "-e", "ngram:", "-o", tmp_path / "o.h5"], 1,
          "takes text input", "holds tensor items", path=small_digits)
    assert fake_encoder.seen == []


# ---------------------------------------------------------------------------------------------
# Labels and output
# ---------------------------------------------------------------------------------------------
def test_labels_of_the_wrong_length(tmp_path, small_digits):
    labels = _save(tmp_path / "labels.npy", np.arange(19))
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{ENCODERS['usps']}", "--labels", labels,
                     "-o", tmp_path / "o.h5"], 1, "19 labels", "20 items")


def test_labels_of_the_wrong_length_name_the_labels_file(tmp_path, small_digits):
    labels = _save(tmp_path / "labels.npy", np.arange(19))
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{ENCODERS['usps']}", "--labels", labels,
                     "-o", tmp_path / "o.h5"], 1, "19 labels", path=labels)


def test_labels_not_1d(tmp_path, small_digits):
    labels = _save(tmp_path / "labels.npy", np.zeros((20, 2), dtype=np.int64))
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{ENCODERS['usps']}", "--labels", labels,
                     "-o", tmp_path / "o.h5"], 1, "1-D", path=labels)


@pytest.mark.parametrize("value", [0.5, float("nan")])
def test_labels_that_are_fractions_or_missing_are_named_not_stringified(tmp_path, small_digits, value):
    labels = _save(tmp_path / "labels.npy", np.where(np.arange(20) == 7, value, np.arange(20) % 3).astype(np.float64))
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{ENCODERS['usps']}", "--labels", labels,
                     "-o", tmp_path / "o.h5"], 1, "labels must be integers or text; row 7 holds", path=labels)


def test_bad_output_extension(tmp_path, small_digits):
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{ENCODERS['usps']}", "-o", tmp_path / "o.npy"], 2,
          "unknown output extension")


def test_failure_after_writing_began_leaves_no_file(tmp_path, fake_encoder):
    """The encoder changes width in the 2nd chunk of rows (the 1st is written by then): the
    half-written temp file must go."""
    src = write_lines(tmp_path / "t.txt", [f"item {i}" for i in range(40)])
    chunk = 2 * TEXT_CHUNK_BATCHES
    fails(tmp_path, ["embed", src, "-e", f"ngram:flaky-after-{chunk}", "--batch-size", 2, "-o", tmp_path / "o.h5"], 1,
          f"{FAKE_DIM + 3} dims", f"{FAKE_DIM} before")
    assert len(fake_encoder.seen) == chunk // 2 + 1


def test_failure_inside_the_first_chunk(tmp_path, fake_encoder):
    src = write_lines(tmp_path / "t.txt", ["one", "two", "three", "four", "five"])
    fails(tmp_path, ["embed", src, "-e", "ngram:flaky", "--batch-size", 2, "-o", tmp_path / "o.h5"], 1,
          f"{FAKE_DIM + 3} dims", f"{FAKE_DIM} before")
    assert len(fake_encoder.seen) == 2


def test_failure_keeps_an_existing_output(tmp_path, fake_encoder):
    src = write_lines(tmp_path / "t.txt", ["one", "two", "three"])
    out = tmp_path / "o.safetensors"
    ok(invoke("embed", src, "-e", "ngram:", "-o", out))
    fails(tmp_path, ["embed", src, "-e", "ngram:flaky", "--batch-size", 1, "-o", out], 1, "dims")
    np.testing.assert_allclose(load(out).matrix, ngram_bag(["one", "two", "three"]).float().numpy())


# ---------------------------------------------------------------------------------------------
# Inputs (issue 11): empty texts, duplicate ids, stdin, encodings, --format, --prefix
# ---------------------------------------------------------------------------------------------
def test_null_text_in_jsonl_names_the_row(tmp_path, fake_encoder):
    src = tmp_path / "n.jsonl"
    write_lines(src, [json.dumps({"id": i, "text": t}) for i, t in
                      [("a", "fine"), ("b", None), ("c", "also fine"), ("d", "  "), ("e", "")]])
    line = fails(tmp_path, ["embed", src, "-e", "ngram:", "-o", tmp_path / "o.h5"], 1, path=src)
    assert message_after(line, src) == ("empty text (column 'text') in 3 row(s) (ids 'b', 'd', 'e'); "
                                        "use --skip-empty to leave them out")
    assert fake_encoder.seen == []


def test_empty_csv_cell_and_blank_line_name_the_rows(tmp_path, fake_encoder):
    csv = tmp_path / "e.csv"
    write_lines(csv, ["text,label", "one,a", ",b", "three,c"])
    line = fails(tmp_path, ["embed", csv, "-e", "ngram:", "-o", tmp_path / "o.h5"], 1, path=csv)
    assert "in 1 row(s) (rows 1)" in line and "--skip-empty" in line
    txt = write_lines(tmp_path / "e.txt", ["one", "", "three", " \t", "five"])
    line = fails(tmp_path, ["embed", txt, "-e", "ngram:", "-o", tmp_path / "o.h5"], 1, path=txt)
    assert "empty text in 2 row(s) (rows 1, 3)" in line


def test_skip_empty_with_nothing_left(tmp_path, fake_encoder):
    txt = write_lines(tmp_path / "e.txt", ["", " "])
    fails(tmp_path, ["embed", txt, "-e", "ngram:", "--skip-empty", "-o", tmp_path / "o.h5"], 1,
          "no text to embed", path=txt)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_duplicate_ids_name_the_input_and_both_rows(tmp_path, fake_encoder, suffix):
    src = write_table(tmp_path / f"d{suffix}", {"id": ["a", "b", "c", "b"], "text": ["w", "x", "y", "z"]})
    out = tmp_path / "out.h5"
    line = fails(tmp_path, ["embed", src, "-e", "ngram:", "-o", out], 1, "duplicate id 'b'", "rows 1 and 3",
                 "column 'id'", path=src)
    assert str(out) not in line
    assert fake_encoder.seen == []


def test_format_option_overrides_the_extension(tmp_path, fake_encoder):
    src = tmp_path / "notes.log"
    write_lines(src, ["alpha", "beta"])
    fails(tmp_path, ["embed", src, "-e", "ngram:", "-o", tmp_path / "o.h5"], 2, "unknown input type '.log'", "--format")
    ok(invoke("embed", src, "-e", "ngram:", "--format", "txt", "-o", tmp_path / "o.h5"))
    assert load(tmp_path / "o.h5").matrix.shape == (2, FAKE_DIM)


def test_stdin_errors_name_stdin(tmp_path, fake_encoder):
    result = _stdin(["embed", "-", "-e", "ngram:", "-o", tmp_path / "o.h5"], '{"text": "ok"}\n{"text": null}\n')
    assert_clean_error(result, 1, "<stdin>", "empty text", "rows 1")
    assert list(tmp_path.iterdir()) == []
    result = _stdin(["embed", "-", "-e", "ngram:", "-o", tmp_path / "o.h5"], b"caf\xe9\n")
    assert_clean_error(result, 1, "<stdin>", "not UTF-8")


def test_non_utf8_text_file(tmp_path, fake_encoder):
    src = tmp_path / "latin1.txt"
    src.write_bytes("café\n".encode("latin-1"))
    fails(tmp_path, ["embed", src, "-e", "ngram:", "-o", tmp_path / "o.h5"], 1, "is not UTF-8 text", path=src)


def test_prefix_on_arrays_is_a_usage_error(tmp_path, small_digits):
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{ENCODERS['usps']}", "--prefix", "query: ",
                     "-o", tmp_path / "o.h5"], 2, "--prefix applies to text items")


def test_bad_format_value(tmp_path, fake_encoder):
    src = write_lines(tmp_path / "d.txt", ["a"])
    result = invoke("embed", src, "-e", "ngram:", "--format", "xml", "-o", tmp_path / "d.h5")
    assert_clean_error(result, 2, "--format")
