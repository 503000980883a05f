"""The Typer command line: one module per subcommand; parse, call ``relcli.api``, report."""

import gc
import sys

from relcli import interrupts  # loaded before any handler is installed: a signal during a lazy import of it would
# find the module half-initialised (AttributeError and a traceback instead of a quiet exit 130)


def _interrupt(signum, frame):
    if not interrupts.is_committed():  # after a step wrote its outputs a signal is too late to matter
        raise KeyboardInterrupt


def _return_freed_buffers() -> None:
    """Give freed row chunks back to the system at once (glibc only; elsewhere nothing changes).

    glibc serves large allocations with mmap and unmaps them when freed, but each such free raises
    the size above which it does so (up to 32 MiB); chunk-sized buffers then come from heaps that
    keep them after use, in each of the reading, computing and writing threads. Fixing the size at
    1 MiB (``mallopt(M_MMAP_THRESHOLD)``) made the peak RSS of ``translate --map`` 567 MiB over
    1M × 768 rows (736–926 MiB before, depending on the threads' timing) and 841 MiB over 4M (1577
    before: small id strings written between the chunks fragment the heaps), for 7 % (1M) to 16 %
    (4M) more time: every chunk gets fresh pages. A process setting, so the command line makes it,
    not the library; whoever sets glibc's own MALLOC_*_ or GLIBC_TUNABLES malloc variables keeps them."""
    import ctypes
    import os

    if any(name.startswith("MALLOC_") for name in os.environ) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_mmap_threshold = -3
    mallopt(m_mmap_threshold, 1 << 20)


_collection_paused = False


def collect_from_here() -> None:
    """Turn the garbage collector back on, past what start-up built (called as a command starts).

    Loading the program makes objects that live until exit (Typer's commands, the modules loaded
    so far); with the collector on, its full collections walked them again and again: 0.33 s of
    gen-2 collections in a 1,024-row ``translate --map`` against 0.13 s in a bare ``import torch``.
    So ``main`` starts with the collector off, and here whatever exists moves to its permanent
    generation (``gc.freeze``) before it comes back on. Only where ``main`` turned it off: a
    program that runs commands in its own process (tests, notebooks) keeps its collector as is."""
    global _collection_paused
    if _collection_paused:
        _collection_paused = False
        gc.freeze()
        gc.enable()


def main() -> None:
    """The ``relcli`` console script: Ctrl-C or SIGTERM while the program is still loading exits 130 quietly;
    one that comes while the interpreter shuts down is ignored (Python would restore the default action,
    which kills a finished step with -SIGTERM)."""
    import signal

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _interrupt)
    _return_freed_buffers()
    global _collection_paused
    if gc.isenabled():  # off until a command starts: see collect_from_here
        gc.disable()
        _collection_paused = True
    try:
        from relcli.cli.app import main as run

        run()
    except KeyboardInterrupt:  # outside a command (loading, parsing): nothing was written
        sys.exit(130)
    finally:
        if _collection_paused:  # no command started (usage error, --help, Ctrl-C while loading)
            _collection_paused = False
            gc.enable()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
