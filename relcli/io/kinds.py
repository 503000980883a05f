"""The layout of every kind of file relcli writes, in one place, and its validation on read.

Kinds (``relcli.kind``, DESIGN §3):
- ``embeddings``: a matrix with optional ids and labels (also any foreign file);
- ``anchors``: anchor rows plus ``relcli.source_stats`` {n_rows, mean_norm, std_norm} and
  arrays ``space_mean``/``space_std`` (d) of the whole space they were drawn from, the
  ``relcli.anchor_method``, and with ``--pairs`` the ids in the other space, ``source_ids``;
- ``relative``: relative rows plus ``anchor_ids`` (k), ``relcli.similarities``,
  ``relcli.aggregate``, ``relcli.center``;
- ``predictions``: class scores (n, C) as the matrix, predicted labels, ``relcli.classes``;
- ``translator`` / ``head``: a fitted estimator in safetensors: its tensors, ``relcli.estimator``
  (class name), ``relcli.params``, ``relcli.state`` (JSON-able learned state).

Readers check every field they use, so a lying file fails at the door with a message that names
the file and the field.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from relcli.errors import DataError, FileFormatError, RelcliError, UsageError
from relcli.io import meta
from relcli.io._reader import EmbeddingReader, as_id_array
from relcli.io.spaces import read_space

ESTIMATOR_KINDS = ("translator", "head")
_ROLE_KINDS = {"embeddings": ("embeddings", "anchors"), "anchors": ("anchors", "embeddings")}


_KIND_NAMES = {
    "embeddings": "an embeddings file", "anchors": "an anchors file (from `relcli anchors`)",
    "relative": "a relative file (from `relcli project`)", "predictions": "a predictions file (from `relcli stitch`)",
}


def expect_kind(reader: EmbeddingReader, allowed: tuple[str, ...], role: str) -> None:
    """A file of another kind than ``allowed`` where ``role`` expects one is a DataError naming both."""
    if reader.kind not in allowed:
        wanted = " or ".join(_KIND_NAMES[k] for k in allowed)
        raise DataError(f"is {_KIND_NAMES[reader.kind]}, but {role} needs {wanted}", reader.path)


# --------------------------------------------------------------------------- anchors


@dataclass
class AnchorSet:
    """Anchor rows (CPU tensor, file dtype), their ids, and the statistics of their whole space.

    ``keys`` are the rows' ids as strings (row numbers without ids); ``source_keys`` the ids in
    another space when the anchors were taken across vocabularies (``--pairs``): those are the
    keys that match a parallel file. ``join_keys`` is whichever applies. ``space``: the recorded
    space of the rows (``relcli.io.spaces``), None when unknown.
    """

    path: Path
    vectors: Any
    ids: np.ndarray | None
    keys: list[str]
    source_keys: list[str] | None
    stats: Any
    kind: str
    space: dict | None = None

    @property
    def join_keys(self) -> list[str]:
        return self.source_keys if self.source_keys is not None else self.keys


def anchors_layout(stats, method: dict[str, Any], source_ids=None) -> dict[str, Any]:
    """EmbeddingWriter keyword arguments (attrs, arrays, id_arrays) of an anchors file."""
    return {
        "attrs": {"kind": "anchors", "source_stats": stats.to_dict(), "anchor_method": method},
        "arrays": {name: tensor.float() for name, tensor in stats.tensors().items()},
        "id_arrays": {} if source_ids is None else {"source_ids": source_ids},
    }


def read_stats(reader: EmbeddingReader):
    """The validated whole-space statistics of an anchors file (``SpaceStats``)."""
    from relcli.core.stats import SpaceStats

    scalars = reader.attrs.get("source_stats")
    if not isinstance(scalars, dict):
        raise FileFormatError("is an anchors file without valid relcli.source_stats (an object)", reader.path)
    for field in ("n_rows", "mean_norm", "std_norm"):
        if field not in scalars:
            raise FileFormatError(f"relcli.source_stats lacks {field}", reader.path)
    n_rows = scalars["n_rows"]
    if isinstance(n_rows, bool) or not isinstance(n_rows, int) or n_rows < 1:
        raise FileFormatError(f"relcli.source_stats.n_rows must be a positive integer, got {n_rows!r}", reader.path)
    mean_norm = meta.finite_number(scalars["mean_norm"], "relcli.source_stats.mean_norm", reader.path, positive=True,
                                   float32=True)
    std_norm = meta.finite_number(scalars["std_norm"], "relcli.source_stats.std_norm", reader.path, float32=True)
    if std_norm < 0:
        raise FileFormatError(f"relcli.source_stats.std_norm must be >= 0, got {std_norm}", reader.path)
    tensors = {}
    for name in ("space_mean", "space_std"):
        tensor = reader.array(name)
        if tensor is None:
            raise FileFormatError(f"is an anchors file without the {name} array", reader.path)
        tensor = tensor.float()
        if tuple(tensor.shape) != (reader.dim,):
            raise FileFormatError(f"{name} has shape {list(tensor.shape)}, expected [{reader.dim}]", reader.path)
        if not bool(tensor.isfinite().all()) or name == "space_std" and bool((tensor < 0).any()):
            raise FileFormatError(f"{name} holds NaN/Inf or negative values", reader.path)
        tensors[name] = tensor
    return SpaceStats(n_rows, mean_norm, std_norm, tensors["space_mean"], tensors["space_std"])


def read_anchor_set(path: str | os.PathLike, key: str | None = None, batch_size: int = 65536) -> AnchorSet:
    """All rows of an anchors file, or of any embedding file (its statistics are then computed)."""
    from relcli.core.stats import SpaceStatsAccumulator
    from relcli.io.embeddings import open_embeddings

    path = Path(path)
    with open_embeddings(path, key=key) as reader:
        expect_kind(reader, _ROLE_KINDS["anchors"], "an anchors option")
        if reader.n_rows == 0:
            raise DataError("has no rows: no anchors to use", path)
        vectors = reader.read_all()
        if reader.kind == "anchors":
            stats = read_stats(reader)
        else:
            accumulator = SpaceStatsAccumulator()
            for start, chunk in reader.iter_chunks(batch_size):
                try:
                    accumulator.update(chunk)
                except RelcliError as exc:
                    raise DataError(_rows_message(exc, reader, start), path) from None
            stats = accumulator.result()
        source = reader.strings("source_ids")
        if source is not None and len(source) != reader.n_rows:
            raise FileFormatError(f"has {len(source)} source_ids for {reader.n_rows} anchors", path)
        source_keys = None if source is None else [str(s) for s in source.tolist()]
        return AnchorSet(path, vectors, reader.ids, reader.row_keys(), source_keys, stats, reader.kind,
                         read_space(reader.attrs, path))


def _rows_message(exc: RelcliError, reader: EmbeddingReader, offset: int) -> str:
    from relcli.errors import RowsError, describe_rows

    if isinstance(exc, RowsError):
        rows = [p + offset for p in exc.positions]
        return f"{exc.problem} in {describe_rows(reader.keys_of(rows), reader.key_noun)}"
    return exc.message


# --------------------------------------------------------------------------- relative


@dataclass
class RelativeLayout:
    """What a relative file says about how it was made."""

    anchor_keys: list[str]
    similarities: list[str]
    aggregate: str
    center: bool


def relative_layout(anchor_ids, similarities, aggregate: str, center: bool, anchors_file) -> dict[str, Any]:
    """EmbeddingWriter keyword arguments (attrs, id_arrays) of a relative file."""
    return {
        "attrs": {"kind": "relative", "similarities": list(similarities), "aggregate": aggregate, "center": center,
                  "anchors_file": str(anchors_file)},
        "id_arrays": {"anchor_ids": anchor_ids},
    }


def read_relative_layout(reader: EmbeddingReader) -> RelativeLayout:
    """The validated layout of a relative file."""
    from relcli.core.registry import AGGREGATIONS, SIMILARITIES

    expect_kind(reader, ("relative",), "`relcli invert`")
    similarities = reader.attrs.get("similarities", ["cosine"])
    if (not isinstance(similarities, list) or not similarities
            or any(not isinstance(s, str) or s not in SIMILARITIES for s in similarities)):
        raise FileFormatError(f"relcli.similarities must list known similarities, got {similarities!r}", reader.path)
    aggregate = reader.attrs.get("aggregate", "concat")
    if not isinstance(aggregate, str) or aggregate not in AGGREGATIONS:
        raise FileFormatError(f"relcli.aggregate must be one of {', '.join(AGGREGATIONS)}, got {aggregate!r}", reader.path)
    center = reader.attrs.get("center", False)
    if not isinstance(center, bool):
        raise FileFormatError(f"relcli.center must be true or false, got {center!r}", reader.path)
    anchor_ids = reader.strings("anchor_ids")
    if anchor_ids is None:
        raise FileFormatError("has no anchor_ids: it was not made by `relcli project`", reader.path)
    keys = [str(a) for a in anchor_ids.tolist()]
    if len(set(keys)) != len(keys):
        from relcli.errors import describe_rows

        seen: set[str] = set()
        repeated = [k for k in keys if k in seen or seen.add(k)]
        raise FileFormatError(f"anchor_ids repeat {describe_rows(sorted(set(repeated)))}: each anchor must be listed once",
                              reader.path)
    blocks = 1 if aggregate == "sum" else len(similarities)
    if reader.dim != len(keys) * blocks:
        raise FileFormatError(f"has {reader.dim} columns but {len(keys)} anchor ids x {blocks} block(s)", reader.path)
    return RelativeLayout(keys, similarities, aggregate, center)


# --------------------------------------------------------------------------- predictions


def predictions_layout(classes) -> dict[str, Any]:
    """EmbeddingWriter keyword arguments (attrs) of a predictions file; classes in score-column order."""
    return {"attrs": {"kind": "predictions", "classes": [c if isinstance(c, str) else int(c) for c in classes]}}


# --------------------------------------------------------------------------- fitted estimators


REVERSE = "reverse."


def save_estimator(
    path: str | os.PathLike, estimator, kind: str, attrs: dict[str, Any] | None = None, group=None, reverse=None
) -> Path:
    """Write a fitted translator or head (tensors + params + state) as a safetensors file, atomically.

    ``reverse``: a translator fitted the other way on the same anchors, stored beside it (tensors
    prefixed ``reverse.``, metadata ``relcli.reverse`` = {estimator, params, state}).
    """
    from relcli.io.atomic import OutputGroup
    from relcli.io.safetensors import write_tensors

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise UsageError("fitted maps and heads are saved as .safetensors", path)
    tensors, extras = estimator.fitted_state()
    layout = {
        "format": meta.FORMAT_VERSION, "kind": kind, "estimator": type(estimator).__name__,
        "params": estimator.get_params(), "state": extras, **(attrs or {}),
    }
    if reverse is not None:
        reverse_tensors, reverse_extras = reverse.fitted_state()
        tensors = {**tensors, **{REVERSE + name: value for name, value in reverse_tensors.items()}}
        layout["reverse"] = {"estimator": type(reverse).__name__, "params": reverse.get_params(), "state": reverse_extras}
    own = group is None
    group = group or OutputGroup()
    try:
        write_tensors(group.temp(path), tensors, layout, path)
    except BaseException as error:
        if own:
            group.__exit__(type(error), error, error.__traceback__)
        raise
    if own:
        group.__exit__(None, None, None)
    return path


def read_estimator_meta(path: Path) -> tuple[dict[str, Any], Any]:
    """(relcli.* metadata, a reader of the tensors) of an estimator file, kind checked."""
    from relcli.io.embeddings import sniff_format
    from relcli.io.safetensors import read_tensors

    path = Path(path)
    if sniff_format(path) != "safetensors":
        raise FileFormatError("is not a relcli map/head file (expected .safetensors)", path)
    tensors, raw = read_tensors(path)
    attrs = meta.decode(raw, all_json=True, path=path)
    return attrs, tensors


def load_estimator(path: str | os.PathLike, kind: str, reverse: bool = False):
    """Rebuild a saved translator or head by its recorded kind and class; (estimator, metadata).

    ``reverse``: the map stored beside a translator for the other direction (``save_estimator``).
    """
    from relcli.core._estimator import estimator_class
    from relcli.core.heads import Head
    from relcli.core._translator import Translator

    path = Path(path)
    attrs, tensors = read_estimator_meta(path)
    if attrs.get("kind") != kind:
        what = {"translator": "a fitted map (translate --save-map)", "head": "a head (stitch fit)"}[kind]
        raise FileFormatError(f"is a {attrs.get('kind', 'embeddings')!r} file, not {what}", path)
    record = attrs
    if reverse:
        record = attrs.get("reverse")
        if not isinstance(record, dict):
            raise FileFormatError("holds no reverse map (saved before relcli 0.2, or not by translate --save-map)", path)
    own = {name: t for name, t in tensors.items() if name.startswith(REVERSE) == reverse}
    own = {name[len(REVERSE):] if reverse else name: t for name, t in own.items()}
    try:
        cls = estimator_class(record.get("estimator"))
        expected = Translator if kind == "translator" else Head
        if not issubclass(cls, expected):
            raise FileFormatError(f"relcli.estimator {cls.__name__} is not a {kind}")
        for field in ("params", "state"):
            if not isinstance(record.get(field, {}), dict):
                raise FileFormatError(f"relcli.{field} must be an object")
        estimator = cls.from_fitted_state(record.get("params", {}), own, record.get("state", {}))
    except FileFormatError as exc:
        raise FileFormatError(exc.message, path) from None
    return estimator, attrs


def peek_kind(path: str | os.PathLike) -> str:
    """A file's ``relcli.kind`` (``embeddings`` for foreign files) without opening its matrix."""
    from relcli.io.embeddings import sniff_format
    from relcli.io.safetensors import read_header

    path = Path(path)
    if sniff_format(path) != "safetensors":
        return "embeddings"
    _, raw, _ = read_header(path)
    return str(meta.decode(raw, all_json=True, path=path).get("kind", "embeddings"))


def keys_of_ids(values) -> list[str]:
    """Join keys (strings) of an id array."""
    return [str(v) for v in as_id_array(values).tolist()]
