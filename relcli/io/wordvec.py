"""Word vectors in the word2vec/fastText text format (``.vec``, or ``.vec.gz``): one word and its
numbers a line, as fastText, MUSE, GloVe and gensim write them.

Layout read: an optional header line ``N D`` (two integers: rows and dimension; without it D is
the count of numbers that end the first line and N the number of lines), then ``word v_1 … v_D`` a
line, separated by spaces (fastText ends every line with one more). A word may hold spaces: a
line is split into its last D fields and what comes before them. Blank lines are skipped. Words
become the file's ids (strings), so a bilingual dictionary (``--pairs``) can name them.

Layout written (``vector_lines`` after ``header_line``): the header, then the word and the
numbers with 9 significant digits (a float32 reads back bit for bit; 17 for a float64), one space
between fields: what the readers above take. The header's row count is written in the width of
the input's and rewritten at the end, so rows dropped on the way (``--drop-invalid``) still give a
true header: the same count when none were, else zero-padded to that width (``N D`` with single
spaces either way, which VecMap needs).

Bytes that are not UTF-8 in a word (some published vector files hold a few) are read as U+FFFD and
counted (``replaced``); numbers must be ASCII.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from relcli.errors import DataError, FileFormatError, describe_rows

#: lines parsed or formatted at a time
PARSE_ROWS = 2048


def _number(field: bytes) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _header(line: bytes) -> tuple[int, int] | None:
    fields = line.split()
    if len(fields) == 2 and all(f.isdigit() for f in fields):
        return int(fields[0]), int(fields[1])
    return None


class WordVectorSource:
    """A ``.vec`` file as ``api.import_file`` reads it: ``n_rows``, ``dim``, ``ids`` (the words),
    ``iter_chunks(batch_size, start, stop)`` -> (first row, float64 CPU tensor), ``name(rows)``.

    Two passes: the words, the row count and every line's field count first (so a short line is
    named before anything is written, and every message can name words), then the numbers."""

    dtype = "float64"  # decimal text: parsed as doubles, written as float32 unless asked
    labels = None

    def __init__(self, path: Path):
        from relcli.io._reader import as_id_array

        self.path = Path(path)
        self.replaced: list[int] = []  # lines whose word had bytes that are not UTF-8
        self.header_line: int | None = None  # the header's line number, when there is one
        words: list[str] = []
        lines: list[int] = []
        self.dim, expected = 0, None
        for line_no, line in self._lines():
            if self.dim == 0:  # the first line that is not blank: a header, or the first vector
                header = _header(line)
                if header is not None:
                    self.header_line, (expected, self.dim) = line_no, header
                    if self.dim < 1:
                        raise DataError(f"line {line_no}: the header says {self.dim} dimensions", self.path)
                    continue
                fields = line.split()  # no header: D is the count of numbers that end the first line
                self.dim = next((len(fields) - i for i in range(1, len(fields)) if all(map(_number, fields[i:]))), 0)
                if self.dim < 1:
                    raise DataError(f"line {line_no} does not end in a number: a word and its numbers were expected",
                                    self.path)
            words.append(self._word(self._split(line, line_no)[0], line_no))
            lines.append(line_no)
        if not words:
            raise DataError("holds no word vectors", self.path)
        if expected is not None and expected != len(words):
            raise DataError(f"holds {len(words):,} word vectors, its header says {expected:,}", self.path)
        self.n_rows = len(words)
        self.ids = as_id_array(words)
        self.lines = np.asarray(lines, dtype=np.int64)  # each row's line number, for messages

    def _lines(self):
        """(line number, line without trailing whitespace) for every line that is not blank."""
        try:
            handle = gzip.open(self.path, "rb") if self.path.name.lower().endswith(".gz") else open(self.path, "rb")
            with handle:
                for line_no, raw in enumerate(handle, start=1):
                    line = (raw.removeprefix(b"\xef\xbb\xbf") if line_no == 1 else raw).rstrip()  # a UTF-8 byte-order mark
                    if line:
                        yield line_no, line
        except (OSError, EOFError, zlib.error) as exc:
            raise FileFormatError(f"cannot read the word vectors: {getattr(exc, 'strerror', None) or exc}", self.path) from None

    def _split(self, line: bytes, line_no: int) -> tuple[bytes, bytes]:
        """(word, its D numbers as text): the numbers are the last D fields, the word what precedes them."""
        first = line.find(b" ")
        if first > 0 and line.count(b" ") == self.dim and b"  " not in line and b"\t" not in line:
            return line[:first], line[first + 1:]  # the common case: single spaces, no space in the word
        fields = line.rsplit(None, self.dim)
        if len(fields) != self.dim + 1 or len(fields[0].split()) > 1 and _number(fields[0].split()[-1]):
            raise DataError(f"line {line_no} has {len(line.split())} fields: a word and {self.dim} numbers were expected",
                            self.path)  # a word may hold spaces, but one that ends in a number is a line too long
        return fields[0], b" ".join(fields[1:])

    def _word(self, raw: bytes, line_no: int) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.replaced.append(line_no)
            return raw.decode("utf-8", errors="replace")

    def name(self, rows) -> str:
        return describe_rows(self.ids[np.asarray(list(rows), dtype=np.int64)].tolist(), "words")

    def iter_chunks(self, batch_size: int, start: int = 0, stop: int | None = None):
        """Rows start:stop in chunks of ``batch_size`` (float64), parsed PARSE_ROWS lines at a time
        into the chunk (the text of a whole chunk would take several times its memory)."""
        import torch

        stop = self.n_rows if stop is None else stop
        row, first, chunk, filled, texts, numbers = 0, start, None, 0, [], []
        for line_no, line in self._lines():
            if line_no == self.header_line:
                continue
            if row >= stop:
                break
            row += 1
            if row <= start:
                continue
            if chunk is None:
                chunk, filled = np.empty((min(batch_size, stop - first), self.dim)), 0
            texts.append(self._split(line, line_no)[1])
            numbers.append(line_no)
            if len(texts) == PARSE_ROWS or filled + len(texts) == len(chunk):
                chunk[filled:filled + len(texts)] = self._parse(texts, numbers, first + filled)
                filled, texts, numbers = filled + len(texts), [], []
                if filled == len(chunk):
                    yield first, torch.from_numpy(chunk)
                    first, chunk = first + filled, None
        if chunk is not None or first < stop:
            raise DataError(f"holds fewer word vectors than when it was first read ({self.n_rows:,}): it changed", self.path)

    def _parse(self, texts: list[bytes], numbers: list[int], first: int) -> np.ndarray:
        try:
            return np.loadtxt([t.decode("ascii") for t in texts], dtype=np.float64, comments=None, ndmin=2)
        except (ValueError, UnicodeDecodeError):
            for i, text in enumerate(texts):
                try:
                    np.loadtxt([text.decode("ascii")], dtype=np.float64, comments=None, ndmin=2)
                except (ValueError, UnicodeDecodeError):
                    word = self.ids[first + i:first + i + 1].tolist()[0]
                    raise DataError(f"line {numbers[i]} (word {word!r}) holds a value that is not a number", self.path) from None
            raise DataError(f"lines {numbers[0]}-{numbers[-1]} hold a value that is not a number", self.path) from None

    def close(self) -> None:
        pass


def header_line(n_rows: int, dim: int, most_rows: int) -> bytes:
    """``N D``, N zero-padded to the width of ``most_rows`` (the most it can be), so that the header
    can be rewritten in place once the rows are written."""
    return f"{n_rows:0{len(str(most_rows))}d} {dim}\n".encode("ascii")


def check_words(ids, path: Path) -> None:
    """Ids can be words: non-empty text with no ASCII whitespace (fastText, MUSE and gensim split their
    lines on ASCII spaces; relcli reads a spaced word back, they do not). Other spaces (a no-break
    space, U+3000) stay inside a word, as every reader keeps them, ``WordVectorSource`` included."""
    bad = [k for k in map(str, ids.tolist()) if (word := k.encode("utf-8")).split() != [word]]
    if bad:
        raise DataError(f"{describe_rows(bad, 'ids')} cannot be words of a .vec file (empty, or holding ASCII spaces, "
                        "tabs or line breaks)", path)


def vector_lines(block: np.ndarray, ids, dtype: str) -> bytes:
    """The lines of ``block``'s rows, ``ids`` as the words (checked by ``check_words`` before the work), the
    numbers with the digits that read back bit for bit in ``dtype``."""
    numbers = " ".join(["%.9g" if dtype == "float32" else "%.17g"] * block.shape[1]) + "\n"
    rows = np.asarray(block, dtype=np.float64).tolist()
    return "".join(f"{word} " + numbers % tuple(row) for word, row in zip(ids.tolist(), rows)).encode("utf-8")
