"""Which space a file's rows live in, recorded as ``relcli.space``, and the one check that steps do not mix spaces.

A space record is ``{"name": str, "fingerprint": str, "dim": int}``. ``embed`` derives it from the
encoder (``encoder_space``): the fingerprint is a SHA-256 over the backend, the model's bytes (or,
for a plugin, the model it names) and the pooling — what decides where a row lands — and not
over what leaves the space as it is (batch size, truncation length, query/passage prefixes,
normalisation, storage dtype). Every step that writes rows of a space passes its record on:
``anchors`` from its input, ``translate`` and ``invert`` from the target anchors (a saved map
records both ends), ``stitch fit`` into the head, ``merge`` from the shards. A file without a
record (a foreign file, or one written before relcli 0.2) is in an unknown space and never refused.

``check_same_space`` is the rule: two files whose rows must share a space (a corpus and its
anchors, a prediction and its reference, a head and its input) and whose records differ are a
``DataError`` naming both files and both spaces, unless the user says ``--force``.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from relcli.errors import DataError, FileFormatError

#: the metadata key (``relcli.space``) of embedding, anchors and head files
SPACE_KEY = "space"
#: bytes hashed at each end of every model file: enough to tell weights apart, cheap for large models
HASHED_BYTES = 1 << 20


def _file_digest(path: Path, digest) -> None:
    size = path.stat().st_size
    digest.update(str(size).encode())
    with open(path, "rb") as handle:
        digest.update(handle.read(HASHED_BYTES))
        if size > 2 * HASHED_BYTES:
            handle.seek(size - HASHED_BYTES)
            digest.update(handle.read(HASHED_BYTES))


def model_digest(path: str | os.PathLike) -> str:
    """SHA-256 over a model file, or over every file of a model folder (relative name, size, the first
    and last MiB): the same for two copies of a model wherever they lie, different for other weights."""
    path = Path(path)
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file() and not any(
        part.startswith(".") for part in p.relative_to(path).parts))
    for file in files:
        if file != path:  # a folder's layout is part of the model; a single file's name is not
            digest.update(str(file.relative_to(path)).encode())
        _file_digest(file, digest)
    return digest.hexdigest()


def encoder_space(spec: str, model: Any, dim: int) -> dict[str, Any]:
    """The space record of rows embedded by ``model`` (built from ``--encoder spec``), ``dim`` wide."""
    backend, _, argument = spec.partition(":")
    settings = dict(getattr(model, "settings", None) or {})
    path = getattr(model, "path", None)
    source = model_digest(path) if path is not None and Path(path).exists() else str(settings.get("model", argument))
    identity = repr((backend, source, settings.get("pooling"), int(dim)))
    return {"name": spec, "fingerprint": hashlib.sha256(identity.encode()).hexdigest()[:16], "dim": int(dim)}


def read_space(attrs: dict[str, Any], path=None, key: str = SPACE_KEY, field: str | None = None) -> dict[str, Any] | None:
    """The validated space record ``attrs[key]`` (named ``field`` in messages, default ``relcli.<key>``),
    or None when the file records none."""
    field = field or f"relcli.{key}"
    record = attrs.get(key)
    if record is None:
        return None
    if (not isinstance(record, dict) or not isinstance(record.get("name"), str)
            or not isinstance(record.get("fingerprint"), str) or not record["fingerprint"]
            or isinstance(record.get("dim"), bool) or not isinstance(record.get("dim"), int) or record["dim"] < 1):
        raise FileFormatError(f"{field} must be an object with a name, a fingerprint and a dim >= 1", path)
    return {"name": record["name"], "fingerprint": record["fingerprint"], "dim": record["dim"]}


def describe(space: dict[str, Any] | None) -> str:
    return "an unknown space" if space is None else f"{space['name']} ({space['dim']}-d, {space['fingerprint'][:8]})"


def check_same_space(first: tuple[Any, dict | None], second: tuple[Any, dict | None], force: bool = False,
                     hint: str = "") -> None:
    """(path, space) pairs that must share a space: differing records are an error naming both files and
    both spaces (then ``hint``), unless ``force``."""
    (path_a, space_a), (path_b, space_b) = first, second
    if force or space_a is None or space_b is None or space_a["fingerprint"] == space_b["fingerprint"]:
        return
    raise DataError(
        f"{Path(path_a).name} holds {describe(space_a)} but {Path(path_b).name} holds {describe(space_b)}: "
        f"rows of different spaces cannot be combined here{hint} (--force if they really are one space)",
        path_b,
    )
