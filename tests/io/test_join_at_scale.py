"""Joining and checking ids without a dict of every id: the same answers as the obvious dict code,
hash collisions included (relcli.io.join.rows_for_keys, relcli.io._reader.check_unique)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relcli.errors import DataError, FileFormatError
from relcli.io._reader import check_unique, strings_in_chunks
from relcli.io.join import find_rows, rows_for_keys


class Colliding(str):
    """A key whose hash is shared by every other Colliding key: exercises the exact fallback."""

    def __hash__(self):
        return 7


def by_dict(wanted, available):
    position = {key: row for row, key in enumerate(available)}
    return [position[key] for key in wanted]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from("abcdefgh"), min_size=0, max_size=12), st.data())
def test_rows_for_keys_matches_a_dict_join(available, data):
    wanted = data.draw(st.lists(st.sampled_from(available), max_size=10)) if available else []
    assert rows_for_keys(wanted, available, "f").tolist() == by_dict(wanted, available)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from("abcdefgh"), max_size=12), st.lists(st.sampled_from("abcdefghxyz"), max_size=12),
       st.booleans())
def test_find_rows_matches_a_dict_lookup_with_missing_keys(available, wanted, colliding):
    """What `invert` (are the anchor items among the rows?) and `anchors --pairs` (which pairs have
    both ids?) ask of millions of ids, without a dict of them."""
    if colliding:
        available, wanted = [Colliding(k) for k in available], [Colliding(k) for k in wanted]
    position = {key: row for row, key in enumerate(available)}
    rows, found = find_rows(wanted, available)
    assert found.dtype == bool and rows.dtype == np.int64
    assert found.tolist() == [key in position for key in wanted]
    assert rows.tolist() == [position.get(key, 0) for key in wanted]


def test_identical_key_lists_and_shuffled_ones():
    keys = [f"row{i}" for i in range(5000)]
    assert rows_for_keys(keys, keys, "f").tolist() == list(range(5000))
    shuffled = random.Random(0).sample(keys, len(keys))
    assert rows_for_keys(shuffled, keys, "f").tolist() == by_dict(shuffled, keys)


def test_colliding_hashes_are_compared_exactly():
    available = [Colliding(c) for c in "abcb"]
    assert rows_for_keys([Colliding("c"), Colliding("a"), Colliding("b")], available, "f").tolist() == [2, 0, 3]
    with pytest.raises(DataError, match=r"1 of 2 ids are missing \(only 1 matched\): 'z'"):
        rows_for_keys([Colliding("a"), Colliding("z")], available, "f")


def test_missing_keys_are_counted_and_named_in_their_order():
    with pytest.raises(DataError, match=r"2 of 3 anchor ids are missing \(only 1 matched\): 'q', 'p'"):
        rows_for_keys(["q", "a", "p"], ["a", "b"], "f", what="anchor ids")


@pytest.mark.parametrize("ids, message", [
    (["a", "b", "c", "b", "a"], "duplicate id 'b' at rows 1 and 3"),
    ([Colliding("x"), Colliding("y"), Colliding("y")], "duplicate id 'y' at rows 1 and 2"),
    ([5, 6, 7, 8, 6], "duplicate id 6 at rows 1 and 4"),
])
def test_the_first_repeated_id_is_named_with_both_rows(ids, message):
    values = np.asarray(ids, dtype=np.int64) if isinstance(ids[0], int) else strings_in_chunks(len(ids), lambda a, b: ids[a:b])
    with pytest.raises(FileFormatError, match=message):
        check_unique(values, "f")
    check_unique(values[:2], "f")


def test_strings_are_read_in_chunks():
    calls = []

    def read(start, stop):
        calls.append((start, stop))
        return [str(i) for i in range(start, stop)]

    values = strings_in_chunks(10, read, chunk=4)
    assert values.tolist() == [str(i) for i in range(10)] and calls == [(0, 4), (4, 8), (8, 10)]


def test_a_reader_adopts_the_equal_ids_a_join_matched(tmp_path):
    """After a join, the reference holds the judged file's id strings (one copy of millions of ids in
    memory, not two): the same values, the same objects, and its row keys rebuilt from them."""
    from relcli.io.embeddings import open_embeddings, write_embeddings
    from relcli.io.join import find_rows, rows_for_keys

    ids = [f"w{i}" for i in range(50)]
    write_embeddings(tmp_path / "ref.h5", np.zeros((50, 2), np.float32), ids=ids)
    write_embeddings(tmp_path / "mine.h5", np.zeros((20, 2), np.float32), ids=ids[::-1][:20])
    with open_embeddings(tmp_path / "mine.h5") as mine, open_embeddings(tmp_path / "ref.h5") as ref:
        rows = rows_for_keys(mine.row_keys(), ref.row_keys(), ref.path)
        assert not any(ref.ids[r] is mine.ids[i] for i, r in enumerate(rows))
        ref.adopt_ids(rows, mine.ids)
        assert all(ref.ids[r] is mine.ids[i] for i, r in enumerate(rows))
        assert ref.ids.tolist() == ids and ref.row_keys() == ids
        ref.adopt_ids(np.arange(3), None)  # nothing to adopt: unchanged
        assert ref.ids.tolist() == ids


def test_ids_lists_select_every_row_of_a_repeated_id(tmp_path):
    """An anchors file drawn with a many-to-many dictionary (`anchors --like --pairs`) may hold one
    target id on several rows: `--ids` and `--exclude-ids` act on all of them."""
    from relcli.api._context import select_by_ids

    keys = ["a", "b", "a", "c"]
    (tmp_path / "some.txt").write_text("a\nz\n")
    (tmp_path / "other.txt").write_text("c\n")
    assert select_by_ids(keys, tmp_path / "some.txt", None, "f").tolist() == [0, 2]
    assert select_by_ids(keys, None, tmp_path / "some.txt", "f").tolist() == [1, 3]
    assert select_by_ids(keys, None, tmp_path / "other.txt", "f").tolist() == [0, 1, 2]
    assert select_by_ids(keys, None, None, "f") is None
    with pytest.raises(DataError, match="no rows left after --ids/--exclude-ids"):
        select_by_ids(keys, tmp_path / "some.txt", tmp_path / "some.txt", "f")


@pytest.mark.parametrize("block", [1, 2, 3, 1 << 18])
def test_find_rows_in_blocks_equals_one_lookup(monkeypatch, block):
    from relcli.io import join

    monkeypatch.setattr(join, "LOOKUP_BLOCK", block)
    available = [Colliding(c) for c in "abcb"] + ["x", "y"]
    wanted = [Colliding("c"), "y", Colliding("z"), Colliding("b"), "q", "x", Colliding("a")]
    rows, found = find_rows(wanted, available)
    assert found.tolist() == [True, True, False, True, False, True, True]
    assert rows.tolist() == [2, 5, 0, 3, 0, 4, 0]
    assert find_rows([], available)[0].tolist() == [] and find_rows(wanted, [])[1].tolist() == [False] * 7
