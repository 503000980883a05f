"""Encoders for ``relcli embed``: raw items -> one vector per item, loaded from local files only.

A spec is ``BACKEND:ARGUMENT``:
  torchscript:FILE           a TorchScript module; a float tensor batch in, (rows, dims) out
  hf:DIR                     a local transformers model + tokenizer; in a sentence-transformers folder
                             (modules.json) its pooling, Normalize module and max_seq_length are used
  sentence-transformers:DIR  a local sentence-transformers model, run by sentence-transformers itself
  onnx:FILE                  an ONNX text encoder; the tokenizer is --tokenizer or tokenizer.json beside it
Packages can add backends through the entry-point group ``relcli.encoders``: the entry point is a
callable ``factory(argument, options) -> Encoder``. No hub is ever contacted (offline flags are set).

An encoder may describe what it really used (pooling, token limit, output, normalisation) in a
``settings`` dict; ``relcli embed`` records it in the output's provenance.

Modules: ``_common`` (options, the protocol, checks, ``library_output``), ``_pooling``, one per
backend (``_torchscript``, ``_hf``, ``_onnx``) and ``_registry`` (specs and entry points).
"""

from __future__ import annotations

from relcli.encoders._common import (
    POOLINGS,
    UNSET_LIMIT,
    Encoder,
    EncoderOptions,
    library_output,
)
from relcli.encoders._hf import (
    HFEncoder,
    SentenceFolder,
    SentenceTransformersEncoder,
    read_sentence_folder,
)
from relcli.encoders._onnx import (
    FLOAT_TYPES,
    INT_TYPES,
    NOT_POOLED,
    POOLED_NAMES,
    TOKEN_NAMES,
    ONNXEncoder,
    find_tokenizer,
)
from relcli.encoders._pooling import mean_pool, pool
from relcli.encoders._registry import BACKENDS, ENTRY_POINT_GROUP, load_encoder
from relcli.encoders._torchscript import TorchScriptEncoder

__all__ = [
    "BACKENDS", "ENTRY_POINT_GROUP", "FLOAT_TYPES", "INT_TYPES", "NOT_POOLED", "POOLED_NAMES", "POOLINGS",
    "TOKEN_NAMES", "UNSET_LIMIT", "Encoder", "EncoderOptions", "HFEncoder", "ONNXEncoder", "SentenceFolder",
    "SentenceTransformersEncoder", "TorchScriptEncoder", "find_tokenizer", "library_output", "load_encoder",
    "mean_pool", "pool", "read_sentence_folder",
]
