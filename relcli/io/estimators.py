"""Fitted estimators (translators, heads) as safetensors files of kind 'translator' or 'head'.

Tensors are the learned tensor state; the header metadata holds ``relcli.estimator`` (the
class name), ``relcli.params`` (constructor arguments) and ``relcli.state`` (JSON-able learned
state), all JSON, beside the usual ``relcli.format``/``relcli.kind``/``relcli.provenance``.
Nothing is ever unpickled.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from relcli.errors import FileFormatError, UsageError
from relcli.io.atomic import atomic_output
from relcli.io.embeddings import FORMAT_VERSION, META_PREFIX, read_safetensors_header, sniff_format


def save_estimator(path: str | os.PathLike, estimator, kind: str, attrs: dict[str, Any] | None = None) -> Path:
    """Write ``estimator``'s parameters and learned state to a safetensors file, atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        raise UsageError("fitted maps and heads are saved as .safetensors", path)
    tensors, extras = estimator.fitted_state()
    meta = {
        "format": FORMAT_VERSION,
        "kind": kind,
        "estimator": type(estimator).__name__,
        "params": estimator.get_params(),
        "state": extras,
        **(attrs or {}),
    }
    with atomic_output(path) as temp:
        save_file(
            {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
            str(temp),
            metadata={META_PREFIX + k: json.dumps(v) for k, v in meta.items()},
        )
    return path


def load_estimator(path: str | os.PathLike, kinds: tuple[str, ...] = ("translator", "head")):
    """Rebuild a saved estimator; returns (estimator, metadata without the relcli. prefix)."""
    from safetensors.torch import load_file

    from relcli.core._estimator import estimator_class

    path = Path(path)
    if sniff_format(path) != "safetensors":
        raise FileFormatError("is not a relcli map/head file (expected .safetensors)", path)
    _, raw_meta, _ = read_safetensors_header(path)
    meta = {}
    for key, value in raw_meta.items():
        if key.startswith(META_PREFIX):
            try:
                meta[key[len(META_PREFIX):]] = json.loads(value)
            except json.JSONDecodeError:
                raise FileFormatError(f"metadata {key!r} is not valid JSON", path) from None
    if meta.get("kind") not in kinds:
        raise FileFormatError(
            f"is a {meta.get('kind', 'foreign')!r} file, expected {' or '.join(kinds)}", path
        )
    try:
        cls = estimator_class(meta["estimator"])
        estimator = cls.from_fitted_state(meta.get("params", {}), load_file(str(path)), meta.get("state", {}))
    except KeyError as exc:
        raise FileFormatError(f"is missing {exc}", path) from None
    except FileFormatError as exc:
        raise FileFormatError(exc.message, path) from None
    return estimator, meta
