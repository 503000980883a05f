"""Joining rows across files by id (DESIGN §3: ids link rows; no ids means row index)."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from relcli.errors import DataError, FileFormatError

if TYPE_CHECKING:
    import numpy as np


def _examples(values: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def _listed(keys: Sequence[str]) -> list[str]:
    """``keys`` as a list, the list itself where it is one (a copy of 4M keys is 32 MB)."""
    return keys if isinstance(keys, list) else list(keys)


#: what separates the two ids of a space-separated pair list (as the ``.vec`` reader: ASCII only,
#: so a word holding a no-break space stays one word)
ASCII_SPACE = " \t\f\v"
#: what ``read_id_list`` strips around each line of an id list
ID_LINE_SPACE = ASCII_SPACE + "\r"

#: keys of ``wanted`` looked up at a time: the lookup's temporaries (~60 bytes a key) stay bounded
LOOKUP_BLOCK = 1 << 18


def find_rows(wanted: Sequence[str], available: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(rows, found): the row in ``available`` of every key of ``wanted`` (int64; a key that occurs
    twice in ``available`` gives its last row; 0 where it is missing) and whether it was found (bool).

    Millions of keys are joined without a dict of them (~100 bytes a key): every key is looked up by
    its 64-bit hash among the sorted hashes of ``available`` and then compared exactly (a hash
    shared by different keys falls back to a scan of the few rows that share it), ``wanted`` in
    blocks of LOOKUP_BLOCK keys."""
    import numpy as np

    from relcli.io._reader import key_hashes, repeats

    wanted, available = _listed(wanted), _listed(available)
    hashed = key_hashes(available)
    if len(wanted) == len(available) and wanted == available and not repeats(hashed):  # same keys, same order
        return np.arange(len(available), dtype=np.int64), np.ones(len(available), dtype=bool)
    rows, found = np.zeros(len(wanted), dtype=np.int64), np.zeros(len(wanted), dtype=bool)
    if not len(available):
        return rows, found
    order = np.argsort(hashed, kind="stable")
    ordered = hashed[order]
    del hashed
    for lo in range(0, len(wanted), LOOKUP_BLOCK):
        block = wanted[lo:lo + LOOKUP_BLOCK]
        asked = key_hashes(block)
        by_hash = np.argsort(asked, kind="stable")  # sorted queries: a sequential search, not one cache miss per key
        last = np.empty(len(block), dtype=np.int64)
        last[by_hash] = np.searchsorted(ordered, asked[by_hash], side="right") - 1
        nearest = last.clip(min=0)
        at = order[nearest]
        hit = (last >= 0) & (ordered[nearest] == asked)
        candidates = np.flatnonzero(hit)
        asked_keys, found_keys = np.empty(len(candidates), dtype=object), np.empty(len(candidates), dtype=object)
        asked_keys[:] = [block[i] for i in candidates.tolist()]
        found_keys[:] = [available[r] for r in at[candidates].tolist()]
        exact = found_keys == asked_keys
        for i in candidates[~exact].tolist():  # a hash shared by different keys: scan that hash's rows
            same = order[np.searchsorted(ordered, asked[i], side="left"):last[i] + 1]
            matches = [r for r in same.tolist() if available[r] == block[i]]
            if matches:
                at[i] = matches[-1]
            else:
                hit[i] = False
        rows[lo:lo + len(block)] = np.where(hit, at, 0)
        found[lo:lo + len(block)] = hit
    return rows, found


def rows_for_keys(wanted: Sequence[str], available: Sequence[str], path, what: str = "ids") -> np.ndarray:
    """Row index in ``available`` (int64, one per key of ``wanted``; see ``find_rows``); a missing key
    is an error that says how many of how many matched and names a few of the missing ones."""
    import numpy as np

    rows, found = find_rows(wanted, available)
    if not found.all():
        missing = [wanted[i] for i in np.flatnonzero(~found).tolist()]
        raise DataError(
            f"{len(missing)} of {len(wanted)} {what} are missing (only {len(wanted) - len(missing)} matched): "
            f"{_examples(missing)}",
            path,
        )
    return rows


def text_lines(data: bytes, where) -> list[str]:
    """The lines of UTF-8 text as relcli's one-value-a-line files hold them: split at line feeds only
    (a CR or U+2028 inside a value stays), a CR before the line feed and a byte-order mark dropped, no
    empty line made of the final line feed. Not UTF-8: an error naming ``where``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise FileFormatError("is not valid UTF-8 text", where) from None
    lines = [line.removesuffix("\r") for line in text.split("\n")]
    return lines[:-1] if lines[-1] == "" else lines


def read_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(id, id) pairs from a two-column text file, in file order, every pair kept (a bilingual
    dictionary is many-to-many: a word may have several translations, several words one translation).

    Two layouts, decided once per file: tab-separated (``source<TAB>target``; further columns are
    ignored, ids may hold spaces) when any line holds a tab, else whitespace-separated with exactly
    two fields a line (``source target``, as the MUSE bilingual dictionaries are written), split on
    ASCII spaces only (a no-break space is part of a word, as in ``.vec`` files). Fields are taken
    verbatim (no CSV quoting: a dictionary may list ``"`` as a word), stripped of spaces around them.
    Exact repeats of a pair are kept once. Blank lines are skipped, and so are lines starting with '#'
    unless they hold two ids as a pair line does (``#tag #etiquette`` is a pair; ``# en-fr dictionary``
    a comment). A header line is not special: a pair whose ids do not occur never matches (and one
    whose source starts with '#', such as ``#source target``, is not counted as missing: ``hash_pair``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError("no such pairs file", path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FileFormatError(f"cannot read the pairs: {exc.strerror or exc}", path) from None
    lines = [(line_no, line) for line_no, line in enumerate(text_lines(data, path), start=1) if line.strip(ASCII_SPACE)]
    deciding = [(no, line) for no, line in lines if not line.startswith("#")] or lines  # only '#' lines: they decide
    tabs = [line_no for line_no, line in deciding if "\t" in line]
    tab_line = tabs[0] if tabs else None
    tabbed = tab_line is not None
    pairs: dict[tuple[str, str], None] = {}
    for line_no, line in lines:
        fields = [field.strip(ASCII_SPACE) for field in line.split("\t")] if tabbed else re.split(r"[ \f\v]+", line.strip(ASCII_SPACE))
        if line.startswith("#") and (len(fields) < 2 or not fields[0] or not fields[1]
                                     or not tabbed and (len(fields) != 2 or "\t" in line)):
            continue  # a comment; '#tag #etiquette' (two ids, as any pair line holds them) is a pair
        if len(fields) < 2 or not tabbed and len(fields) > 2:
            expected = (f"source<TAB>target (the file is read tab-separated: line {tab_line} holds a tab)" if tabbed
                        else "'source target' (or source<TAB>target where ids hold spaces)")
            raise FileFormatError(f"line {line_no} has {len(fields)} column(s); expected {expected}", path)
        if not fields[0] or not fields[1]:
            raise FileFormatError(f"line {line_no} has an empty id", path)
        pairs[(fields[0], fields[1])] = None
    if not pairs:
        raise FileFormatError("holds no id pairs", path)
    return list(pairs)


def hash_pair(pair: tuple[str, str]) -> bool:
    """A pair from a line starting with '#': a word such as '#tag' or a header such as '#source target';
    when its words are not in the files it is taken for a comment, not counted as missing."""
    return pair[0].startswith("#")


def _id_lines(data: bytes, where) -> list[str]:
    return [line.strip(ID_LINE_SPACE) for line in text_lines(data, where) if line.strip(ID_LINE_SPACE)]


def read_id_list(path: str | os.PathLike) -> list[str]:
    """Ids from a .txt file (one per line, UTF-8), from standard input (``-``, the same) or from the ids
    of any embedding file. Lines are split at line feeds only and stripped of ASCII spaces: an id may
    hold a no-break or line-separator character, as a word of a ``.vec`` file may."""
    if str(path) == "-":
        import sys

        stdin = sys.stdin
        return _id_lines(stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read().encode("utf-8"), "<stdin>")
    path = Path(path)
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise FileFormatError("no such id list", path)
        return _id_lines(path.read_bytes(), path)
    from relcli.io.embeddings import open_embeddings

    with open_embeddings(path) as reader:
        if reader.ids is None:
            raise FileFormatError("has no ids to select rows with", path)
        return reader.row_keys()
