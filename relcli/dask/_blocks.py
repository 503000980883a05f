"""The blockwise kernels of ``relcli.dask``: fitted maps and anchors loaded once per process (and
reloaded when their file changes), one block of rows through them, and lazy dask arrays of the
translated or projected rows."""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

from relcli.errors import DataError, RowsError, UsageError, describe_rows

_LOCK = threading.RLock()
_MODELS: dict[tuple, Any] = {}
_LOADS: dict[str, int] = {}


def _dask_array():
    try:
        import dask.array as da
    except ImportError:
        raise UsageError("relcli.dask needs Dask: pip install 'relcli[dask]'") from None
    return da


def _stamp(path) -> tuple[str, int, int]:
    """(absolute path, mtime_ns, size): a file's identity; a changed file is loaded anew."""
    from relcli.errors import FileFormatError

    path = os.path.abspath(os.fspath(path))
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise FileFormatError(f"cannot read: {exc.strerror or exc}", path) from None
    return path, stat.st_mtime_ns, stat.st_size


def loads() -> dict[str, int]:
    """How many times this process has loaded each map or anchors file (``client.run(loads)`` asks every worker)."""
    with _LOCK:
        return dict(_LOADS)


def _cached(key: tuple, build):
    with _LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = _MODELS[key] = build()
            _LOADS[key[1][0]] = _LOADS.get(key[1][0], 0) + 1
        return model


def _device(device):
    from relcli.api._context import resolve_device

    return resolve_device(device)


def _translator(stamp, reverse: bool, device, cdtype):
    from relcli.io.kinds import load_estimator

    def build():
        translator, _ = load_estimator(stamp[0], "translator", reverse=reverse)
        return translator.to(device, cdtype)

    return _cached(("map", stamp, reverse, str(device), str(cdtype)), build)


def _projector(stamp, similarities: tuple, aggregate: str, center: bool, device, cdtype):
    from relcli.api._context import blame, load_anchors
    from relcli.core.relative import RelativeProjector

    def build():
        projector = RelativeProjector(list(similarities), aggregate, center)
        projector._check_params()
        anchor_set = load_anchors(stamp[0], device, cdtype)
        with blame(stamp[0], anchor_set.keys):
            projector.fit(anchor_set.vectors)
        projector.anchor_ids_ = anchor_set.ids if anchor_set.ids is not None else list(range(len(anchor_set.keys)))
        return projector

    return _cached(("anchors", stamp, similarities, aggregate, center, str(device), str(cdtype)), build)


def _model(spec: dict, in_dtype: str, device=None):
    """(transform, needs_direction, output dims, input dims) of a spec, from this process's cache."""
    from relcli.api._context import compute_dtype_of

    torch_device = _device(device)
    cdtype = compute_dtype_of(in_dtype)
    if _stamp(spec["path"]) != tuple(spec["stamp"]):
        raise DataError(f"{spec['path']}: changed while it was being applied (or differs on this worker); run again")
    if spec["kind"] == "map":
        translator = _translator(tuple(spec["stamp"]), spec["reverse"], torch_device, cdtype)
        return translator.transform, translator.needs_direction, translator.target_dim_, translator.source_dim_
    projector = _projector(tuple(spec["stamp"]), spec["similarities"], spec["aggregate"], spec["center"], torch_device, cdtype)
    transform = lambda x: projector.transform(x, chunk_rows=None)  # noqa: E731
    return transform, projector.needs_direction, projector.output_dim, int(projector.anchors_.shape[1])


def _apply(block: np.ndarray, spec: dict, out_dtype: str, device=None, first_row: int = 0, source=None) -> np.ndarray:
    """One block of rows through the spec's model, as ``relcli translate``/``project`` compute a chunk."""
    import torch

    from relcli.api._context import compute_dtype_of
    from relcli.core._common import invalid_rows

    where = f"{source}: " if source else ""
    block = np.asarray(block)
    if block.ndim != 2:
        raise DataError(f"{where}blocks must be 2-D (rows, dims), got shape {list(block.shape)}")
    in_dtype = block.dtype.name if block.dtype.name in ("float16", "float32", "float64") else "float32"
    transform, need_direction, _, _ = _model(spec, in_dtype, device)
    torch_device = _device(device)
    x = torch.from_numpy(np.ascontiguousarray(block)).to(device=torch_device, dtype=compute_dtype_of(in_dtype))
    _, problems = invalid_rows(x, need_direction)
    if problems:
        problem, positions = problems[0]
        rows = (first_row + positions.cpu().numpy()).tolist()
        raise DataError(f"{where}{problem} in {describe_rows(rows, 'rows')} (Dask cannot drop rows: clean them first, "
                        "or use the CLI with --drop-invalid)")
    try:
        y = transform(x)
    except RowsError as error:
        rows = [first_row + p for p in error.positions]
        raise DataError(f"{where}{error.what}: {error.problem} in {describe_rows(rows, 'rows')}") from None
    y = y.to("cpu", getattr(torch, out_dtype))
    finite = torch.isfinite(y).all(dim=1)
    if not bool(finite.all()):
        rows = (first_row + (~finite).nonzero().flatten().numpy()).tolist()
        raise DataError(f"{where}the output has NaN/Inf (values beyond {out_dtype}'s range?) in {describe_rows(rows, 'rows')}")
    return y.numpy()


def _block_task(block, spec=None, out_dtype=None, device=None, source=None, block_info=None):
    first_row = block_info[0]["array-location"][0][0] if block_info and 0 in block_info else 0
    return _apply(block, spec, out_dtype, device, first_row, source)


def _spec_of_map(map, reverse: bool) -> dict:  # noqa: A002 - the flag is --map
    return {"kind": "map", "path": os.path.abspath(os.fspath(map)), "stamp": _stamp(map), "reverse": bool(reverse)}


def _spec_of_anchors(anchors, similarity, aggregate: str, center: bool) -> dict:
    from relcli.api.project import _similarities

    return {"kind": "anchors", "path": os.path.abspath(os.fspath(anchors)), "stamp": _stamp(anchors),
            "similarities": tuple(_similarities(similarity)), "aggregate": aggregate, "center": bool(center)}


def _out_dtype(requested: str | None, dtype) -> str:
    from relcli.api._context import output_dtype

    out = output_dtype(requested, np.dtype(dtype).name)
    if out == "bfloat16":
        raise UsageError("NumPy (and so Dask) has no bfloat16: use dtype='float32' or 'float16'")
    return out


def _blockwise(x, spec: dict, dtype: str | None, device, source):
    """``x`` (rows, d) → (rows, output dims), blockwise over row blocks."""
    da = _dask_array()
    if not isinstance(x, da.Array):
        x = da.asarray(x)
    if x.ndim != 2:
        raise UsageError(f"expected a 2-D array (rows, dims), got shape {list(x.shape)}")
    out = _out_dtype(dtype, x.dtype)
    in_dtype = x.dtype.name if x.dtype.name in ("float16", "float32", "float64") else "float32"
    _, _, out_dim, in_dim = _model(spec, in_dtype, "cpu")  # on the client: checks the file, gives the shapes
    if in_dim is not None and x.shape[1] != in_dim:
        what = "the map expects" if spec["kind"] == "map" else "the anchors have"
        raise DataError(f"dimension mismatch: the array has {x.shape[1]} dims, {what} {in_dim}", source or spec["path"])
    x = x.rechunk({1: -1})
    from dask.base import tokenize

    name = f"relcli-{spec['kind']}-" + tokenize(x.name, spec, out, str(device), source)
    return x.map_blocks(_block_task, spec=spec, out_dtype=out, device=device, source=None if source is None else str(source),
                        dtype=np.dtype(out), chunks=(x.chunks[0], (out_dim,)), meta=np.empty((0, 0), dtype=out), name=name)


def translate(x, *, map, reverse: bool = False, dtype: str | None = None, device: str | None = None, source=None):  # noqa: A002
    """``x`` (a dask array of rows; or anything ``da.asarray`` takes) through a map saved by
    ``relcli translate --save-map`` (``reverse``: its reverse): a lazy dask array of the translated rows.

    ``dtype``: the output dtype (default: the input's float dtype). ``device``: auto|cpu|cuda[:N] on
    each worker (default: env ``RELCLI_DEVICE``, else auto). ``source`` names the input in errors.
    """
    return _blockwise(x, _spec_of_map(map, reverse), dtype, device, source)


def project(x, *, anchors, similarity=("cosine",), aggregate: str = "concat", center: bool = False,
            dtype: str | None = None, device: str | None = None, source=None):
    """The relative representation of ``x``'s rows w.r.t. ``anchors`` (as ``relcli project``): a lazy dask array."""
    return _blockwise(x, _spec_of_anchors(anchors, similarity, aggregate, center), dtype, device, source)


def translate_block(block, map, *, reverse: bool = False, dtype: str | None = None, device: str | None = None,  # noqa: A002
                    first_row: int = 0, source=None) -> np.ndarray:
    """One NumPy block (rows, d) through a saved map, the map loaded once per process: for any engine."""
    out = _out_dtype(dtype, np.asarray(block).dtype)
    return _apply(block, _spec_of_map(map, reverse), out, device, first_row, source)


def project_block(block, anchors, *, similarity=("cosine",), aggregate: str = "concat", center: bool = False,
                  dtype: str | None = None, device: str | None = None, first_row: int = 0, source=None) -> np.ndarray:
    """One NumPy block (rows, d) as relative representations, the anchors loaded once per process."""
    out = _out_dtype(dtype, np.asarray(block).dtype)
    return _apply(block, _spec_of_anchors(anchors, similarity, aggregate, center), out, device, first_row, source)
