"""What the API functions share: devices, dtypes, provenance, anchors, and errors that name files."""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from relcli.errors import DataError, RowsError, UsageError, describe_rows

DEFAULT_BATCH = None  # rows per chunk: None = as many as fit in CHUNK_BYTES
CHUNK_BYTES = 32 << 20


def resolve_device(spec: str | None = None):
    """``auto`` (or None: env ``RELCLI_DEVICE``, else auto) = CUDA when available, else CPU."""
    import torch

    spec = (spec or os.environ.get("RELCLI_DEVICE") or "auto").strip().lower()
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


def compute_dtype_of(file_dtype: str):
    """The torch dtype rows of a file are computed in (see ``relcli.core._common.compute_dtype``)."""
    import torch

    from relcli.core._common import compute_dtype

    return compute_dtype(getattr(torch, file_dtype, torch.float32))


def output_dtype(requested: str | None, file_dtype: str) -> str:
    """``dtype`` when given, else the input's float dtype (integer inputs give float32)."""
    from relcli.io.embeddings import FLOAT_DTYPES

    if requested is not None:
        if requested not in FLOAT_DTYPES:
            raise UsageError(f"unknown --dtype {requested!r}; choose one of {', '.join(FLOAT_DTYPES)}")
        return requested
    return file_dtype if file_dtype in FLOAT_DTYPES else "float32"


def check_batch_size(batch_size: int | None) -> int | None:
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise UsageError(f"--batch-size must be a positive integer, got {batch_size!r}")
    return batch_size


def rows_per_chunk(batch_size: int | None, width: int) -> int:
    """``batch_size``, or (None) the rows of float32 that fill CHUNK_BYTES at ``width`` columns
    (between 1,024 and 65,536): big enough for an efficient GEMM, small enough that the few chunks
    in flight (one being read, one computed, one written) keep memory flat and low."""
    if batch_size is not None:
        return batch_size
    return max(1024, min(65536, CHUNK_BYTES // (4 * max(width, 1))))


def check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise UsageError(f"--seed must be an integer in [0, 2^63), got {seed!r}")
    return seed


def check_number(value, option: str, positive: bool = False) -> float | None:
    """An option's number: None, or a finite int/float (and > 0 when ``positive``); else a UsageError."""
    import math

    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise UsageError(f"{option} must be a finite number, got {value!r}")
    if positive and not value > 0:
        raise UsageError(f"{option} must be > 0, got {value!r}")
    return float(value)


def _ints(text: str, sep: str, option: str, example: str) -> list[int | None]:
    parts = text.split(sep)
    if len(parts) != 2:
        raise UsageError(f"{option} {text!r}: expected {example}")
    try:
        return [int(p) if p.strip() else None for p in parts]
    except ValueError:
        raise UsageError(f"{option} {text!r}: expected {example}") from None


def row_range(n_rows: int, shard=None, rows=None) -> tuple[int, int, dict[str, Any] | None]:
    """(start, stop, record) of the rows a step works on: all, ``rows`` "A:B" (Python slice
    bounds, negative from the end), or ``shard`` "I/N": the I-th (from 0) of N contiguous, balanced
    ranges, rows [⌊I·n/N⌋, ⌊(I+1)·n/N⌋). The record goes into the output's metadata (``relcli.shard``)
    so ``relcli merge`` can check that shards tile the input."""
    if shard is not None and rows is not None:
        raise UsageError("--shard and --rows exclude each other")
    if shard is None and rows is None:
        return 0, n_rows, None
    if shard is not None:
        index, count = _ints(shard, "/", "--shard", "I/N, e.g. 0/8") if isinstance(shard, str) else list(shard)
        if index is None or count is None or not 0 <= index < count:
            raise UsageError(f"--shard {shard!r}: expected I/N with 0 <= I < N, e.g. 0/8")
        start, stop = index * n_rows // count, (index + 1) * n_rows // count
        return start, stop, {"index": index, "count": count, "rows": [start, stop], "source_rows": n_rows}
    first, last = _ints(rows, ":", "--rows", "A:B, e.g. 0:1000000") if isinstance(rows, str) else list(rows)
    start, stop, _ = slice(first, last).indices(n_rows)
    if stop < start:
        raise UsageError(f"--rows {rows!r}: the range is empty or reversed")
    return start, stop, {"rows": [start, stop], "source_rows": n_rows}


def provenance(subcommand: str, parameters: dict[str, Any], inputs: list) -> dict[str, Any]:
    from relcli.io.provenance import make_provenance

    return make_provenance(subcommand, parameters, [p for p in inputs if p is not None])


def as_path(value) -> Path | None:
    return None if value is None else Path(value)


@contextmanager
def blame(path, keys: list | None = None, noun: str = "ids"):
    """Errors from the kernels name no file: inside this block they name ``path`` (and rows by ``keys``)."""
    try:
        yield
    except RowsError as exc:
        shown = [keys[p] for p in exc.positions] if keys is not None else exc.positions
        raise DataError(f"{exc.what}: {exc.problem} in {describe_rows(shown, noun if keys is not None else 'rows')}", path) from None
    except DataError as exc:
        if exc.path is None:
            raise DataError(exc.message, path) from None
        raise


def load_anchors(path, device, dtype=None, key: str | None = None):
    """An ``AnchorSet`` with its vectors on ``device`` (in ``dtype``, default the compute dtype)."""
    from relcli.io.kinds import read_anchor_set

    anchors = read_anchor_set(Path(path), key=key)
    dtype = dtype or compute_dtype_of(str(anchors.vectors.dtype).replace("torch.", ""))
    anchors.vectors = anchors.vectors.to(device=device, dtype=dtype)
    return anchors


def rows_by_keys(wanted: list[str], available: list[str], path, what: str) -> np.ndarray:
    """Row of every wanted key among ``available`` (int64); missing keys are an error that counts them."""
    from relcli.io.join import rows_for_keys

    return rows_for_keys(wanted, available, path, what=what)


def parallel(source, target):
    """Source anchor vectors in the target anchors' order (parallel: matched by id).

    Target anchors may be a subset of the source anchors (``anchors --like --drop-invalid``
    leaves out invalid rows); files without ids are taken row by row and must match in count.
    """
    wanted = target.join_keys
    if source.ids is None or target.ids is None and target.source_keys is None:
        if len(source.keys) != len(target.keys):
            raise DataError(
                f"anchor files are not parallel: {source.path.name} has {len(source.keys)} rows, "
                f"{target.path.name} has {len(target.keys)} (and one of them has no ids to match them by)",
                target.path,
            )
        return source.vectors
    if wanted == source.keys:
        return source.vectors
    import torch

    rows = rows_by_keys(wanted, source.keys, source.path, f"anchor ids of {target.path.name}")
    return source.vectors[torch.as_tensor(rows, device=source.vectors.device)]


def take(values: np.ndarray | None, rows) -> np.ndarray | None:
    return None if values is None else values[np.asarray(rows, dtype=np.int64)]


def select_by_ids(keys: list[str], ids, exclude_ids, path) -> np.ndarray | None:
    """Positions (int64, in ``keys``' order) of ``keys`` kept by ``--ids`` (only these) and
    ``--exclude-ids`` (not these); None when neither is given. Either is a .txt list, an embedding
    file's ids, or ``-`` (standard input); ids a list names that ``keys`` lacks are ignored. Joined by
    hash (``find_rows``): no set of millions of ids."""
    from relcli.io.join import find_rows, read_id_list

    if ids is None and exclude_ids is None:
        return None
    keep = find_rows(keys, read_id_list(ids))[1] if ids is not None else np.ones(len(keys), dtype=bool)
    if exclude_ids is not None:
        keep &= ~find_rows(keys, read_id_list(exclude_ids))[1]  # every row of a repeated id (anchors --pairs)
    selected = np.flatnonzero(keep)
    if not len(selected):
        raise DataError("no rows left after --ids/--exclude-ids", path)
    return selected
