"""The Typer command line: one module per subcommand; parse, call ``relcli.api``, report."""

import sys


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main() -> None:
    """The ``relcli`` console script: Ctrl-C or SIGTERM while the program is still loading exits 130 quietly."""
    import signal

    signal.signal(signal.SIGTERM, _interrupt)
    try:
        from relcli.cli.app import main as run

        run()
    except KeyboardInterrupt:  # outside a command (loading, parsing): nothing was written
        sys.exit(130)
