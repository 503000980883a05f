"""The README documents every subcommand, and each documented command line parses."""

import re
import shlex
from pathlib import Path

from typer.testing import CliRunner

from relcli.cli.app import app

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def _commands():
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands)


def test_every_subcommand_is_documented_in_the_readme():
    for name in _commands():
        assert f"relcli {name}" in README, f"`relcli {name}` is not in README.md"


def test_every_documented_relcli_line_parses():
    """Each `relcli ...` line in the README's bash blocks is accepted by the parser (--help appended)."""
    blocks = re.findall(r"```bash\n(.*?)```", README, flags=re.S)
    lines = [line for block in blocks for line in block.splitlines() if line.startswith("relcli ")]
    assert len(lines) > 15
    runner = CliRunner()
    for line in lines:
        words = shlex.split(line.split("|")[0])[1:]
        result = runner.invoke(app, [*words, "--help"])
        assert result.exit_code == 0, f"{line}\n{result.output}"
