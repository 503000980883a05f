"""Encoder specs to encoders: the built-in backends and the ``relcli.encoders`` entry points."""

from __future__ import annotations

from pathlib import Path

from relcli.encoders._common import EncoderOptions
from relcli.encoders._hf import HFEncoder, SentenceTransformersEncoder
from relcli.encoders._onnx import ONNXEncoder
from relcli.encoders._torchscript import TorchScriptEncoder
from relcli.errors import UsageError

ENTRY_POINT_GROUP = "relcli.encoders"

BACKENDS = {
    "torchscript": TorchScriptEncoder,
    "hf": HFEncoder,
    "sentence-transformers": SentenceTransformersEncoder,
    "onnx": ONNXEncoder,
}


def load_encoder(spec: str, options: EncoderOptions):
    """Build the encoder a spec names: a built-in backend or a ``relcli.encoders`` entry point."""
    backend, sep, argument = spec.partition(":")
    if backend in BACKENDS:
        if not sep or not argument:
            raise UsageError(f"--encoder {spec!r}: expected {backend}:PATH")
        return BACKENDS[backend](Path(argument), options)
    from importlib.metadata import entry_points

    plugins = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if backend in plugins:
        return plugins[backend].load()(argument, options)
    known = ", ".join([*BACKENDS, *sorted(plugins)])
    raise UsageError(f"unknown encoder {backend!r} in --encoder {spec!r}; known: {known} (as NAME:ARGUMENT)")
