"""Word vectors (``.vec``, ``.vec.gz``): fastText, MUSE, GloVe and gensim files in and out, the words
as ids, bit for bit; every malformed line named, nothing written on an error."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relcli import api
from relcli.errors import RelcliError
from relcli.io.embeddings import write_embeddings

from .conftest import D, N, assert_clean_error, invoke, load, ok, snapshot

FASTTEXT = (
    "4 3\n"  # fastText: a header, and a space at the end of every line
    "the 0.1 -0.2 0.3 \n"
    ", 1e-3 2.5E+2 -0 \n"
    "new york 1 2 3 \n"  # a word with a space: the last D fields are the numbers
    "naïve\t4\t5  6\r\n"  # tabs, two spaces, CRLF
    "\n"
)
EXPECTED = np.array([[0.1, -0.2, 0.3], [1e-3, 250.0, -0.0], [1, 2, 3], [4, 5, 6]], dtype=np.float32)


def bits(matrix: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(matrix, dtype=np.float32).view(np.uint32)


@pytest.mark.parametrize(("layout", "name"), [("fasttext", "w.vec"), ("glove", "w.vec"), ("gzip", "w.vec.gz"),
                                            ("glove", "glove.6B.3d.txt"), ("gzip", "vectors-en.TXT.gz")])
def test_word_vector_files_as_tools_write_them(tmp_path, layout, name):
    text = FASTTEXT if layout != "glove" else FASTTEXT.split("\n", 1)[1]  # GloVe: no header
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if layout == "gzip" else text.encode())
    result = ok(invoke("import", path, "-o", tmp_path / "w.h5"))
    assert f"wrote 4 x 3 rows to {tmp_path / 'w.h5'}" in result.stderr
    got = load(tmp_path / "w.h5")
    assert got.ids == ["the", ",", "new york", "naïve"] and got.labels is None
    assert got.dtype == "float32" and np.array_equal(bits(got.matrix), bits(EXPECTED))
    assert got.attrs["provenance"]["parameters"]["format"] == "vec"


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_export_and_import_give_back_the_same_bits_and_words(data, tmp_path, dtype):
    path = data.x_h5
    if dtype == "float64":
        path = write_embeddings(tmp_path / "x64.h5", data.x.astype(np.float64) / 3, ids=data.ids, labels=data.labels)
    vec = tmp_path / "x.vec"
    result = ok(invoke("export", path, "-o", vec, "--batch-size", 7))
    assert "holds no labels" in result.stderr  # the labels cannot travel in a .vec file
    header, first = vec.read_text().splitlines()[:2]
    assert header == f"{N} {D}" and first.split()[0] == data.ids[0]  # single spaces: VecMap splits on ' '
    ok(invoke("import", vec, "-o", tmp_path / "back.safetensors", "--batch-size", 5, *(["--dtype", dtype] if dtype == "float64" else [])))
    original, again = load(path), load(tmp_path / "back.safetensors")
    assert again.ids == data.ids and again.dtype == dtype
    assert np.array_equal(again.matrix.view(np.uint8), original.matrix.astype(dtype).view(np.uint8))


def test_dropped_rows_leave_a_true_header_and_number_words_become_integer_ids(data, tmp_path):
    x = data.x[:10].copy()
    x[3, 0] = np.inf
    path = write_embeddings(tmp_path / "inf.h5", x, allow_nonfinite=True)  # no ids: the row numbers are the words
    ok(invoke("export", path, "-o", tmp_path / "x.vec", "--drop-invalid"))
    assert (tmp_path / "x.vec").read_text().splitlines()[0] == f"09 {D}"  # rewritten in place: the width of 10
    ok(invoke("import", tmp_path / "x.vec", "-o", tmp_path / "back.h5"))
    assert load(tmp_path / "back.h5").ids == [0, 1, 2, 4, 5, 6, 7, 8, 9]


@pytest.mark.parametrize(("content", "code", "fragments"), [
    (b"2 3\nthe 1 2 3\nof 1 2\n", 1, ["line 3 has 3 fields: a word and 3 numbers"]),
    (b"the 1 2 3\nof 1 x 3\n", 1, ["line 2 (word 'of') holds a value that is not a number"]),
    (b"3 2\nthe 1 2\nof 3 4\n", 1, ["holds 2 word vectors, its header says 3"]),
    (b"", 1, ["holds no word vectors"]),
    (b"5 300\n", 1, ["holds no word vectors"]),
    (b"lonely\n", 1, ["line 1 does not end in a number"]),
    (b"a 1 2\nb 3 4 5\nc 1 1\n", 1, ["line 2 has 4 fields: a word and 2 numbers"]),  # not the word 'b 3'
    (b"1 0.1 0.2\n2 0.4 x\n", 1, ["line 2 (word 2) holds a value that is not a number"]),
    (b"the 1 2\nthe 3 4\n", 1, ["duplicate id 'the'", "use --drop-duplicates to keep each id's first row"]),
    (b"2 2\n\nthe 1 2\n\nthe 3 4\n", 1, ["duplicate id 'the' at lines 3 and 5"]),  # lines of the file, not rows
    (b"the 1 2\nof nan 4\n", 1, ["NaN/Inf", "'of'", "--drop-invalid"]),
    (b"the 1 2\nof 1e-50 -2e-50\n", 1, ["all zeros after conversion to float32", "'of'"]),  # was a silent zero row
    (gzip.compress(b"the 1 2\n" * 50)[:-30], 1, ["cannot read the word vectors"]),
])
def test_malformed_files_are_named_and_nothing_is_written(tmp_path, content, code, fragments):
    source = tmp_path / "in" / ("w.vec.gz" if content.startswith(b"\x1f\x8b") else "w.vec")
    source.parent.mkdir()
    source.write_bytes(content)
    out = tmp_path / "out"
    out.mkdir()
    assert_clean_error(invoke("import", source, "-o", out / "w.h5"), code, *fragments, path=source)
    assert snapshot(out) == {}


@pytest.mark.parametrize("suffix", [".vec", ".jsonl"])
def test_drop_duplicates_keeps_each_ids_first_row_and_counts_the_rest(tmp_path, suffix):
    """A real .vec may repeat a word; MUSE and gensim keep the first vector. --drop-duplicates does too,
    with a warning naming the first repeat; the rows left out are not read as rows of the output."""
    path = tmp_path / f"w{suffix}"
    rows = [("the", [1, 2]), ("of", [3, 4]), ("the", [5, 6]), ("and", [7, 8]), ("of", [9, 10]), ("the", [11, 12])]
    if suffix == ".vec":
        path.write_text("".join(f"{w} {a} {b}\n" for w, (a, b) in rows))
        where = "lines 1 and 3"
    else:
        path.write_text("".join(json.dumps({"id": w, "vector": v}) + "\n" for w, v in rows))
        where = "rows 0 and 2"
    result = ok(invoke("import", path, "-o", tmp_path / "w.h5", "--drop-duplicates", "--batch-size", "2"))
    assert f"left out 3 later row(s) of repeated ids, each id keeping its first row (first: 'the' at {where})" in result.stderr
    back = load(tmp_path / "w.h5")
    assert back.ids == ["the", "of", "and"] and back.matrix.tolist() == [[1, 2], [3, 4], [7, 8]]


def test_drop_duplicates_keeps_the_first_row_as_it_is_and_drop_invalid_names_it(tmp_path):
    """MUSE keeps a word's first vector; when --drop-invalid leaves that row out, its warning names the word
    (the later rows are not a fallback: which row is a word's is decided before any row is read)."""
    path = tmp_path / "w.vec"
    path.write_text("1 nan 1\n2 3 4\n1 5 6\n")
    result = ok(invoke("import", path, "-o", tmp_path / "w.h5", "--drop-duplicates", "--drop-invalid"))
    assert "each id keeping its first row (first: 1 at lines 1 and 3)" in result.stderr  # 1, not np.int64(1)
    assert "dropped 1 row(s) (ids 1)" in result.stderr
    assert load(tmp_path / "w.h5").ids == [2]


def test_words_that_are_not_utf8_are_read_with_a_warning(tmp_path):
    path = tmp_path / "w.vec"
    path.write_bytes(b"ok 1 2\nbad\xff\xfe 3 4\n")
    result = ok(invoke("import", path, "-o", tmp_path / "w.h5"))
    assert "1 line(s) hold bytes that are not UTF-8 (first: line 2)" in result.stderr
    assert load(tmp_path / "w.h5").ids == ["ok", "bad\ufffd\ufffd"]


def test_ids_that_cannot_be_words_fail_before_any_output(data, tmp_path):
    for word in (" padded", "tab\there", "line\rbreak", ""):
        path = write_embeddings(tmp_path / "x.h5", data.x[:3], ids=["a", word, "c"])
        assert_clean_error(invoke("export", path, "-o", tmp_path / "x.vec"), 1, repr(word), "cannot be words", path=path)
        assert not (tmp_path / "x.vec").exists()
    spaced = ["new\u00a0york", "zh\u3000x", "next\u0085line", "sep\u2028x"]  # not ASCII: fastText keeps them in a word
    path = write_embeddings(tmp_path / "wide.h5", data.x[:4], ids=spaced)
    ok(invoke("export", path, "-o", tmp_path / "wide.vec"))
    ok(invoke("import", tmp_path / "wide.vec", "-o", tmp_path / "wide_back.h5"))
    assert load(tmp_path / "wide_back.h5").ids == spaced
    assert_clean_error(invoke("import", tmp_path / "x.vec.gz", "-o", tmp_path / "y.h5"), 1, "no such file")
    assert_clean_error(invoke("import", data.x_h5, "-o", tmp_path / "y.h5", "--vector-column", "v"), 2, ".h5")
    (tmp_path / "w.vec").write_text("a 1 2\n")
    assert_clean_error(invoke("import", tmp_path / "w.vec", "-o", tmp_path / "y.h5", "--id-column", "w"), 2,
                       "a .vec input has no columns")


WORD = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6).filter(lambda w: w.split() == [w])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(words=st.lists(WORD, min_size=1, max_size=12, unique=True), dim=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_any_words_and_floats_go_out_and_back(tmp_path_factory, words, dim, seed):
    folder = tmp_path_factory.mktemp("vec")
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((len(words), dim)) * 10.0 ** rng.integers(-30, 30, (len(words), 1))).astype(np.float32)
    path = write_embeddings(folder / "x.safetensors", x, ids=words)  # HDF5 strings cannot hold NUL
    api.export(path, output=folder / "x.vec")
    api.import_file(folder / "x.vec", output=folder / "back.safetensors")
    back = load(folder / "back.safetensors")
    expected = [int(w) if all(str(int(v)) == v for v in words) else w for w in words] if _all_ints(words) else words
    assert back.ids == expected and np.array_equal(bits(back.matrix), bits(x))


def _all_ints(words) -> bool:
    try:
        return all(str(int(w)) == w for w in words)
    except ValueError:
        return False


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_word_vector_files_read_or_fail_cleanly(tmp_path_factory, data):
    """Bytes flipped, cut or spliced anywhere: a correct read or a relcli error, never anything else."""
    text = bytearray(FASTTEXT.encode())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text)))
        action = data.draw(st.sampled_from(["flip", "cut", "splice"]))
        if action == "flip" and at < len(text):
            text[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del text[at:]
        else:
            text[at:at] = data.draw(st.binary(max_size=6))
    folder = tmp_path_factory.mktemp("vec-fuzz")
    (folder / "w.vec").write_bytes(bytes(text))
    try:
        api.import_file(folder / "w.vec", output=folder / "w.h5")
    except RelcliError:
        assert not (folder / "w.h5").exists()


def test_a_byte_order_mark_big_integers_and_spaced_words_without_a_header(tmp_path):
    """A UTF-8 byte-order mark is not part of the header; words that are integers past int64 stay
    strings; without a header, D is the count of numbers that end the first line."""
    (tmp_path / "bom.vec").write_bytes(b"\xef\xbb\xbf2 3\na 1 2 3\nb 3 4 5\n")
    ok(invoke("import", tmp_path / "bom.vec", "-o", tmp_path / "bom.h5"))
    got = load(tmp_path / "bom.h5")
    assert got.ids == ["a", "b"] and got.matrix.shape == (2, 3)
    (tmp_path / "big.vec").write_bytes(b"1 0.1 0.2\n99999999999999999999 0.4 0.5\n")
    ok(invoke("import", tmp_path / "big.vec", "-o", tmp_path / "big.h5"))
    assert load(tmp_path / "big.h5").ids == ["1", "99999999999999999999"]
    (tmp_path / "spaced.vec").write_bytes(b"new york 1 2\nparis 3 4\n")
    ok(invoke("import", tmp_path / "spaced.vec", "-o", tmp_path / "spaced.h5"))
    assert load(tmp_path / "spaced.h5").ids == ["new york", "paris"]
