"""One contract every translator of the registry passes: fit source-first, shapes, device and dtype
follow the input, save/load round trip, refit after a failed fit, fitted state checked by name."""

from __future__ import annotations

import json

import pytest
import torch

from relcli.core import registry
from relcli.core.registry import make_translator, translator_class
from relcli.core.translate import Translator
from relcli.errors import DataError, FileFormatError, NotFittedError
from tests.conftest import random_orthogonal

METHODS = list(registry.TRANSLATORS)


def parallel_spaces(d_x=12, d_y=10, n=300, k=80, seed=0):
    """Y = X W (W: d_X × d_Y of full rank) plus a little noise; anchors are the first k rows."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_x, generator=g, dtype=torch.float64)
    w = random_orthogonal(max(d_x, d_y), seed + 1)[:d_x, :d_y]
    y = 2.0 * x @ w + 0.01 * torch.randn(n, d_y, generator=g, dtype=torch.float64)
    return x, y, k


@pytest.mark.parametrize("method", METHODS)
def test_registry_names_the_class_and_the_class_its_name(method):
    cls = translator_class(method)
    assert issubclass(cls, Translator) and cls.method == method


@pytest.mark.parametrize("method", METHODS)
def test_fit_source_first_shapes_and_a_useful_map(method):
    x, y, k = parallel_spaces()
    translator = make_translator(method).fit(x[:k], y[:k])
    assert translator.fit(x[:k], y[:k]) is translator
    assert (translator.source_dim_, translator.target_dim_) == (12, 10)
    out = translator.transform(x)
    assert out.shape == (300, 10) and out.dtype == x.dtype
    cosine = torch.nn.functional.cosine_similarity(out[k:], y[k:], dim=1).mean()
    assert cosine > 0.9, (method, float(cosine))
    with pytest.raises(DataError, match="12-dim source anchors"):
        translator.transform(y)  # target rows are not source rows
    assert json.dumps(translator.diagnostics())  # JSON-able facts for provenance


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_output_follows_the_input_dtype(method, dtype):
    x, y, k = parallel_spaces()
    translator = make_translator(method).fit(x[:k], y[:k])
    out = translator.to(dtype=dtype).transform(x.to(dtype))
    assert out.dtype == dtype and out.device == x.device


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
def test_output_follows_the_input_device(method):
    x, y, k = parallel_spaces()
    reference = make_translator(method).fit(x[:k], y[:k]).transform(x)
    translator = make_translator(method).fit(x[:k].cuda(), y[:k].cuda())
    out = translator.transform(x.cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), reference, rtol=0, atol=1e-8)


@pytest.mark.parametrize("method", METHODS)
def test_save_load_round_trip_is_bit_exact(method):
    x, y, k = parallel_spaces(seed=3)
    translator = make_translator(method, seed=5).fit(x[:k], y[:k])
    tensors, extras = translator.fitted_state()
    params = json.loads(json.dumps(translator.get_params()))
    loaded = type(translator).from_fitted_state(params, tensors, json.loads(json.dumps(extras)))
    assert torch.equal(loaded.transform(x), translator.transform(x))


@pytest.mark.parametrize("method", METHODS)
def test_unfitted_failed_and_refitted(method):
    x, y, k = parallel_spaces()
    translator = make_translator(method)
    with pytest.raises(NotFittedError):
        translator.transform(x)
    bad = y[:k].clone()
    bad[3, 2] = float("nan")
    with pytest.raises(DataError, match="NaN/Inf"):
        translator.fit(x[:k], bad)
    assert not translator.is_fitted
    with pytest.raises(NotFittedError):
        translator.transform(x)
    translator.fit(x[:k], y[:k])
    before = translator.transform(x)
    with pytest.raises(DataError):
        translator.fit(x[:k], y[: k - 1])  # not parallel
    assert torch.equal(translator.transform(x), before)  # a failed refit keeps the earlier fit whole


@pytest.mark.parametrize("method", METHODS)
def test_loading_checks_the_state_by_name_type_and_shape(method):
    x, y, k = parallel_spaces()
    translator = make_translator(method).fit(x[:k], y[:k])
    tensors, extras = translator.fitted_state()
    params = translator.get_params()
    cls = type(translator)
    name = next(iter(tensors))
    with pytest.raises(FileFormatError, match=f"missing {name}"):
        cls.from_fitted_state(params, {n: t for n, t in tensors.items() if n != name}, extras)
    with pytest.raises(FileFormatError, match="has no learned state"):
        cls.from_fitted_state(params, {**tensors, "intruder_": torch.ones(2)}, extras)
    with pytest.raises(FileFormatError, match=f"{name} must be"):
        cls.from_fitted_state(params, {**tensors, name: tensors[name].reshape(-1)[:1].reshape(())}, extras)
    lying = {**tensors, name: tensors[name].clone().fill_(float("nan"))}
    if tensors[name].is_floating_point():
        with pytest.raises(FileFormatError, match="NaN/Inf"):
            cls.from_fitted_state(params, lying, extras)
    with pytest.raises(FileFormatError, match="does not take parameters"):
        cls.from_fitted_state({**params, "banana": 1}, tensors, extras)
