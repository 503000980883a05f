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
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from relcli.errors import FileFormatError, UsageError
from relcli.io.torchscript import error_cause, load_torchscript

ENTRY_POINT_GROUP = "relcli.encoders"

#: Pooling modes over token states, named as sentence-transformers names them.
POOLINGS = ("mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
#: A tokenizer's ``model_max_length`` above this means "not set" (transformers uses 1e30).
UNSET_LIMIT = 1_000_000


@dataclass
class EncoderOptions:
    """Options a backend may use. ``None`` means "the model's own" (its token limit, its pooling);
    a built-in backend refuses an option that does not apply to it rather than ignore it."""

    device: Any = "cpu"
    max_length: int | None = None
    pooling: str | None = None
    tokenizer: Path | None = None
    output_name: str | None = None
    quiet: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Encoder(Protocol):
    """``modality`` is 'text' (encode takes a list of str) or 'tensor' (a float tensor batch).

    Optional attributes: ``path`` (the model file or folder errors should name) and ``settings``
    (a dict of what was really used, recorded in provenance).
    """

    modality: str

    def encode(self, batch) -> Any:  # returns a (rows, dims) torch tensor
        ...


def _missing_extra(package: str, extra: str) -> UsageError:
    return UsageError(f"this encoder needs the optional package {package!r}: pip install 'relcli[{extra}]'")


def _offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


def _require_path(path: Path, what: str, folder: bool = False) -> Path:
    if not path.exists():
        raise FileFormatError(f"{what} not found", path)
    if folder and not path.is_dir():
        raise FileFormatError(f"{what} must be a folder (a saved model)", path)
    if not folder and path.is_dir():
        raise FileFormatError(f"{what} must be a file, not a folder", path)
    return path


def _refuse(options: EncoderOptions, backend: str, names: tuple[str, ...], why: str = "") -> None:
    """Options that do not apply to a backend are a usage error, not silently ignored."""
    flags = {"max_length": "--max-length", "pooling": "--pooling", "tokenizer": "--tokenizer",
             "output_name": "--output-name"}
    for name in names:
        if getattr(options, name) is not None:
            raise UsageError(f"{flags[name]} does not apply to {backend}: encoders{why}")


def _check_pooling(pooling: str | None) -> None:
    if pooling is not None and pooling not in POOLINGS:
        raise UsageError(f"unknown --pooling {pooling!r}; choose one of {', '.join(POOLINGS)}")


def _check_max_length(max_length: int | None) -> None:
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise UsageError(f"--max-length must be a positive integer, got {max_length!r}")


@contextmanager
def library_output(quiet: bool):
    """Keep stderr for relcli while loading and running a model.

    The libraries' own progress bars are always off (relcli draws its own); under ``quiet`` their
    logging shows only errors and Python warnings are off too. Nothing is imported here: libraries
    already imported are switched directly (the backends enter this after importing theirs);
    transformers, if it is first imported inside, through its environment variable. Everything is
    put back on exit, so nothing leaks into the caller's process.
    """
    import logging
    import sys
    import warnings

    env = {"TRANSFORMERS_VERBOSITY": "error"} if quiet else {}
    saved_env = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    before = {}
    if "transformers" in sys.modules:
        import transformers.utils.logging as tlog

        before["transformers"] = (tlog.is_progress_bar_enabled(), tlog.get_verbosity())
        tlog.disable_progress_bar()
        if quiet:
            tlog.set_verbosity(logging.ERROR)
    if "huggingface_hub" in sys.modules:
        import huggingface_hub.utils as hub

        before["huggingface_hub"] = hub.are_progress_bars_disabled()
        hub.disable_progress_bars()
    st_logger = logging.getLogger("sentence_transformers")
    st_level = st_logger.level
    if quiet:
        st_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            if quiet:
                warnings.simplefilter("ignore")
            yield
    finally:
        st_logger.setLevel(st_level)
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        if "transformers" in before:
            bar, verbosity = before["transformers"]
            tlog.set_verbosity(verbosity)
            (tlog.enable_progress_bar if bar else tlog.disable_progress_bar)()
        elif quiet and "transformers" in sys.modules:  # first imported inside, at error level
            import transformers.utils.logging as tlog

            tlog.set_verbosity(logging.WARNING)
        if "huggingface_hub" in before and not before["huggingface_hub"]:
            hub.enable_progress_bars()


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


# ---------------------------------------------------------------------------------------------
# Pooling token states (the same definitions as sentence-transformers' Pooling module)
# ---------------------------------------------------------------------------------------------
def mean_pool(hidden, attention_mask):
    """Mask-aware mean over tokens: Σ_t m_t h_t / Σ_t m_t (padding never changes a row)."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def pool(hidden, attention_mask, pooling: str | tuple[str, ...] | list[str]):
    """(batch, tokens, dim) token states -> (batch, dim) per mode; several modes are concatenated.

    mean: Σ m_t h_t / Σ m_t; mean_sqrt_len_tokens: Σ m_t h_t / √Σ m_t; cls: the first unmasked
    token; lasttoken: the last unmasked token; max: the element-wise max over unmasked tokens;
    weightedmean: weights 1, 2, ... from the first unmasked token. A row with no unmasked token
    pools to zeros.
    """
    import torch

    modes = (pooling,) if isinstance(pooling, str) else tuple(pooling)
    mask = attention_mask.to(torch.bool)
    present = mask.any(dim=1, keepdim=True)
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    out = []
    for mode in modes:
        if mode == "mean":
            out.append(mean_pool(hidden, attention_mask))
        elif mode == "mean_sqrt_len_tokens":
            weights = mask.unsqueeze(-1).to(hidden.dtype)
            out.append((hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0).sqrt())
        elif mode == "cls":
            first = hidden[rows, mask.to(torch.int32).argmax(dim=1)]
            out.append(torch.where(present, first, torch.zeros((), dtype=hidden.dtype, device=hidden.device)))
        elif mode == "lasttoken":
            last = hidden.shape[1] - 1 - mask.flip(1).to(torch.int32).argmax(dim=1)
            out.append(torch.where(present, hidden[rows, last], torch.zeros((), dtype=hidden.dtype, device=hidden.device)))
        elif mode == "max":
            filled = hidden.masked_fill(~mask.unsqueeze(-1), float("-inf")).max(dim=1).values
            out.append(torch.where(present, filled, torch.zeros((), dtype=hidden.dtype, device=hidden.device)))
        elif mode == "weightedmean":
            start = mask.to(torch.int32).argmax(dim=1, keepdim=True)
            positions = torch.arange(1, hidden.shape[1] + 1, device=hidden.device).unsqueeze(0) - start
            weights = (positions * mask).to(hidden.dtype).unsqueeze(-1)
            out.append((hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1e-9))
        else:
            raise UsageError(f"unknown --pooling {mode!r}; choose one of {', '.join(POOLINGS)}")
    return out[0] if len(out) == 1 else torch.cat(out, dim=-1)


def _mode_name(pooling) -> str:
    return pooling if isinstance(pooling, str) else "+".join(pooling)


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
