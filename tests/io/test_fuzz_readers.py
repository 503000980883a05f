"""Fuzzing every reader (issue 12, item 5): mutated bytes anywhere in every file kind relcli writes.

Hypothesis flips bytes, truncates, splices garbage and rewrites safetensors headers in small valid
files of every kind and format (embeddings, anchors, relative, predictions, a saved map and a head;
HDF5 and safetensors). Each mutated file is read the way the commands read it: opened, kind
checked, every row, id, label and array read, the kind's layout read (anchors' statistics, a
relative file's layout, an estimator's state). Every outcome must be a correct read or a clean
relcli error (``RelcliError``: one message naming the file); any other exception is a bug, and
each case has a deadline, so a hang fails too. The examples are derandomised (the same on every
run); ``RELCLI_FUZZ_EXAMPLES=2000 pytest tests/io/test_fuzz_readers.py`` searches wider.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relcli.errors import RelcliError

KINDS = ("embeddings", "anchors", "relative", "predictions", "map", "head")


class Pristine(dict):
    """kind:format -> bytes, with a short repr (Hypothesis prints the arguments of a failing case)."""

    def __repr__(self) -> str:
        return f"<{len(self)} pristine files>"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict[str, bytes]:
    """Bytes of a small valid file of every kind, in both formats (kind:format -> bytes)."""
    from relcli import api
    from relcli.io.embeddings import write_embeddings

    folder = tmp_path_factory.mktemp("fuzz-pristine")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((24, 6)).astype(np.float32)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    ids, labels = [f"r{i:02d}" for i in range(24)], np.arange(24) % 3
    files = {}
    for ext, fmt in ((".h5", "h5"), (".safetensors", "st")):
        files[f"embeddings:{fmt}"] = write_embeddings(folder / f"x{ext}", x, ids=ids, labels=labels)
        files[f"target:{fmt}"] = write_embeddings(folder / f"y{ext}", (x @ q).astype(np.float32), ids=ids, labels=labels)
        api.anchors(files[f"embeddings:{fmt}"], output=folder / f"xa{ext}", n_anchors=8, strategy="random")
        files[f"anchors:{fmt}"] = folder / f"xa{ext}"
        api.project(files[f"embeddings:{fmt}"], anchors=files[f"anchors:{fmt}"], output=folder / f"rel{ext}")
        files[f"relative:{fmt}"] = folder / f"rel{ext}"
    api.anchors(files["target:h5"], like=files["anchors:h5"], output=folder / "ya.h5")
    api.translate(files["embeddings:h5"], tgt_anchors=folder / "ya.h5", method="procrustes",
                  save_map=folder / "map.safetensors", output=folder / "t.h5")
    files["map:st"] = folder / "map.safetensors"
    api.stitch_fit(files["target:h5"], output=folder / "head.safetensors", max_iter=5)
    files["head:st"] = folder / "head.safetensors"
    for ext, fmt in ((".h5", "h5"), (".safetensors", "st")):
        api.stitch_apply(files["target:h5"], head=files["head:st"], output=folder / f"p{ext}")
        files[f"predictions:{fmt}"] = folder / f"p{ext}"
    return Pristine({name: Path(path).read_bytes() for name, path in files.items() if not name.startswith("target")})


def read_as_commands_do(path: Path, kind: str) -> None:
    """Everything a command reads from a file of ``kind``."""
    from relcli.io.embeddings import open_embeddings
    from relcli.io.kinds import expect_kind, load_estimator, read_relative_layout, read_stats

    if kind in ("map", "head"):
        load_estimator(path, "translator" if kind == "map" else "head")
        return
    with open_embeddings(path) as reader:
        expect_kind(reader, (kind,), "fuzz")
        for _ in reader.iter_chunks(7):
            pass
        reader.row_keys()
        _ = reader.labels
        for name in reader.array_shapes():
            reader.array(name)
        if kind == "anchors":
            read_stats(reader)
        elif kind == "relative":
            read_relative_layout(reader)


def _header_edit(data: bytes, draw) -> bytes:
    """A safetensors header with one field replaced by something else (a JSON-level lie)."""
    (size,) = struct.unpack("<Q", data[:8])
    try:
        header = json.loads(data[8:8 + size])
    except ValueError:
        return data
    name = draw(st.sampled_from(sorted(header)))
    lie = draw(st.sampled_from([None, -1, 2**70, "x", [], {}, [1, 2, 3], {"dtype": "F32"}, 1e308]))
    if name == "__metadata__":
        meta = header[name]
        if meta:
            meta[draw(st.sampled_from(sorted(meta)))] = json.dumps(lie)
    else:
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
        header[name][field] = lie
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data[8 + size:]


@st.composite
def mutations(draw, data: bytes, fmt: str) -> bytes:
    how = draw(st.sampled_from(["flip", "truncate", "splice", "zero", "header"] if fmt == "st" else ["flip", "truncate", "splice", "zero"]))
    n = len(data)
    if how == "header":
        return _header_edit(data, draw)
    if how == "truncate":
        return data[:draw(st.integers(0, n - 1))]
    at = draw(st.integers(0, n - 1))
    if how == "flip":
        out = bytearray(data)
        for offset in draw(st.lists(st.integers(0, min(63, n - 1 - at)), min_size=1, max_size=8)):
            out[at + offset] ^= draw(st.integers(1, 255))
        return bytes(out)
    if how == "zero":
        length = draw(st.integers(1, 256))
        return data[:at] + bytes(min(length, n - at)) + data[at + length:]
    return data[:at] + draw(st.binary(min_size=1, max_size=64)) + data[at:]


CASES = [f"{kind}:{fmt}" for kind in KINDS for fmt in ("h5", "st") if not (kind in ("map", "head") and fmt == "h5")]


@pytest.mark.parametrize("case", CASES)
@settings(max_examples=int(os.environ.get("RELCLI_FUZZ_EXAMPLES", 40)), deadline=5000, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large])
@given(data=st.data())
def test_every_mutation_reads_or_fails_cleanly(pristine, case, data, tmp_path):
    kind, fmt = case.split(":")
    mutated = data.draw(mutations(pristine[case], fmt))
    path = tmp_path / ("f.h5" if fmt == "h5" else "f.safetensors")
    path.write_bytes(mutated)
    try:
        read_as_commands_do(path, kind)
    except RelcliError as exc:
        message = str(exc)
        assert "\n" not in message.strip() and str(path) in message, message
