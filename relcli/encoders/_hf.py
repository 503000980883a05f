"""The ``hf:`` and ``sentence-transformers:`` backends: local transformers models (sentence-transformers
folders read without sentence-transformers) and sentence-transformers models run by it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from relcli.encoders._common import (
    POOLINGS,
    UNSET_LIMIT,
    EncoderOptions,
    _check_max_length,
    _check_pooling,
    _first_line,
    _missing_extra,
    _offline,
    _refuse,
    _require_path,
    library_output,
)
from relcli.encoders._pooling import _mode_name, pool
from relcli.errors import FileFormatError, UsageError


# ---------------------------------------------------------------------------------------------
# sentence-transformers folders, read without sentence-transformers
# ---------------------------------------------------------------------------------------------
@dataclass
class SentenceFolder:
    """What ``hf:`` takes from a sentence-transformers folder (modules.json and its modules)."""

    model_dir: Path
    pooling: str | tuple[str, ...] = "mean"
    normalize: bool = False
    max_length: int | None = None
    lower_case: bool = False
    prompt: str = ""


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FileFormatError(f"cannot read: {_first_line(exc)}", path) from None


def _pooling_config(config: dict) -> str | tuple[str, ...]:
    """``pooling_mode`` (sentence-transformers >= 5), else the legacy ``pooling_mode_*`` flags."""
    legacy = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max", "pooling_mode_mean_tokens": "mean",
              "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
              "pooling_mode_weightedmean_tokens": "weightedmean", "pooling_mode_lasttoken": "lasttoken"}
    mode = config.get("pooling_mode")
    if mode is None:
        modes = tuple(name for key, name in legacy.items() if config.get(key))
        mode = modes or ("mean",)
    modes = (mode,) if isinstance(mode, str) else tuple(mode)
    for m in modes:
        if m not in POOLINGS:
            raise ValueError(f"unknown pooling mode {m!r}")
    return modes[0] if len(modes) == 1 else modes


def read_sentence_folder(folder: Path) -> SentenceFolder | None:
    """The modules of a sentence-transformers folder (None when it has no modules.json).

    Transformer, Pooling and Normalize are understood; any other module (Dense, ...) is an
    error that points to ``sentence-transformers:``, which runs them.
    """
    modules_file = folder / "modules.json"
    if not modules_file.is_file():
        return None
    modules = _read_json(modules_file)
    if not isinstance(modules, list) or not all(isinstance(m, dict) and "type" in m for m in modules):
        raise FileFormatError("is not a sentence-transformers module list", modules_file)
    found = SentenceFolder(model_dir=folder)
    seen_transformer = False
    for module in sorted(modules, key=lambda m: m.get("idx", 0)):
        kind = str(module["type"]).rsplit(".", 1)[-1]
        where = folder / str(module.get("path", ""))
        if kind == "Transformer" and not seen_transformer:
            seen_transformer = True
            found.model_dir = where
            config_file = where / "sentence_bert_config.json"
            if config_file.is_file():
                config = _read_json(config_file)
                found.max_length = config.get("max_seq_length")
                found.lower_case = bool(config.get("do_lower_case", False))
        elif kind == "Pooling":
            config = _read_json(where / "config.json") if (where / "config.json").is_file() else {}
            try:
                found.pooling = _pooling_config(config)
            except ValueError as exc:
                raise FileFormatError(f"{exc}; choose one of {', '.join(POOLINGS)}", where / "config.json") from None
            if config.get("include_prompt") is False:
                raise FileFormatError("pooling without the prompt tokens (include_prompt: false) needs "
                                      f"sentence-transformers:{folder}", where / "config.json")
        elif kind == "Normalize":
            found.normalize = True
        else:
            raise FileFormatError(f"lists a {kind} module, which hf: does not run; use sentence-transformers:{folder}",
                                  modules_file)
    if not seen_transformer:
        raise FileFormatError("lists no Transformer module", modules_file)
    st_config = folder / "config_sentence_transformers.json"
    if st_config.is_file():
        config = _read_json(st_config)
        name = config.get("default_prompt_name")
        if name:
            found.prompt = (config.get("prompts") or {}).get(name, "") or ""
    return found


class HFEncoder:
    """A local transformers model + tokenizer (``save_pretrained`` folder, or a sentence-transformers
    folder whose Transformer/Pooling/Normalize modules are applied as sentence-transformers would)."""

    modality = "text"

    def __init__(self, path: Path, options: EncoderOptions):
        _require_path(path, "transformers model folder", folder=True)
        _refuse(options, "hf", ("tokenizer", "output_name"), " (the tokenizer is the one in the folder)")
        _check_pooling(options.pooling)
        _check_max_length(options.max_length)
        folder = read_sentence_folder(path)
        model_dir = folder.model_dir if folder else path
        _offline()
        try:
            import transformers  # noqa: F401
            from transformers import AutoModel, AutoTokenizer
        except ImportError:
            raise _missing_extra("transformers", "text") from None
        with library_output(options.quiet):
            try:
                self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
                self.model = AutoModel.from_pretrained(str(model_dir), local_files_only=True).to(options.device).eval()
            except (OSError, ValueError, KeyError) as exc:
                raise FileFormatError(f"cannot load a transformers model: {_first_line(exc)}", path) from None
        self.path, self.device, self.quiet = path, options.device, options.quiet
        self.pooling = options.pooling or (folder.pooling if folder else "mean")
        self.normalize = bool(folder and folder.normalize)
        self.lower_case = bool(folder and folder.lower_case)
        self.prompt = folder.prompt if folder else ""
        self.max_length = options.max_length or (folder and folder.max_length) or self._model_limit()
        self.settings = {
            "pooling": _mode_name(self.pooling),
            "max_length": self.max_length,
            "model_normalizes": self.normalize,
            "layout": "sentence-transformers folder (modules.json)" if folder else "transformers folder",
        }
        if self.prompt:
            self.settings["prompt"] = self.prompt

    def _model_limit(self) -> int | None:
        """The tokenizer's own limit, else the model's position table (less RoBERTa's offset)."""
        limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(limit, int) and 0 < limit < UNSET_LIMIT:
            return limit
        config = self.model.config
        positions = getattr(config, "max_position_embeddings", None)
        if not isinstance(positions, int):
            return None
        offset = (getattr(config, "pad_token_id", 0) or 0) + 1 if "roberta" in str(getattr(config, "model_type", "")) else 0
        return positions - offset

    def encode(self, texts: list[str]):
        import torch

        if self.prompt:
            texts = [self.prompt + t for t in texts]
        if self.lower_case:
            texts = [t.lower() for t in texts]
        with library_output(self.quiet):
            tokens = self.tokenizer(
                texts, padding=True, truncation=self.max_length is not None, max_length=self.max_length, return_tensors="pt"
            ).to(self.device)
            with torch.no_grad():
                hidden = self.model(**tokens).last_hidden_state
        vectors = pool(hidden, tokens["attention_mask"], self.pooling)
        return torch.nn.functional.normalize(vectors, dim=-1) if self.normalize else vectors


class SentenceTransformersEncoder:
    """A local sentence-transformers model folder, run by sentence-transformers (its modules decide
    the pooling; ``--max-length`` sets ``max_seq_length``)."""

    modality = "text"

    def __init__(self, path: Path, options: EncoderOptions):
        _require_path(path, "sentence-transformers model folder", folder=True)
        if options.pooling is not None:
            raise UsageError(f"--pooling does not apply to sentence-transformers: encoders: the model's own Pooling "
                             f"module decides (use hf:{path} --pooling {options.pooling} to override it)")
        _refuse(options, "sentence-transformers", ("tokenizer", "output_name"), " (the tokenizer is the one in the folder)")
        _check_max_length(options.max_length)
        _offline()
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise _missing_extra("sentence-transformers", "sentence-transformers") from None
        with library_output(options.quiet):
            try:
                self.model = SentenceTransformer(str(path), device=str(options.device), local_files_only=True)
            except (OSError, ValueError, KeyError) as exc:
                raise FileFormatError(f"cannot load a sentence-transformers model: {_first_line(exc)}", path) from None
        if options.max_length is not None:
            self.model.max_seq_length = options.max_length
        self.path, self.quiet = path, options.quiet
        pooling = next((m for m in self.model if type(m).__name__ == "Pooling"), None)
        modes = getattr(pooling, "pooling_mode", None)
        self.settings = {
            "pooling": None if modes is None else _mode_name(modes),
            "max_length": self.model.max_seq_length,
            "model_normalizes": any(type(m).__name__ == "Normalize" for m in self.model),
            "modules": [type(m).__name__ for m in self.model],
        }

    def encode(self, texts: list[str]):
        with library_output(self.quiet):
            return self.model.encode(texts, convert_to_tensor=True, show_progress_bar=False)
