"""Overlapping I/O with compute: read the next chunk and write the previous one while this one computes.

Two small tools for the row loop: ``prefetch`` runs an iterator (the reader) one item ahead in a
thread, ``Background`` runs writes in order in another. torch releases the GIL while it
multiplies, so reading, computing and writing proceed together; memory stays at a few chunks.
Errors in either thread surface in the caller's thread; a failure or Ctrl-C in the caller stops
both threads before the writer is closed.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator

_DONE = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterable, depth: int = 1) -> Iterator:
    """Yield the items of ``items``, produced ``depth`` ahead by a worker thread."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_DONE)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            put(_Failure(error))

    worker = threading.Thread(target=work, name="relcli-read", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        worker.join()


class Background:
    """Calls run in order in one worker thread; ``submit`` waits while ``depth`` calls are queued.

    >>> with Background() as background:
    ...     background.submit(writer.append, prepared)

    Leaving the block waits for every call; the first error of a call is raised then (or at the
    next ``submit``). Leaving it by an error of the caller drops the calls not yet started and
    waits for the running one, so nothing is left writing to a file about to be closed.
    """

    def __init__(self, depth: int = 1):
        self._tasks: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._cancel = threading.Event()
        self._worker = threading.Thread(target=self._work, name="relcli-write", daemon=True)

    def _work(self) -> None:
        while True:
            task = self._tasks.get()
            if task is _DONE:
                return
            if self._error is None and not self._cancel.is_set():
                try:
                    task[0](*task[1])
                except BaseException as error:  # noqa: BLE001 - handed to the caller
                    self._error = error

    def _raise(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, function: Callable, *args) -> None:
        self._raise()
        self._tasks.put((function, args))

    def __enter__(self) -> "Background":
        self._worker.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is not None:
            self._cancel.set()
            while True:  # drop what has not started
                try:
                    self._tasks.get_nowait()
                except queue.Empty:
                    break
        self._tasks.put(_DONE)
        self._worker.join()
        if exc_type is None:
            self._raise()
        return False
