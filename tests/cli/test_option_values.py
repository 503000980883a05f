"""Option values: converted by relcli.cli._coerce (no pydantic), one-line usage errors, exit 2."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Literal

import pytest
from typer.testing import CliRunner

from relcli.cli._coerce import convert, handled
from relcli.cli.app import app

INFO = SimpleNamespace(min=None, max=None, case_sensitive=True, parser=None, click_type=None, clamp=False)


@pytest.mark.parametrize(("annotation", "value", "expected"), [
    (int, "12", 12), (int, " 7 ", 7), (int, 5, 5), (float, "0.25", 0.25), (float, "1e-3", 1e-3), (float, 2, 2.0),
    (str, "abc", "abc"), (Path, "x/y.h5", Path("x/y.h5")), (bool, True, True), (bool, "false", False),
    (Literal["a", "b"], "b", "b"),
])
def test_values_convert(annotation, value, expected):
    got = convert(annotation, value, INFO)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(("annotation", "value", "reason"), [
    (int, "1.5", "'1.5' is not an integer"), (int, "x", "'x' is not an integer"), (int, True, "not an integer"),
    (float, "abc", "'abc' is not a number"), (float, "nan", "not a finite number"), (float, "-inf", "not a finite"),
    (bool, "maybe", "not a boolean"),
    (Literal["a", "b"], "c", "'c' is not one of 'a', 'b'."),
])
def test_bad_values_say_why(annotation, value, reason):
    with pytest.raises(ValueError, match=None) as caught:
        convert(annotation, value, INFO)
    assert reason in str(caught.value)


def test_ranges_are_checked_on_both_sides():
    info = SimpleNamespace(**{**vars(INFO), "min": 0, "max": 1.0})
    assert convert(float, "1", info) == 1.0 and convert(int, "0", info) == 0
    with pytest.raises(ValueError, match="-1 is below the minimum, 0"):
        convert(int, "-1", info)
    with pytest.raises(ValueError, match="above the maximum, 1.0"):
        convert(float, "1.5", info)


def test_what_is_left_to_typer():
    assert handled(list[str], INFO) and handled(Literal["x"], INFO) and handled(Path, INFO)
    assert not handled(tuple[int, int], INFO) and not handled(dict, INFO)
    assert not handled(int, SimpleNamespace(**{**vars(INFO), "parser": int}))


@pytest.mark.parametrize(("args", "message"), [
    (["--seed", "x"], "Invalid value for '--seed': 'x' is not an integer"),
    (["--seed", "-1"], "Invalid value for '--seed': -1 is below the minimum, 0"),
    (["--min-score", "nan"], "Invalid value for '--min-score': 'nan' is not a finite number"),
    (["--prune-threshold", "2"], "Invalid value for '--prune-threshold': 2.0 is above the maximum, 1.0"),
    (["-o", ""], "unknown output extension '(none)'"),
    (["--method", "umeyama"], "Invalid value for '--method' / '-m': 'umeyama' is not one of 'auto'"),
])
def test_bad_values_on_the_command_line(args, message, tmp_path):
    base = {"--src": "x.h5", "--tgt-anchors": "ya.h5", "-o": str(tmp_path / "out.h5")}
    for flag, value in zip(args[::2], args[1::2]):
        base[flag] = value
    result = CliRunner().invoke(app, ["translate", *[part for pair in base.items() for part in pair]])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.output
    assert "Traceback" not in result.output and not (tmp_path / "out.h5").exists()


def test_a_huge_bad_value_is_cut_in_the_message():
    with pytest.raises(ValueError) as caught:
        convert(int, "9" * 5000, INFO)
    assert len(str(caught.value)) < 80 and str(caught.value).endswith("is not an integer")
