"""Classifier heads for zero-shot stitching: fit on one space, predict on (translated) inputs.

A head is trained on the target space's embeddings and labels; ``stitch`` then feeds it
translated source embeddings. Both heads standardise their inputs with the training data's
per-dimension mean and std (kept in the head, so a translated input is scaled exactly like the
training data), map arbitrary integer labels to 0..C−1 through the sorted ``classes_``, and
return class probabilities p = softmax(logits).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from relcli.core._common import DEFAULT_CHUNK_ROWS, check_matrix, check_rows, compute_dtype, row_chunks
from relcli.core._estimator import Estimator
from relcli.core.stats import guarded_scale
from relcli.errors import DataError, FileFormatError, UsageError


def _check_inputs(x: torch.Tensor, what: str = "x") -> torch.Tensor:
    x = check_matrix(x, what)
    # Zero rows are legitimate classifier inputs; NaN/Inf rows are not.
    check_rows(x, what, allow_zero=True)
    return x.to(compute_dtype(x.dtype))


def _encode_labels(labels, n_rows: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted unique labels (int64) and each row's index into them (0..C−1)."""
    labels = torch.as_tensor(labels)
    if labels.ndim != 1:
        raise DataError(f"labels must be a 1-D vector, got shape {tuple(labels.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise DataError(f"labels must be integers, got dtype {labels.dtype}; map them to int64 first")
    if len(labels) != n_rows:
        raise DataError(f"labels have {len(labels)} entries but x has {n_rows} rows; give one label per row")
    classes, codes = torch.unique(labels.to(device=device, dtype=torch.int64), sorted=True, return_inverse=True)
    if len(classes) < 2:
        raise DataError(f"a classifier needs at least 2 classes, the labels hold {len(classes)}")
    return classes, codes


def _standardizer(x: torch.Tensor, standardize: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-dimension mean and (population) std, guarded against dead and near-constant dimensions.

    A dimension that hardly varies in the training rows gets a typical scale (``guarded_scale``):
    dividing by its own ~1e-33 std would turn the tiny noise of a translated row into logits of
    ~1e21 and the head's predictions into chance.
    """
    if not standardize:
        ones = torch.ones(x.shape[1], device=x.device, dtype=x.dtype)
        return torch.zeros_like(ones), ones
    mean = x.mean(dim=0)
    return mean, guarded_scale(x.std(dim=0, unbiased=False), mean)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Head(Estimator):
    """Shared predict path: standardise, logits in row chunks, softmax, map back to labels.

    Every head has ``classes_`` (C,), ``input_mean_``/``input_std_`` (d,) and ``input_dim``.
    """

    needs_direction = False

    @property
    def input_dim(self) -> int:
        self.check_fitted()
        return int(self.input_mean_.shape[0])

    def _input_dim(self) -> int:
        return self.input_dim

    def _check_state(self) -> None:
        d, c = self.input_mean_.shape[0], self.classes_.shape[0]
        if self.input_std_.shape[0] != d or not bool((self.input_std_ > 0).all()) or c < 2:
            raise FileFormatError(
                f"{type(self).__name__} state does not fit together: input_mean_ {d}, input_std_ "
                f"{list(self.input_std_.shape)} (must be > 0), {c} classes"
            )
        if self.classes_.is_floating_point():
            raise FileFormatError(f"{type(self).__name__} state classes_ must be integers")
        for name, shape in self._shapes(d, c).items():
            if list(getattr(self, name).shape) != shape:
                raise FileFormatError(
                    f"{type(self).__name__} state {name} has shape {list(getattr(self, name).shape)}, expected {shape}"
                )

    def _state_on(self, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
        names = [n for n in self._learned_names() if isinstance(getattr(self, n), torch.Tensor)]
        return {
            n: getattr(self, n).to(device=device, dtype=dtype)
            for n in names
            if getattr(self, n).is_floating_point()
        }

    def predict_scores(self, x: torch.Tensor, chunk_rows: int | None = DEFAULT_CHUNK_ROWS) -> torch.Tensor:
        """Class probabilities (n×C), p = softmax(logits(standardised x)); columns follow ``classes_``.

        Computed in row chunks on ``x``'s device; returned in ``x``'s dtype.
        """
        self.check_fitted()
        x = check_matrix(x, "x")
        if x.shape[1] != self._input_dim():
            raise DataError(
                f"dimension mismatch of a head: x has {x.shape[1]} dims but this "
                f"{type(self).__name__} was fitted on {self._input_dim()}-dim inputs; "
                f"translate x into the head's space first"
            )
        check_rows(x, "x", allow_zero=True)
        out_dtype = x.dtype
        work = compute_dtype(x.dtype)
        state = self._state_on(x.device, work)
        out = torch.empty(x.shape[0], len(self.classes_), device=x.device, dtype=out_dtype)
        with torch.no_grad():
            for rows in row_chunks(x.shape[0], chunk_rows):
                z = (x[rows].to(work) - state["input_mean_"]) / state["input_std_"]
                out[rows] = torch.softmax(self._logits_with(state, z), dim=1).to(out_dtype)
        return out

    def predict(self, x: torch.Tensor, chunk_rows: int | None = DEFAULT_CHUNK_ROWS) -> torch.Tensor:
        """Predicted labels (int64, values from ``classes_``): the class of highest probability."""
        scores = self.predict_scores(x, chunk_rows=chunk_rows)
        return self.classes_.to(scores.device)[scores.argmax(dim=1)]


class LogisticHead(Head):
    """Multinomial logistic regression, full-batch L-BFGS (strong Wolfe line search).

    Minimises (1/n) Σ_i CE(softmax(W z_i + b), y_i) + (l2/2)‖W‖²_F over W (C×d) and b (C,),
    where z = (x − μ)/σ are the standardised inputs. Averaging the loss over rows makes ``l2``
    independent of n (sklearn's C = 1/(l2·n)); the bias is not penalised. Starts from zeros, so
    the fit is deterministic; ``seed`` is kept for a uniform head interface. ``loss_`` is the
    final objective, ``n_iter_`` the L-BFGS iterations used.
    """

    _state = {
        "classes_": "itensor1", "input_mean_": "tensor1", "input_std_": "tensor1", "weight_": "tensor2",
        "bias_": "tensor1", "loss_": "float", "n_iter_": "int",
    }

    def _shapes(self, d: int, c: int) -> dict[str, list[int]]:
        return {"weight_": [c, d], "bias_": [c]}

    def __init__(self, l2: float = 1e-4, max_iter: int = 200, standardize: bool = True, seed: int = 0):
        self.l2 = l2
        self.max_iter = max_iter
        self.standardize = standardize
        self.seed = seed

    def _check_params(self) -> None:
        if not (_number(self.l2) and self.l2 >= 0 and _integer(self.max_iter) and self.max_iter >= 1):
            raise UsageError(f"LogisticHead needs l2 >= 0 and max_iter >= 1, got l2={self.l2}, max_iter={self.max_iter}")

    def fit(self, x: torch.Tensor, labels) -> "LogisticHead":
        """Learn ``classes_``, ``input_mean_``, ``input_std_``, ``weight_`` (C×d), ``bias_`` (C,)."""
        self._check_params()
        x = _check_inputs(x)
        classes, y = _encode_labels(labels, x.shape[0], x.device)
        mean, std = _standardizer(x, self.standardize)
        z = (x - mean) / std
        n_classes, dim = len(classes), x.shape[1]
        with torch.enable_grad():
            weight = torch.zeros(n_classes, dim, device=x.device, dtype=x.dtype, requires_grad=True)
            bias = torch.zeros(n_classes, device=x.device, dtype=x.dtype, requires_grad=True)
            optimizer = torch.optim.LBFGS(
                [weight, bias],
                lr=1.0,
                max_iter=self.max_iter,
                tolerance_change=10 * torch.finfo(x.dtype).eps,
                line_search_fn="strong_wolfe",
            )

            def objective():
                optimizer.zero_grad()
                loss = F.cross_entropy(torch.addmm(bias, z, weight.T), y)
                loss = loss + 0.5 * self.l2 * weight.pow(2).sum()
                loss.backward()
                return loss

            optimizer.step(objective)
            final = objective()
        self._set_state(
            classes_=classes, input_mean_=mean, input_std_=std, weight_=weight.detach(), bias_=bias.detach(),
            loss_=float(final.detach()), n_iter_=int(optimizer.state[optimizer._params[0]].get("n_iter", 0)),
        )
        return self

    @staticmethod
    def _logits_with(state: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        return torch.addmm(state["bias_"], z, state["weight_"].T)


#: the most hidden units an MLP head takes: a tensor dimension torch and BLAS index in 32 bits
MAX_HIDDEN = 2**31 - 1


class MLPHead(Head):
    """One hidden layer MLP, logits = W₂ ReLU(W₁ z + b₁) + b₂, trained by full-batch Adam.

    Minimises the mean cross-entropy over ``epochs`` Adam steps with learning rate ``lr``;
    ``weight_decay`` is an L2 term on W₁ and W₂ only (biases are not decayed). Weights start as
    in ``torch.nn.Linear`` (uniform in ±1/√fan_in), drawn from a CPU generator seeded with
    ``seed`` and then moved to the data's device, so a seed means the same start everywhere.
    Shapes: ``w1_`` (hidden×d), ``b1_`` (hidden,), ``w2_`` (C×hidden), ``b2_`` (C,); ``loss_``
    is the final training cross-entropy.
    """

    _state = {
        "classes_": "itensor1", "input_mean_": "tensor1", "input_std_": "tensor1", "w1_": "tensor2",
        "b1_": "tensor1", "w2_": "tensor2", "b2_": "tensor1", "loss_": "float",
    }

    def _shapes(self, d: int, c: int) -> dict[str, list[int]]:
        h = self.w1_.shape[0]
        return {"w1_": [h, d], "b1_": [h], "w2_": [c, h], "b2_": [c]}

    def __init__(
        self,
        hidden: int = 256,
        epochs: int = 200,
        lr: float = 1e-2,
        weight_decay: float = 1e-4,
        standardize: bool = True,
        seed: int = 0,
    ):
        self.hidden = hidden
        self.epochs = epochs
        self.lr = lr
        self.weight_decay = weight_decay
        self.standardize = standardize
        self.seed = seed

    def _check_params(self) -> None:
        good = _integer(self.hidden) and 1 <= self.hidden <= MAX_HIDDEN and _integer(self.epochs) and self.epochs >= 1
        good = good and _number(self.lr) and self.lr > 0 and _number(self.weight_decay) and self.weight_decay >= 0
        if not good:
            raise UsageError(
                f"MLPHead needs 1 <= hidden <= {MAX_HIDDEN:,}, epochs >= 1, lr > 0, weight_decay >= 0; got "
                f"hidden={self.hidden}, epochs={self.epochs}, lr={self.lr}, weight_decay={self.weight_decay}"
            )

    def fit(self, x: torch.Tensor, labels) -> "MLPHead":
        """Learn ``classes_``, ``input_mean_``, ``input_std_``, ``w1_``, ``b1_``, ``w2_``, ``b2_``."""
        self._check_params()
        x = _check_inputs(x)
        classes, y = _encode_labels(labels, x.shape[0], x.device)
        mean, std = _standardizer(x, self.standardize)
        z = (x - mean) / std
        n_classes, dim = len(classes), x.shape[1]

        generator = torch.Generator().manual_seed(int(self.seed))

        def uniform(*shape: int, fan_in: int) -> torch.Tensor:
            bound = 1.0 / math.sqrt(fan_in)
            values = (torch.rand(*shape, generator=generator, dtype=torch.float64) * 2 - 1) * bound
            return values.to(device=x.device, dtype=x.dtype).requires_grad_(True)

        w1 = uniform(self.hidden, dim, fan_in=dim)
        b1 = uniform(self.hidden, fan_in=dim)
        w2 = uniform(n_classes, self.hidden, fan_in=self.hidden)
        b2 = uniform(n_classes, fan_in=self.hidden)
        optimizer = torch.optim.Adam(
            [{"params": [w1, w2], "weight_decay": self.weight_decay}, {"params": [b1, b2], "weight_decay": 0.0}],
            lr=self.lr,
        )
        with torch.enable_grad():
            for _ in range(self.epochs):
                optimizer.zero_grad(set_to_none=True)
                logits = torch.addmm(b2, torch.relu(torch.addmm(b1, z, w1.T)), w2.T)
                loss = F.cross_entropy(logits, y)
                loss.backward()
                optimizer.step()
        with torch.no_grad():
            final = F.cross_entropy(torch.addmm(b2, torch.relu(torch.addmm(b1, z, w1.T)), w2.T), y)
        self._set_state(
            classes_=classes, input_mean_=mean, input_std_=std,
            w1_=w1.detach(), b1_=b1.detach(), w2_=w2.detach(), b2_=b2.detach(), loss_=float(final),
        )
        return self

    @staticmethod
    def _logits_with(state: dict[str, torch.Tensor], z: torch.Tensor) -> torch.Tensor:
        hidden = torch.relu(torch.addmm(state["b1_"], z, state["w1_"].T))
        return torch.addmm(state["b2_"], hidden, state["w2_"].T)


HEADS: dict[str, type[Head]] = {"logistic": LogisticHead, "mlp": MLPHead}
