"""The one row loop: every row-wise step reads, checks, computes and writes rows through here.

Chunks carry the absolute row numbers of their rows in the input, so every message names the
input file and the right ids. The invalid-row policy lives here and nowhere else:

- a row of the input that cannot be used (NaN/Inf; where direction matters also all zeros or a
  norm that overflows) is an error naming the file and the ids, or with ``drop_invalid`` is left
  out and counted;
- the same holds for a row the computation cannot handle (``RowsError`` from a kernel: a row
  equal to the anchor mean after centring, an IRP reconstruction of zero) and for a row whose
  output is NaN/Inf (the writer refuses to write it).

Ids and labels travel with their rows into the output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from relcli.api._pipeline import Background, prefetch
from relcli.errors import DataError, RowsError, describe_rows

DROP_HINT = "; use --drop-invalid to skip them"


class RowLoop:
    """Bookkeeping of one input's rows: how to name them, which were dropped, progress, and the
    ``span`` (start, stop) of rows a shard works on (all by default)."""

    def __init__(
        self,
        path: Path,
        n_rows: int,
        ids: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        *,
        drop_invalid: bool = False,
        progress: Callable[[str, int, int], None] | None = None,
        description: str = "",
        hint: str = DROP_HINT,
        span: tuple[int, int] | None = None,
        exclude: np.ndarray | None = None,
    ):
        self.path, self.n_rows, self.ids, self.labels = Path(path), n_rows, ids, labels
        self.exclude = exclude  # (n_rows,) bool: rows left out before anything else (counted by the caller)
        self.drop_invalid, self.hint = drop_invalid, hint
        self.start, self.stop = span if span is not None else (0, n_rows)
        self.dropped: list[int] = []
        self.written = 0
        self._progress, self._description, self._done = progress, description, 0

    @classmethod
    def over(cls, reader, **kwargs) -> "RowLoop":
        """A loop over the rows of an embedding-file reader."""
        return cls(reader.path, reader.n_rows, reader.ids, reader.labels, **kwargs)

    @classmethod
    def sharded(cls, reader, shard=None, rows=None, **kwargs) -> tuple["RowLoop", dict | None]:
        """A loop over the rows ``shard`` ("I/N") or ``rows`` ("A:B") select (``row_range``), and the
        ``relcli.shard`` record its output carries (None for all rows)."""
        from relcli.api._context import row_range

        start, stop, record = row_range(reader.n_rows, shard, rows)
        if record is not None:
            record["source"] = str(reader.path)
        return cls(reader.path, reader.n_rows, reader.ids, reader.labels, span=(start, stop), **kwargs), record

    def keys(self, rows) -> list:
        rows = np.asarray(rows, dtype=np.int64)
        return rows.tolist() if self.ids is None else self.ids[rows].tolist()

    @property
    def dropped_ids(self) -> list:
        return self.keys(sorted(self.dropped))

    def reject(self, rows: np.ndarray, problem: str) -> None:
        """Rows that cannot be used: dropped (and counted) under ``drop_invalid``, else an error
        (ending in ``hint``, which says how to skip them where the command can)."""
        if not len(rows):
            return
        if not self.drop_invalid:
            noun = "rows" if self.ids is None else "ids"
            raise DataError(f"{problem} in {describe_rows(self.keys(rows), noun)}{self.hint}", self.path)
        self.dropped.extend(int(r) for r in rows)

    def advance(self, n: int) -> None:
        self._done += n
        if self._progress is not None:
            self._progress(self._description, self._done, self.stop - self.start)

    def read(self, reader, *, device, dtype, batch_size: int | None, need_direction: bool,
             width: int = 0) -> Iterator[tuple[np.ndarray, object]]:
        """(rows, chunk on ``device`` in ``dtype``) over ``reader``, bad input rows rejected.

        Chunks are ``batch_size`` rows, or (None) sized by ``rows_per_chunk`` for the wider of
        the input and ``width`` (the output's columns). The next chunk is read in a thread while
        this one is used (``prefetch``); for CUDA it is read into pinned memory and copied
        asynchronously.
        """
        import torch

        from relcli import interrupts
        from relcli.api._context import rows_per_chunk
        from relcli.core._common import invalid_rows

        pin = getattr(device, "type", str(device)) == "cuda"
        rows_each = rows_per_chunk(batch_size, max(reader.dim, width))
        chunks = reader.iter_chunks(rows_each, self.start, self.stop)
        blocks = ((start, block.pin_memory() if pin else block) for start, block in chunks)
        for start, block in prefetch(blocks):
            interrupts.check()  # a signal recorded while a library ran: stop between chunks
            rows = np.arange(start, start + block.shape[0], dtype=np.int64)
            if self.exclude is not None and self.exclude[rows].any():
                wanted = ~self.exclude[rows]
                rows, block = rows[wanted], block[torch.from_numpy(wanted)]
            data = block.to(device=device, dtype=dtype, non_blocking=pin)
            mask, problems = invalid_rows(data, need_direction)
            for problem, positions in problems:
                self.reject(rows[positions.cpu().numpy()], problem)
            if problems:
                keep = ~mask
                rows, data = rows[keep.cpu().numpy()], data[keep]
            yield rows, data

    def run(
        self,
        chunks: Iterable[tuple[np.ndarray, object]],
        transform: Callable,
        writer=None,
        labels_of: Callable | None = None,
        on_output: Callable | None = None,
        columns_of: Callable | None = None,
    ) -> int:
        """Transform every chunk and write it (or hand it to ``on_output``); returns rows written.

        ``labels_of(output)`` gives the labels to write (predictions); else the input's labels
        travel with the rows. ``columns_of(chunk, output)`` gives per-row values to write beside
        them ({name: values}). A ``RowsError`` from the transform or the writer rejects those rows
        (see ``reject``) and the rest of the chunk is done again without them. Writing happens in
        a background thread while the next chunk computes.
        """
        with Background() as background:
            for rows, data in chunks:
                count = len(rows)
                while len(rows):
                    try:
                        output = transform(data)
                        if writer is not None:
                            labels = labels_of(output) if labels_of else None if self.labels is None else self.labels[rows]
                            columns = columns_of(data, output) if columns_of else None
                            ids = None if self.ids is None else self.ids[rows]
                            background.submit(writer.append, writer.prepare(output, ids, labels, columns))
                        if on_output is not None:
                            on_output(rows, output)
                        self.written += len(rows)
                        break
                    except RowsError as error:
                        bad = np.asarray(error.positions, dtype=np.int64)
                        where = " of the output" if error.what == "output" else ""
                        self.reject(rows[bad], f"{error.problem}{where}")
                        keep = np.ones(len(rows), dtype=bool)
                        keep[bad] = False
                        rows, data = rows[keep], _take(data, keep)
                self.advance(count)
        return self.written


def _take(data, keep: np.ndarray):
    """The kept rows of a chunk: a tensor (on any device) or a list of items."""
    if isinstance(data, list):
        return [item for item, k in zip(data, keep.tolist()) if k]
    import torch

    return data[torch.from_numpy(keep).to(data.device)]


def usable_rows(reader, device, need_direction: bool, batch_size: int | None) -> np.ndarray:
    """(n_rows,) bool: the rows of a file that this policy lets a step use, in one read of it (for a
    step that must know them before its own pass, as ``evaluate --drop-invalid`` does)."""
    from relcli.api._context import compute_dtype_of

    loop = RowLoop.over(reader, drop_invalid=True)
    usable = np.zeros(reader.n_rows, dtype=bool)
    for rows, _ in loop.read(reader, device=device, dtype=compute_dtype_of(reader.dtype), batch_size=batch_size,
                             need_direction=need_direction):
        usable[rows] = True
    return usable


def left_out(reader, usable: np.ndarray, used: np.ndarray, need_direction: bool) -> list[str]:
    """The warning naming the ``used`` rows of a file that ``usable`` leaves out (none: [])."""
    bad = np.unique(used[~usable[used]])
    if not len(bad):
        return []
    why = "NaN/Inf" + (" or no direction (all zeros)" if need_direction else "")
    return [f"left out {describe_rows(reader.keys_of(bad), 'rows' if reader.ids is None else 'ids')} of "
            f"{reader.path.name}: {why}"]

