"""Metadata of relcli files: the ``relcli.*`` keys, how their values are encoded, and file kinds.

safetensors header metadata is a map of strings, so every value is stored as JSON. HDF5
attributes hold strings, numbers and booleans natively (plain h5py then reads ``relcli.kind`` as
``anchors``) and objects, lists and None as JSON. A string that itself looks like JSON is stored
JSON-quoted, so decoding (parse exactly the attributes that look like JSON) is unambiguous.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from relcli.errors import FileFormatError

FORMAT_VERSION = 1
META_PREFIX = "relcli."
KINDS = ("embeddings", "anchors", "relative", "predictions", "head", "translator")
#: kinds that are embedding files (a matrix of rows); the other two are fitted estimators.
EMBEDDING_KINDS = KINDS[:4]
#: deeper JSON than this is refused before parsing (Python's parser would hit its recursion limit).
MAX_JSON_DEPTH = 64


def _depth(text: str) -> int:
    """Deepest nesting of [ and { in a JSON text (strings skipped)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_json(text: str, what: str, path=None) -> Any:
    """``json.loads`` that fails cleanly: bad JSON or nesting deeper than MAX_JSON_DEPTH."""
    if ("[" in text or "{" in text) and _depth(text) > MAX_JSON_DEPTH:
        raise FileFormatError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep", path)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError, UnicodeDecodeError) as exc:
        raise FileFormatError(f"{what} is not valid JSON ({str(exc).splitlines()[0][:80]})", path) from None


def _looks_like_json(text: str) -> bool:
    return text[:1] in ("{", "[", '"') or text == "null"


def encode_hdf5(value: Any):
    """A metadata value as an HDF5 attribute: plain strings and numbers natively, the rest JSON."""
    if isinstance(value, str):
        return json.dumps(value) if _looks_like_json(value) else value
    if isinstance(value, (bool, int, float)):
        return value
    return json.dumps(value)


def encode_safetensors(attrs: dict[str, Any]) -> dict[str, str]:
    """``relcli.*`` header metadata: every value as JSON."""
    return {META_PREFIX + key: json.dumps(value) for key, value in attrs.items()}


def decode(raw: dict[str, Any], all_json: bool, path=None) -> dict[str, Any]:
    """relcli.* metadata without the prefix (other keys are ignored)."""
    attrs: dict[str, Any] = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key.startswith(META_PREFIX):
            continue
        if isinstance(value, bytes):
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise FileFormatError(f"metadata {key!r} is not valid UTF-8", path) from None
        if isinstance(value, str) and (all_json or _looks_like_json(value)):
            value = parse_json(value, f"metadata {key!r}", path)
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        attrs[key[len(META_PREFIX):]] = value
    kind = attrs.get("kind", "embeddings")
    if kind not in KINDS:
        raise FileFormatError(f"metadata relcli.kind is {kind!r}; relcli knows {', '.join(KINDS)}", path)
    return attrs


#: the largest float32: statistics and learned state beyond it cannot be applied to float32 rows.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def finite_number(value: Any, field: str, path=None, positive: bool = False, float32: bool = False) -> float:
    """A metadata number checked on read: a finite float (and > 0 when ``positive``; within float32's
    range when ``float32``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise FileFormatError(f"{field} must be a finite number, got {value!r}", path)
    if positive and not value > 0:
        raise FileFormatError(f"{field} must be > 0, got {value!r}", path)
    if float32 and abs(value) > FLOAT32_MAX:
        raise FileFormatError(f"{field} is {value:g}, beyond float32's range (largest {FLOAT32_MAX:g})", path)
    return float(value)
