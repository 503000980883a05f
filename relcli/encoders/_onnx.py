"""The ``onnx:`` backend: an ONNX text encoder run by onnxruntime, with a tokenizers JSON file."""

from __future__ import annotations

import json
from pathlib import Path

from relcli.encoders._common import (
    UNSET_LIMIT,
    EncoderOptions,
    _check_max_length,
    _check_pooling,
    _first_line,
    _missing_extra,
    _require_path,
)
from relcli.encoders._pooling import pool
from relcli.errors import FileFormatError, UsageError


# ---------------------------------------------------------------------------------------------
# ONNX
# ---------------------------------------------------------------------------------------------
FLOAT_TYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
               "tensor(bfloat16)": "bfloat16"}
INT_TYPES = {"tensor(int64)": "int64", "tensor(int32)": "int32"}
#: Names of pooled (2-D) and token-state (3-D) outputs, preferred when several qualify.
POOLED_NAMES = ("sentence_embedding", "sentence_embeddings", "embeddings", "embedding", "text_embeds")
TOKEN_NAMES = ("last_hidden_state", "token_embeddings")
#: BERT's CLS + tanh pooler: not a sentence embedding, never picked by itself.
NOT_POOLED = ("pooler_output",)


def _describe_io(nodes) -> str:
    def one(node):
        dims = ", ".join(str(d) if d is not None else "?" for d in (node.shape or []))
        return f"{node.name} {node.type.removeprefix('tensor(').rstrip(')')} ({dims})"

    return "; ".join(one(n) for n in nodes) or "none"


def find_tokenizer(model: Path) -> Path | None:
    """``tokenizer.json`` beside the model, or one folder up (model/onnx/model.onnx layouts)."""
    for folder in (model.parent, model.parent.parent):
        candidate = folder / "tokenizer.json"
        if candidate.is_file():
            return candidate
    return None


def _tokenizer_limit(tokenizer_file: Path) -> int | None:
    """A token limit written beside the tokenizer: sentence-transformers' max_seq_length, else
    tokenizer_config.json's model_max_length."""
    folder = tokenizer_file.parent
    for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
        file = folder / name
        if file.is_file():
            try:
                value = json.loads(file.read_text(encoding="utf-8")).get(key)
            except (OSError, ValueError, AttributeError):
                continue
            if isinstance(value, int) and 0 < value < UNSET_LIMIT:
                return value
    return None


class ONNXEncoder:
    """An ONNX text encoder with a tokenizers JSON file.

    The output used is ``--output-name``, else the model's float output of the right rank: a 2-D
    pooled output (a sentence embedding) when there is one, else 3-D token states pooled here
    with the attention mask. Token ids, masks and BERT's ``pooler_output`` are never picked.
    """

    modality = "text"

    def __init__(self, path: Path, options: EncoderOptions):
        _require_path(path, "ONNX model")
        _check_pooling(options.pooling)
        _check_max_length(options.max_length)
        tokenizer_file = options.tokenizer if options.tokenizer is not None else find_tokenizer(path)
        if tokenizer_file is None:
            raise UsageError("no tokenizer.json beside the ONNX model; give one with --tokenizer tokenizer.json", path)
        _require_path(tokenizer_file, "tokenizer file")
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError:
            raise _missing_extra("onnxruntime", "onnx") from None
        try:
            session_options = onnxruntime.SessionOptions()
            session_options.log_severity_level = 3  # errors only: stderr belongs to relcli
            self.session = onnxruntime.InferenceSession(str(path), session_options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise FileFormatError(f"cannot load an ONNX model: {_first_line(exc)}", path) from None
        try:
            self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        except Exception as exc:  # noqa: BLE001 - tokenizers raises plain Exception
            raise FileFormatError(f"cannot read a tokenizers JSON file: {_first_line(exc)}", tokenizer_file) from None
        self.path, self.tokenizer_file = path, tokenizer_file
        self.max_length = self._truncation(options.max_length)
        self._padding()
        self.inputs = {node.name: INT_TYPES.get(node.type) for node in self.session.get_inputs()}
        known = ("input_ids", "attention_mask", "token_type_ids")
        unknown = [name for name in self.inputs if name not in known or self.inputs[name] is None]
        if unknown or "input_ids" not in self.inputs:
            raise FileFormatError(
                f"takes inputs relcli cannot feed ({_describe_io(self.session.get_inputs())}); relcli feeds int "
                "input_ids, attention_mask and token_type_ids", path)
        self.output, self.rank = self._choose_output(options.output_name, options.pooling)
        self.pooling = (options.pooling or "mean") if self.rank == 3 else None
        self.settings = {
            "output_name": self.output,
            "pooling": self.pooling,
            "pooled_by_model": self.rank == 2,
            "max_length": self.max_length,
            "tokenizer": str(tokenizer_file),
        }

    def _truncation(self, requested: int | None) -> int | None:
        """--max-length, else the tokenizer's own truncation, else a limit written beside it."""
        if requested is not None:
            self.tokenizer.enable_truncation(requested)
            return requested
        own = self.tokenizer.truncation
        if own:
            return int(own["max_length"])
        limit = _tokenizer_limit(self.tokenizer_file)
        if limit is not None:
            self.tokenizer.enable_truncation(limit)
        return limit

    def _padding(self) -> None:
        """Pad each batch to its longest item with the tokenizer's pad token (never a fixed length)."""
        own = self.tokenizer.padding
        if own:
            self.tokenizer.enable_padding(direction=own["direction"], pad_id=own["pad_id"], pad_type_id=own["pad_type_id"],
                                          pad_token=own["pad_token"], pad_to_multiple_of=own.get("pad_to_multiple_of"))
            return
        for token in ("[PAD]", "<pad>", "<|pad|>"):
            pad_id = self.tokenizer.token_to_id(token)
            if pad_id is not None:
                self.tokenizer.enable_padding(pad_id=pad_id, pad_token=token)
                return
        self.tokenizer.enable_padding()

    def _choose_output(self, name: str | None, pooling: str | None) -> tuple[str, int]:
        outputs = self.session.get_outputs()
        listing = f"outputs: {_describe_io(outputs)}"
        if name is not None:
            chosen = next((o for o in outputs if o.name == name), None)
            if chosen is None:
                raise UsageError(f"--output-name {name!r}: the model has no such output ({listing})", self.path)
            rank = len(chosen.shape or [])
            if chosen.type not in FLOAT_TYPES or rank not in (2, 3):
                raise UsageError(f"--output-name {name!r} is not a float output of rank 2 (pooled) or 3 (token "
                                 f"states) ({listing})", self.path)
            if pooling is not None and rank == 2:
                raise UsageError(f"--pooling applies to token states, but output {name!r} is already pooled (2-D)", self.path)
            return name, rank
        floats = [o for o in outputs if o.type in FLOAT_TYPES]
        pooled = [o for o in floats if len(o.shape or []) == 2 and o.name not in NOT_POOLED]
        tokens = [o for o in floats if len(o.shape or []) == 3]
        # --pooling asks for token states; else a sentence embedding the model made itself comes first.
        for candidates, preferred, rank in ([] if pooling else [(pooled, POOLED_NAMES, 2)]) + [(tokens, TOKEN_NAMES, 3)]:
            if len(candidates) == 1:
                return candidates[0].name, rank
            if candidates:
                named = [o for o in candidates if o.name in preferred]
                if len(named) == 1:
                    return named[0].name, rank
                raise UsageError(f"has {len(candidates)} {'pooled (2-D)' if rank == 2 else 'token-state (3-D)'} float "
                                 f"outputs; pick one with --output-name ({listing})", self.path)
        wanted = "token-state (3-D) float output to pool" if pooling else "float output of rank 2 (pooled) or 3 (token states)"
        raise FileFormatError(f"has no {wanted} ({listing})", self.path)

    def encode(self, texts: list[str]):
        import numpy as np
        import torch

        encoded = self.tokenizer.encode_batch(texts)
        arrays = {
            "input_ids": np.array([e.ids for e in encoded], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask for e in encoded], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids for e in encoded], dtype=np.int64),
        }
        feeds = {name: arrays[name].astype(dtype, copy=False) for name, dtype in self.inputs.items()}
        try:
            (output,) = self.session.run([self.output], feeds)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
            raise FileFormatError(f"ONNX model failed on a batch of {len(texts)} texts "
                                  f"({arrays['input_ids'].shape[1]} tokens): {_first_line(exc, 200)}", self.path) from None
        vectors = torch.from_numpy(np.asarray(output, dtype=np.float32))
        if self.rank == 3 and vectors.ndim == 3:
            return pool(vectors, torch.from_numpy(arrays["attention_mask"]), self.pooling)
        return vectors
