"""Encoders for ``relcli embed``: raw items -> one vector per item, loaded from local files only.

A spec is ``BACKEND:ARGUMENT``:
  torchscript:FILE           a TorchScript module; a float tensor batch in, (rows, dims) out
  hf:DIR                     a local transformers model + tokenizer; mask-aware mean pooling or CLS
  sentence-transformers:DIR  a local sentence-transformers model
  onnx:FILE                  an ONNX text encoder; needs --tokenizer tokenizer.json
Packages can add backends through the entry-point group ``relcli.encoders``: the entry point is a
callable ``factory(argument, options) -> Encoder``. No hub is ever contacted (offline flags are set).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from relcli.errors import FileFormatError, UsageError
from relcli.io.torchscript import error_cause, load_torchscript

ENTRY_POINT_GROUP = "relcli.encoders"


@dataclass
class EncoderOptions:
    """Options a backend may use; each ignores those that do not apply to it."""

    device: Any = "cpu"
    max_length: int = 256
    pooling: str = "mean"
    tokenizer: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Encoder(Protocol):
    """``modality`` is 'text' (encode takes a list of str) or 'tensor' (a float tensor batch)."""

    modality: str

    def encode(self, batch) -> Any:  # returns a (rows, dims) torch tensor
        ...


def _missing_extra(package: str, extra: str) -> UsageError:
    return UsageError(f"this encoder needs the optional package {package!r}: pip install 'relcli[{extra}]'")


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _require_path(path: Path, what: str, folder: bool = False) -> Path:
    if not path.exists():
        raise FileFormatError(f"{what} not found", path)
    if folder and not path.is_dir():
        raise FileFormatError(f"{what} must be a folder (a saved model)", path)
    if not folder and path.is_dir():
        raise FileFormatError(f"{what} must be a file, not a folder", path)
    return path


class TorchScriptEncoder:
    """A TorchScript module applied to float batches (e.g. images N×C×H×W)."""

    modality = "tensor"

    def __init__(self, path: Path, options: EncoderOptions):
        self.module = load_torchscript(path, options.device, "TorchScript encoder")
        self.path, self.device = path, options.device

    def encode(self, batch):
        import torch

        with torch.no_grad():
            try:
                return self.module(batch.to(self.device, torch.float32))
            except (RuntimeError, torch.jit.Error) as exc:
                raise FileFormatError(
                    f"encoder failed on a batch of shape {tuple(batch.shape)}: {error_cause(exc)}", self.path
                ) from None


def mean_pool(hidden, attention_mask):
    """Mask-aware mean over tokens: Σ_t m_t h_t / Σ_t m_t (padding never changes a row)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def _pool(hidden, attention_mask, pooling: str):
    if pooling == "mean":
        return mean_pool(hidden, attention_mask)
    if pooling == "cls":
        return hidden[:, 0]
    raise UsageError(f"unknown --pooling {pooling!r}; choose mean or cls")


class HFEncoder:
    """A local transformers model + tokenizer (``save_pretrained`` folder)."""

    modality = "text"

    def __init__(self, path: Path, options: EncoderOptions):
        _require_path(path, "transformers model folder", folder=True)
        _offline()
        try:
            import transformers
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise _missing_extra("transformers", "text") from None
        transformers.utils.logging.disable_progress_bar()  # stderr belongs to relcli's own messages
        transformers.utils.logging.set_verbosity_error()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            self.model = AutoModel.from_pretrained(str(path), local_files_only=True).to(options.device).eval()
        except (OSError, ValueError) as exc:
            raise FileFormatError(f"cannot load a transformers model: {str(exc).splitlines()[0][:160]}", path) from None
        self.options = options

    def encode(self, texts: list[str]):
        import torch

        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.options.max_length, return_tensors="pt"
        ).to(self.options.device)
        with torch.no_grad():
            hidden = self.model(**tokens).last_hidden_state
        return _pool(hidden, tokens["attention_mask"], self.options.pooling)


class SentenceTransformersEncoder:
    """A local sentence-transformers model folder."""

    modality = "text"

    def __init__(self, path: Path, options: EncoderOptions):
        _require_path(path, "sentence-transformers model folder", folder=True)
        _offline()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise _missing_extra("sentence-transformers", "sentence-transformers") from None
        try:
            self.model = SentenceTransformer(str(path), device=str(options.device), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise FileFormatError(f"cannot load a sentence-transformers model: {str(exc).splitlines()[0][:160]}", path) from None

    def encode(self, texts: list[str]):
        return self.model.encode(texts, convert_to_tensor=True, show_progress_bar=False)


class ONNXEncoder:
    """An ONNX text encoder (outputs token states or pooled vectors) with a tokenizers JSON file."""

    modality = "text"

    def __init__(self, path: Path, options: EncoderOptions):
        _require_path(path, "ONNX model")
        if options.tokenizer is None:
            raise UsageError("onnx encoders need --tokenizer tokenizer.json")
        _require_path(options.tokenizer, "tokenizer file")
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError:
            raise _missing_extra("onnxruntime", "onnx") from None
        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise FileFormatError(f"cannot load an ONNX model: {str(exc).splitlines()[0][:160]}", path) from None
        self.tokenizer = Tokenizer.from_file(str(options.tokenizer))
        self.tokenizer.enable_truncation(options.max_length)
        self.tokenizer.enable_padding()
        self.input_names = {i.name for i in self.session.get_inputs()}
        self.options = options

    def encode(self, texts: list[str]):
        import numpy as np
        import torch

        encoded = self.tokenizer.encode_batch(texts)
        feeds = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        outputs = self.session.run(None, {k: v for k, v in feeds.items() if k in self.input_names})
        hidden = torch.from_numpy(outputs[0])
        if hidden.ndim == 3:
            return _pool(hidden, torch.from_numpy(feeds["attention_mask"]), self.options.pooling)
        return hidden


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
