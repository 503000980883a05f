"""``relcli embed`` (issue 5) with real models: the sample TorchScript digit encoders and the
``hf:`` backend, and the errors of encoders themselves.

Rings:
- arrays: the two sample TorchScript digit encoders reproduce what plain ``torch.jit.load`` gives on
  ``sample_data/digits.npy`` (and the committed ``sample_data/mnist.h5`` / ``usps.safetensors``
  when they exist), in both output formats, with ``--normalize`` and at any batch size;
- the ``hf:`` backend with a tiny randomly initialised BERT and a word-level tokenizer, both
  built offline in a temp folder (mask-aware pooling, batching, CLS, truncation);
- bad encoders: exit code, one ``Error:`` line naming the file and the problem, no traceback,
  and no output or temp file left behind.

Inputs and outputs live in ``tmp_path``; nothing is written into the repository.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from ._embed_helpers import (
    COMMITTED,
    DIGIT_DIM,
    DIGIT_LABELS,
    DIGITS,
    ENCODERS,
    N_DIGITS,
    TOL,
    _save,
    fails,
    fake_encoder,  # noqa: F401 (a fixture)
    small_digits,  # noqa: F401 (a fixture)
    write_lines,
)
from .conftest import invoke, load, ok


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
# Bad encoders
# ---------------------------------------------------------------------------------------------
class Return3D(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], 2, -1)


class Return1D(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1).sum(dim=1)


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


@pytest.mark.parametrize("option, value", [("--pooling", "mean"), ("--max-length", "8"), ("--output-name", "x")])
def test_text_options_on_a_torchscript_encoder_are_refused(tmp_path, small_digits, option, value):
    fails(tmp_path, ["embed", small_digits, "-e", f"torchscript:{ENCODERS['usps']}", option, value,
                     "-o", tmp_path / "o.h5"], 2, option, "does not apply to torchscript")
