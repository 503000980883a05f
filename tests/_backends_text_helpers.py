"""Shared pieces of the text-backend tests (test_backends_text_*.py): a tiny random BERT and a
word-level tokenizer saved to a temp folder (no hub, no download), a per-text reference computed
without padding, and a helper that runs ``relcli embed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.cli.conftest import invoke, load, ok


DIM = 16
WORDS = "the a cat dog sat on mat ran fast slow big small red blue green one two three four five and".split()
TEXTS = [
    "the cat sat",
    "the big red dog ran fast and the small blue cat sat on the mat one two three four five",
    "a dog",
    "The Green Mat and red cat",  # capitals: unknown to the lower-case vocabulary unless lower-cased
    "unknownword the",
    "five four three two one",
]
LONG = " ".join(["cat dog"] * 60)  # 120 words: longer than the model's 64 positions


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """A saved tiny BERT + fast tokenizer (model_max_length 64), and the model/tokenizer loaded back."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import AutoModel, AutoTokenizer, BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("bert")
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                        cls_token="[CLS]", sep_token="[SEP]", model_max_length=64)
    config = BertConfig(vocab_size=len(vocab), hidden_size=DIM, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=24, max_position_embeddings=64, pad_token_id=0)
    with torch.random.fork_rng():
        torch.manual_seed(1)
        BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    model = AutoModel.from_pretrained(str(folder)).eval()
    return folder, model, AutoTokenizer.from_pretrained(str(folder))


def pool_alone(hidden: torch.Tensor, mode: str) -> torch.Tensor:
    """One text's (tokens, dim) states, no padding at all."""
    t = hidden.shape[0]
    if mode == "mean":
        return hidden.mean(0)
    if mode == "cls":
        return hidden[0]
    if mode == "lasttoken":
        return hidden[-1]
    if mode == "max":
        return hidden.max(0).values
    if mode == "mean_sqrt_len_tokens":
        return hidden.sum(0) / t**0.5
    if mode == "weightedmean":
        w = torch.arange(1, t + 1, dtype=hidden.dtype)[:, None]
        return (hidden * w).sum(0) / w.sum()
    raise AssertionError(mode)


def reference(bert, texts, pooling="mean", max_length=64, lower=False, normalize=False) -> np.ndarray:
    """Each text alone through the torch model, pooled by hand."""
    _, model, tokenizer = bert
    rows = []
    with torch.no_grad():
        for text in texts:
            tokens = tokenizer([text.lower() if lower else text], truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**tokens).last_hidden_state[0].double()
            modes = pooling if isinstance(pooling, tuple) else (pooling,)
            rows.append(torch.cat([pool_alone(hidden, m) for m in modes]))
    out = torch.stack(rows)
    if normalize:
        out = out / out.norm(dim=1, keepdim=True)
    return out.numpy()


def embed(tmp_path, spec, texts, *args, name="out.h5", quiet=True):
    src = write_lines(tmp_path / f"{name}.txt", texts)
    out = tmp_path / name
    result = ok(invoke("embed", src, "-e", spec, "--device", "cpu", *(["-q"] if quiet else []), *args, "-o", out))
    return load(out), result
