"""``api.split``: seeded (optionally stratified) train/test id lists from an embedding file.

The lists are plain ``.txt`` files, one id per line: what ``evaluate --ids/--exclude-ids`` and
``stitch fit --ids/--exclude-ids`` read (``relcli.io.join.read_id_list``). Only the file's ids and
labels are read, never its matrix, so a split of millions of rows takes a moment.

Sizes. A size in (0, 1) is a fraction of the rows, a whole number >= 1 a count of rows.
``test_size`` fraction f gives ceil(f·n) test rows (as scikit-learn's ``train_test_split``);
``train_size`` (default: every row not in the test set) gives floor(f·n) train rows, and rows in
neither list are left out. Stratified (by labels): every class c of n_c rows gets
n_test·n_c/n test rows (and likewise train rows among the rest), rounded by largest remainder so
the totals are exact; remainders that tie are broken in a seeded random order. Rows are shuffled
with ``numpy.random.default_rng(seed)``; each list is written in the file's row order.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from relcli.api._context import check_seed
from relcli.api._results import Result
from relcli.errors import DataError, FileFormatError, UsageError, describe_rows

DEFAULT_TEST_SIZE = 0.25


@dataclass
class Split(Result):
    """``api.split``: the ids of each side, in the file's row order (ids as in the file: int or str)."""

    train: list = field(default_factory=list)
    test: list = field(default_factory=list)


def id_lines(keys, path, what: str = "ids") -> str:
    """Ids as the text of an id list (one per line); an id that would not read back the same
    (empty, with a line break, or with spaces around it: ``read_id_list`` strips lines) is an error."""
    from relcli.io.join import ID_LINE_SPACE

    bad = [k for k in keys if not isinstance(k, (int, np.integer))
           and (str(k) == "" or str(k) != str(k).strip(ID_LINE_SPACE) or "\n" in str(k))]
    if bad:
        raise DataError(f"{describe_rows(bad, what)} cannot be written one per line (empty, a line break, "
                        "or spaces around them)", path)
    return "".join(f"{k}\n" for k in keys)


def write_text(path: Path, text: str, group) -> None:
    """``text`` into the temp file of ``path`` in an ``OutputGroup`` (renamed into place with the group)."""
    from relcli.io.atomic import describe_os_error
    from relcli.errors import OutputError

    try:
        with open(group.temp(path), "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
    except OSError as exc:
        raise OutputError(describe_os_error(exc), path) from None


def _size(value, n: int, option: str, rounding) -> int:
    """A fraction in (0, 1) of ``n`` rows (rounded by ``rounding``) or a whole count >= 1."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise UsageError(f"{option} must be a fraction in (0, 1) or a whole number of rows >= 1, got {value!r}")
    if value < 1:
        return int(rounding(value * n))
    if value != int(value):
        raise UsageError(f"{option} {value!r}: a size of 1 or more is a count of rows and must be whole")
    return int(value)


def _largest_remainder(total: int, weights: np.ndarray, caps: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``total`` split over groups in proportion to ``weights`` (no group above its cap), remainders
    to the largest fractional parts (ties in a seeded random order)."""
    if total == 0 or weights.sum() == 0:
        return np.zeros(len(weights), dtype=np.int64)
    quota = total * weights / weights.sum()
    counts = np.minimum(np.floor(quota).astype(np.int64), caps)
    order = np.lexsort((rng.permutation(len(weights)), -(quota - np.floor(quota))))
    while counts.sum() < total:  # at most a few rounds: each gives one row to every group with room
        room = [g for g in order if counts[g] < caps[g]]
        if not room:
            break
        for g in room[: total - counts.sum()]:
            counts[g] += 1
    return counts


def split(
    input,
    *,
    train_out,
    test_out,
    test_size: float = DEFAULT_TEST_SIZE,
    train_size: float | None = None,
    stratify: bool = False,
    seed: int = 0,
    key: str | None = None,
) -> Split:
    """Write seeded train/test id lists (``.txt``, one id per line) for the rows of ``input``; both files or neither.

    ``test_size``/``train_size``: a fraction in (0, 1) or a count (see the module docstring);
    ``stratify`` keeps each label's share the same on both sides. Rows without ids are named by
    their row numbers (the id of a row without ids).
    """
    from relcli.io.atomic import OutputGroup, check_writable
    from relcli.io.embeddings import open_embeddings

    input = Path(input)
    check_seed(seed)
    outputs = {"--train-out": Path(train_out), "--test-out": Path(test_out)}
    for option, path in outputs.items():
        if path.suffix.lower() != ".txt":
            raise UsageError(f"{option} writes an id list: give it a .txt name", path)
        check_writable(path)
    if os.path.abspath(outputs["--train-out"]) == os.path.abspath(outputs["--test-out"]):
        raise UsageError("--train-out and --test-out name the same file", outputs["--test-out"])
    with open_embeddings(input, key=key) as reader:
        n = reader.n_rows
        ids, labels = reader.ids, reader.labels
        if stratify and labels is None:
            raise DataError("has no labels to stratify by; leave out --stratify", input)
    if n < 2:
        raise DataError(f"has {n} row(s): a split needs at least 2", input)
    n_test = _size(test_size, n, "--test-size", math.ceil)
    n_train = n - n_test if train_size is None else _size(train_size, n, "--train-size", math.floor)
    if n_test < 1 or n_train < 1 or n_test + n_train > n:
        raise UsageError(f"{n_train} train + {n_test} test rows do not fit the {n} rows of {input.name}: "
                         "each side needs at least one, and no more than all together")
    rng = np.random.default_rng(seed)
    warnings: list[str] = []
    details: list[str] = []
    if not stratify:
        order = rng.permutation(n)
        test_rows, train_rows = order[:n_test], order[n_test:n_test + n_train]
    else:
        names = [str(v) for v in labels.tolist()]
        classes, codes = np.unique(np.asarray(names, dtype=object), return_inverse=True)
        members = [np.flatnonzero(codes == c) for c in range(len(classes))]
        sizes = np.array([len(m) for m in members], dtype=np.int64)
        test_counts = _largest_remainder(n_test, sizes.astype(np.float64), sizes, rng)
        train_counts = _largest_remainder(n_train, sizes.astype(np.float64), sizes - test_counts, rng)
        test_parts, train_parts = [], []
        for rows, t, r in zip(members, test_counts, train_counts):
            shuffled = rows[rng.permutation(len(rows))]
            test_parts.append(shuffled[:t])
            train_parts.append(shuffled[t:t + r])
        test_rows, train_rows = np.concatenate(test_parts), np.concatenate(train_parts)
        lonely = [str(c) for c, t, r in zip(classes, test_counts, train_counts) if t == 0 or r == 0]
        if lonely:
            shown = ", ".join(repr(c) for c in lonely[:5]) + (f" and {len(lonely) - 5} more" if len(lonely) > 5 else "")
            warnings.append(f"{len(lonely)} class(es) have too few rows to appear on both sides: {shown}")
        details.append("per class (train/test): " + ", ".join(
            f"{c}: {r}/{t}" for c, t, r in list(zip(classes, test_counts, train_counts))[:20]) + (" ..." if len(classes) > 20 else ""))
    test_rows, train_rows = np.sort(test_rows), np.sort(train_rows)
    keys = (lambda rows: rows.tolist()) if ids is None else (lambda rows: ids[rows].tolist())
    train, test = keys(train_rows), keys(test_rows)
    train_path, test_path = outputs["--train-out"], outputs["--test-out"]
    with OutputGroup() as group:
        write_text(train_path, id_lines(train, input), group)
        write_text(test_path, id_lines(test, input), group)
    parameters = {"test_size": test_size, "train_size": train_size, "stratify": stratify, "seed": seed,
                  "train_rows": len(train), "test_rows": len(test), "left_out": n - len(train) - len(test)}
    return Split("split", train_path, len(train) + len(test), 0, parameters=parameters, warnings=warnings, details=details,
                 files={"train_out": train_path, "test_out": test_path}, train=train, test=test)
