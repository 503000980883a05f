"""relcli.encoders: mask-aware mean pooling against a naive loop, spec parsing, entry-point lookup.

The CLI behaviour of ``relcli embed`` is in tests/cli/test_embed_encoders.py; these are the library units.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest
import torch

from relcli.encoders import (
    BACKENDS,
    POOLINGS,
    ENTRY_POINT_GROUP,
    EncoderOptions,
    TorchScriptEncoder,
    load_encoder,
    mean_pool,
    pool,
)
from relcli.errors import FileFormatError, RelcliError, UsageError

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


# ---------------------------------------------------------------------------------------------
# mean_pool
# ---------------------------------------------------------------------------------------------
def naive_mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Row by row, token by token: the mean of the unmasked token vectors (zeros when none)."""
    batch, tokens, dim = hidden.shape
    out = torch.zeros(batch, dim, dtype=torch.float64)
    for b in range(batch):
        total, count = torch.zeros(dim, dtype=torch.float64), 0
        for t in range(tokens):
            if int(mask[b, t]) != 0:
                total += hidden[b, t].double()
                count += 1
        if count:
            out[b] = total / count
    return out


def random_batch(seed: int, dtype, batch=6, tokens=9, dim=5):
    g = torch.Generator().manual_seed(seed)
    hidden = torch.randn(batch, tokens, dim, generator=g, dtype=torch.float64).to(dtype)
    lengths = torch.randint(1, tokens + 1, (batch,), generator=g)
    lengths[0] = tokens  # one full row
    lengths[1] = 1  # one row with a single token
    mask = (torch.arange(tokens)[None, :] < lengths[:, None]).long()
    return hidden, mask


@pytest.mark.parametrize("mask_dtype", [torch.int64, torch.int32, torch.bool])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mean_pool_matches_a_naive_loop(seed, dtype, mask_dtype):
    hidden, mask = random_batch(seed, dtype)
    got = mean_pool(hidden, mask.to(mask_dtype))
    assert got.shape == (6, 5) and got.dtype == dtype
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(got.double(), naive_mean_pool(hidden, mask), atol=tol, rtol=tol)


def test_mean_pool_with_holes_in_the_mask():
    """Not only right padding: any 0 in the mask is left out (left padding, masked middles)."""
    hidden, _ = random_batch(3, torch.float64)
    g = torch.Generator().manual_seed(4)
    mask = (torch.rand(6, 9, generator=g) > 0.5).long()
    mask[:, 4] = 1  # at least one token per row
    torch.testing.assert_close(mean_pool(hidden, mask), naive_mean_pool(hidden, mask))


def test_mean_pool_ignores_whatever_sits_under_the_padding():
    hidden, mask = random_batch(5, torch.float32)
    noisy = hidden.clone()
    noisy[mask == 0] = 1e6  # huge values in padded positions
    torch.testing.assert_close(mean_pool(noisy, mask), mean_pool(hidden, mask))


def test_mean_pool_is_invariant_to_extra_padding():
    hidden, mask = random_batch(6, torch.float32)
    longer = torch.cat([hidden, torch.randn(6, 4, 5)], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(6, 4, dtype=mask.dtype)], dim=1)
    torch.testing.assert_close(mean_pool(longer, longer_mask), mean_pool(hidden, mask))


def test_mean_pool_of_a_fully_masked_row_is_zero_not_nan():
    hidden, mask = random_batch(7, torch.float32)
    mask[2] = 0
    got = mean_pool(hidden, mask)
    assert torch.isfinite(got).all()
    assert torch.equal(got[2], torch.zeros(5))


def test_mean_pool_does_not_mutate_its_inputs():
    hidden, mask = random_batch(8, torch.float32)
    hidden_before, mask_before = hidden.clone(), mask.clone()
    mean_pool(hidden, mask)
    assert torch.equal(hidden, hidden_before) and torch.equal(mask, mask_before)


def test_pool_cls_and_unknown():
    hidden, mask = random_batch(9, torch.float32)
    assert torch.equal(pool(hidden, mask, "cls"), hidden[:, 0])
    torch.testing.assert_close(pool(hidden, mask, "mean"), mean_pool(hidden, mask))
    with pytest.raises(UsageError, match="unknown --pooling 'median'; choose one of mean, cls, max"):
        pool(hidden, mask, "median")


def naive_pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """sentence-transformers' Pooling definitions, row by row over the unmasked tokens only
    (weightedmean: weights 1, 2, ... counted from the first unmasked token; no token -> zeros)."""
    batch, tokens, dim = hidden.shape
    out = torch.zeros(batch, dim, dtype=torch.float64)
    for b in range(batch):
        kept = [t for t in range(tokens) if int(mask[b, t]) != 0]
        if not kept:
            continue
        h = hidden[b, kept].double()
        if mode == "mean":
            out[b] = h.mean(0)
        elif mode == "mean_sqrt_len_tokens":
            out[b] = h.sum(0) / len(kept) ** 0.5
        elif mode == "cls":
            out[b] = h[0]
        elif mode == "lasttoken":
            out[b] = h[-1]
        elif mode == "max":
            out[b] = h.max(0).values
        elif mode == "weightedmean":
            w = torch.tensor([t - kept[0] + 1 for t in kept], dtype=torch.float64)[:, None]
            out[b] = (h * w).sum(0) / w.sum()
    return out


@pytest.mark.parametrize("mode", POOLINGS)
@pytest.mark.parametrize("padding", ["right", "left"])
def test_every_pooling_matches_a_naive_loop(mode, padding):
    hidden, mask = random_batch(11, torch.float64)
    if padding == "left":
        mask = mask.flip(1)  # padding first, as decoder tokenizers do
    mask[3] = 0  # a row without tokens pools to zeros
    got = pool(hidden, mask, mode)
    assert got.shape == (6, 5) and torch.isfinite(got).all()
    torch.testing.assert_close(got, naive_pool(hidden, mask, mode))


def test_pooling_modes_concatenate_in_order():
    hidden, mask = random_batch(12, torch.float32)
    got = pool(hidden, mask, ("cls", "mean"))
    torch.testing.assert_close(got, torch.cat([pool(hidden, mask, "cls"), mean_pool(hidden, mask)], dim=1))


# ---------------------------------------------------------------------------------------------
# load_encoder: spec parsing
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("form", ["{b}", "{b}:"])
def test_builtin_backend_without_argument(backend, form):
    spec = form.format(b=backend)
    with pytest.raises(UsageError, match=rf"expected {backend}:PATH") as info:
        load_encoder(spec, EncoderOptions())
    assert info.value.exit_code == 2
    assert repr(spec) in str(info.value)


@pytest.mark.parametrize("spec, backend", [("nope:x", "nope"), ("", ""), ("model.pt", "model.pt"),
                                           ("TorchScript:m.pt", "TorchScript"), (":m.pt", "")])
def test_unknown_backend(spec, backend, no_plugins):
    with pytest.raises(UsageError) as info:
        load_encoder(spec, EncoderOptions())
    message = str(info.value)
    assert info.value.exit_code == 2
    assert f"unknown encoder {backend!r}" in message and repr(spec) in message
    assert "known: torchscript, hf, sentence-transformers, onnx " in message


def test_only_the_first_colon_splits(tmp_path):
    """``torchscript:C:/x.pt`` style paths: the argument keeps its own colons."""
    path = tmp_path / "a:b.pt"
    with pytest.raises(FileFormatError, match="TorchScript encoder not found") as info:
        load_encoder(f"torchscript:{path}", EncoderOptions())
    assert info.value.path == str(path)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("torchscript:{tmp}/missing.pt", "TorchScript encoder not found"),
        ("torchscript:{tmp}", "must be a file, not a folder"),
        ("hf:{tmp}/missing", "transformers model folder not found"),
        ("hf:{tmp}/file.txt", "must be a folder (a saved model)"),
        ("sentence-transformers:{tmp}/file.txt", "must be a folder (a saved model)"),
        ("onnx:{tmp}/missing.onnx", "ONNX model not found"),
        ("onnx:{tmp}", "must be a file, not a folder"),
    ],
)
def test_backend_paths_are_checked_first(tmp_path, spec, message):
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(FileFormatError) as info:
        load_encoder(spec.format(tmp=tmp_path), EncoderOptions())
    assert message in info.value.message and info.value.exit_code == 1
    assert info.value.path == spec.format(tmp=tmp_path).partition(":")[2]


def test_onnx_needs_a_tokenizer(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"\x08\x07")
    with pytest.raises(UsageError, match="--tokenizer"):
        load_encoder(f"onnx:{model}", EncoderOptions())
    with pytest.raises(FileFormatError, match="tokenizer file not found"):
        load_encoder(f"onnx:{model}", EncoderOptions(tokenizer=tmp_path / "tok.json"))


def test_torchscript_encoder_casts_and_keeps_shape():
    encoder = load_encoder(f"torchscript:{SAMPLE / 'encoders' / 'usps_cnn.pt'}", EncoderOptions())
    assert isinstance(encoder, TorchScriptEncoder) and encoder.modality == "tensor"
    batch = torch.full((3, 1, 8, 8), 8.0, dtype=torch.float64)  # cast to float32 by the encoder
    out = encoder.encode(batch)
    assert out.shape == (3, 128) and out.dtype == torch.float32
    torch.testing.assert_close(out, encoder.encode(batch.float()))


# ---------------------------------------------------------------------------------------------
# load_encoder: the relcli.encoders entry points
# ---------------------------------------------------------------------------------------------
CALLS: list[tuple] = []


class Echo:
    modality = "text"

    def __init__(self, argument, options):
        self.argument, self.options = argument, options

    def encode(self, texts):
        return torch.tensor([[float(len(t))] for t in texts])


def echo_factory(argument, options):
    CALLS.append((argument, options))
    return Echo(argument, options)


def install(monkeypatch, *names: str, value: str = f"{__name__}:echo_factory"):
    """Replace importlib.metadata.entry_points (looked up at call time by load_encoder)."""
    original = importlib.metadata.entry_points
    asked = []
    ours = importlib.metadata.EntryPoints(
        [importlib.metadata.EntryPoint(name=n, value=value, group=ENTRY_POINT_GROUP) for n in names]
    )

    def entry_points(**params):
        asked.append(params)
        if params.get("group") == ENTRY_POINT_GROUP:
            return ours
        return original(**params)

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    CALLS.clear()
    return asked


@pytest.fixture
def no_plugins(monkeypatch):
    """No installed package adds encoders (the test's view must not depend on the venv)."""
    return install(monkeypatch)


def test_entry_point_is_found_and_called(monkeypatch):
    asked = install(monkeypatch, "echo", "zeta")
    options = EncoderOptions(max_length=7, pooling="cls")
    encoder = load_encoder("echo:some/arg:with:colons", options)
    assert isinstance(encoder, Echo)
    assert CALLS == [("some/arg:with:colons", options)]  # the argument verbatim, the options object itself
    assert {"group": ENTRY_POINT_GROUP} in asked
    assert encoder.encode(["ab", "c"]).tolist() == [[2.0], [1.0]]


def test_entry_point_with_empty_argument(monkeypatch):
    install(monkeypatch, "echo")
    load_encoder("echo", EncoderOptions())
    load_encoder("echo:", EncoderOptions())
    assert [c[0] for c in CALLS] == ["", ""]


def test_unknown_backend_lists_the_plugins(monkeypatch):
    install(monkeypatch, "zeta", "alpha")
    with pytest.raises(UsageError) as info:
        load_encoder("beta:x", EncoderOptions())
    assert "known: torchscript, hf, sentence-transformers, onnx, alpha, zeta (as NAME:ARGUMENT)" in str(info.value)
    assert CALLS == []


def test_builtins_are_not_looked_up_in_the_entry_points(monkeypatch, tmp_path):
    asked = install(monkeypatch, "torchscript")
    with pytest.raises(FileFormatError, match="TorchScript encoder not found"):
        load_encoder(f"torchscript:{tmp_path / 'x.pt'}", EncoderOptions())
    assert asked == [] and CALLS == []


def test_a_plugin_error_propagates(monkeypatch):
    def broken(argument, options):
        raise UsageError(f"echo cannot take {argument!r}")

    monkeypatch.setattr(f"{__name__}.echo_factory", broken)
    install(monkeypatch, "echo")
    with pytest.raises(RelcliError, match="echo cannot take 'bad'"):
        load_encoder("echo:bad", EncoderOptions())
