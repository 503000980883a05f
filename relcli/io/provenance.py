"""Provenance records: who made a file, from what, with which parameters, and when."""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
from pathlib import Path
from typing import Any

import relcli

HASHED_BYTES = 1 << 20


def file_fingerprint(path: str | os.PathLike) -> dict[str, Any]:
    """Path, size and SHA-256 of the first MiB (header and first chunk) of an input file."""
    path = Path(path)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        digest.update(handle.read(HASHED_BYTES))
    return {
        "path": str(path),
        "size": path.stat().st_size,
        "sha256_first_mib": digest.hexdigest(),
    }


def make_provenance(
    subcommand: str, parameters: dict[str, Any], inputs: list[str | os.PathLike] = ()
) -> dict[str, Any]:
    """The ``relcli.provenance`` record of DESIGN §3."""
    return {
        "relcli_version": relcli.__version__,
        "subcommand": subcommand,
        "parameters": {k: _jsonable(v) for k, v in parameters.items()},
        "inputs": [file_fingerprint(p) for p in inputs],
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    return str(value)
