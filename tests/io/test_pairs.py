"""Pair lists (`--pairs`): bilingual dictionaries as users have them, tab- or space-separated."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relcli.errors import FileFormatError
from relcli.io.join import read_pairs

# ids as dictionaries hold them: words with punctuation, quotes, accents, non-Latin scripts
WORD = st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"), blacklist_characters="\x85"),
               min_size=1, max_size=8)


def test_a_muse_dictionary_is_read_space_separated_many_to_many(tmp_path):
    """The MUSE dictionaries (`en-fr.0-5000.txt`) are 'source target' a line, a word with several
    translations on several lines."""
    path = tmp_path / "en-fr.txt"
    path.write_text('the le\nthe la\nthe les\ncat chat\n" "\nl\'homme man\n  well   bien  \n\n')
    assert read_pairs(path) == [("the", "le"), ("the", "la"), ("the", "les"), ("cat", "chat"), ('"', '"'),
                                ("l'homme", "man"), ("well", "bien")]


def test_a_tab_separated_file_keeps_spaces_inside_ids_and_quotes_verbatim(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text('new york\tnew-york\textra column\n"quoted"\t\'x\'\r\nsolo\t2\n')
    assert read_pairs(path) == [("new york", "new-york"), ('"quoted"', "'x'"), ("solo", "2")]


def test_a_byte_order_mark_is_not_part_of_the_first_id(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_bytes("\ufeffa b\nc d\n".encode())
    assert read_pairs(path) == [("a", "b"), ("c", "d")]


@pytest.mark.parametrize(("content", "message"), [
    ("a b\nc\n", "line 2 has 1 column(s); expected 'source target'"),
    ("a b\nnew york nueva york\n", "line 2 has 4 column(s); expected 'source target' (or source<TAB>target"),
    ("a\tb\nc\n", "line 2 has 1 column(s); expected source<TAB>target"),
    ("a b\nc\td\n", "line 1 has 1 column(s); expected source<TAB>target (the file is read tab-separated: line 2 holds"),
    ("# only a comment\n\n", "holds no id pairs"),
    ("a\tb\nc\t\n", "line 2 has an empty id"),
    ("a\tb\n \td\n", "line 2 has an empty id"),
])
def test_malformed_lines_are_named(tmp_path, content, message):
    path = tmp_path / "pairs.txt"
    path.write_text(content)
    with pytest.raises(FileFormatError) as raised:
        read_pairs(path)
    assert raised.value.message.startswith(message)


@settings(max_examples=60, deadline=None)
@given(pairs=st.lists(st.tuples(WORD, WORD), min_size=1, max_size=20), tabbed=st.booleans())
def test_written_pairs_read_back_in_order_without_repeats(tmp_path_factory, pairs, tabbed):
    path = tmp_path_factory.mktemp("pairs") / "pairs.txt"
    path.write_text("".join(f"{a}{chr(9) if tabbed else ' '}{b}\n" for a, b in pairs), encoding="utf-8")
    assert read_pairs(path) == list(dict.fromkeys(pairs))


def test_only_ascii_spaces_separate_and_comments_do_not_choose_the_layout(tmp_path):
    """A word holding a no-break space stays one word (as in a .vec file); a tab in a comment does not
    make a space-separated dictionary tab-separated."""
    path = tmp_path / "pairs.txt"
    path.write_text("# source\ttarget\nnew\u00a0york nueva\u00a0york\nthe le\n", encoding="utf-8")
    assert read_pairs(path) == [("new\u00a0york", "nueva\u00a0york"), ("the", "le")]


@pytest.mark.parametrize("tabbed", [False, True])
def test_a_line_starting_with_a_hash_is_a_pair_when_it_holds_two_ids(tmp_path, tabbed):
    """Dictionaries list words such as '#tag' and '#': such a line is a pair, not a comment; a line of
    prose after '#' (more or fewer than two fields) stays a comment."""
    sep = "\t" if tabbed else " "
    path = tmp_path / "pairs.txt"
    path.write_text(f"# en-fr dictionary, 2 pairs\n#\n#tag{sep}#etiquette\n#{sep}#\na{sep}b\n", encoding="utf-8")
    assert read_pairs(path) == [("#tag", "#etiquette"), ("#", "#"), ("a", "b")]
    if tabbed:  # further columns, as on any line of a tab-separated file; a file of '#' pairs alone
        path.write_text("#tag\t#etiquette\t0.8\nthe\tle\t0.9\n", encoding="utf-8")
        assert read_pairs(path) == [("#tag", "#etiquette"), ("the", "le")]
        path.write_text("#tag\t#etiquette\n", encoding="utf-8")
        assert read_pairs(path) == [("#tag", "#etiquette")]
