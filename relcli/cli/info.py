"""``relcli info``: what is in an embedding file (think ``h5ls`` for embeddings)."""

from __future__ import annotations

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


def _examples(values, n: int = 3) -> list:
    if values is None:
        return []
    head = values[:n]
    return [v.item() if hasattr(v, "item") else v for v in head]


def describe(path: Path, key: str | None = None) -> dict[str, Any]:
    """A JSON-able summary of one file."""
    from relcli.io.embeddings import open_embeddings

    with open_embeddings(path, key=key) as f:
        attrs = dict(f.attrs)
        provenance = attrs.pop("provenance", None)
        labels = f.labels
        summary = {
            "path": str(path),
            "format": f.format,
            "size_bytes": path.stat().st_size,
            "kind": f.kind,
            "key": f.key,
            "rows": f.n_rows,
            "dims": f.dim,
            "dtype": f.dtype,
            "ids": None
            if f.ids is None
            else {"type": "string" if isinstance(f.ids, list) else "int64", "examples": _examples(f.ids)},
            "labels": None
            if labels is None
            else {
                "type": "string" if isinstance(labels, list) else "int64",
                "classes": len(set(labels if isinstance(labels, list) else labels.tolist())),
                "examples": _examples(labels),
            },
            "arrays": {name: {"shape": s, "dtype": d} for name, (s, d) in f.array_shapes().items()},
            "metadata": attrs,
            "provenance": provenance,
        }
    return summary


def _print_table(summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=summary["path"], show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    table.add_row("format", f"{summary['format']} ({summary['size_bytes']:,} bytes)")
    table.add_row("kind", summary["kind"])
    table.add_row("matrix", f"{summary['key']}: {summary['rows']:,} x {summary['dims']} {summary['dtype']}")
    for part in ("ids", "labels"):
        value = summary[part]
        if value is None:
            table.add_row(part, "none")
        else:
            extra = f", {value['classes']} classes" if "classes" in value else ""
            table.add_row(part, f"{value['type']}{extra}, e.g. {', '.join(map(str, value['examples']))}")
    others = {k: v for k, v in summary["arrays"].items() if k != summary["key"]}
    if others:
        table.add_row("arrays", "\n".join(f"{k}: {v['shape']} {v['dtype']}" for k, v in others.items()))
    for key, value in summary["metadata"].items():
        table.add_row(f"relcli.{key}", json.dumps(value) if not isinstance(value, str) else value)
    if summary["provenance"]:
        p = summary["provenance"]
        inputs = ", ".join(i.get("path", "?") for i in p.get("inputs", []))
        table.add_row(
            "provenance",
            f"relcli {p.get('relcli_version')} {p.get('subcommand')} at {p.get('created_utc')}"
            + (f"\ninputs: {inputs}" if inputs else "")
            + f"\nparameters: {json.dumps(p.get('parameters', {}))}",
        )
    Console(soft_wrap=False).print(table)


@command
def info(
    files: Annotated[list[Path], typer.Argument(help="Embedding files (.h5, .safetensors, .npy).")],
    output_format: Annotated[
        InfoFormat, typer.Option("--format", "-f", help="table (for people) or json (one object per line).")
    ] = InfoFormat.table,
    key: opt.Key = None,
    quiet: opt.Quiet = False,
    debug: opt.Debug = False,
) -> None:
    """Show what is in embedding files: shape, dtype, kind, ids, labels, metadata, provenance.

    Example: relcli info sample_data/mnist.h5 --format json
    """
    configure(quiet=quiet, debug=debug)
    for path in files:
        summary = describe(path, key)
        if output_format is InfoFormat.json:
            typer.echo(json.dumps(summary))
        else:
            _print_table(summary)
