"""``relcli --help`` and ``relcli <cmd> --help`` import neither torch nor h5py (DESIGN §2).

Checked in fresh interpreters, by the module list of ``python -X importtime`` and by
``sys.modules`` after invoking the app; wall time is not asserted.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "h5py")


def imported_modules(args: list[str], tmp_path) -> tuple[set[str], subprocess.CompletedProcess]:
    """Top-level modules imported by ``python -X importtime ARGS`` (parsed from stderr)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *args], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    names = set()
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+\s+\|\s+\d+\s+\|\s*(\S+)\s*$", line)
        if match:
            names.add(match.group(1).split(".")[0])
    return names, done


def test_the_parser_sees_heavy_imports(tmp_path):
    """Control: the same harness does report torch when it is imported."""
    names, done = imported_modules(["-c", "import relcli.core.irp"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "torch" in names and "relcli" in names


def test_the_registry_of_methods_imports_no_torch(tmp_path):
    """The CLI's choices come from relcli.core.registry, which must stay light."""
    names, done = imported_modules(["-c", "import relcli.core.registry as r; assert 'irp' in r.TRANSLATORS"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "relcli" in names and not names & set(HEAVY), sorted(names & set(HEAVY))


@pytest.mark.parametrize("args", [["--help"], ["info", "--help"], ["-h"], ["--version"], ["translate", "--help"],
                                  ["stitch", "run", "--help"]], ids=" ".join)
def test_help_imports_neither_torch_nor_h5py(args, tmp_path):
    names, done = imported_modules(["-m", "relcli", *args], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "relcli" in names and "typer" in names
    assert not names & set(HEAVY), sorted(names & set(HEAVY))
    assert "pydantic" not in names  # Typer's value coercion (~0.2 s): flags need none (relcli.cli.app)
    assert done.stdout.strip()


PROBE = """
import json, sys
import typer
from typer.testing import CliRunner
from relcli.cli.app import app

runner = CliRunner()
names = sorted(typer.main.get_command(app).commands)
report = {"commands": names, "failed": {}, "heavy": {}}
for args in [["--help"]] + [[name, "--help"] for name in names]:
    result = runner.invoke(app, args)
    if result.exit_code != 0 or "Usage" not in result.stdout:
        report["failed"][" ".join(args)] = (result.exit_code, result.output[-300:])
    heavy = sorted(m for m in %r if m in sys.modules)
    if heavy:
        report["heavy"][" ".join(args)] = heavy
print(json.dumps(report))
""" % (HEAVY,)


def test_every_subcommand_help_imports_neither_torch_nor_h5py(tmp_path):
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "info" in report["commands"]
    assert report["failed"] == {}
    assert report["heavy"] == {}


def test_info_and_the_api_import_no_torch(tmp_path):
    """`relcli info FILE` reads metadata only, and `import relcli.api` loads the kernels only when a step runs."""
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "mnist.h5"
    names, done = imported_modules(["-m", "relcli", "info", str(sample)], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "torch" not in names
    names, done = imported_modules(["-c", "import relcli.api"], tmp_path)
    assert done.returncode == 0 and "torch" not in names


def test_a_command_with_valued_options_imports_no_pydantic(tmp_path):
    """Option values are converted by relcli.cli._coerce, not Typer's pydantic adapters (~0.2 s of start-up)."""
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "mnist.h5"
    names, done = imported_modules(["-m", "relcli", "anchors", str(sample), "-n", "12", "--seed", "3", "--strategy",
                                    "random", "-o", str(tmp_path / "a.h5"), "-q"], tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "a.h5").exists() and "torch" in names
    assert "pydantic" not in names


def test_start_up_runs_without_the_collector_and_commands_with_it(tmp_path):
    """The console script keeps the garbage collector off while it loads (each full collection walks
    every object start-up made: 0.2 s of a small command), and a command runs with it back on, the
    start-up objects frozen; a program that calls the app itself keeps its own collector."""
    sample = Path(__file__).resolve().parents[1] / "sample_data" / "mnist.h5"
    probe = (
        "import gc, json, sys\n"
        "import relcli.api as api\n"
        "states = {'before': gc.isenabled()}\n"
        "def describe(path, key):\n"
        "    states['in_command'] = [gc.isenabled(), gc.get_freeze_count() > 1000]\n"
        "    return {'path': str(path)}\n"
        "api.describe = describe\n"
        "from relcli.cli import main\n"
        f"sys.argv = ['relcli', 'info', {str(sample)!r}, '--format', 'json']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "states['after'] = gc.isenabled()\n"
        "from typer.testing import CliRunner\n"
        "from relcli.cli.app import app\n"
        "gc.unfreeze()\n"
        "api.describe = lambda path, key: states.update(in_app=[gc.isenabled(), gc.get_freeze_count()]) or {}\n"
        "CliRunner().invoke(app, ['info', sys.argv[2], '--format', 'json'])\n"
        "gc.disable()\n"
        "api.describe = lambda path, key: states.update(host_off=[gc.isenabled(), gc.get_freeze_count()]) or {}\n"
        "CliRunner().invoke(app, ['info', sys.argv[2], '--format', 'json'])\n"
        "states['host_off_after'] = gc.isenabled()\n"
        "print(json.dumps(states))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    states = json.loads(done.stdout.strip().splitlines()[-1])
    assert states == {"before": True, "in_command": [True, True], "after": True, "in_app": [True, 0],
                      "host_off": [False, 0], "host_off_after": False}


def test_typer_reads_evaluated_annotations():
    """Typer evaluates every command's annotations at every start-up; as strings (``from __future__
    import annotations`` in a command module) that compiles 600 expressions, 0.1 s of each run."""
    import inspect

    from relcli.cli.app import app

    def callbacks(group):
        for info in group.registered_commands:
            yield info.callback
        for sub in group.registered_groups:
            yield from callbacks(sub.typer_instance)

    found = list(callbacks(app))
    assert len(found) >= 10
    for callback in found:
        strings = {name: hint for name, hint in inspect.get_annotations(callback).items() if isinstance(hint, str)}
        assert not strings, f"{callback.__module__}.{callback.__name__}: {strings}"
