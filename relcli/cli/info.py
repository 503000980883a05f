"""``relcli info``: what is in relcli files, of every kind (think ``h5ls`` for embeddings)."""

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import command, configure


class InfoFormat(str, Enum):
    table = "table"
    json = "json"


def _print_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=summary["path"], show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("format", f"{summary['format']} ({summary['size_bytes']:,} bytes)")
    table.add_row("kind", summary["kind"])
    if "estimator" in summary:
        table.add_row("estimator", f"{summary['estimator']} {json.dumps(summary['params'])}")
    else:
        table.add_row("matrix", f"{summary['key']}: {summary['rows']:,} x {summary['dims']} {summary['dtype']}")
        for part in ("ids", "labels"):
            value = summary[part]
            if value is None:
                table.add_row(part, "none")
            else:
                extra = f", {value['classes']} classes" if "classes" in value else ""
                table.add_row(part, f"{value['type']}{extra}, e.g. {', '.join(map(str, value['examples']))}")
    for key, value in summary.get("summary", {}).items():
        table.add_row(key, json.dumps(value) if not isinstance(value, str) else value)
    others = {k: v for k, v in summary["arrays"].items() if k != summary.get("key")}
    if others:
        table.add_row("arrays", "\n".join(f"{k}: {v['shape']} {v['dtype']}" for k, v in others.items()))
    for key, value in summary["metadata"].items():
        table.add_row(f"relcli.{key}", json.dumps(value) if not isinstance(value, str) else value)
    if summary["provenance"]:
        p = summary["provenance"]
        inputs = ", ".join(i.get("path", "?") for i in p.get("inputs", []) if isinstance(i, dict))
        table.add_row(
            "provenance",
            f"relcli {p.get('relcli_version')} {p.get('subcommand')} at {p.get('created_utc')}"
            + (f"\ninputs: {inputs}" if inputs else "")
            + f"\nparameters: {json.dumps(p.get('parameters', {}))}",
        )
    Console(soft_wrap=False).print(table)


@command
def info(
    files: Annotated[list[Path], typer.Argument(help="relcli files of any kind (.h5, .safetensors, .npy).")],
    output_format: Annotated[
        InfoFormat, typer.Option("--format", "-f", help="table (for people) or json (one object per line).")
    ] = InfoFormat.table,
    key: opt.Key = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Show what is in files: shape, dtype, kind, ids, labels, anchors' statistics, fitted maps and heads, provenance.

    Example: relcli info sample_data/mnist.h5 --format json
    """
    configure(None, quiet, verbose, debug)
    from relcli import api

    for path in files:
        summary = api.describe(path, key)
        if output_format is InfoFormat.json:
            typer.echo(json.dumps(summary))
        else:
            _print_table(summary)
