"""Glue the commands share: load anchors and stats, check rows by id, stream a map to a file.

This is the "load, call, write" part of the CLI; the maths stays in ``relcli.core``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from relcli.cli._runtime import progress
from relcli.core._common import bad_rows
from relcli.core.anchors import SpaceStats, SpaceStatsAccumulator
from relcli.errors import DataError, UsageError
from relcli.io.embeddings import FLOAT_DTYPES, EmbeddingFile, EmbeddingWriter, open_embeddings
from relcli.io.join import rows_for_keys
from relcli.io.provenance import make_provenance


def compute_dtype(file_dtype: str) -> torch.dtype:
    """float64 files are computed in float64; everything else in float32."""
    return torch.float64 if file_dtype == "float64" else torch.float32


def output_dtype(requested: str | None, file_dtype: str) -> str:
    """--dtype when given, else the input's float dtype (integer inputs give float32)."""
    if requested is not None:
        if requested not in FLOAT_DTYPES:
            raise UsageError(f"unknown --dtype {requested!r}; choose one of {', '.join(FLOAT_DTYPES)}")
        return requested
    return file_dtype if file_dtype in FLOAT_DTYPES else "float32"


def describe_rows(reader: EmbeddingFile, rows: np.ndarray | list[int], limit: int = 5) -> str:
    """'3 row(s) (ids 'a', 'b', 'c')' for an error message."""
    keys = reader.row_keys() if reader.ids is not None else None
    rows = list(rows)
    shown = ", ".join(repr(keys[r]) if keys else str(r) for r in rows[:limit])
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    return f"{len(rows)} row(s) ({'ids' if keys else 'rows'} {shown}{more})"


def check_chunk(
    reader: EmbeddingFile, chunk: torch.Tensor, start: int, allow_zero: bool = False,
    hint: str = "; use --drop-invalid to skip them",
) -> None:
    """NaN/Inf rows (and zero rows, whose direction is undefined) are reported by id."""
    nonfinite, zero = bad_rows(chunk)
    if len(nonfinite):
        rows = (nonfinite.cpu().numpy() + start).tolist()
        raise DataError(f"NaN/Inf in {describe_rows(reader, rows)}{hint}", reader.path)
    if len(zero) and not allow_zero:
        rows = (zero.cpu().numpy() + start).tolist()
        raise DataError(f"all-zero {describe_rows(reader, rows)} have no direction{hint}", reader.path)


def invalid_rows(reader: EmbeddingFile, batch_size: int, allow_zero: bool = False) -> np.ndarray:
    """Indices of rows with NaN/Inf (or all zeros), found in one streaming pass."""
    found = []
    for start, chunk in reader.iter_chunks(batch_size):
        nonfinite, zero = bad_rows(chunk.float() if chunk.dtype in (torch.float16, torch.bfloat16) else chunk)
        for part in (nonfinite,) if allow_zero else (nonfinite, zero):
            found.append(part.numpy() + start)
    return np.sort(np.concatenate(found)) if found else np.zeros(0, dtype=np.int64)


def load_rows(reader: EmbeddingFile, device: torch.device, rows=None, check: bool = True) -> torch.Tensor:
    """Rows (all when ``rows`` is None) in the compute dtype on ``device``, checked for NaN/zero."""
    data = reader.read_all() if rows is None else reader.read_rows(rows)
    data = data.to(device=device, dtype=compute_dtype(reader.dtype))
    if check:
        nonfinite, zero = bad_rows(data)
        bad = torch.cat([nonfinite, zero]).cpu().numpy()
        if len(bad):
            actual = bad if rows is None else np.asarray(rows)[bad]
            raise DataError(f"NaN/Inf or all-zero values in {describe_rows(reader, actual)}", reader.path)
    return data


def stream_stats(reader: EmbeddingFile, batch_size: int, skip: np.ndarray | None = None) -> SpaceStats:
    """Whole-space statistics in one streaming pass (memory flat in N), leaving out rows ``skip``."""
    accumulator = SpaceStatsAccumulator()
    keep = None
    if skip is not None and len(skip):
        keep = np.ones(reader.n_rows, dtype=bool)
        keep[skip] = False
    with progress(reader.n_rows, f"statistics {reader.path.name}") as advance:
        for start, chunk in reader.iter_chunks(batch_size):
            if keep is not None:
                chunk = chunk[torch.from_numpy(keep[start : start + len(chunk)])]
            check_chunk(reader, chunk.float(), start, allow_zero=True, hint="; use --drop-invalid to leave them out")
            accumulator.update(chunk)
            advance(len(chunk))
    return accumulator.result()


@dataclass
class AnchorSet:
    """Anchor vectors with their join keys and the statistics of their whole space."""

    path: Path
    vectors: torch.Tensor
    keys: list[str]
    ids: Any
    source_keys: list[str] | None
    stats: SpaceStats | None


def read_stats(reader: EmbeddingFile) -> SpaceStats | None:
    """The ``relcli.source_stats`` of an anchors file, or None for a file without them."""
    scalars = reader.attrs.get("source_stats")
    mean, std = reader.array("space_mean"), reader.array("space_std")
    if not isinstance(scalars, dict) or mean is None or std is None:
        return None
    return SpaceStats.from_parts(scalars, mean.float(), std.float())


def load_anchor_set(path: Path, device: torch.device, key: str | None = None, batch_size: int = 65536) -> AnchorSet:
    """All rows of an anchors file (or of any embedding file, whose stats are then computed)."""
    with open_embeddings(path, key=key) as reader:
        vectors = load_rows(reader, device)
        stats = read_stats(reader)
        if stats is None:
            stats = SpaceStatsAccumulator().update(vectors).result()
        source = reader.strings("source_ids")
        source_keys = None if source is None else [str(s) for s in (source.tolist() if isinstance(source, np.ndarray) else source)]
        return AnchorSet(path, vectors, reader.row_keys(), reader.ids, source_keys, stats)


def parallel_source_rows(target: AnchorSet, source_keys: list[str], source_path: Path) -> list[int]:
    """Rows of a source file parallel to ``target``'s anchors, matched by (source) id."""
    wanted = target.source_keys or target.keys
    return rows_for_keys(wanted, source_keys, source_path, what=f"anchor ids of {target.path.name}")


def align_anchor_sets(source: AnchorSet, target: AnchorSet) -> torch.Tensor:
    """Source anchor vectors in the target anchors' order (DESIGN §3: parallel row by row).

    Same ids in another order are reordered; files without ids are taken row by row.
    """
    if len(source.keys) != len(target.keys):
        raise DataError(
            f"anchor files are not parallel: {source.path.name} has {len(source.keys)} rows, "
            f"{target.path.name} has {len(target.keys)}",
            target.path,
        )
    wanted = target.source_keys or target.keys
    if source.ids is None or wanted == source.keys:
        return source.vectors
    rows = rows_for_keys(wanted, source.keys, source.path, what=f"anchor ids of {target.path.name}")
    return source.vectors[torch.as_tensor(rows, device=source.vectors.device)]


@contextmanager
def blame(path: Path):
    """Errors from the kernels name no file; inside this block they name ``path``."""
    try:
        yield
    except DataError as exc:
        if exc.path is None:
            raise DataError(exc.message, path) from None
        raise


def provenance(subcommand: str, parameters: dict[str, Any], inputs: list[Path | None]) -> dict[str, Any]:
    return make_provenance(subcommand, parameters, [p for p in inputs if p is not None])


def stream_map(
    reader: EmbeddingFile,
    output: Path,
    transform: Callable[[torch.Tensor], torch.Tensor],
    out_dim: int,
    *,
    device: torch.device,
    batch_size: int,
    dtype: str,
    attrs: dict[str, Any],
    description: str,
    drop_invalid: bool = False,
    allow_zero: bool = False,
    arrays: dict[str, Any] | None = None,
    id_arrays: dict[str, Any] | None = None,
) -> int:
    """Read ``reader`` in row chunks, apply ``transform``, write ``output`` atomically.

    Ids and labels travel with their rows. Invalid rows (NaN/Inf, zero) are an error naming
    them by id, or are left out with ``drop_invalid`` (one extra streaming pass to find them).
    Returns the number of rows dropped.
    """
    keep = None
    dropped = 0
    if drop_invalid:
        bad = invalid_rows(reader, batch_size, allow_zero)
        dropped = len(bad)
        keep = np.ones(reader.n_rows, dtype=bool)
        keep[bad] = False
    n_out = reader.n_rows - dropped
    ids, labels = reader.ids, reader.labels
    if keep is not None and dropped:
        ids = take_rows(ids, keep)
        labels = take_rows(labels, keep)
    cdtype = compute_dtype(reader.dtype)
    with EmbeddingWriter(
        output, n_out, out_dim, dtype, ids=ids, labels=labels, attrs=attrs, arrays=arrays, id_arrays=id_arrays
    ) as writer, progress(reader.n_rows, description) as advance:
        for start, chunk in reader.iter_chunks(batch_size):
            chunk = chunk.to(device=device, dtype=cdtype)
            if keep is not None:
                chunk = chunk[torch.from_numpy(keep[start : start + len(chunk)]).to(device)]
            else:
                check_chunk(reader, chunk, start, allow_zero)
            if len(chunk):
                writer.write(transform(chunk))
            advance(len(chunk))
    return dropped


def take_rows(values, rows):
    """Entries ``rows`` (indices, or a boolean mask) of an id/label array: a list or an ndarray."""
    if values is None:
        return None
    rows = np.asarray(rows)
    if rows.dtype == bool:
        rows = np.flatnonzero(rows)
    if isinstance(values, np.ndarray):
        return values[rows]
    return [values[r] for r in rows.tolist()]
