"""``api.info``: what is in relcli files, by kind (think ``h5ls`` for embeddings)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _examples(values, n: int = 3) -> list:
    return [] if values is None else [v.item() if hasattr(v, "item") else v for v in values[:n]]


def _id_summary(values, labels: bool = False) -> dict[str, Any] | None:
    if values is None:
        return None
    summary = {"type": "int64" if values.dtype.kind in "iu" else "string", "examples": _examples(values)}
    if labels:
        summary["classes"] = len(set(values.tolist()))
    return summary


def _kind_summary(reader) -> dict[str, Any]:
    """What a file of each kind adds to the matrix, validated as commands would read it.

    A file whose kind-specific parts do not hold up is still described: ``problem`` says what
    a command would refuse it for.
    """
    from relcli.errors import RelcliError

    try:
        return _checked_summary(reader)
    except RelcliError as exc:
        return {"problem": exc.message}


def _checked_summary(reader) -> dict[str, Any]:
    from relcli.io.kinds import read_relative_layout, read_stats

    if reader.kind == "anchors":
        stats = read_stats(reader)
        source = reader.strings("source_ids")
        return {"anchors": reader.n_rows, "space": stats.to_dict(), "anchor_method": reader.attrs.get("anchor_method"),
                "source_ids": None if source is None else _examples(source)}
    if reader.kind == "relative":
        layout = read_relative_layout(reader)
        return {"anchors": len(layout.anchor_keys), "anchor_ids": layout.anchor_keys[:3],
                "similarities": layout.similarities, "aggregate": layout.aggregate, "center": layout.center}
    if reader.kind == "predictions":
        classes = reader.attrs.get("classes")
        return {"classes": classes if isinstance(classes, list) else None}
    return {}


def _describe_embeddings(path: Path, key: str | None) -> dict[str, Any]:
    from relcli.io.embeddings import open_embeddings

    with open_embeddings(path, key=key) as f:
        attrs = dict(f.attrs)
        provenance = attrs.pop("provenance", None)
        return {
            "path": str(path), "format": f.format, "size_bytes": path.stat().st_size, "kind": f.kind, "key": f.key,
            "rows": f.n_rows, "dims": f.dim, "dtype": f.dtype,
            "ids": _id_summary(f.ids), "labels": _id_summary(f.labels, labels=True),
            "arrays": {name: {"shape": s, "dtype": d} for name, (s, d) in f.array_shapes().items()},
            **({"summary": _kind_summary(f)} if f.kind != "embeddings" else {}),
            "metadata": attrs, "provenance": provenance,
        }


def _describe_estimator(path: Path, kind: str) -> dict[str, Any]:
    from relcli.io.kinds import load_estimator

    estimator, attrs = load_estimator(path, kind)
    tensors, state = estimator.fitted_state()
    if kind == "translator":
        summary = {"method": estimator.method, "source_dim": estimator.source_dim_, "target_dim": estimator.target_dim_}
    else:
        summary = {"head": type(estimator).__name__, "input_dim": estimator.input_dim, "classes": len(estimator.classes_),
                   "class_names": attrs.get("class_names"), "relative": attrs.get("relative") is not None}
    metadata = {k: v for k, v in attrs.items() if k not in ("provenance", "state")}
    return {
        "path": str(path), "format": "safetensors", "size_bytes": path.stat().st_size, "kind": kind,
        "estimator": type(estimator).__name__, "params": estimator.get_params(), "summary": summary,
        "arrays": {name: {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", "")} for name, t in tensors.items()},
        "state": state, "metadata": metadata, "provenance": attrs.get("provenance"),
    }


def describe(path, key: str | None = None) -> dict[str, Any]:
    """A JSON-able description of one file of any kind."""
    from relcli.io.kinds import ESTIMATOR_KINDS, peek_kind

    path = Path(path)
    kind = peek_kind(path)
    if kind in ESTIMATOR_KINDS:
        return _describe_estimator(path, kind)
    return _describe_embeddings(path, key)


def info(files, *, key: str | None = None) -> list[dict[str, Any]]:
    """Descriptions of ``files`` (one path or several), in order."""
    if isinstance(files, (str, Path)):
        files = [files]
    return [describe(path, key) for path in files]
