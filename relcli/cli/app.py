"""The ``relcli`` Typer app: global options and the registry of subcommands."""

import sys
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from relcli import __version__
from relcli.cli import _coerce, _runtime, anchors, embed, evaluate, info, merge, project, stitch, translate
from relcli.cli import export, report, search, split
from relcli.cli._help import PanelCommand


class OneLineErrors(TyperGroup):
    """Usage errors of the parser (a bad option value, a missing option) as one line, like every
    other error: ``Error: relcli anchors: Invalid value for '--strategy': ...``, exit 2."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        _coerce.install()
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except typer.Abort:
            _runtime.error("interrupted; no output was written")
            sys.exit(130)
        except typer.TyperException as exc:
            if not hasattr(exc, "format_message"):
                raise
            context = getattr(exc, "ctx", None)
            where = context.command_path if context is not None else "relcli"
            message = " ".join(exc.format_message().replace("Value error, ", "").split())
            _runtime.error(f"{where}: {message} (see '{where} --help')")
            sys.exit(getattr(exc, "exit_code", 2))
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineErrors,
    name="relcli",
    help="Make two neural latent spaces talk: relative representations, inverse relative "
    "projection (IRP) and direct translation over embedding files (HDF5, safetensors, .npy).\n\n"
    "\b\nExample (a corpus into a new model's space, with anchors embedded by both):\n"
    "  relcli anchors x.h5 -n 1024 -o xa.h5 && relcli anchors y.h5 --like xa.h5 -o ya.h5\n"
    "  relcli translate --src x.h5 --tgt-anchors ya.h5 --min-score 0.3 -o y_hat.h5",
    no_args_is_help=True,
    rich_markup_mode=None,  # plain Click help: rendering with Rich would cost ~0.2 s of imports
    add_completion=True,  # relcli --install-completion bash|zsh|fish|powershell
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"relcli {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="Silence everything but errors.")] = False,
    verbose: Annotated[bool, typer.Option("-v", "--verbose", help="Print details.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_show_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Global options; each subcommand also takes -q, -v and --debug, and --device (default: env RELCLI_DEVICE)."""
    _runtime.reset(None, quiet, verbose, debug)


app.command("embed", cls=PanelCommand)(embed.embed)
app.command("anchors", cls=PanelCommand)(anchors.anchors)
app.command("project", cls=PanelCommand)(project.project)
app.command("invert", cls=PanelCommand)(project.invert)
app.command("translate", cls=PanelCommand)(translate.translate)
app.add_typer(stitch.app, name="stitch")
app.command("evaluate", cls=PanelCommand)(evaluate.evaluate)
app.command("info", cls=PanelCommand)(info.info)
app.command("merge", cls=PanelCommand)(merge.merge)
app.command("split", cls=PanelCommand)(split.split)
app.command("search", cls=PanelCommand)(search.search)
app.command("export", cls=PanelCommand)(export.export)
app.command("import", cls=PanelCommand)(export.import_)
app.command("report", cls=PanelCommand)(report.report)


def main() -> None:
    app(prog_name="relcli")
