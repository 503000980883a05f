"""What every command shares: settings, the error boundary, messages, progress, devices.

Nothing here imports torch, h5py or rich at module level: ``relcli --help`` stays fast.
"""

from __future__ import annotations

import errno
import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import typer

from relcli.errors import RelcliError


@dataclass
class Settings:
    """Global options, set by the app callback and refined by each command's own flags."""

    device: str = "auto"
    quiet: bool = False
    verbose: bool = False
    debug: bool = False


settings = Settings()


def configure(device: str | None = None, quiet: bool = False, verbose: bool = False, debug: bool = False) -> None:
    """Merge a command's own flags into the global settings (flags only ever switch on)."""
    if device:
        settings.device = device
    settings.quiet = settings.quiet or quiet
    settings.verbose = (settings.verbose or verbose) and not settings.quiet
    settings.debug = settings.debug or debug


def reset(device: str | None, quiet: bool, verbose: bool, debug: bool) -> None:
    settings.device = device or os.environ.get("RELCLI_DEVICE") or "auto"
    settings.quiet, settings.verbose, settings.debug = quiet, verbose and not quiet, debug


def command(fn: Callable) -> Callable:
    """The one error boundary: domain errors become one red line on stderr and an exit code.

    RelcliError -> its exit code (1 data/runtime, 2 usage); Ctrl-C/SIGTERM -> 130 after the
    atomic writers have removed their temp files; anything unexpected -> exit 1 with a one-line
    summary. ``--debug`` re-raises so the traceback shows.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from relcli import interrupts
        from relcli.cli import collect_from_here

        collect_from_here()

        try:
            with interrupts.handling():
                return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except RelcliError as exc:
            if settings.debug:
                raise
            error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            if settings.debug:
                raise
            error("interrupted; no output was written")
            raise typer.Exit(130) from None
        except MemoryError:
            if settings.debug:
                raise
            error(out_of_memory(""))
            raise typer.Exit(1) from None
        except BrokenPipeError:  # the reader of stdout went away (`relcli search ... | head`): stop quietly
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            except (OSError, ValueError):
                pass
            raise typer.Exit(1) from None  # quietly, with 1: what Python's docs advise and rich's tables do
        except OSError as exc:  # a file that cannot be read or written, outside relcli's own checks
            if settings.debug:
                raise
            from relcli.errors import shown_path

            # relcli's own files fail with their names (OutputError); a full disk without one is stdout
            where = (f"{shown_path(str(exc.filename))}: " if exc.filename
                     else "<stdout>: " if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) else "")
            error(f"{where}{exc.strerror or 'input/output error'}")
            raise typer.Exit(1) from None
        except Exception as exc:  # noqa: BLE001 - the boundary must catch everything
            if settings.debug:
                raise
            message = " ".join(str(exc).split())[:300] or "no message"
            if isinstance(exc, RuntimeError) and ("can't allocate memory" in message or "out of memory" in message):
                error(out_of_memory(message))  # torch's allocators (OutOfMemoryError on CUDA)
            else:
                error(f"internal error: {message} (run with --debug for the traceback, and please report it)")
            raise typer.Exit(1) from None

    return wrapper


def out_of_memory(message: str) -> str:
    """The one line for an allocation that failed, with the size asked for when the message says it."""
    import re

    asked = re.search(r"allocate (\d+) bytes", message)
    size = f" ({int(asked.group(1)) / 2**30:,.1f} GiB asked for at once)" if asked else ""
    return f"out of memory{size}: the input or an option is too large for this machine (lower --batch-size where the command has it)"


def error(message: str) -> None:
    """One red line on stderr, always shown (even with --quiet)."""
    from relcli.errors import one_line

    typer.secho(f"Error: {one_line(message)}", err=True, fg="red")


def warn(message: str) -> None:
    if not settings.quiet:
        typer.secho(f"Warning: {message}", err=True, fg="yellow")


def say(message: str) -> None:
    """A message for the person at the terminal: stderr, silenced by --quiet."""
    if not settings.quiet:
        typer.echo(message, err=True)


def detail(message: str) -> None:
    """Shown only with -v/--verbose."""
    if settings.verbose and not settings.quiet:
        typer.echo(message, err=True)


class ProgressBar:
    """The API's progress callback: a Rich bar on stderr when it is a terminal; nothing in pipes or with -q.

    >>> with ProgressBar() as bar:
    ...     api.translate(..., progress=bar)
    """

    def __init__(self) -> None:
        self._bar = None
        self._tasks: dict[str, int] = {}

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()

    def __call__(self, description: str, done: int, total: int) -> None:
        if settings.quiet or not sys.stderr.isatty() or total <= 0:
            return
        if self._bar is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
            self._bar = Progress(*columns, console=Console(stderr=True), transient=True)
            self._bar.start()
        if description not in self._tasks:
            self._tasks[description] = self._bar.add_task(description, total=total)
        self._bar.update(self._tasks[description], completed=done)


def report(result, summary: str) -> None:
    """What a command says when it is done: notes, warnings, dropped rows, -v details, then ``summary``."""
    from relcli.errors import describe_rows

    for message in result.notes:
        say(message)
    for message in result.warnings:
        warn(message)
    if result.dropped:
        say(f"dropped {describe_rows(result.dropped_ids)} that could not be used")
    for message in result.details:
        detail(message)
    say(summary)
