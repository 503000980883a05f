"""The ``torchscript:`` backend: a TorchScript module applied to float tensor batches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from relcli.encoders._common import EncoderOptions, _refuse
from relcli.errors import FileFormatError
from relcli.io.torchscript import error_cause, load_torchscript


class TorchScriptEncoder:
    """A TorchScript module applied to float batches (e.g. images N×C×H×W)."""

    modality = "tensor"

    def __init__(self, path: Path, options: EncoderOptions):
        _refuse(options, "torchscript", ("max_length", "pooling", "tokenizer", "output_name"), " (they are for text encoders)")
        self.module = load_torchscript(path, options.device, "TorchScript encoder")
        self.path, self.device = path, options.device
        self.settings: dict[str, Any] = {}

    def encode(self, batch):
        import torch

        with torch.no_grad():
            try:
                return self.module(batch.to(self.device, torch.float32))
            except (RuntimeError, torch.jit.Error) as exc:
                raise FileFormatError(
                    f"encoder failed on a batch of shape {tuple(batch.shape)}: {error_cause(exc)}", self.path
                ) from None
