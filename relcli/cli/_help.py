"""``--help`` in panels without Rich: the command's own options, then the shared ones by topic.

Typer draws ``rich_help_panel`` only when it renders help with Rich, which would cost ~0.2 s of
imports on every ``--help``; this plain Click rendering groups options the same way.
"""

from __future__ import annotations

import click
from typer.core import TyperCommand


class PanelCommand(TyperCommand):
    """A command whose ``--help`` lists arguments, then "Options" (its own), then each panel of
    ``relcli.cli._options`` ("Files and rows", "Fitting", "Running") in the order first met."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                sections["Arguments"].append(record)
            else:
                sections.setdefault(getattr(param, "rich_help_panel", None) or "Options", []).append(record)
        for title, records in sections.items():
            if records:
                with formatter.section(title):
                    formatter.write_dl(records)
