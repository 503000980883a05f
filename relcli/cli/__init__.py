"""The Typer command line: one module per subcommand; parse, call ``relcli.api``, report."""

import sys


def _interrupt(signum, frame):
    from relcli import interrupts

    if not interrupts.is_committed():  # after a step wrote its outputs a signal is too late to matter
        raise KeyboardInterrupt


def main() -> None:
    """The ``relcli`` console script: Ctrl-C or SIGTERM while the program is still loading exits 130 quietly;
    one that comes while the interpreter shuts down is ignored (Python would restore the default action,
    which kills a finished step with -SIGTERM)."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    try:
        from relcli.cli.app import main as run

        run()
    except KeyboardInterrupt:  # outside a command (loading, parsing): nothing was written
        sys.exit(130)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
