"""Fixtures and the failure contract of the hostile-input suite (issue 12).

The corpus: tiny valid files of every kind relcli writes, in both formats, made once per session
through ``relcli.api`` (X: 40 x 8 float32, string ids ``id00``..``id39``, 3 int classes; Y = 2 X Q),
plus a TorchScript encoder for ``embed`` (built in ``_corpus``). Tests mutate *copies* of them; nothing
writes into the corpus folder (every run checks its bytes). ``_api_calls.to_api`` maps a case's command
line to the same ``relcli.api`` call.

The contract every hostile case asserts (DESIGN §6, issue 12): exit 1 (data/runtime) or 2 (usage);
exactly one line on stderr, ``Error: ...``, naming the file at fault (and the ids of bad rows);
no traceback, no exception class name, no "unexpected"/"internal error"; nothing on stdout; no
output, no ``*.relcli-tmp`` temp file, and an existing output left byte for byte.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from ._api_calls import to_api
from ._corpus import D, IDS, ITEM_IDS, K, N, NAN_ITEMS, Corpus, build_corpus  # noqa: F401 - re-exported

ROOT = Path(__file__).resolve().parents[2]
TEMP_SUFFIX = ".relcli-tmp"

#: what must never reach a user: tracebacks, exception class names, the boundary's catch-all.
FORBIDDEN = re.compile(r"Traceback|\bunexpected\b(?! extra argument)|internal error|\w+Error\b|\w+Exception\b|\[Errno|"
                       r"KeyboardInterrupt|Warning|please report")


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Corpus:
    return build_corpus(tmp_path_factory.mktemp("hostile-corpus"))


# ---------------------------------------------------------------------------------------------
# snapshots and the contract
# ---------------------------------------------------------------------------------------------
def snapshot(*folders: Path) -> dict[str, str]:
    """Every entry (hidden ones too) in the folders with the SHA-256 of its bytes."""
    found = {}
    for folder in folders:
        if not folder.exists():
            continue
        for entry in sorted(folder.rglob("*")):
            found[str(entry)] = hashlib.sha256(entry.read_bytes()).hexdigest() if entry.is_file() else "dir"
    return found


def stat_snapshot(folder: Path) -> dict[str, tuple]:
    """Cheap check that nothing in a folder changed: (size, mtime) of every entry."""
    return {str(p): (p.lstat().st_size, p.lstat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def temps_in(*folders: Path) -> list[str]:
    return [str(p) for folder in folders if folder.exists() for p in folder.rglob(f"*{TEMP_SUFFIX}*")]


def check_message(line: str, names=(), fragments=(), ids=()) -> None:
    """One error message: names every path, every fragment and every id (quoted), nothing forbidden."""
    problems = []
    bad = FORBIDDEN.findall(line)
    if bad:
        problems.append(f"forbidden words {bad}")
    for name in names:
        if str(name) not in line:
            problems.append(f"does not name {str(name)!r}")
    for fragment in fragments:
        if fragment not in line:
            problems.append(f"lacks {fragment!r}")
    for key in ids:
        if repr(key) not in line:
            problems.append(f"does not name id {key!r}")
    assert not problems, f"{'; '.join(problems)}\nmessage: {line}"


def check_cli_failure(result, code, names=(), fragments=(), ids=()) -> str:
    codes = code if isinstance(code, tuple) else (code,)
    detail = f"exit {result.exit_code}\nstderr: {result.stderr!r}\nstdout: {result.stdout[:500]!r}"
    assert result.exit_code in codes, f"expected exit {code}; {detail}"
    assert isinstance(result.exception, SystemExit), f"{detail}\nexception: {result.exception!r}"
    lines = [line for line in result.stderr.splitlines()]
    assert len(lines) == 1, f"expected exactly one line on stderr; {detail}"
    line = lines[0]
    assert line.startswith("Error: "), detail
    assert result.stdout == "", f"stdout is not empty; {detail}"
    check_message(line, names, fragments, ids)
    return line


# ---------------------------------------------------------------------------------------------
# running cases
# ---------------------------------------------------------------------------------------------
_COMMAND = []


def invoke(args, stdin: str | bytes | None = None):
    """``relcli ARGS`` in-process, stdout and stderr apart. The Click command is built from the Typer app
    once (typer.testing.CliRunner rebuilds it on every call, ~0.2 s each)."""
    from unittest import mock

    import typer.main
    import typer.testing
    from typer.testing import CliRunner

    from relcli.cli.app import app

    if not _COMMAND:
        _COMMAND.append(typer.main.get_command(app))
    words = [os.fspath(a) if isinstance(a, Path) else str(a) for a in args]
    with mock.patch.object(typer.testing, "_get_command", lambda _app: _COMMAND[0]):
        return CliRunner().invoke(app, words, input=stdin, prog_name="relcli")


@dataclass
class Spec:
    """One hostile run: the command line, what it must say, and the outputs it must not leave."""

    args: list
    code: int | tuple[int, ...] = 1
    names: list = field(default_factory=list)      # paths (or text) the error line must contain
    fragments: list = field(default_factory=list)  # words it must contain
    ids: list = field(default_factory=list)        # ids of bad rows it must name
    outputs: list = field(default_factory=list)    # outputs that must not appear / must stay unchanged
    stdin: str | None = None
    expect: str = "error"                          # "error"; "ok"; "ok-or-error": success (finite output) or a clean error
    existing: bool = True                          # CLI mode: put a previous output in place first


@dataclass
class Ctx:
    """What a case builder gets: the corpus, a folder for its hostile inputs, one for outputs."""

    c: Corpus
    src: Path
    out: Path

    def p(self, name: str) -> Path:
        return self.src / name


@dataclass
class Case:
    id: str
    make: Callable[[Ctx], Spec]
    api: bool = True


def outputs_of(args: list) -> list[Path]:
    """The files a command line writes: -o/--output and --save-map."""
    found = []
    for flag, value in zip(args, args[1:]):
        if str(flag) in ("-o", "--output", "--save-map") and isinstance(value, Path):
            found.append(value)
    return found


def place_previous(path: Path, c: Corpus, out: Path) -> bytes | None:
    """An existing output (a valid file of the right format) where a run will write (in ``out`` only)."""
    try:
        if path.parent != out or path.exists() or path.is_symlink() or len(os.fsencode(path.name)) > 255:
            return None
    except OSError:
        return None
    suffix = path.suffix.lower()
    source = {".h5": c.x_h5, ".hdf5": c.x_h5, ".safetensors": c.x_st}.get(suffix)
    if source is None:
        return None
    shutil.copyfile(source, path)
    return path.read_bytes()


_COUNTER = [0]


@pytest.fixture
def case_dir(tmp_path_factory):
    """A fresh folder per case, without pytest's tmp_path (which lists every earlier one: slow over
    a thousand cases); removed after a passing case, kept after a failing one."""
    base = tmp_path_factory.getbasetemp() / "hostile-cases"
    base.mkdir(exist_ok=True)
    _COUNTER[0] += 1
    folder = base / f"case{_COUNTER[0]:05d}"
    folder.mkdir()
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def run_case(case: Case, mode: str, corpus: Corpus, tmp_path: Path) -> None:
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    corpus_before = stat_snapshot(corpus.folder)
    spec = case.make(Ctx(corpus, src, out))
    outputs = spec.outputs or outputs_of(spec.args)
    previous = {}
    if mode == "cli" and spec.existing and spec.expect == "error":
        for path in outputs:
            data = place_previous(path, corpus, out)
            if data is not None:
                previous[path] = data
    existed = {path for path in outputs if _exists(path)}
    before = snapshot(src, out)
    if mode == "cli":
        result = invoke(spec.args, spec.stdin)
        outcome_ok = result.exit_code == 0
        if spec.expect == "ok" or (spec.expect == "ok-or-error" and outcome_ok):
            assert result.exit_code == 0, f"exit {result.exit_code}\nstderr: {result.stderr!r}"
            assert isinstance(result.exception, (SystemExit, type(None))), repr(result.exception)
            _check_success(outputs, src, out)
            return
        check_cli_failure(result, spec.code, spec.names, spec.fragments, spec.ids)
    else:
        fn, args, kwargs = to_api(spec.args)
        if spec.stdin is not None:
            pytest.skip("standard input is the CLI's")
        try:
            fn(*args, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - every outcome is judged
            from relcli.errors import RelcliError

            if not isinstance(exc, RelcliError):
                raise AssertionError(f"the API raised {type(exc).__name__}: {exc}") from exc
            codes = spec.code if isinstance(spec.code, tuple) else (spec.code,)
            assert exc.exit_code in codes, f"exit_code {exc.exit_code}, expected {spec.code}: {exc}"
            message = str(exc)
            assert "\n" not in message.strip(), f"more than one line: {message!r}"
            check_message(message, spec.names, spec.fragments, spec.ids)
        else:
            if spec.expect in ("ok", "ok-or-error"):
                _check_success(outputs, src, out)
                return
            raise AssertionError(f"the API call succeeded; expected {type(spec.code)} error naming {spec.names}")
        if spec.expect == "ok":
            raise AssertionError("expected success")
    # nothing written, nothing changed
    after = snapshot(src, out)
    assert stat_snapshot(corpus.folder) == corpus_before, "the corpus folder changed"
    assert not temps_in(src, out, corpus.folder), f"temp files left: {temps_in(src, out, corpus.folder)}"
    for path, data in previous.items():
        assert path.exists() and path.read_bytes() == data, f"the existing output {path} was changed"
    for path in outputs:
        if path not in previous and path not in existed:
            assert not _exists(path), f"output {path} was written by a failing run"
    assert after == before, "files changed: " + ", ".join(sorted(set(after.items()) ^ set(before.items()))[0])


def _exists(path: Path) -> bool:
    try:
        return os.path.lexists(path)
    except (OSError, ValueError):
        return False


def _check_success(outputs, src: Path, out: Path) -> None:
    from relcli.io.embeddings import open_embeddings

    assert not temps_in(src, out), f"temp files left: {temps_in(src, out)}"
    for path in outputs:
        assert path.exists(), f"no output {path}"
        if path.suffix == ".safetensors":
            from relcli.io.kinds import peek_kind

            if peek_kind(path) in ("head", "translator"):
                continue
        with open_embeddings(path) as reader:
            matrix = reader.read_all().float().numpy()
            assert np.isfinite(matrix).all(), f"{path} holds non-finite values"



def cases_params(cases: list[Case], exhaustive: Callable[[str, str], bool] = lambda case_id, mode: False):
    """pytest params: every case through the CLI, and through the API where it applies. Variants that
    ``exhaustive(id, mode)`` calls redundant (another format or mode of a case that runs by default)
    are marked slow: run them with RELCLI_HOSTILE_FULL=1 or ``-m slow``."""
    params = []
    for case in cases:
        for mode in ("cli", "api") if case.api else ("cli",):
            marks = [pytest.mark.slow] if exhaustive(case.id, mode) else []
            params.append(pytest.param(case, mode, id=f"{mode}:{case.id}", marks=marks))
    return params


def pytest_collection_modifyitems(config, items):
    """The hostile suite's exhaustive variants (marked slow) stay out of the default run, unless asked
    for with RELCLI_HOSTILE_FULL=1 or a -m expression."""
    if config.getoption("markexpr") or os.environ.get("RELCLI_HOSTILE_FULL"):
        return
    here = Path(__file__).resolve().parent
    keep, drop = [], []
    for item in items:
        inside = here in Path(str(item.fspath)).resolve().parents
        (drop if inside and item.get_closest_marker("slow") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
