"""The ``hf:`` and ``sentence-transformers:`` text backends of ``relcli embed`` against each library's
own encode (issue 11).

Every model here is built in the test from a tiny random BERT and a word-level tokenizer (no hub,
no download), saved to a temp folder and loaded back the way a user's model is:

- ``hf:`` on a plain transformers folder, every ``--pooling`` against a per-text computation
  without padding; on sentence-transformers folders (one written by hand in the legacy layout of
  all-MiniLM-L6-v2, one saved by sentence-transformers itself) against ``SentenceTransformer.encode``;
- ``sentence-transformers:`` against ``model.encode``, ``--max-length`` applied, ``--pooling`` refused.

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

from tests._backends_text_helpers import (
    DIM,
    LONG,
    TEXTS,
    bert,  # noqa: F401 (a fixture)
    embed,
    reference,
    write_lines,
)
from tests.cli.conftest import assert_clean_error, invoke


transformers = pytest.importorskip("transformers", reason="hf:/sentence-transformers:/onnx: tests need transformers")


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
# library logging
# ---------------------------------------------------------------------------------------------
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
