"""``relcli embed`` (issue 5): raw items -> an embedding file, with ids and labels carried along.

Rings:
- arrays: the two sample TorchScript digit encoders reproduce what plain ``torch.jit.load`` gives on
  ``sample_data/digits.npy`` (and the committed ``sample_data/mnist.h5`` / ``usps.safetensors``
  when they exist), in both output formats, with ``--normalize`` and at any batch size;
- tables and text lines through a deterministic fake text encoder (a hashed character-trigram
  bag, like llm's ``EmbedDemo``) registered through the ``relcli.encoders`` entry-point group,
  exactly the way a plugin package registers one;
- the ``hf:`` backend with a tiny randomly initialised BERT and a word-level tokenizer, both
  built offline in a temp folder (mask-aware pooling, batching, CLS, truncation);
- bad inputs: exit code, one ``Error:`` line naming the file and the problem, no traceback,
  and no output or temp file left behind.

Inputs and outputs live in ``tmp_path``; nothing is written into the repository.
"""

from __future__ import annotations

import importlib.metadata
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from relcli.api.embed import DEFAULT_TEXT_BATCH, TEXT_CHUNK_BATCHES
from relcli.encoders import ENTRY_POINT_GROUP

from .conftest import assert_clean_error, invoke, load, ok, snapshot

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "sample_data"
DIGITS = SAMPLE / "digits.npy"
DIGIT_LABELS = SAMPLE / "digits_labels.npy"
ENCODERS = {"mnist": SAMPLE / "encoders" / "mnist_cnn.pt", "usps": SAMPLE / "encoders" / "usps_cnn.pt"}
# The committed embeddings (made by `scripts/make_sample_data.py --embed`); they may not exist yet.
COMMITTED = {"mnist": SAMPLE / "mnist.h5", "usps": SAMPLE / "usps.safetensors"}
N_DIGITS, DIGIT_DIM = 1797, 128
# Conv kernels sum in a batch-size dependent order: ~1e-5 absolute on values up to ~10.
TOL = dict(rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------
# A deterministic fake text encoder, registered through the relcli.encoders entry points
# ---------------------------------------------------------------------------------------------
FAKE_DIM = 16


def ngram_bag(texts: list[str], dim: int = FAKE_DIM) -> torch.Tensor:
    """Hashed character-trigram counts (crc32, so the same in every process), plus a length cell."""
    out = torch.zeros(len(texts), dim, dtype=torch.float64)
    for row, text in enumerate(texts):
        padded = f"^{text}$"
        for i in range(len(padded) - 2):
            out[row, zlib.crc32(padded[i : i + 3].encode("utf-8")) % (dim - 1)] += 1.0
        out[row, dim - 1] = 1.0 + len(text)  # never a zero row
    return out


class NgramEncoder:
    """``ngram:MODE``: MODE '' is the plain bag; 'flaky' changes its width on the second batch,
    'flaky-after-N' once it has encoded N texts."""

    modality = "text"
    seen: list[list[str]] = []  # every batch it was given, across instances (reset per test)

    def __init__(self, mode: str):
        self.mode, self.calls, self.texts = mode, 0, 0

    def encode(self, texts):
        NgramEncoder.seen.append(list(texts))
        self.calls += 1
        done, self.texts = self.texts, self.texts + len(texts)
        if (self.mode == "flaky" and self.calls > 1) or (
            self.mode.startswith("flaky-after-") and done >= int(self.mode.rsplit("-", 1)[1])
        ):
            return ngram_bag(texts, FAKE_DIM + 3)
        return ngram_bag(texts)

    @classmethod
    def all_seen(cls) -> list[str]:
        return [t for batch in cls.seen for t in batch]


def ngram_factory(argument, options):
    return NgramEncoder(argument)


@pytest.fixture
def fake_encoder(monkeypatch):
    """Register ``ngram`` in the relcli.encoders group, as an installed plugin would be."""
    original = importlib.metadata.entry_points
    ours = importlib.metadata.EntryPoint(name="ngram", value=f"{__name__}:ngram_factory", group=ENTRY_POINT_GROUP)

    def entry_points(**params):
        if params.get("group") == ENTRY_POINT_GROUP:
            return importlib.metadata.EntryPoints([ours])
        return original(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    NgramEncoder.seen = []
    return NgramEncoder


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def fails(tmp_path, args, code: int, *fragments: str, path=None) -> str:
    """A run that must fail cleanly and leave tmp_path exactly as it was (no output, no temp)."""
    before = snapshot(tmp_path)
    result = invoke(*args)
    line = assert_clean_error(result, code, *fragments, path=path)
    assert result.stdout == ""
    assert snapshot(tmp_path) == before
    return line


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    return path


def longest_first(texts: list[str]) -> list[str]:
    """The order a chunk of texts reaches the encoder: by length, longest first, ties in input order."""
    return sorted(texts, key=lambda t: -len(t))


@pytest.fixture(scope="module")
def direct():
    """Each sample encoder applied with plain PyTorch to all the digits at once (the reference)."""
    digits = torch.from_numpy(np.load(DIGITS))
    out = {}
    with torch.no_grad():
        for name, path in ENCODERS.items():
            out[name] = torch.jit.load(str(path), map_location="cpu")(digits).numpy()
    return out


@pytest.fixture(scope="module")
def digit_labels():
    return np.load(DIGIT_LABELS)


# ---------------------------------------------------------------------------------------------
# Arrays: the sample TorchScript encoders
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".h5", ".safetensors"])
@pytest.mark.parametrize("name", ["mnist", "usps"])
def test_digits_reproduce_the_encoder(tmp_path, direct, digit_labels, name, suffix):
    out = tmp_path / f"{name}{suffix}"
    ok(invoke("embed", DIGITS, "--encoder", f"torchscript:{ENCODERS[name]}", "--labels", DIGIT_LABELS,
              "--device", "cpu", "-q", "-o", out))
    got = load(out)
    assert got.format == {".h5": "hdf5", ".safetensors": "safetensors"}[suffix]
    assert got.matrix.shape == (N_DIGITS, DIGIT_DIM) and got.dtype == "float32"
    assert got.kind == "embeddings" and got.attrs["encoder"] == f"torchscript:{ENCODERS[name]}"
    assert got.attrs["provenance"]["subcommand"] == "embed"
    assert got.ids == list(range(N_DIGITS))  # no ids in a .npy: the position is the id
    assert got.labels == digit_labels.tolist()
    np.testing.assert_allclose(got.matrix, direct[name], **TOL)
    # the sample encoders end in a ReLU and have no all-zero row (sample_data/README.md)
    assert got.matrix.min() >= 0 and (np.abs(got.matrix).sum(axis=1) > 0).all()

    committed = COMMITTED[name]
    if committed.exists():
        ref = load(committed)
        np.testing.assert_allclose(got.matrix, ref.matrix, **TOL)
        np.testing.assert_allclose(ref.matrix, direct[name], **TOL)
        assert ref.ids == list(range(N_DIGITS)) and ref.labels == digit_labels.tolist()


def test_the_two_encoders_give_different_spaces(direct):
    """Guards the reference itself: the fixture really ran two different encoders."""
    assert direct["mnist"].shape == direct["usps"].shape == (N_DIGITS, DIGIT_DIM)
    assert not np.allclose(direct["mnist"], direct["usps"], atol=1e-2)


def test_normalize_gives_unit_rows(tmp_path, direct):
    out = tmp_path / "unit.h5"
    ok(invoke("embed", DIGITS, "-e", f"torchscript:{ENCODERS['usps']}", "--normalize", "--device", "cpu", "-q", "-o", out))
    got = load(out).matrix
    np.testing.assert_allclose(np.linalg.norm(got.astype(np.float64), axis=1), 1.0, atol=1e-5)
    ref = direct["usps"] / np.linalg.norm(direct["usps"], axis=1, keepdims=True)
    np.testing.assert_allclose(got, ref, **TOL)
    assert load(out).attrs["provenance"]["parameters"]["normalize"] is True


def test_batch_size_does_not_change_the_output(tmp_path, direct):
    # 300 digits: 42 batches of 7 + 6, and 256 + 44 (ragged ends both ways); small batches are slow
    # on a busy 2-core machine, so not all 1797.
    src = _save(tmp_path / "d300.npy", np.load(DIGITS)[:300])
    small, large = tmp_path / "b7.safetensors", tmp_path / "b256.h5"
    spec = f"torchscript:{ENCODERS['mnist']}"
    ok(invoke("embed", src, "-e", spec, "--batch-size", 7, "--device", "cpu", "-q", "-o", small))
    ok(invoke("embed", src, "-e", spec, "--batch-size", 256, "--device", "cpu", "-q", "-o", large))
    a, b = load(small), load(large)
    assert a.matrix.shape == b.matrix.shape == (300, DIGIT_DIM)
    np.testing.assert_allclose(a.matrix, b.matrix, **TOL)
    np.testing.assert_allclose(a.matrix, direct["mnist"][:300], **TOL)
    assert a.ids == b.ids == list(range(300))


def test_npz_ids_and_labels_travel_with_the_rows(tmp_path, direct):
    digits = np.load(DIGITS)[:40]
    ids = np.array([f"digit-{i:03d}" for i in range(40)])
    labels = np.load(DIGIT_LABELS)[:40]
    src = tmp_path / "digits.npz"
    np.savez(src, images=digits, ids=ids, labels=labels)
    out = tmp_path / "z.h5"
    ok(invoke("embed", src, "-e", f"torchscript:{ENCODERS['usps']}", "--dtype", "float64", "--device", "cpu", "-o", out))
    got = load(out)
    assert got.ids == ids.tolist() and got.labels == labels.tolist() and got.dtype == "float64"
    np.testing.assert_allclose(got.matrix, direct["usps"][:40], **TOL)


# ---------------------------------------------------------------------------------------------
# Tables and text lines (fake plugin encoder)
# ---------------------------------------------------------------------------------------------
TEXTS = ["the cat sat on the mat", "a dog, barking", "naïve café — ünïcode", "x", "tab\tinside? no: comma, inside"]
DOC_IDS = ["doc-b", "doc-a", "doc-é", "doc-10", "doc-2"]
SENTIMENT = ["pos", "neg", "neutral", "pos", "neg"]


def write_table(path: Path, columns: dict[str, list]) -> Path:
    import pandas as pd

    frame = pd.DataFrame(columns)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".tsv":
        frame.to_csv(path, sep="\t", index=False)
    else:
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    return path


@pytest.mark.parametrize("suffix, out_suffix", [(".csv", ".h5"), (".tsv", ".safetensors"), (".jsonl", ".h5"), (".jsonl", ".safetensors")])
def test_table_with_string_ids_and_labels(tmp_path, fake_encoder, suffix, out_suffix):
    texts = [t.replace("\t", " ") for t in TEXTS] if suffix == ".tsv" else TEXTS
    src = write_table(tmp_path / f"docs{suffix}", {"doc_id": DOC_IDS, "body": texts, "sentiment": SENTIMENT})
    out = tmp_path / f"docs{out_suffix}"
    ok(invoke("embed", src, "--encoder", "ngram:", "--text-column", "body", "--id-column", "doc_id",
              "--label-column", "sentiment", "--batch-size", 2, "-o", out))
    got = load(out)
    assert got.ids == DOC_IDS  # in the file's order, not sorted
    assert got.labels == SENTIMENT
    assert fake_encoder.all_seen() == longest_first(texts)  # length-sorted batches ...
    assert [len(b) for b in fake_encoder.seen] == [2, 2, 1]
    # ... and the rows back in the input's order
    np.testing.assert_allclose(got.matrix, ngram_bag(texts).float().numpy(), rtol=0, atol=0)
    assert got.attrs["encoder"] == "ngram:"


def test_table_default_text_column_and_integer_ids(tmp_path, fake_encoder):
    src = write_table(tmp_path / "t.csv", {"text": TEXTS, "n": [10, 3, 7, 1, 99], "y": [1, 0, 1, 0, 2]})
    out = tmp_path / "t.safetensors"
    ok(invoke("embed", src, "-e", "ngram:", "--id-column", "n", "--label-column", "y", "-o", out))
    got = load(out)
    assert got.ids == [10, 3, 7, 1, 99] and got.labels == [1, 0, 1, 0, 2]
    np.testing.assert_allclose(got.matrix, ngram_bag(TEXTS).float().numpy(), rtol=0, atol=0)


def test_table_without_id_column_numbers_the_rows(tmp_path, fake_encoder):
    src = write_table(tmp_path / "t.jsonl", {"text": TEXTS, "other": list(range(5))})
    out = tmp_path / "t.h5"
    ok(invoke("embed", src, "-e", "ngram:", "--normalize", "-o", out))
    got = load(out)
    assert got.ids == list(range(5)) and got.labels is None
    ref = ngram_bag(TEXTS)
    np.testing.assert_allclose(got.matrix, (ref / ref.norm(dim=1, keepdim=True)).float().numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "suffix",
    [
        ".csv",
        ".jsonl",
    ],
)
def test_table_values_are_taken_verbatim(tmp_path, fake_encoder, suffix):
    """Texts, string ids and string labels that look like numbers or NA reach the file unchanged."""
    texts = ["NA", "1.50", "None", "007", "null"]
    ids = ["007", "7", "010", "10", "3"]  # distinct as strings, not as numbers
    labels = ["1", "01", "2", "3", "4"]
    src = tmp_path / f"v{suffix}"
    if suffix == ".csv":
        rows = ["id,text,label"] + [f"{i},{t},{l}" for i, t, l in zip(ids, texts, labels)]
        write_lines(src, rows)
    else:
        write_lines(src, [json.dumps({"id": i, "text": t, "label": l}) for i, t, l in zip(ids, texts, labels)])
    out = tmp_path / "v.safetensors"
    ok(invoke("embed", src, "-e", "ngram:", "--id-column", "id", "--label-column", "label", "-o", out))
    got = load(out)
    assert sorted(fake_encoder.all_seen()) == sorted(texts)
    assert got.ids == ids and got.labels == labels
    np.testing.assert_allclose(got.matrix, ngram_bag(texts).float().numpy(), rtol=0, atol=0)


def test_txt_one_item_per_line(tmp_path, fake_encoder):
    lines = ["first line", "  second, with spaces  ", "3", "ünïcode — ok", "last"]
    src = tmp_path / "lines.txt"
    src.write_bytes(("\r\n".join(lines[:2]) + "\n" + "\n".join(lines[2:]) + "\n").encode("utf-8"))  # CRLF and LF
    out = tmp_path / "lines.h5"
    ok(invoke("embed", src, "-e", "ngram:", "--labels", _save(tmp_path / "l.npy", np.arange(5) % 2), "-o", out))
    got = load(out)
    assert sorted(fake_encoder.all_seen()) == sorted(lines)
    assert got.ids == list(range(5)) and got.labels == [0, 1, 0, 1, 0]
    np.testing.assert_allclose(got.matrix, ngram_bag(lines).float().numpy(), rtol=0, atol=0)


def test_txt_lines_are_split_on_newlines_only(tmp_path, fake_encoder):
    lines = ["page one\x0cpage two", "a\u2028b", "c\x85d", "plain"]
    src = tmp_path / "odd.txt"
    src.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))
    out = tmp_path / "odd.h5"
    ok(invoke("embed", src, "-e", "ngram:", "-o", out))
    assert sorted(fake_encoder.all_seen()) == sorted(lines)
    np.testing.assert_allclose(load(out).matrix, ngram_bag(lines).float().numpy(), rtol=0, atol=0)


def _save(path: Path, array) -> Path:
    np.save(path, np.asarray(array))
    return path


# ---------------------------------------------------------------------------------------------
# hf: a tiny random BERT and a word-level tokenizer, built offline
# ---------------------------------------------------------------------------------------------
HF_DIM = 32
WORDS = "the a cat dog sat on mat ran fast slow big small red blue green one two three four five and".split()


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = {token: i for i, token in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        model_max_length=64,
    )
    config = BertConfig(vocab_size=len(vocab), hidden_size=HF_DIM, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=37, max_position_embeddings=64, pad_token_id=0)
    with torch.random.fork_rng():  # random weights, without touching the session's RNG
        torch.manual_seed(0)
        model = BertModel(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model, tokenizer


def hf_reference(tiny_bert, texts: list[str], pooling: str = "mean", max_length: int = 256) -> np.ndarray:
    """Each text alone (no padding at all) through the model, pooled by hand."""
    _, model, tokenizer = tiny_bert
    rows = []
    with torch.no_grad():
        for text in texts:
            tokens = tokenizer([text], truncation=True, max_length=max_length, return_tensors="pt")
            hidden = model(**tokens).last_hidden_state[0]
            rows.append(hidden.mean(dim=0) if pooling == "mean" else hidden[0])
    return torch.stack(rows).numpy()


def hf_embed(tiny_bert, tmp_path, texts, *args, name="out.h5"):
    src = write_lines(tmp_path / f"{name}.txt", texts)
    out = tmp_path / name
    ok(invoke("embed", src, "--encoder", f"hf:{tiny_bert[0]}", "--device", "cpu", *args, "-o", out))
    return load(out)


SHORT = "the cat sat"
LONG = "the big red dog ran fast and the small blue cat sat on the green mat one two three four five"
HF_TEXTS = [SHORT, LONG, "a dog", "green mat and red cat", "unknownword the", "five four three two one"]


def test_hf_shape_ids_and_mean_pooling(tmp_path, tiny_bert):
    got = hf_embed(tiny_bert, tmp_path, HF_TEXTS)
    assert got.matrix.shape == (len(HF_TEXTS), HF_DIM) and got.dtype == "float32"
    assert got.ids == list(range(len(HF_TEXTS)))
    np.testing.assert_allclose(got.matrix, hf_reference(tiny_bert, HF_TEXTS), atol=1e-5)


def test_hf_padding_does_not_change_a_row(tmp_path, tiny_bert):
    alone = hf_embed(tiny_bert, tmp_path, [SHORT], name="alone.h5").matrix
    padded = hf_embed(tiny_bert, tmp_path, [SHORT, LONG], name="padded.h5").matrix  # SHORT padded to LONG's length
    np.testing.assert_allclose(padded[0], alone[0], atol=1e-5)
    assert not np.allclose(padded[0], padded[1], atol=1e-3)


def test_hf_batch_size_does_not_change_the_output(tmp_path, tiny_bert):
    one = hf_embed(tiny_bert, tmp_path, HF_TEXTS, "--batch-size", 1, name="b1.h5").matrix
    two = hf_embed(tiny_bert, tmp_path, HF_TEXTS, "--batch-size", 4, name="b4.safetensors").matrix
    many = hf_embed(tiny_bert, tmp_path, HF_TEXTS, name="b256.h5").matrix
    np.testing.assert_allclose(one, many, atol=1e-5)
    np.testing.assert_allclose(two, many, atol=1e-5)


def test_hf_cls_pooling(tmp_path, tiny_bert):
    mean = hf_embed(tiny_bert, tmp_path, HF_TEXTS, name="mean.h5")
    cls = hf_embed(tiny_bert, tmp_path, HF_TEXTS, "--pooling", "cls", name="cls.h5")
    assert cls.matrix.shape == mean.matrix.shape
    assert np.abs(cls.matrix - mean.matrix).max(axis=1).min() > 1e-3  # every row differs
    np.testing.assert_allclose(cls.matrix, hf_reference(tiny_bert, HF_TEXTS, "cls"), atol=1e-5)
    assert cls.attrs["provenance"]["parameters"]["pooling"] == "cls"


def test_hf_max_length_truncates(tmp_path, tiny_bert):
    # 4 tokens = [CLS] w1 w2 [SEP]: every text below starts with "the cat"
    texts = ["the cat sat on the mat", "the cat ran fast", "the cat"]
    cut = hf_embed(tiny_bert, tmp_path, texts, "--max-length", 4, name="cut.h5").matrix
    full = hf_embed(tiny_bert, tmp_path, texts, name="full.h5").matrix
    np.testing.assert_allclose(cut, np.repeat(full[2:3], 3, axis=0), atol=1e-5)
    assert not np.allclose(full[0], full[2], atol=1e-3)  # without truncation they differ
    np.testing.assert_allclose(cut, hf_reference(tiny_bert, texts, max_length=4), atol=1e-5)


def test_hf_quiet_is_silent(tmp_path, tiny_bert):
    src = write_lines(tmp_path / "q.txt", HF_TEXTS)
    result = ok(invoke("embed", src, "-e", f"hf:{tiny_bert[0]}", "--device", "cpu", "-q", "-o", tmp_path / "q.h5"))
    assert result.stderr == ""


def test_hf_unknown_pooling_is_a_usage_error(tmp_path, tiny_bert, monkeypatch):
    import transformers.utils.logging

    monkeypatch.setattr(transformers.utils.logging, "_tqdm_active", False)  # the bar is test_hf_quiet_is_silent's
    src = write_lines(tmp_path / "p.txt", HF_TEXTS)
    fails(tmp_path, ["embed", src, "-e", f"hf:{tiny_bert[0]}", "--pooling", "median", "-o", tmp_path / "p.h5"], 2,
          "--pooling", "'median'", "choose one of mean, cls, max")


# ---------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------
class Return3D(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 2, -1)


class Return1D(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1).sum(dim=1)


@pytest.fixture
def small_digits(tmp_path) -> Path:
    return _save(tmp_path / "d.npy", np.load(DIGITS)[:20])


@pytest.fixture
def table(tmp_path) -> Path:
    return write_table(tmp_path / "docs.csv", {"id": DOC_IDS, "text": TEXTS, "label": SENTIMENT})


@pytest.mark.parametrize("option", ["--text-column", "--id-column", "--label-column"])
def test_missing_column(tmp_path, fake_encoder, table, option):
    fails(tmp_path, ["embed", table, "-e", "ngram:", option, "nope", "-o", tmp_path / "o.h5"], 1,
          "'nope'", "columns: id, text, label", path=table)


def test_missing_default_text_column(tmp_path, fake_encoder):
    src = write_table(tmp_path / "b.tsv", {"body": TEXTS})
    fails(tmp_path, ["embed", src, "-e", "ngram:", "-o", tmp_path / "o.h5"], 1, "'text'", "--text-column", path=src)


def message_after(line: str, path: Path) -> str:
    """The problem part of 'Error: PATH: problem' (the temp path itself may contain any word)."""
    head = f"Error: {path}: "
    assert line.startswith(head), line
    return line[len(head):]


@pytest.mark.parametrize("name, content", [
    ("lines.txt", b""),
    ("header.csv", b"id,text\n"),
    ("header.tsv", b"id\ttext\n"),
    pytest.param("rows.jsonl", b""),
])
def test_empty_input(tmp_path, fake_encoder, name, content):
    src = tmp_path / name
    src.write_bytes(content)
    line = fails(tmp_path, ["embed", src, "-e", "ngram:", "-o", tmp_path / "o.safetensors"], 1, path=src)
    assert message_after(line, src) == "is empty: nothing to embed"
    assert fake_encoder.seen == []


def test_zero_byte_csv(tmp_path, fake_encoder):
    src = tmp_path / "zero.csv"
    src.write_bytes(b"")
    line = fails(tmp_path, ["embed", src, "-e", "ngram:", "-o", tmp_path / "o.h5"], 1, path=src)
    problem = message_after(line, src)
    assert "empty" in problem or problem.startswith("cannot read the table"), problem


def test_missing_input(tmp_path, fake_encoder):
    fails(tmp_path, ["embed", tmp_path / "nope.txt", "-e", "ngram:", "-o", tmp_path / "o.h5"], 1,
          "no such file", path=tmp_path / "nope.txt")


def test_encoder_file_missing(tmp_path, small_digits):
    missing = tmp_path / "nope.pt"
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{missing}", "-o", tmp_path / "o.h5"], 1,
          "not found", path=missing)


def test_encoder_is_a_folder(tmp_path, small_digits):
    folder = tmp_path / "enc"
    folder.mkdir()
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{folder}", "-o", tmp_path / "o.h5"], 1,
          "must be a file", path=folder)


@pytest.mark.parametrize("kind", ["text", "state_dict", "zero_bytes"])
def test_encoder_file_of_the_wrong_kind(tmp_path, small_digits, kind):
    wrong = tmp_path / "wrong.pt"
    if kind == "text":
        wrong.write_text("this is not a model\n")
    elif kind == "state_dict":
        torch.save({"weight": torch.ones(2, 2)}, wrong)  # a checkpoint, not a scripted module
    else:
        wrong.write_bytes(b"")
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{wrong}", "-o", tmp_path / "o.h5"], 1,
          "is not a TorchScript module", path=wrong)


@pytest.mark.parametrize("module, shape", [(Return3D, "(20, 2, 32)"), (Return1D, "(20,)")])
def test_encoder_output_not_2d(tmp_path, small_digits, module, shape):
    scripted = tmp_path / "bad_out.pt"
    torch.jit.script(module()).save(str(scripted))
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{scripted}", "-o", tmp_path / "o.h5"], 1,
          f"shape {shape}", "expected (rows, dims)", path=scripted)


def test_encoder_rejecting_the_input_fails_cleanly(tmp_path):
    """The sample encoders raise ValueError (torch.jit.Error once scripted) on shapes other than digits."""
    wrong = _save(tmp_path / "wrong_shape.npy", np.zeros((5, 4, 4), dtype=np.float32))
    fails(tmp_path, ["embed", wrong, "-e", f"torchscript:{ENCODERS['mnist']}", "-o", tmp_path / "o.h5"], 1,
          "encoder failed on a batch of shape (5, 4, 4)", path=ENCODERS["mnist"])


def test_encoder_rejecting_the_input_is_a_clean_error(tmp_path):
    wrong = _save(tmp_path / "wrong_shape.npy", np.zeros((5, 4, 4), dtype=np.float32))  # not 8x8 digits
    fails(tmp_path, ["embed", wrong, "-e", f"torchscript:{ENCODERS['mnist']}", "-o", tmp_path / "o.h5"], 1,
          "(5, 4, 4)", "expected digits of shape", path=ENCODERS["mnist"])


class MatmulMismatch(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1) @ torch.ones(3, 4)


def test_encoder_raising_runtime_error_is_a_clean_error(tmp_path, small_digits):
    scripted = tmp_path / "matmul.pt"
    torch.jit.script(MatmulMismatch()).save(str(scripted))
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{scripted}", "-o", tmp_path / "o.h5"], 1,
          "encoder failed on a batch of shape (20, 1, 8, 8)", path=scripted)


def test_encoder_runtime_error_names_the_cause(tmp_path, small_digits):
    scripted = tmp_path / "matmul.pt"
    torch.jit.script(MatmulMismatch()).save(str(scripted))
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{scripted}", "-o", tmp_path / "o.h5"], 1,
          "cannot be multiplied", path=scripted)


def test_tensor_encoder_on_text_input(tmp_path):
    src = write_lines(tmp_path / "t.txt", ["a", "b"])
    fails(tmp_path, ["embed", src, "-e", f"torchscript:{ENCODERS['mnist']}", "-o", tmp_path / "o.h5"], 1,
          "takes tensor input", "holds text items", path=src)


def test_text_encoder_on_array_input(tmp_path, fake_encoder, small_digits):
    fails(tmp_path, ["embed", small_digits, "-e", "ngram:", "-o", tmp_path / "o.h5"], 1,
          "takes text input", "holds tensor items", path=small_digits)
    assert fake_encoder.seen == []


@pytest.mark.parametrize("spec", ["nope:model.bin", "model.pt", "Torchscript:x.pt"])
def test_unknown_encoder_backend(tmp_path, fake_encoder, small_digits, spec):
    line = fails(tmp_path, ["embed", small_digits, "-e", spec, "-o", tmp_path / "o.h5"], 2, "unknown encoder", spec)
    assert "torchscript" in line and "ngram" in line  # lists what is known, plugins included


@pytest.mark.parametrize("spec", ["torchscript:", "hf", "onnx:"])
def test_encoder_without_a_path(tmp_path, small_digits, spec):
    fails(tmp_path, ["embed", small_digits, "-e", spec, "-o", tmp_path / "o.h5"], 2, "expected", "PATH")


def test_onnx_without_onnxruntime(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    model, tok = tmp_path / "model.onnx", tmp_path / "tok.json"
    model.write_bytes(b"\x08\x07")
    tok.write_text("{}")
    src = write_lines(tmp_path / "t.txt", ["a", "b"])
    fails(tmp_path, ["embed", src, "-e", f"onnx:{model}", "--tokenizer", tok, "-o", tmp_path / "o.h5"], 2,
          "onnxruntime", "pip install 'relcli[onnx]'")


def test_onnx_without_tokenizer(tmp_path):
    model = tmp_path / "model.onnx"
    model.write_bytes(b"\x08\x07")
    src = write_lines(tmp_path / "t.txt", ["a"])
    fails(tmp_path, ["embed", src, "-e", f"onnx:{model}", "-o", tmp_path / "o.h5"], 2, "--tokenizer")


def test_sentence_transformers_missing_extra_names_its_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    folder = tmp_path / "st-model"
    folder.mkdir()
    src = write_lines(tmp_path / "t.txt", ["a"])
    fails(tmp_path, ["embed", src, "-e", f"sentence-transformers:{folder}", "-o", tmp_path / "o.h5"], 2,
          "pip install 'relcli[sentence-transformers]'")


def test_labels_of_the_wrong_length(tmp_path, small_digits):
    labels = _save(tmp_path / "labels.npy", np.arange(19))
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{ENCODERS['usps']}", "--labels", labels,
                     "-o", tmp_path / "o.h5"], 1, "19 labels", "20 items")


def test_labels_of_the_wrong_length_name_the_labels_file(tmp_path, small_digits):
    labels = _save(tmp_path / "labels.npy", np.arange(19))
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{ENCODERS['usps']}", "--labels", labels,
                     "-o", tmp_path / "o.h5"], 1, "19 labels", path=labels)


def test_labels_not_1d(tmp_path, small_digits):
    labels = _save(tmp_path / "labels.npy", np.zeros((20, 2), dtype=np.int64))
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{ENCODERS['usps']}", "--labels", labels,
                     "-o", tmp_path / "o.h5"], 1, "1-D", path=labels)


def test_bad_output_extension(tmp_path, small_digits):
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{ENCODERS['usps']}", "-o", tmp_path / "o.npy"], 2,
          "unknown output extension")


def test_failure_after_writing_began_leaves_no_file(tmp_path, fake_encoder):
    """The encoder changes width in the 2nd chunk of rows (the 1st is written by then): the
    half-written temp file must go."""
    src = write_lines(tmp_path / "t.txt", [f"item {i}" for i in range(40)])
    chunk = 2 * TEXT_CHUNK_BATCHES
    fails(tmp_path, ["embed", src, "-e", f"ngram:flaky-after-{chunk}", "--batch-size", 2, "-o", tmp_path / "o.h5"], 1,
          f"{FAKE_DIM + 3} dims", f"{FAKE_DIM} before")
    assert len(fake_encoder.seen) == chunk // 2 + 1


def test_failure_inside_the_first_chunk(tmp_path, fake_encoder):
    src = write_lines(tmp_path / "t.txt", ["one", "two", "three", "four", "five"])
    fails(tmp_path, ["embed", src, "-e", "ngram:flaky", "--batch-size", 2, "-o", tmp_path / "o.h5"], 1,
          f"{FAKE_DIM + 3} dims", f"{FAKE_DIM} before")
    assert len(fake_encoder.seen) == 2


def test_failure_keeps_an_existing_output(tmp_path, fake_encoder):
    src = write_lines(tmp_path / "t.txt", ["one", "two", "three"])
    out = tmp_path / "o.safetensors"
    ok(invoke("embed", src, "-e", "ngram:", "-o", out))
    fails(tmp_path, ["embed", src, "-e", "ngram:flaky", "--batch-size", 1, "-o", out], 1, "dims")
    np.testing.assert_allclose(load(out).matrix, ngram_bag(["one", "two", "three"]).float().numpy())


# ---------------------------------------------------------------------------------------------
# Inputs (issue 11): id/label columns by name, empty texts, duplicate ids, stdin, --prefix
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".jsonl"])
def test_id_and_label_columns_are_used_by_name(tmp_path, fake_encoder, suffix):
    src = write_table(tmp_path / f"t{suffix}", {"label": SENTIMENT, "text": TEXTS if suffix != ".tsv" else
                                                [t.replace("\t", " ") for t in TEXTS], "id": DOC_IDS})
    out = tmp_path / "t.h5"
    ok(invoke("embed", src, "-e", "ngram:", "-o", out))
    got = load(out)
    assert got.ids == DOC_IDS and got.labels == SENTIMENT


def test_named_columns_win_over_id_and_label(tmp_path, fake_encoder):
    src = write_table(tmp_path / "t.jsonl", {"text": TEXTS, "id": DOC_IDS, "key": [5, 4, 3, 2, 1],
                                             "label": SENTIMENT, "y": [1, 0, 1, 0, 2]})
    out = tmp_path / "t.safetensors"
    ok(invoke("embed", src, "-e", "ngram:", "--id-column", "key", "--label-column", "y", "-o", out))
    got = load(out)
    assert got.ids == [5, 4, 3, 2, 1] and got.labels == [1, 0, 1, 0, 2]


def test_empty_column_names_turn_the_defaults_off(tmp_path, fake_encoder):
    src = write_table(tmp_path / "t.csv", {"text": TEXTS, "id": ["x", "x", "y", "z", "w"], "label": SENTIMENT})
    out = tmp_path / "t.h5"
    ok(invoke("embed", src, "-e", "ngram:", "--id-column", "", "--label-column", "", "-o", out))
    got = load(out)
    assert got.ids == list(range(5)) and got.labels is None


def test_integer_id_column_by_name(tmp_path, fake_encoder):
    src = write_table(tmp_path / "t.jsonl", {"id": [10, 3, 7, 1, 99], "text": TEXTS})
    ok(invoke("embed", src, "-e", "ngram:", "-o", tmp_path / "t.h5"))
    assert load(tmp_path / "t.h5").ids == [10, 3, 7, 1, 99]


def test_null_text_in_jsonl_names_the_row(tmp_path, fake_encoder):
    src = tmp_path / "n.jsonl"
    write_lines(src, [json.dumps({"id": i, "text": t}) for i, t in
                      [("a", "fine"), ("b", None), ("c", "also fine"), ("d", "  "), ("e", "")]])
    line = fails(tmp_path, ["embed", src, "-e", "ngram:", "-o", tmp_path / "o.h5"], 1, path=src)
    assert message_after(line, src) == ("empty text (column 'text') in 3 row(s) (ids 'b', 'd', 'e'); "
                                        "use --skip-empty to leave them out")
    assert fake_encoder.seen == []


def test_empty_csv_cell_and_blank_line_name_the_rows(tmp_path, fake_encoder):
    csv = tmp_path / "e.csv"
    write_lines(csv, ["text,label", "one,a", ",b", "three,c"])
    line = fails(tmp_path, ["embed", csv, "-e", "ngram:", "-o", tmp_path / "o.h5"], 1, path=csv)
    assert "in 1 row(s) (rows 1)" in line and "--skip-empty" in line
    txt = write_lines(tmp_path / "e.txt", ["one", "", "three", " \t", "five"])
    line = fails(tmp_path, ["embed", txt, "-e", "ngram:", "-o", tmp_path / "o.h5"], 1, path=txt)
    assert "empty text in 2 row(s) (rows 1, 3)" in line


def test_skip_empty_leaves_the_rows_out(tmp_path, fake_encoder):
    src = tmp_path / "n.jsonl"
    rows = [("a", "fine", "x"), ("b", None, "y"), ("c", "also fine", "z"), ("d", "", "w")]
    write_lines(src, [json.dumps({"id": i, "text": t, "label": l}) for i, t, l in rows])
    out = tmp_path / "n.h5"
    result = ok(invoke("embed", src, "-e", "ngram:", "--skip-empty", "-o", out))
    assert "skipped 2 row(s) (ids 'b', 'd') with an empty text" in result.stderr
    got = load(out)
    assert got.ids == ["a", "c"] and got.labels == ["x", "z"]
    np.testing.assert_allclose(got.matrix, ngram_bag(["fine", "also fine"]).float().numpy(), rtol=0, atol=0)
    assert got.attrs["skipped_empty"] == 2 and got.attrs["provenance"]["parameters"]["skip_empty"] is True
    # -q: the warning goes too
    assert ok(invoke("embed", src, "-e", "ngram:", "--skip-empty", "-q", "-o", out)).stderr == ""


def test_skip_empty_keeps_row_numbers_as_ids(tmp_path, fake_encoder):
    txt = write_lines(tmp_path / "e.txt", ["one", "", "three"])
    out = tmp_path / "e.h5"
    ok(invoke("embed", txt, "-e", "ngram:", "--skip-empty", "-o", out))
    assert load(out).ids == [0, 2]  # the input's row numbers, not renumbered


def test_skip_empty_with_nothing_left(tmp_path, fake_encoder):
    txt = write_lines(tmp_path / "e.txt", ["", " "])
    fails(tmp_path, ["embed", txt, "-e", "ngram:", "--skip-empty", "-o", tmp_path / "o.h5"], 1,
          "no text to embed", path=txt)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_duplicate_ids_name_the_input_and_both_rows(tmp_path, fake_encoder, suffix):
    src = write_table(tmp_path / f"d{suffix}", {"id": ["a", "b", "c", "b"], "text": ["w", "x", "y", "z"]})
    out = tmp_path / "out.h5"
    line = fails(tmp_path, ["embed", src, "-e", "ngram:", "-o", out], 1, "duplicate id 'b'", "rows 1 and 3",
                 "column 'id'", path=src)
    assert str(out) not in line
    assert fake_encoder.seen == []


def _stdin(args, data: str | bytes):
    from .conftest import runner
    from relcli.cli.app import app

    return runner.invoke(app, [str(a) for a in args], input=data)


def test_stdin_lines(tmp_path, fake_encoder):
    out = tmp_path / "s.h5"
    lines = ["first", "second one", "third"]
    result = ok(_stdin(["embed", "-", "-e", "ngram:", "-o", out], "\n".join(lines) + "\n"))
    assert "wrote 3 x" in result.stderr
    got = load(out)
    assert got.ids == [0, 1, 2]
    np.testing.assert_allclose(got.matrix, ngram_bag(lines).float().numpy(), rtol=0, atol=0)
    parameters = got.attrs["provenance"]["parameters"]
    assert parameters["input"] == "-"
    assert parameters["stdin_sha256"] == __import__("hashlib").sha256(("\n".join(lines) + "\n").encode()).hexdigest()
    assert got.attrs["provenance"]["inputs"] == []


def test_stdin_jsonl_is_detected(tmp_path, fake_encoder):
    out = tmp_path / "s.safetensors"
    data = "\n".join(json.dumps({"id": i, "text": t, "label": l}) for i, t, l in zip(DOC_IDS, TEXTS, SENTIMENT)) + "\n"
    ok(_stdin(["embed", "-", "-e", "ngram:", "-o", out], data))
    got = load(out)
    assert got.ids == DOC_IDS and got.labels == SENTIMENT
    np.testing.assert_allclose(got.matrix, ngram_bag(TEXTS).float().numpy(), rtol=0, atol=0)


def test_stdin_format_option(tmp_path, fake_encoder):
    line = json.dumps({"text": "a json line"})
    ok(_stdin(["embed", "-", "-e", "ngram:", "--format", "txt", "-o", tmp_path / "a.h5"], line + "\n"))
    assert fake_encoder.all_seen() == [line]  # taken as one text line, braces and all
    fake_encoder.seen.clear()
    ok(_stdin(["embed", "-", "-e", "ngram:", "--format", "csv", "-o", tmp_path / "b.h5"], "id,text\nk1,hello\nk2,world\n"))
    assert load(tmp_path / "b.h5").ids == ["k1", "k2"] and sorted(fake_encoder.all_seen()) == ["hello", "world"]


def test_format_option_overrides_the_extension(tmp_path, fake_encoder):
    src = tmp_path / "notes.log"
    write_lines(src, ["alpha", "beta"])
    fails(tmp_path, ["embed", src, "-e", "ngram:", "-o", tmp_path / "o.h5"], 2, "unknown input type '.log'", "--format")
    ok(invoke("embed", src, "-e", "ngram:", "--format", "txt", "-o", tmp_path / "o.h5"))
    assert load(tmp_path / "o.h5").matrix.shape == (2, FAKE_DIM)


def test_stdin_errors_name_stdin(tmp_path, fake_encoder):
    result = _stdin(["embed", "-", "-e", "ngram:", "-o", tmp_path / "o.h5"], '{"text": "ok"}\n{"text": null}\n')
    assert_clean_error(result, 1, "<stdin>", "empty text", "rows 1")
    assert list(tmp_path.iterdir()) == []
    result = _stdin(["embed", "-", "-e", "ngram:", "-o", tmp_path / "o.h5"], b"caf\xe9\n")
    assert_clean_error(result, 1, "<stdin>", "not UTF-8")


def test_non_utf8_text_file(tmp_path, fake_encoder):
    src = tmp_path / "latin1.txt"
    src.write_bytes("café\n".encode("latin-1"))
    fails(tmp_path, ["embed", src, "-e", "ngram:", "-o", tmp_path / "o.h5"], 1, "is not UTF-8 text", path=src)


def test_prefix_is_put_before_every_text(tmp_path, fake_encoder):
    src = write_lines(tmp_path / "p.txt", ["how much protein", "a doc"])
    out = tmp_path / "p.h5"
    ok(invoke("embed", src, "-e", "ngram:", "--prefix", "query: ", "-o", out))
    assert sorted(fake_encoder.all_seen()) == ["query: a doc", "query: how much protein"]
    got = load(out)
    np.testing.assert_allclose(got.matrix, ngram_bag(["query: how much protein", "query: a doc"]).float().numpy(), atol=0)
    assert got.attrs["provenance"]["parameters"]["prefix"] == "query: "


def test_prefix_on_arrays_is_a_usage_error(tmp_path, small_digits):
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{ENCODERS['usps']}", "--prefix", "query: ",
                     "-o", tmp_path / "o.h5"], 2, "--prefix applies to text items")


@pytest.mark.parametrize("option, value", [("--pooling", "mean"), ("--max-length", "8"), ("--output-name", "x")])
def test_text_options_on_a_torchscript_encoder_are_refused(tmp_path, small_digits, option, value):
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{ENCODERS['usps']}", option, value,
                     "-o", tmp_path / "o.h5"], 2, option, "does not apply to torchscript")


def test_length_sorted_batches_keep_the_input_order(tmp_path, fake_encoder):
    """70 texts of shuffled lengths, batch 4: chunks of 64 rows, each sorted longest first, written in order."""
    rng = np.random.default_rng(0)
    texts = [f"{i} " + "w" * int(n) for i, n in enumerate(rng.integers(1, 60, size=70))]
    src = write_lines(tmp_path / "s.txt", texts)
    out = tmp_path / "s.h5"
    ok(invoke("embed", src, "-e", "ngram:", "--batch-size", 4, "-o", out))
    chunk = 4 * TEXT_CHUNK_BATCHES
    assert fake_encoder.all_seen() == longest_first(texts[:chunk]) + longest_first(texts[chunk:])
    assert all(len(b) == 4 for b in fake_encoder.seen[:-1]) and len(fake_encoder.seen[-1]) == 70 - 68
    got = load(out)
    assert got.ids == list(range(70))
    np.testing.assert_allclose(got.matrix, ngram_bag(texts).float().numpy(), rtol=0, atol=0)


def test_default_text_batch(tmp_path, fake_encoder):
    src = write_lines(tmp_path / "d.txt", [f"text number {i}" for i in range(DEFAULT_TEXT_BATCH + 5)])
    ok(invoke("embed", src, "-e", "ngram:", "-o", tmp_path / "d.h5"))
    assert [len(b) for b in fake_encoder.seen] == [DEFAULT_TEXT_BATCH, 5]
    assert load(tmp_path / "d.h5").attrs["provenance"]["parameters"]["batch_size"] == DEFAULT_TEXT_BATCH


def test_bad_format_value(tmp_path, fake_encoder):
    src = write_lines(tmp_path / "d.txt", ["a"])
    result = invoke("embed", src, "-e", "ngram:", "--format", "xml", "-o", tmp_path / "d.h5")
    assert_clean_error(result, 2, "--format")
