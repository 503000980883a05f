"""``api.merge``: the shard files of one sharded step (``--shard I/N`` or ``--rows A:B``) → one file.

Each shard is a complete relcli file whose metadata ``relcli.shard`` = {index, count, rows: [A, B],
source_rows, source} says which rows of which input it holds. Before anything is written the
shards are checked: readable, of one space and kind (dims, dtype, kind and the metadata that
defines the space, such as a relative file's anchor ids), of one sharded run (same source, row
count and shard count), each holding the rows its record announces (less the rows it dropped),
and together tiling rows 0..source_rows exactly once. A missing, duplicated or overlapping shard is
an error that names it. Shards may come in any order: they are sorted by their row range.

Output:
- HDF5 (``.h5``/``.hdf5``) from HDF5 shards: the matrix is a *virtual dataset* that references the
  shards' matrices without copying them (paths stored relative to the merged file, so the folder
  can be moved as a whole); ids, labels and per-row arrays (``confidence``, ...) are copied into
  the merged file. Regions of a missing shard read as NaN, so any relcli command on such a file
  fails ("NaN/Inf in rows ...") instead of using zeros. ``copy=True`` writes a self-contained file.
- safetensors (or HDF5 from non-HDF5 shards): a streaming copy, shard by shard.

Both are written to a temp file beside the output and renamed into place when complete.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from relcli.api._context import DEFAULT_BATCH, check_batch_size, provenance, rows_per_chunk
from relcli.api._results import Progress, Result
from relcli.errors import DataError, FileFormatError, UsageError

#: metadata that differs from shard to shard by nature; everything else must be the same in all.
PER_SHARD_ATTRS = ("shard", "provenance", "dropped", "skipped_empty")
#: auxiliary arrays of the whole file (not one value per row): equal in every shard, kept once.
FILE_ARRAYS = ("anchor_ids", "space_mean", "space_std")


@dataclass
class Shard:
    """What a shard file holds, read once before the merge."""

    path: Path
    format: str
    key: str
    n_rows: int
    dim: int
    dtype: str
    kind: str
    attrs: dict[str, Any]
    record: dict[str, Any]
    ids: np.ndarray | None
    labels: np.ndarray | None
    arrays: dict[str, tuple[list[int], str]] = field(default_factory=dict)

    @property
    def rows(self) -> tuple[int, int]:
        return self.record["rows"][0], self.record["rows"][1]

    @property
    def label(self) -> str:
        index, count = self.record.get("index"), self.record.get("count")
        start, stop = self.rows
        which = f"shard {index}/{count}, " if index is not None and count is not None else ""
        return f"{self.path} ({which}rows {start}:{stop})"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _record(reader) -> dict[str, Any]:
    """The validated ``relcli.shard`` record of a shard file."""
    record = reader.attrs.get("shard")
    if record is None:
        raise DataError("is not a shard: it has no relcli.shard record (write shards with --shard I/N or --rows A:B)",
                        reader.path)
    if not isinstance(record, dict):
        raise FileFormatError(f"relcli.shard must be an object, got {record!r}", reader.path)
    rows, total = record.get("rows"), record.get("source_rows")
    if not _is_int(total) or total < 0:
        raise FileFormatError(f"relcli.shard.source_rows must be a non-negative integer, got {total!r}", reader.path)
    if not (isinstance(rows, list) and len(rows) == 2 and all(_is_int(r) for r in rows) and 0 <= rows[0] <= rows[1] <= total):
        raise FileFormatError(f"relcli.shard.rows must be [A, B] with 0 <= A <= B <= {total}, got {rows!r}", reader.path)
    index, count = record.get("index"), record.get("count")
    if (index is None) != (count is None) or index is not None and not (_is_int(index) and _is_int(count) and 0 <= index < count):
        raise FileFormatError(f"relcli.shard index/count must be integers with 0 <= index < count, got {index!r}/{count!r}",
                              reader.path)
    return record


def _inspect(path: Path) -> Shard:
    from relcli.io.embeddings import open_embeddings

    with open_embeddings(path) as reader:
        record = _record(reader)
        start, stop = record["rows"]
        dropped = reader.attrs.get("dropped", 0)
        dropped = dropped if _is_int(dropped) else 0
        # (embed's skipped_empty items are left out before the rows are sharded: they are not in A:B)
        if reader.n_rows + dropped != stop - start:
            extra = f" and {dropped} dropped" if dropped else ""
            raise DataError(f"holds {reader.n_rows} rows{extra}, but its relcli.shard record says rows {start}:{stop} "
                            f"({stop - start}): not a complete shard", path)
        arrays = {name: shape for name, shape in reader.array_shapes().items() if name not in (reader.key, "ids", "labels")}
        return Shard(path, reader.format, reader.key, reader.n_rows, reader.dim, reader.dtype, reader.kind,
                     dict(reader.attrs), record, reader.ids, reader.labels, arrays)


def _check_same(shards: list[Shard], with_rows: list[Shard]) -> None:
    """One space, one kind, one sharded run; the same ids, labels and arrays in every shard ``with_rows``
    (a shard of no rows never saw any)."""
    first = shards[0]
    for shard in shards[1:]:
        for what, mine, theirs in (("kind", shard.kind, first.kind), ("dims", shard.dim, first.dim),
                                   ("dtype", shard.dtype, first.dtype)):
            if mine != theirs:
                raise DataError(f"{what} is {mine}, but {theirs} in {first.path}: shards of one merge come from one step",
                                shard.path)
        for what in ("source", "source_rows", "count"):
            mine, theirs = shard.record.get(what), first.record.get(what)
            if what == "source" and isinstance(mine, str) and isinstance(theirs, str):
                mine, theirs = os.path.normpath(mine), os.path.normpath(theirs)
            if mine != theirs:
                raise DataError(f"relcli.shard.{what} is {mine!r}, but {theirs!r} in {first.path}: shards of one merge "
                                "come from one sharded run", shard.path)
        keys = (set(shard.attrs) | set(first.attrs)) - set(PER_SHARD_ATTRS)
        for key in sorted(keys):
            if shard.attrs.get(key) != first.attrs.get(key):
                raise DataError(f"relcli.{key} differs from {first.path}'s: shards of one merge are made by one command "
                                "with the same options (apply a saved map: translate --map)", shard.path)
    first = with_rows[0]
    for shard in with_rows[1:]:
        if set(shard.arrays) != set(first.arrays):
            raise DataError(f"holds arrays {sorted(shard.arrays)}, but {first.path} holds {sorted(first.arrays)}", shard.path)
        if (shard.ids is None) != (first.ids is None) or (shard.labels is None) != (first.labels is None):
            raise DataError(f"ids/labels present in one of this shard and {first.path} but not the other", shard.path)


def _order(shards: list[Shard]) -> list[Shard]:
    """Shards sorted by their rows; they must tile 0..source_rows: no gap, no overlap, no repeat."""
    first = shards[0]
    total, count, source = first.record["source_rows"], first.record.get("count"), first.record.get("source")
    seen: dict[int, Shard] = {}
    for shard in shards:
        index = shard.record.get("index")
        if index is not None and index in seen:
            raise DataError(f"is shard {index}/{count} again: {seen[index].path} is that shard too; give each shard once",
                            shard.path)
        if index is not None:
            seen[index] = shard
    ordered = sorted(shards, key=lambda s: (s.rows[0], s.rows[1]))
    where = f" of {source}" if source else ""
    done = 0
    previous = None
    for shard in ordered:
        start, stop = shard.rows
        if start > done:
            raise DataError(_missing(done, start, total, count, seen, where))
        if start < done and stop > start:
            if previous is not None and previous.rows == shard.rows:
                raise DataError(f"duplicates {previous.label}: the same rows twice; give each shard once", shard.path)
            raise DataError(f"rows {start}:{stop} overlap {previous.label}: shards must not overlap", shard.path)
        done = max(done, stop)
        previous = shard
    if done < total:
        raise DataError(_missing(done, total, total, count, seen, where))
    return ordered


def _missing(start: int, stop: int, total: int, count, seen: dict, where: str) -> str:
    """'shard 3/8 (rows 300:400 of x.h5) is missing' (or the rows, when the shards have no index)."""
    if count is not None:
        absent = [i for i in range(count) if i not in seen and i * total // count < stop and (i + 1) * total // count > start]
        if absent:
            names = ", ".join(f"shard {i}/{count} (rows {i * total // count}:{(i + 1) * total // count}{where})" for i in absent[:5])
            more = f" and {len(absent) - 5} more" if len(absent) > 5 else ""
            return f"missing {names}{more}: no shard file given covers rows {start}:{stop}"
    return f"missing shard: no shard file given covers rows {start}:{stop}{where} (of {total})"


def _gather(shards: list[Shard], name: str, strings: bool) -> list[np.ndarray]:
    from relcli.io.embeddings import open_embeddings

    out = []
    for shard in shards:
        with open_embeddings(shard.path) as reader:
            values = reader.strings(name) if strings else reader.array(name)
        if values is None:
            raise FileFormatError(f"lost its array {name!r} while merging", shard.path)
        out.append(values if strings else _numpy(values))
    return out


def _numpy(tensor) -> np.ndarray:
    import torch

    tensor = tensor.detach().cpu()
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def _arrays(shards: list[Shard]) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(numeric arrays, id-like arrays) of the merged file: per-row ones concatenated in row order,
    per-file ones (equal in every shard) once."""
    from relcli.io._reader import as_id_array

    numeric, id_like = {}, {}
    first = shards[0]
    for name, (_, dtype) in sorted(first.arrays.items()):
        per_row = name not in FILE_ARRAYS and all(s.arrays[name][0][:1] == [s.n_rows] for s in shards)
        strings = dtype == "string"
        values = _gather(shards, name, strings)
        if per_row:
            merged = (as_id_array([v for part in values for v in part.tolist()]) if strings and any(p.dtype == object for p in values)
                      else np.concatenate(values))
        else:
            for shard, part in zip(shards[1:], values[1:]):
                if part.shape != values[0].shape or not np.array_equal(part, values[0]):
                    raise DataError(f"array {name!r} differs from {first.path}'s: shards of one merge share it", shard.path)
            merged = values[0]
        (id_like if strings or name in ("anchor_ids", "source_ids") else numeric)[name] = merged
    return numeric, id_like


def _step(record):
    """The provenance of the step that made the shards (the first shard's, without its shard record)."""
    if not isinstance(record, dict):
        return None
    parameters = record.get("parameters")
    if isinstance(parameters, dict):
        record = {**record, "parameters": {k: v for k, v in parameters.items() if k != "shard"}}
    return {k: v for k, v in record.items() if k != "created_utc"}


def _concat_ids(parts: list[np.ndarray | None]) -> np.ndarray | None:
    from relcli.io._reader import as_id_array

    if parts[0] is None:
        return None
    if all(p.dtype == parts[0].dtype for p in parts):
        return np.concatenate(parts)
    return as_id_array([str(v) for p in parts for v in p.tolist()])


def merge(
    inputs,
    *,
    output,
    copy: bool = False,
    batch_size: int | None = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> Result:
    """Merge the shard files ``inputs`` (any order) into ``output``; see the module docstring.

    HDF5 output from HDF5 shards references the shards (a virtual dataset) unless ``copy``; any
    other output is a copy, written ``batch_size`` rows at a time (default: about 32 MiB).
    """
    from relcli.io.atomic import check_output, output_format
    from relcli.io._reader import check_unique

    output = check_output(output)
    check_batch_size(batch_size)
    paths = [Path(p) for p in ([inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs))]
    if not paths:
        raise UsageError("give the shard files to merge")
    seen: dict[str, Path] = {}
    for path in paths:
        real = os.path.realpath(path)
        if real in seen:
            raise UsageError(f"is given twice (also as {seen[real]})", path)
        seen[real] = path
        if real == os.path.realpath(output):
            raise UsageError("is one of the shards and the output (-o): write the merged file elsewhere", path)
    every = _order([_inspect(p) for p in paths])
    shards = [s for s in every if s.n_rows] or every[:1]  # the rows come from these (an empty shard adds none)
    _check_same(every, shards)
    first = shards[0]
    ids = _concat_ids([s.ids for s in shards])
    labels = _concat_ids([s.labels for s in shards])
    if ids is not None:
        try:
            check_unique(ids, output, " of the merged shards")
        except FileFormatError as exc:
            raise DataError(exc.message) from None
    numeric, id_like = _arrays(shards)
    total = sum(s.n_rows for s in shards)
    dropped = sum(s.attrs.get("dropped", 0) for s in every if _is_int(s.attrs.get("dropped", 0)))
    virtual = (not copy and output_format(output) == "hdf5" and total > 0 and all(s.format == "hdf5" for s in shards))
    notes = []
    if not copy and output_format(output) == "hdf5" and not virtual and total > 0:
        notes.append("the shards are not all HDF5: copied their rows (a virtual dataset references HDF5 shards only)")
    relative = [os.path.relpath(os.path.abspath(s.path), os.path.abspath(output.parent)) for s in every]
    attrs = {key: value for key, value in first.attrs.items() if key not in PER_SHARD_ATTRS}
    attrs["merged"] = {
        "virtual": virtual, "source": first.record.get("source"), "source_rows": first.record["source_rows"],
        "count": len(every),
        "shards": [{"path": rel, "rows": list(s.rows), "written": s.n_rows} for rel, s in zip(relative, every)],
    }
    if any("dropped" in s.attrs for s in every):
        attrs["dropped"] = dropped
    parameters = {"shards": relative, "copy": copy, "virtual": virtual}
    attrs["provenance"] = provenance("merge", {**parameters, "step": _step(first.attrs.get("provenance"))},
                                     [s.path for s in every])
    if virtual:
        _write_virtual(output, shards, [rel for rel, s in zip(relative, every) if s.n_rows], total, ids, labels,
                       numeric, id_like, attrs)
        if progress is not None:
            progress("merge", total, total)
    else:
        _write_copy(output, shards, total, ids, labels, numeric, id_like, attrs, batch_size, progress)
    if dropped:
        notes.append(f"the shards had dropped {dropped} invalid row(s) in all")
    return Result("merge", output, total, first.dim, parameters=parameters, notes=notes, files={"output": output},
                  details=[f"  {s.label}: {s.n_rows} rows" for s in every])


def _write_copy(output, shards, total, ids, labels, numeric, id_like, attrs, batch_size, progress) -> None:
    from relcli.io.embeddings import EmbeddingWriter, open_embeddings

    first = shards[0]
    dtype = first.dtype
    done = 0
    with EmbeddingWriter(output, total, first.dim, dtype, ids=ids, labels=labels, attrs=attrs, arrays=numeric,
                         id_arrays=id_like) as writer:
        for shard in shards:
            with open_embeddings(shard.path) as reader:
                if (reader.n_rows, reader.dim) != (shard.n_rows, shard.dim):
                    raise DataError("changed while merging", shard.path)
                for _, chunk in reader.iter_chunks(rows_per_chunk(batch_size, reader.dim)):
                    writer.write(chunk)
                    done += chunk.shape[0]
                    if progress is not None:
                        progress("merge", done, total)


def _write_virtual(output, shards, relative, total, ids, labels, numeric, id_like, attrs) -> None:
    """An HDF5 file whose ``embeddings`` is a virtual dataset over the shards' matrices (temp + rename)."""
    import h5py

    from relcli import interrupts
    from relcli.errors import OutputError
    from relcli.io import meta
    from relcli.io.atomic import OutputGroup, describe_os_error
    from relcli.io.hdf5 import _GuardedFile

    first = shards[0]
    dtype = np.dtype(first.dtype)
    layout = h5py.VirtualLayout(shape=(total, first.dim), dtype=dtype)
    offset = 0
    for shard, rel in zip(shards, relative):
        if shard.n_rows:
            layout[offset:offset + shard.n_rows] = h5py.VirtualSource(rel, shard.key, shape=(shard.n_rows, shard.dim), dtype=dtype)
        offset += shard.n_rows
    aux = {name: values for name, values in (("ids", ids), ("labels", labels)) if values is not None}
    aux.update(id_like)
    with OutputGroup() as group:
        temp = group.temp(output)
        guard = _GuardedFile(temp)
        handle = None
        try:
            with interrupts.critical():
                handle = h5py.File(guard, "w")
                handle.create_virtual_dataset("embeddings", layout, fillvalue=np.nan if dtype.kind == "f" else 0)
                for name, values in aux.items():
                    if values.dtype == object:
                        if any("\x00" in v for v in values.tolist()):
                            raise DataError(f"{name} contain a NUL character, which HDF5 strings cannot hold; write .safetensors",
                                            output)
                        handle.create_dataset(name, data=values, dtype=h5py.string_dtype())
                    else:
                        handle.create_dataset(name, data=values)
                for name, values in numeric.items():
                    handle.create_dataset(name, data=values)
                for key, value in {"format": meta.FORMAT_VERSION, **attrs}.items():
                    handle.attrs[meta.META_PREFIX + key] = meta.encode_hdf5(value)
        finally:
            with interrupts.critical():
                if handle is not None:
                    handle.close()
                guard.close()
        if guard.error is not None:
            raise OutputError(describe_os_error(guard.error), output)
        interrupts.check()
