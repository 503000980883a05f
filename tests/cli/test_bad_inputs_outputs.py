"""Bad inputs, command by command (DESIGN §3, §6): output paths and extensions, missing input
files, and an existing output that a failing run leaves intact.

Every failure: exit 1 (data/runtime) or 2 (usage), one ``Error:`` line on stderr naming the
file (where there is one) and the problem, nothing on stdout, no traceback, and no output or
temp file left behind: the folders' listings (and bytes) are unchanged. An existing output
survives a failing run over it bit for bit.
"""

from __future__ import annotations

import pytest

from ._bad_inputs_helpers import (
    broken,  # noqa: F401 (a fixture)
    fails,
    head,  # noqa: F401 (a fixture)
    nan_lines,
    out,  # noqa: F401 (a fixture)
    relative,  # noqa: F401 (a fixture)
    wide,  # noqa: F401 (a fixture)
)
from .conftest import invoke, ok


# ---------------------------------------------------------------------------------------------
# one command line per subcommand, with the output path left open
# ---------------------------------------------------------------------------------------------
def command_lines(data, head, relative):
    return {
        "anchors": lambda o: ["anchors", data.x_h5, "-n", 8, "-o", o],
        "anchors-like": lambda o: ["anchors", data.y_h5, "--like", data.xa, "-o", o],
        "project": lambda o: ["project", data.x_h5, "--anchors", data.xa, "-o", o],
        "invert": lambda o: ["invert", relative, "--anchors", data.ya, "-o", o],
        "translate": lambda o: ["translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "-o", o],
        "stitch-apply": lambda o: ["stitch", "apply", data.y_h5, "--head", head, "-o", o],
        "stitch-run": lambda o: ["stitch", "run", "--src", data.x_h5, "--tgt-anchors", data.ya, "--head", head,
                                 "-o", o],
    }


COMMANDS = ["anchors", "anchors-like", "project", "invert", "translate", "stitch-apply", "stitch-run"]


@pytest.mark.parametrize("name", COMMANDS)
def test_unknown_output_extension(data, head, relative, tmp_path, out, name):
    target = out / "result.txt"
    fails(data, tmp_path, command_lines(data, head, relative)[name](target), 2,
          "unknown output extension '.txt'", ".h5", ".safetensors", path=target)


def test_stitch_fit_output_must_be_safetensors(data, tmp_path, out):
    for name in ("head.txt", "head.h5"):
        fails(data, tmp_path, ["stitch", "fit", data.y_h5, "-o", out / name], 2, ".safetensors", path=out / name)


def test_save_map_must_be_safetensors(data, tmp_path, out):
    fails(data, tmp_path, ["translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "--save-map", out / "m.h5",
                           "-o", out / "y.h5"], 2, "--save-map", ".safetensors", path=out / "m.h5")


@pytest.mark.parametrize("name", COMMANDS + ["stitch-fit"])
def test_output_folder_missing(data, head, relative, tmp_path, out, name):
    target = out / "no" / "such" / ("head.safetensors" if name == "stitch-fit" else "result.h5")
    lines = command_lines(data, head, relative)
    args = ["stitch", "fit", data.y_h5, "-o", target] if name == "stitch-fit" else lines[name](target)
    fails(data, tmp_path, args, 1, "does not exist", str(out / "no" / "such"), path=target)
    assert not (out / "no").exists()


@pytest.mark.parametrize("name", ["project", "translate", "stitch-apply", "anchors"])
def test_missing_input_file(data, head, relative, tmp_path, out, name):
    missing = tmp_path / "nope.h5"
    args = [missing if str(a) in (str(data.x_h5), str(data.y_h5)) else a
            for a in command_lines(data, head, relative)[name](out / "r.h5")]
    fails(data, tmp_path, args, 1, "no such file", path=missing)


# ---------------------------------------------------------------------------------------------
# an existing output survives a failing run over it
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".h5", ".safetensors"])
@pytest.mark.parametrize("name", ["project", "translate", "stitch-apply", "anchors", "invert", "too-few-anchors"])
def test_existing_output_is_left_intact(data, broken, head, relative, wide, tmp_path, out, name, suffix):
    target = out / f"result{suffix}"
    good = command_lines(data, head, relative)
    bad = nan_lines(data, broken, head)
    ok(invoke(*good[{"too-few-anchors": "translate"}.get(name, name)](target)))
    before = target.read_bytes()
    if name in bad:
        args = bad[name](target)
    elif name == "anchors":
        args = ["anchors", broken[0], "-n", 8, "-o", target]
    elif name == "invert":
        args = ["invert", relative, "--anchors", wide.ya10, "-o", target]
    else:
        args = ["translate", "--src", wide.x64, "--tgt-anchors", wide.ya10, "--method", "irp", "-o", target]
    fails(data, tmp_path, args, 1)
    assert target.read_bytes() == before
