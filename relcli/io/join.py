"""Joining rows across files by id (DESIGN §3: ids link rows; no ids means row index)."""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

from relcli.errors import DataError, FileFormatError


def _examples(values: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    return shown + (f" and {len(values) - limit} more" if len(values) > limit else "")


def rows_for_keys(wanted: Sequence[str], available: Sequence[str], path, what: str = "ids") -> list[int]:
    """Row index in ``available`` of every key in ``wanted``; a missing key is an error that
    says how many of how many matched and names a few of the missing ones."""
    position = {key: row for row, key in enumerate(available)}
    rows, missing = [], []
    for key in wanted:
        row = position.get(key)
        if row is None:
            missing.append(key)
        else:
            rows.append(row)
    if missing:
        raise DataError(
            f"{len(missing)} of {len(wanted)} {what} are missing (only {len(wanted) - len(missing)} matched): "
            f"{_examples(missing)}",
            path,
        )
    return rows


def read_pairs(path: str | os.PathLike) -> list[tuple[str, str]]:
    """(id, id) pairs from a two-column TSV, in file order, every pair kept (a bilingual dictionary
    is many-to-many: a word may have several translations, several words one translation).

    Exact repeats of a pair are kept once. Blank lines and lines starting with '#' are skipped; a
    header line is not special (a pair whose ids do not occur simply never matches).
    """
    path = Path(path)
    if not path.is_file():
        raise FileFormatError("no such pairs file", path)
    pairs: dict[tuple[str, str], None] = {}
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            for line_no, row in enumerate(csv.reader(handle, delimiter="\t"), start=1):
                if not row or not "".join(row).strip() or row[0].startswith("#"):
                    continue
                if len(row) < 2:
                    raise FileFormatError(f"line {line_no} has {len(row)} column(s); expected source<TAB>target", path)
                pairs[(row[0].strip(), row[1].strip())] = None
    except UnicodeDecodeError:
        raise FileFormatError("is not valid UTF-8 text", path) from None
    if not pairs:
        raise FileFormatError("holds no id pairs", path)
    return list(pairs)


def read_id_list(path: str | os.PathLike) -> list[str]:
    """Ids from a .txt file (one per line), from standard input (``-``, one per line) or from the ids
    of any embedding file."""
    if str(path) == "-":
        import sys

        return [line.strip() for line in sys.stdin.read().splitlines() if line.strip()]
    path = Path(path)
    if path.suffix.lower() == ".txt":
        if not path.is_file():
            raise FileFormatError("no such id list", path)
        try:
            return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        except UnicodeDecodeError:
            raise FileFormatError("is not valid UTF-8 text", path) from None
    from relcli.io.embeddings import open_embeddings

    with open_embeddings(path) as reader:
        if reader.ids is None:
            raise FileFormatError("has no ids to select rows with", path)
        return reader.row_keys()
