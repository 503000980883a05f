"""The inputs of the digits part of scripts/make_sample_data.py (sklearn's digits, ccexam's MNIST and
USPS nets with their weights checked) and the checks it prints on the exported encoders."""

from __future__ import annotations

import importlib.metadata
import importlib.resources
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn

from _sample_env import CCEXAM_VERSION, _sha256

# sha256 of the weight files as listed in ccexam-1.0.0.dist-info/RECORD.
WEIGHT_SHA256 = {
    "mnist": "0e58754afd96763e49f52c14877b8441cc0fff38e04adce2d2247eab68a30e8a",
    "usps": "dcd3faeef1505ba8c990e1a2b0ca964124eb1326f49ff8b86b0888a352244ea3",
}


# --------------------------------------------------------------------------- digits


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's bundled digits as (N, 1, 8, 8) float32 in 0..16 and (N,) int64 labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32)[:, None, :, :]
    y = d.target.astype(np.int64)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


def load_ccexam_models() -> dict[str, nn.Module]:
    """The full ccexam classifiers (eval mode, CPU), built from ccexam/models.py + bundled weights.

    `ccexam.models` imports only torch.nn; ccexam/__init__.py is lazy, so nothing from ccexam that
    needs torchvision or the network is imported.
    """
    try:
        version = importlib.metadata.version("ccexam")
    except importlib.metadata.PackageNotFoundError:
        sys.exit(f"error: ccexam is not installed; run `pip install --no-deps ccexam=={CCEXAM_VERSION}`")
    if version != CCEXAM_VERSION:
        sys.exit(f"error: need ccexam=={CCEXAM_VERSION}, found {version}; "
                 f"run `pip install --no-deps ccexam=={CCEXAM_VERSION}`")
    from ccexam.models import MNISTNet, USPSNet

    weights = importlib.resources.files("ccexam") / "weights"
    models: dict[str, nn.Module] = {}
    for name, cls, size in [("mnist", MNISTNet, 28), ("usps", USPSNet, 16)]:
        path = Path(str(weights / f"{name}.pth"))
        if _sha256(path) != WEIGHT_SHA256[name]:
            sys.exit(f"error: {path} does not match the sha256 recorded for ccexam {CCEXAM_VERSION}")
        model = cls(input_size=size)
        # The checkpoints were saved from CUDA tensors; map them to the CPU.
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        models[name] = model.eval()
    return models

# --------------------------------------------------------------------------- checks


def linear_cka(a: np.ndarray, b: np.ndarray) -> float:
    """Linear CKA = ||A^T B||_F^2 / (||A^T A||_F ||B^T B||_F) on column-centred A, B (Kornblith 2019)."""
    a = a.astype(np.float64) - a.mean(0)
    b = b.astype(np.float64) - b.mean(0)
    return float(np.linalg.norm(a.T @ b) ** 2 / (np.linalg.norm(a.T @ a) * np.linalg.norm(b.T @ b)))


def logistic_cv_accuracy(z: np.ndarray, y: np.ndarray) -> float:
    """Mean 5-fold (stratified, shuffled with seed 0) accuracy of standardised logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    return float(cross_val_score(clf, z, y, cv=folds).mean())


def sanity_checks(x: np.ndarray, y: np.ndarray, models: dict[str, nn.Module], paths: dict[str, Path]) -> None:
    """Print head accuracy through the exported encoders, CKA between spaces and linear-probe accuracy."""
    xt = torch.from_numpy(x)
    emb: dict[str, np.ndarray] = {}
    with torch.no_grad():
        for name, path in paths.items():
            enc = torch.jit.load(str(path), map_location="cpu")
            z = enc(xt)
            head = models[name].classifier[-1]
            acc = (head(z).argmax(1).numpy() == y).mean()
            dead = int((z.abs().amax(0) == 0).sum())
            print(f"{name}: embedding {tuple(z.shape)} {z.dtype}, {dead} of {z.shape[1]} units never active; "
                  f"ccexam head accuracy on the {len(y)} digits = {acc:.4f} (chance 0.10)")
            emb[name] = z.numpy()
    pixels = x.reshape(len(x), -1)
    print(f"linear CKA(mnist, usps) = {linear_cka(emb['mnist'], emb['usps']):.4f}; "
          f"CKA(mnist, pixels) = {linear_cka(emb['mnist'], pixels):.4f}; "
          f"CKA(usps, pixels) = {linear_cka(emb['usps'], pixels):.4f}")
    for name, z in [("mnist", emb["mnist"]), ("usps", emb["usps"]), ("pixels", pixels)]:
        print(f"logistic regression, 5-fold accuracy on {name}: {logistic_cv_accuracy(z, y):.4f}")

