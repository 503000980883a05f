"""Classifier heads: optimality, non-linear fits, label round trips, determinism, save/load."""


import numpy as np
import pytest
import torch

from relcli.core._estimator import ESTIMATORS
from relcli.core.heads import HEADS, LogisticHead, MLPHead
from relcli.errors import DataError, NotFittedError
from tests.conftest import tolerance

SMALL_MLP = dict(hidden=32, epochs=150, lr=3e-2)


def blobs(n_per=40, d=5, classes=(0, 1, 2), spread=0.5, seed=0, dtype=torch.float64):
    """Well separated Gaussian blobs, one per class, centres on scaled basis vectors."""
    g = torch.Generator().manual_seed(seed)
    xs, ys = [], []
    for i, label in enumerate(classes):
        centre = torch.zeros(d, dtype=torch.float64)
        centre[i % d] = 6.0 * (1 + i // d)
        xs.append(centre + spread * torch.randn(n_per, d, generator=g, dtype=torch.float64))
        ys.append(torch.full((n_per,), label, dtype=torch.int64))
    return torch.cat(xs).to(dtype), torch.cat(ys)


def circles(n=400, seed=0):
    """Two concentric rings (radius 1 and 3): not linearly separable."""
    g = torch.Generator().manual_seed(seed)
    angle = 2 * torch.pi * torch.rand(n, generator=g, dtype=torch.float64)
    label = torch.arange(n) % 2
    radius = 1.0 + 2.0 * label + 0.15 * torch.randn(n, generator=g, dtype=torch.float64)
    x = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    return x + 5.0, label  # offset: standardisation must handle it


def overlapping(n=300, d=4, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.randn(n, d, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 0.5, 3.0])[:d] + 10
    x[torch.arange(n), y % d] += 1.0
    return x, y


def train_accuracy(head, x, y):
    return float((head.predict(x) == y).double().mean())


# --------------------------------------------------------------------------- logistic
def test_logistic_separable_data_is_fitted_exactly():
    x, y = blobs(classes=(0, 1, 2, 3))
    head = LogisticHead().fit(x, y)
    assert train_accuracy(head, x, y) == 1.0
    assert head.weight_.shape == (4, 5) and head.bias_.shape == (4,)


@pytest.mark.parametrize("l2", [1e-2, 1e-1])
def test_logistic_reaches_the_optimum(l2):
    """At the solution the gradient of (1/n)Σ CE + (l2/2)‖W‖², written out in numpy, vanishes."""
    x, y = overlapping()
    head = LogisticHead(l2=l2, max_iter=500).fit(x, y)
    xn = x.numpy()
    mean, std = xn.mean(axis=0), xn.std(axis=0)
    np.testing.assert_allclose(head.input_mean_.numpy(), mean, rtol=1e-12)
    np.testing.assert_allclose(head.input_std_.numpy(), std, rtol=1e-12)
    z = (xn - mean) / std
    w, b = head.weight_.numpy(), head.bias_.numpy()
    logits = z @ w.T + b
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(3)[y.numpy()]
    grad_w = (p - onehot).T @ z / len(z) + l2 * w
    grad_b = (p - onehot).mean(axis=0)
    assert np.abs(grad_w).max() < 1e-6 and np.abs(grad_b).max() < 1e-6
    np.testing.assert_allclose(head.predict_scores(x).numpy(), p, atol=1e-12)
    # loss_ is the objective at the solution.
    loss = -np.log(p[np.arange(len(z)), y.numpy()]).mean() + 0.5 * l2 * (w**2).sum()
    assert head.loss_ == pytest.approx(loss, abs=1e-12)


def test_stronger_penalty_shrinks_weights():
    x, y = overlapping()
    small = LogisticHead(l2=1e-3).fit(x, y).weight_.norm()
    large = LogisticHead(l2=1.0).fit(x, y).weight_.norm()
    assert large < small


# --------------------------------------------------------------------------- MLP
@pytest.mark.parametrize("seed", [0, 1])
def test_mlp_fits_a_non_linear_problem_logistic_cannot(seed):
    x, y = circles(seed=seed)
    logistic = train_accuracy(LogisticHead().fit(x, y), x, y)
    mlp = train_accuracy(MLPHead(seed=seed, **SMALL_MLP).fit(x, y), x, y)
    assert mlp >= 0.98
    assert logistic <= 0.7
    assert mlp > logistic + 0.25


def test_mlp_xor():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(400, 2, generator=g, dtype=torch.float64) * 2 - 1
    y = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).long()
    assert train_accuracy(MLPHead(**SMALL_MLP).fit(x, y), x, y) >= 0.95
    assert train_accuracy(LogisticHead().fit(x, y), x, y) <= 0.7


def test_mlp_shapes_and_seed_changes_initialisation():
    x, y = blobs(classes=(0, 1, 2))
    a = MLPHead(hidden=16, epochs=5, seed=0).fit(x, y)
    b = MLPHead(hidden=16, epochs=5, seed=1).fit(x, y)
    assert a.w1_.shape == (16, 5) and a.b1_.shape == (16,) and a.w2_.shape == (3, 16) and a.b2_.shape == (3,)
    assert not torch.equal(a.w1_, b.w1_)


def test_mlp_fits_a_realistic_problem():
    """10k×128, 10 classes: a short full-batch fit already separates the classes.

    Its speed is measured in benchmarks/bench_kernels.py, never in a timed test.
    """
    g = torch.Generator().manual_seed(0)
    x = torch.randn(10_000, 128, generator=g)
    y = torch.randint(0, 10, (10_000,), generator=g)
    x[torch.arange(10_000), y] += 3.0
    head = MLPHead(epochs=50).fit(x, y)
    assert train_accuracy(head, x, y) > 0.95


# --------------------------------------------------------------------------- both heads
@pytest.fixture(params=["logistic", "mlp"])
def head_class(request):
    return HEADS[request.param]


def make(head_class, **params):
    return head_class(**({**SMALL_MLP, **params} if head_class is MLPHead else params))


def test_registry():
    assert HEADS == {"logistic": LogisticHead, "mlp": MLPHead}
    assert ESTIMATORS["LogisticHead"] is LogisticHead and ESTIMATORS["MLPHead"] is MLPHead
    assert "_HeadPredict" not in ESTIMATORS  # the shared mixin is not loadable on its own


@pytest.mark.parametrize("labels", [(3, 7, 42), (-5, 0, 1_000_000_000_000)])
def test_arbitrary_labels_round_trip(head_class, labels):
    x, y = blobs(classes=labels)
    head = make(head_class).fit(x, y)
    assert head.classes_.dtype == torch.int64
    assert head.classes_.tolist() == sorted(labels)
    predicted = head.predict(x)
    assert predicted.dtype == torch.int64
    assert set(predicted.tolist()) <= set(labels)
    assert train_accuracy(head, x, y) == 1.0
    # Columns of the scores follow classes_.
    assert torch.equal(head.classes_[head.predict_scores(x).argmax(dim=1)], predicted)


def test_same_seed_is_bit_identical(head_class):
    x, y = overlapping(seed=2)
    a = make(head_class, seed=4).fit(x, y)
    b = make(head_class, seed=4).fit(x, y)
    tensors_a, extras_a = a.fitted_state()
    tensors_b, extras_b = b.fitted_state()
    assert tensors_a.keys() == tensors_b.keys() and extras_a == extras_b
    for name in tensors_a:
        assert torch.equal(tensors_a[name], tensors_b[name]), name
    assert torch.equal(a.predict_scores(x), b.predict_scores(x))


def test_save_load_gives_identical_scores(head_class):
    x, y = overlapping(seed=3)
    head = make(head_class).fit(x, y)
    tensors, extras = head.fitted_state()
    assert all(isinstance(t, torch.Tensor) for t in tensors.values())
    assert {"classes_", "input_mean_", "input_std_"} <= tensors.keys()
    loaded = ESTIMATORS[type(head).__name__].from_fitted_state(head.get_params(), tensors, extras)
    assert loaded.get_params() == head.get_params()
    assert torch.equal(loaded.predict_scores(x), head.predict_scores(x))
    assert torch.equal(loaded.predict(x), head.predict(x))


def test_scores_are_probabilities_and_chunking_does_not_matter(head_class):
    x, y = overlapping(seed=4)
    head = make(head_class).fit(x, y)
    scores = head.predict_scores(x)
    assert scores.shape == (len(x), 3)
    assert (scores >= 0).all()
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(len(x), dtype=scores.dtype), atol=1e-12, rtol=0)
    torch.testing.assert_close(head.predict_scores(x, chunk_rows=7), scores, atol=1e-12, rtol=0)


def test_standardisation(head_class):
    x, y = overlapping(seed=5)
    x[:, 2] = 7.25  # a constant column must not divide by zero: it gets the typical scale
    head = make(head_class).fit(x, y)
    stds = x.std(dim=0, unbiased=False)
    assert float(head.input_std_[2]) == pytest.approx(float(stds.pow(2).mean().sqrt())) and head.input_mean_[2] == 7.25
    assert torch.isfinite(head.predict_scores(x)).all()
    raw = make(head_class, standardize=False).fit(x, y)
    assert torch.equal(raw.input_mean_, torch.zeros(4, dtype=x.dtype))
    assert torch.equal(raw.input_std_, torch.ones(4, dtype=x.dtype))


def test_unfitted_head_raises(head_class):
    head = head_class()
    with pytest.raises(NotFittedError):
        head.predict_scores(torch.zeros(2, 3))
    with pytest.raises(NotFittedError):
        head.predict(torch.zeros(2, 3))


def test_wrong_dimension_names_both(head_class):
    x, y = blobs(d=5)
    head = make(head_class).fit(x, y)
    with pytest.raises(DataError, match=r"dimension mismatch of a head: x has 7 dims.*fitted on 5-dim"):
        head.predict(torch.zeros(3, 7, dtype=x.dtype))


def test_fit_input_errors(head_class):
    x, y = blobs()
    with pytest.raises(DataError, match="119 entries but x has 120 rows"):
        make(head_class).fit(x, y[:-1])
    with pytest.raises(DataError, match="at least 2 classes"):
        make(head_class).fit(x, torch.full((len(x),), 3))
    bad = x.clone()
    bad[11, 0] = float("nan")
    with pytest.raises(DataError, match=r"NaN/Inf in 1 row\(s\) \(rows 11\)"):
        make(head_class).fit(bad, y)
    with pytest.raises(DataError, match="integers"):
        make(head_class).fit(x, y.double())
    head = make(head_class).fit(x, y)
    with pytest.raises(DataError, match=r"\(rows 11\)"):
        head.predict(bad)


def test_device_dtype_grid(head_class, device, dtype):
    x, y = blobs(classes=(2, 5, 9), dtype=dtype)
    x, y = x.to(device), y.to(device)
    head = make(head_class).fit(x, y)
    scores = head.predict_scores(x)
    assert scores.device.type == device.type and scores.dtype == dtype
    torch.testing.assert_close(scores.sum(dim=1), torch.ones(len(x), dtype=dtype, device=device),
                               atol=10 * tolerance(dtype), rtol=0)
    predicted = head.predict(x)
    assert predicted.device.type == device.type and predicted.dtype == torch.int64
    assert bool((predicted == y).all())
    assert head.classes_.device.type == device.type
    # A head moved to CPU float64 gives the same predictions.
    moved = make(head_class).fit(x, y).to("cpu", torch.float64)
    assert torch.equal(moved.predict(x.cpu().double()), predicted.cpu())
