"""What every command shares: settings, the error boundary, messages, progress, devices.

Nothing here imports torch, h5py or rich at module level: ``relcli --help`` stays fast.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def command(fn: Callable) -> Callable:
    """The one error boundary: domain errors become one red line on stderr and an exit code.

    RelcliError -> its exit code (1 data/runtime, 2 usage); Ctrl-C/SIGTERM -> 130 after the
    atomic writers have removed their temp files; anything unexpected -> exit 1 with a one-line
    summary. ``--debug`` re-raises so the traceback shows.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        previous = signal.getsignal(signal.SIGTERM)
        try:
            signal.signal(signal.SIGTERM, _raise_interrupt)
        except ValueError:  # not in the main thread
            previous = None
        try:
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
            error("out of memory: lower --batch-size")
            raise typer.Exit(1) from None
        except Exception as exc:  # noqa: BLE001 - the boundary must catch everything
            if settings.debug:
                raise
            message = str(exc).splitlines()[0] if str(exc) else ""
            error(f"unexpected {type(exc).__name__}: {message} (run with --debug for the traceback)")
            raise typer.Exit(1) from None
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    return wrapper


def error(message: str) -> None:
    """One red line on stderr, always shown (even with --quiet)."""
    typer.secho(f"Error: {message}", err=True, fg="red")


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


@contextmanager
def progress(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A Rich progress bar on stderr when it is a terminal; a no-op in pipes and with -q."""
    if settings.quiet or not sys.stderr.isatty() or total <= 0:
        yield lambda n: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n: bar.advance(task, n)


def resolve_device(spec: str | None = None):
    """``auto`` = CUDA when available, else CPU; ``cuda[:N]`` must exist."""
    import torch

    from relcli.errors import UsageError

    spec = (spec or settings.device or "auto").strip().lower()
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"unknown device {spec!r}: use auto, cpu or cuda[:N]") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"device {spec!r} asked for, but CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"device {spec!r} does not exist ({torch.cuda.device_count()} CUDA device(s))")
    elif device.type != "cpu":
        raise UsageError(f"unsupported device {spec!r}: use auto, cpu or cuda[:N]")
    return device
