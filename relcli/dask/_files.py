"""Files in and out of ``relcli.dask``: any embedding file as a lazy dask array, ``write`` (relcli
files in row order, or Zarr), and ``translate_file``/``project_file`` (the CLI steps on Dask)."""

from __future__ import annotations

import os
import threading
from collections import deque
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np

from relcli.dask._blocks import _blockwise, _dask_array, _device, _projector, _spec_of_anchors, _stamp, translate
from relcli.errors import DataError, RowsError, UsageError, describe_rows

_READERS = threading.local()


@dataclass
class Embeddings:
    """An embedding file as a lazy dask array of row blocks, with its ids, labels and metadata."""

    array: Any
    ids: np.ndarray | None
    labels: np.ndarray | None
    attrs: dict[str, Any]
    path: Path

    @property
    def kind(self) -> str:
        return str(self.attrs.get("kind", "embeddings"))


def _open(path, key: str | None = None):
    """A reader of any file relcli reads, Parquet datasets included."""
    from relcli.io.embeddings import open_embeddings
    from relcli.io.parquet import ParquetReader, is_parquet_dataset

    path = Path(path)
    if is_parquet_dataset(path):
        return ParquetReader(path, key)
    return open_embeddings(path, key=key)


class _Rows:
    """A lazy, picklable view of an embedding file's matrix for ``da.from_array``: each process (each
    thread) opens the file once and reads the rows a block asks for."""

    def __init__(self, path: str, key: str | None, shape: tuple[int, int], dtype: str, stamp: tuple):
        self.path, self.key, self.shape, self.stamp = path, key, shape, stamp
        self.file_dtype = dtype
        self.dtype = np.dtype("float32" if dtype == "bfloat16" else dtype)
        self.ndim = 2

    def _reader(self):
        readers = getattr(_READERS, "open", None)
        if readers is None:
            readers = _READERS.open = {}
        entry = readers.get((self.path, self.key))
        if entry is None or entry[0] != self.stamp:
            if _stamp(self.path) != tuple(self.stamp):
                raise DataError(f"{self.path}: changed while it was being read (or differs on this worker); run again")
            if entry is not None:
                entry[1].close()
            entry = readers[(self.path, self.key)] = (self.stamp, _open(self.path, self.key))
        return entry[1]

    def __getitem__(self, index):
        rows, columns = (index + (slice(None),))[:2] if isinstance(index, tuple) else (index, slice(None))
        start, stop, step = rows.indices(self.shape[0])
        block = self._reader()._read_slice(start, stop)
        if self.file_dtype == "bfloat16":
            block = block.float()
        return block.numpy()[::step, columns]


def from_embeddings(path, *, key: str | None = None, chunk_rows: int | None = None) -> Embeddings:
    """Any file relcli reads (HDF5, safetensors, .npy, Parquet file or folder) as a lazy dask array of
    ``chunk_rows``-row blocks (default: about 32 MiB each), with its ids, labels and metadata."""
    from dask.base import tokenize

    from relcli.api._context import rows_per_chunk

    da = _dask_array()
    path = Path(os.path.abspath(os.fspath(path)))
    with _open(path, key) as reader:
        shape, dtype = (reader.n_rows, reader.dim), reader.dtype
        ids, labels, attrs = reader.ids, reader.labels, dict(reader.attrs)
    if chunk_rows is not None and (isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1):
        raise UsageError(f"chunk_rows must be a positive integer, got {chunk_rows!r}")
    rows = chunk_rows or rows_per_chunk(None, shape[1])
    stamp = _stamp(path)
    lazy = _Rows(str(path), key, shape, dtype, stamp)
    array = da.from_array(lazy, chunks=(max(1, min(rows, shape[0] or 1)), shape[1]), asarray=False, fancy=False,
                          lock=False, meta=np.empty((0, shape[1]), dtype=lazy.dtype), name="relcli-rows-" + tokenize(stamp, key))
    return Embeddings(array, ids, labels, attrs, path)


def _client():
    """The default distributed client, or None (then Dask's local scheduler)."""
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        return get_client()
    except ValueError:
        return None


def _blocks_in_order(array, window: int | None):
    """The row blocks of ``array`` as NumPy, in order, at most ``window`` computing at a time."""
    import dask

    blocks = list(array.to_delayed().ravel())
    client = _client()
    if window is None:
        threads = sum(client.nthreads().values()) if client is not None else (os.cpu_count() or 1)
        window = max(2, 2 * threads)
    if client is None:
        for start in range(0, len(blocks), window):
            yield from dask.compute(*blocks[start:start + window])
        return
    pending = deque(client.compute(block) for block in islice(blocks, window))
    rest = iter(blocks[window:])
    while pending:
        result = pending.popleft().result()
        following = next(rest, None)
        if following is not None:
            pending.append(client.compute(following))
        yield result


def write(array, output, *, ids=None, labels=None, attrs: dict[str, Any] | None = None, arrays=None, id_arrays=None,
          window: int | None = None, progress=None) -> Path:
    """Compute ``array`` and write it as a relcli file (by ``output``'s extension; atomically, with
    ids, labels and metadata), or as a Zarr store (``.zarr``: arrays ``embeddings``, ``ids``,
    ``labels``, relcli metadata in the group's attributes).

    Relcli files are written by the client in row order while up to ``window`` blocks compute
    (default: twice the cluster's threads), so memory stays at a few blocks.
    """
    from relcli.io.embeddings import EmbeddingWriter

    da = _dask_array()
    if not isinstance(array, da.Array):
        array = da.asarray(array)
    if array.ndim != 2 or any(np.isnan(c) for c in array.shape):
        raise UsageError(f"write needs a 2-D array of known shape, got {array.shape}")
    output = Path(output)
    if output.suffix.lower() == ".zarr":
        return _write_zarr(array, output, ids, labels, attrs)
    array = array.rechunk({1: -1})
    n_rows, dim = (int(s) for s in array.shape)
    done = 0
    with EmbeddingWriter(output, n_rows, dim, array.dtype.name, ids=ids, labels=labels, attrs=attrs, arrays=arrays,
                         id_arrays=id_arrays) as writer:
        for block in _blocks_in_order(array, window):
            try:
                writer.write(block)
            except RowsError as error:
                rows = [done + p for p in error.positions]
                raise DataError(f"{error.what}: {error.problem} in {describe_rows(rows, 'rows')}", output) from None
            done += len(block)
            if progress is not None:
                progress("write", done, n_rows)
    return output


def _write_zarr(array, output: Path, ids, labels, attrs) -> Path:
    """A Zarr store written into a temp folder beside ``output`` and renamed into place when complete."""
    import shutil

    import zarr

    from relcli.io import meta
    from relcli.io.atomic import check_writable, temp_path

    check_writable(output)
    temp = temp_path(output)
    try:
        array.to_zarr(str(temp), component="embeddings", overwrite=True)
        group = zarr.open_group(str(temp), mode="a")
        for name, values in (("ids", ids), ("labels", labels)):
            if values is not None:
                values = np.asarray(values)
                if len(values) != array.shape[0]:
                    raise DataError(f"{len(values)} {name} for {array.shape[0]} rows", output)
                strings = values.dtype.kind in "OUS"
                if hasattr(group, "create_array"):  # Zarr 3: variable-length UTF-8 strings
                    group.create_array(name, shape=values.shape, dtype=str if strings else values.dtype)[:] = values
                else:  # Zarr 2: fixed-width unicode needs no codec
                    values = values.astype(str) if strings else values
                    group.create_dataset(name, data=values, shape=values.shape, dtype=values.dtype)
        group.attrs.update(meta.encode_safetensors({"format": meta.FORMAT_VERSION, "kind": "embeddings", **(attrs or {})}))
        if output.exists():  # a folder cannot be replaced in one rename: move the old one aside first
            old = temp_path(output)
            os.replace(output, old)
            os.replace(temp, output)
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                old.unlink()
        else:
            os.replace(temp, output)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    return output


def translate_file(src, *, map, output, reverse: bool = False, key: str | None = None, dtype: str | None = None,  # noqa: A002
                   chunk_rows: int | None = None, device: str | None = None, window: int | None = None, progress=None):
    """``relcli translate --src SRC --map MAP -o OUTPUT`` on the current Dask scheduler; returns a ``Result``."""
    from relcli.api._context import provenance
    from relcli.api._results import Result
    from relcli.api._translation import load_translation
    from relcli.io.atomic import check_output
    from relcli.io.kinds import expect_kind

    if Path(output).suffix.lower() != ".zarr":
        check_output(output)
    source = from_embeddings(src, key=key, chunk_rows=chunk_rows)
    with _open(source.path, key) as reader:
        expect_kind(reader, ("embeddings", "anchors"), "--src")
    info = load_translation(map, Path(src), reverse).info
    y = translate(source.array, map=map, reverse=reverse, dtype=dtype, device=device, source=src)
    attrs = {"kind": "embeddings", "translation": info,
             "provenance": provenance("translate", {**info, "key": key, "engine": "dask"}, [src, map])}
    write(y, output, ids=source.ids, labels=source.labels, attrs=attrs, window=window, progress=progress)
    return Result("translate", Path(output), int(y.shape[0]), int(y.shape[1]), parameters=info, files={"output": Path(output)})


def project_file(input, *, anchors, output, similarity=("cosine",), aggregate: str = "concat", center: bool = False,  # noqa: A002
                 key: str | None = None, dtype: str | None = None, chunk_rows: int | None = None, device: str | None = None,
                 window: int | None = None, progress=None):
    """``relcli project INPUT --anchors ANCHORS -o OUTPUT`` on the current Dask scheduler; returns a ``Result``."""
    from relcli.api._context import compute_dtype_of, provenance
    from relcli.api._results import Result
    from relcli.io.atomic import check_output
    from relcli.io.kinds import expect_kind, relative_layout

    if Path(output).suffix.lower() != ".zarr":
        check_output(output)
    source = from_embeddings(input, key=key, chunk_rows=chunk_rows)
    with _open(source.path, key) as reader:
        expect_kind(reader, ("embeddings", "anchors"), "project")
    spec = _spec_of_anchors(anchors, similarity, aggregate, center)
    in_dtype = source.array.dtype.name
    projector = _projector(tuple(spec["stamp"]), spec["similarities"], aggregate, center, _device("cpu"),
                           compute_dtype_of(in_dtype))
    r = _blockwise(source.array, spec, dtype, device, input)
    layout = relative_layout(projector.anchor_ids_, spec["similarities"], aggregate, center, anchors)
    parameters = {"similarities": list(spec["similarities"]), "aggregate": aggregate, "center": center}
    layout["attrs"]["provenance"] = provenance("project", {**parameters, "key": key, "engine": "dask"}, [input, anchors])
    write(r, output, ids=source.ids, labels=source.labels, attrs=layout["attrs"], id_arrays=layout["id_arrays"],
          window=window, progress=progress)
    return Result("project", Path(output), int(r.shape[0]), int(r.shape[1]), parameters=parameters, files={"output": Path(output)})
