"""Write -> read round trips of embedding files and estimators, bit for bit (DESIGN §3).

Floats are compared by their raw bits, so NaN payloads, -0.0, infinities and subnormals must
survive exactly. Random matrices are random bit patterns plus a few planted special values.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relcli.core.translate import Translator
from relcli.errors import DataError, FileFormatError, RelcliError, UsageError
from relcli.io.embeddings import EMBEDDING_KINDS, EmbeddingWriter, open_embeddings, write_embeddings
from relcli.io.kinds import load_estimator, save_estimator
from relcli.io.provenance import file_fingerprint, make_provenance

EXT = {"hdf5": ".h5", "safetensors": ".safetensors"}
FLOATS = {"hdf5": ["float16", "float32", "float64"], "safetensors": ["float16", "bfloat16", "float32", "float64"]}
UINT = {2: np.uint16, 4: np.uint32, 8: np.uint64}
SPECIAL_BITS = {  # quiet NaN with payload, negative NaN, -0.0, +inf, smallest subnormal
    2: [0x7E01, 0xFE03, 0x8000, 0x7C00, 0x0001],
    4: [0x7FC00001, 0xFFC12345, 0x80000000, 0x7F800000, 0x00000001],
    8: [0x7FF8000000000001, 0xFFF8000000000ABC, 0x8000000000000000, 0x7FF0000000000000, 0x1],
}
BF16_SPECIAL_BITS = [0x7FC1, 0xFFC3, 0x8000, 0x7F80, 0x0001]


def bits(tensor: torch.Tensor) -> np.ndarray:
    """The raw bits of a tensor as unsigned integers (NaN == NaN when the payload matches)."""
    signed = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[tensor.element_size()]
    return tensor.detach().cpu().contiguous().view(signed).numpy()


def random_floats(seed: int, shape: tuple[int, ...], dtype: str) -> torch.Tensor:
    """Random bit patterns of ``dtype`` with special values planted at random places."""
    rng = np.random.default_rng(seed)
    size = 2 if dtype == "bfloat16" else np.dtype(dtype).itemsize
    raw = rng.integers(0, np.iinfo(UINT[size]).max, size=shape, dtype=UINT[size], endpoint=True)
    special = BF16_SPECIAL_BITS if dtype == "bfloat16" else SPECIAL_BITS[size]
    flat = raw.reshape(-1)
    if flat.size:
        places = rng.integers(0, flat.size, size=min(flat.size, len(special)))
        flat[places] = np.array(special[: len(places)], dtype=UINT[size])
    signed = {2: torch.int16, 4: torch.int32, 8: torch.int64}[size]
    return torch.from_numpy(raw.view(np.dtype(f"i{size}")).copy()).view(signed).view(getattr(torch, dtype))


def safe_text(max_size: int = 8):
    # No surrogates (not UTF-8) and no NUL (HDF5 variable-length strings cannot hold one;
    # see test_hdf5_string_ids_with_nul_are_a_clear_error).
    return st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=max_size)


INT64 = st.integers(-(2**63), 2**63 - 1)
JSON_LEAF = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.floats(allow_nan=False, allow_infinity=False) | safe_text()
JSON_TREE = st.recursive(
    JSON_LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(safe_text(5), inner, max_size=3), max_leaves=8
)
# Top-level values: nested containers and numbers. Top-level strings, booleans and None are
# covered value by value in test_scalar_metadata_round_trips.
JSON_TOP = st.one_of(
    st.lists(JSON_TREE, max_size=3), st.dictionaries(safe_text(5), JSON_TREE, max_size=3),
    st.integers(-(2**53), 2**53), st.floats(allow_nan=False, allow_infinity=False),
)
META_KEYS = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True).filter(lambda k: k not in ("format", "kind"))
AUX_DTYPES = ["float16", "float32", "float64", "int64", "int32", "uint8", "bool"]


@st.composite
def embedding_files(draw, fmt: str):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 12))
    dtype = draw(st.sampled_from(FLOATS[fmt]))
    matrix = random_floats(draw(st.integers(0, 2**32 - 1)), (n, d), dtype)
    as_numpy = dtype != "bfloat16" and draw(st.booleans())
    ids = draw(st.sampled_from(["none", "str", "int"]))
    ids = {
        "none": None,
        "str": draw(st.lists(safe_text(), min_size=n, max_size=n, unique=True)),
        "int": draw(st.lists(INT64, min_size=n, max_size=n, unique=True)),
    }[ids]
    labels = draw(st.sampled_from(["none", "str", "int"]))
    labels = {
        "none": None,
        "str": draw(st.lists(st.sampled_from(["cat", "dog", "", "éléphant", "猫"]), min_size=n, max_size=n)),
        "int": draw(st.lists(INT64, min_size=n, max_size=n)),
    }[labels]
    attrs = draw(st.dictionaries(META_KEYS, JSON_TOP, max_size=4))
    attrs["kind"] = draw(st.sampled_from(EMBEDDING_KINDS))
    arrays = {}
    for name in draw(st.lists(st.sampled_from(["space_mean", "space_std", "extra"]), unique=True, max_size=3)):
        shape = tuple(draw(st.lists(st.integers(0, 5), min_size=1, max_size=2)))
        aux_dtype = draw(st.sampled_from(AUX_DTYPES))
        seed = draw(st.integers(0, 2**32 - 1))
        if aux_dtype.startswith("float"):
            arrays[name] = random_floats(seed, shape, aux_dtype).numpy()
        elif aux_dtype == "bool":
            arrays[name] = np.random.default_rng(seed).integers(0, 2, size=shape).astype(bool)
        else:
            info = np.iinfo(aux_dtype)
            arrays[name] = np.random.default_rng(seed).integers(info.min, info.max, size=shape, dtype=aux_dtype)
    anchor_ids = draw(
        st.none()
        | st.lists(safe_text(), min_size=1, max_size=5, unique=True)
        | st.lists(INT64, min_size=1, max_size=5, unique=True)
    )
    return dict(
        matrix=matrix, as_numpy=as_numpy, dtype=dtype, ids=ids, labels=labels, attrs=attrs, arrays=arrays,
        anchor_ids=anchor_ids,
    )


def assert_ids_equal(read, written) -> None:
    if written is None:
        assert read is None
    elif isinstance(written[0], str):
        assert isinstance(read, np.ndarray) and read.dtype == object
        assert read.tolist() == list(written)
    else:
        assert isinstance(read, np.ndarray) and read.dtype == np.int64
        assert read.tolist() == list(written)


@pytest.mark.parametrize("fmt", ["hdf5", "safetensors"])
@settings(max_examples=30, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_round_trip_is_bit_exact(fmt, data, tmp_path):
    case = data.draw(embedding_files(fmt))
    path = Path(tempfile.mkdtemp(dir=tmp_path)) / f"x{EXT[fmt]}"
    matrix = case["matrix"].numpy() if case["as_numpy"] else case["matrix"]
    write_embeddings(
        path, matrix, dtype=case["dtype"], ids=case["ids"], labels=case["labels"], attrs=case["attrs"],
        arrays=case["arrays"], id_arrays=None if case["anchor_ids"] is None else {"anchor_ids": case["anchor_ids"]},
        allow_nonfinite=True,  # the bits of NaN and Inf survive too
    )
    n, d = case["matrix"].shape
    with open_embeddings(path) as f:
        assert (f.format, f.shape, f.dtype, f.key) == (fmt, (n, d), case["dtype"], "embeddings")
        assert f.kind == case["attrs"]["kind"]
        assert f.attrs == {"format": 1, **case["attrs"]}
        whole = f.read_all()
        assert whole.dtype == getattr(torch, case["dtype"])
        np.testing.assert_array_equal(bits(whole), bits(case["matrix"]))
        assert_ids_equal(f.ids, case["ids"])
        assert_ids_equal(f.labels, case["labels"])
        assert_ids_equal(f.strings("anchor_ids"), case["anchor_ids"])
        assert f.row_keys() == ([str(i) for i in range(n)] if case["ids"] is None else [str(i) for i in case["ids"]])
        for name, expected in case["arrays"].items():
            got = f.array(name)
            assert got is not None and tuple(got.shape) == expected.shape
            assert str(got.dtype) == f"torch.{expected.dtype.name}"
            np.testing.assert_array_equal(got.numpy().view(np.uint8), expected.view(np.uint8))
        assert f.array("no_such_array") is None and f.strings("no_such_array") is None
        assert f.array_shapes()["embeddings"] == ([n, d], case["dtype"])


@pytest.mark.parametrize("fmt", ["hdf5", "safetensors"])
def test_zero_rows_round_trip(fmt, tmp_path):
    path = tmp_path / f"empty{EXT[fmt]}"
    write_embeddings(path, torch.zeros((0, 5), dtype=torch.float32))
    with open_embeddings(path) as f:
        assert f.shape == (0, 5)
        assert list(f.iter_chunks(4)) == []
        assert f.read_all().shape == (0, 5)
        assert f.read_rows([]).shape == (0, 5)


SCALARS = [True, False, None, "plain", "", "true", "[not json", "[1, 2]", '{"a": 1}', 0, -7, 2.5, "ünï ☃"]


@pytest.mark.parametrize(
    "fmt,value",
    [
        pytest.param(fmt, v, id=f"{fmt}-{v!r}")
        for fmt in ("hdf5", "safetensors")
        for v in SCALARS
    ],
)
def test_scalar_metadata_round_trips(fmt, value, tmp_path):
    path = tmp_path / f"m{EXT[fmt]}"
    write_embeddings(path, torch.ones(2, 2), attrs={"value": value})
    with open_embeddings(path) as f:
        got = f.attrs["value"]
    assert got == value and type(got) is type(value)


def test_hdf5_refuses_bfloat16(tmp_path):
    for target in ("x.h5", "x.hdf5"):
        with pytest.raises(UsageError, match="bfloat16"):
            EmbeddingWriter(tmp_path / target, 3, 2, "bfloat16")
        with pytest.raises(UsageError, match="bfloat16"):
            write_embeddings(tmp_path / target, torch.ones(3, 2, dtype=torch.bfloat16))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype", ["int8", "float8", "complex64"])
def test_unknown_output_dtype_is_a_usage_error(dtype, tmp_path):
    with pytest.raises(UsageError, match="dtype"):
        EmbeddingWriter(tmp_path / "x.safetensors", 3, 2, dtype)


def test_unknown_kind_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="kind"):
        EmbeddingWriter(tmp_path / "x.h5", 3, 2, attrs={"kind": "banana"})


@pytest.mark.parametrize("fmt", ["hdf5", "safetensors"])
def test_writer_converts_chunks_to_its_dtype(fmt, tmp_path):
    source = torch.randn(7, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    path = tmp_path / f"c{EXT[fmt]}"
    with EmbeddingWriter(path, 7, 3, "float16") as writer:
        writer.write(source[:4])
        writer.write(source[4:].numpy())
    with open_embeddings(path) as f:
        np.testing.assert_array_equal(bits(f.read_all()), bits(source.to(torch.float16)))


def test_bfloat16_writer_accepts_numpy_chunks(tmp_path):
    source = np.linspace(-2, 2, 12, dtype=np.float32).reshape(4, 3)
    with EmbeddingWriter(tmp_path / "b.safetensors", 4, 3, "bfloat16") as writer:
        writer.write(source)
    with open_embeddings(tmp_path / "b.safetensors") as f:
        np.testing.assert_array_equal(bits(f.read_all()), bits(torch.from_numpy(source).to(torch.bfloat16)))


@pytest.mark.parametrize("fmt", ["hdf5", "safetensors"])
def test_bfloat16_aux_arrays_are_widened_to_float32(fmt, tmp_path):
    aux = random_floats(3, (6,), "bfloat16")
    write_embeddings(tmp_path / f"a{EXT[fmt]}", torch.ones(2, 2), arrays={"space_mean": aux})
    with open_embeddings(tmp_path / f"a{EXT[fmt]}") as f:
        got = f.array("space_mean")
    assert got.dtype == torch.float32
    np.testing.assert_array_equal(bits(got), bits(aux.float()))


@pytest.mark.parametrize(
    "fmt",
    [
        "hdf5",
        "safetensors",
    ],
)
def test_scalar_aux_array_round_trips(fmt, tmp_path):
    path = tmp_path / f"s{EXT[fmt]}"
    write_embeddings(path, torch.ones(2, 2), arrays={"mean_norm": np.array(2.5)})
    with open_embeddings(path) as f:
        got = f.array("mean_norm")
    assert got.shape == () and got.item() == 2.5


@pytest.mark.parametrize("fmt", ["hdf5", "safetensors"])
def test_writer_refuses_duplicate_ids(fmt, tmp_path):
    with pytest.raises(DataError, match="duplicate"):
        write_embeddings(tmp_path / f"d{EXT[fmt]}", torch.ones(3, 2), ids=["a", "b", "a"])
    assert list(tmp_path.iterdir()) == []


def test_hdf5_string_ids_with_nul_are_a_clear_error(tmp_path):
    with pytest.raises(RelcliError):
        write_embeddings(tmp_path / "n.h5", torch.ones(2, 2), ids=["a\x00b", "c"])


def test_string_ids_with_nul_round_trip_in_safetensors(tmp_path):
    write_embeddings(tmp_path / "n.safetensors", torch.ones(2, 2), ids=["a\x00b", "c"])
    assert open_embeddings(tmp_path / "n.safetensors").ids.tolist() == ["a\x00b", "c"]


@pytest.mark.parametrize("fmt", ["hdf5", "safetensors"])
def test_ids_or_labels_of_wrong_length_are_refused(fmt, tmp_path):
    with pytest.raises(DataError, match="2 ids for 3 rows"):
        EmbeddingWriter(tmp_path / f"x{EXT[fmt]}", 3, 2, ids=["a", "b"])
    with pytest.raises(DataError, match="4 labels for 3 rows"):
        EmbeddingWriter(tmp_path / f"x{EXT[fmt]}", 3, 2, labels=[0, 1, 2, 3])


@pytest.mark.parametrize("fmt", ["hdf5", "safetensors"])
def test_provenance_round_trips(fmt, tmp_path):
    source = tmp_path / "in.bin"
    payload = np.random.default_rng(0).bytes(3 << 20)
    source.write_bytes(payload)
    prov = make_provenance("project", {"anchors": Path("a.h5"), "ks": (1, 2), "seed": 0, "opt": None}, [source])
    assert prov["parameters"] == {"anchors": "a.h5", "ks": [1, 2], "seed": 0, "opt": None}
    assert prov["inputs"] == [file_fingerprint(source)]
    assert prov["inputs"][0]["size"] == 3 << 20
    assert prov["inputs"][0]["sha256_first_mib"] == hashlib.sha256(payload[: 1 << 20]).hexdigest()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", prov["created_utc"])
    path = tmp_path / f"p{EXT[fmt]}"
    write_embeddings(path, torch.ones(2, 2), attrs={"provenance": prov})
    with open_embeddings(path) as f:
        assert f.attrs["provenance"] == json.loads(json.dumps(prov))


# ---------------------------------------------------------------------------------------------
# Estimators
# ---------------------------------------------------------------------------------------------
class _RoundTripScaler(Translator):
    """A toy translator: a tensor state, a float state and a list state."""

    method = "toy"
    _state = {"weight_": "tensor2", "scale_": "float", "history_": "list", "source_dim_": "int", "target_dim_": "int"}

    def __init__(self, shift: float = 0.0, name: str = "toy", ks: tuple = (1, 2)):
        self.shift = shift
        self.name = name
        self.ks = ks

    def fit(self, x: torch.Tensor, target=None, target_norm=None) -> "_RoundTripScaler":
        self._set_state(weight_=x.T @ x + self.shift, scale_=float(x.float().norm()) / 3.0, history_=[1, {"a": 2.5}],
                        source_dim_=x.shape[1], target_dim_=x.shape[1])
        return self

    def transform(self, x: torch.Tensor, chunk_rows=None) -> torch.Tensor:
        self.check_fitted()
        return x @ self.weight_ * self.scale_


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_estimator_round_trip(dtype, tmp_path):
    x = torch.randn(9, 4, generator=torch.Generator().manual_seed(1)).to(dtype)
    fitted = _RoundTripScaler(shift=0.25, name="ünï", ks=[3, 4]).fit(x)
    path = save_estimator(tmp_path / "map.safetensors", fitted, "translator", attrs={"note": {"x": 1}})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.safetensors"]
    loaded, meta = load_estimator(path, "translator")
    assert type(loaded) is _RoundTripScaler
    assert loaded.get_params() == {"shift": 0.25, "name": "ünï", "ks": [3, 4]}
    assert loaded.weight_.dtype == dtype
    np.testing.assert_array_equal(bits(loaded.weight_), bits(fitted.weight_))
    assert loaded.scale_ == fitted.scale_ and isinstance(loaded.scale_, float)
    assert loaded.history_ == [1, {"a": 2.5}]
    assert (meta["kind"], meta["estimator"], meta["format"], meta["note"]) == ("translator", "_RoundTripScaler", 1, {"x": 1})
    np.testing.assert_array_equal(bits(loaded.transform(x)), bits(fitted.transform(x)))


def test_estimator_wrong_kind_is_refused(tmp_path):
    fitted = _RoundTripScaler().fit(torch.eye(3))
    path = save_estimator(tmp_path / "map.safetensors", fitted, "translator")
    assert load_estimator(path, "translator")[0].scale_ == fitted.scale_
    with pytest.raises(FileFormatError, match="'translator' file, not a head") as caught:
        load_estimator(path, "head")
    assert caught.value.path == str(path)
    relabelled = save_estimator(tmp_path / "head.safetensors", fitted, "head")
    with pytest.raises(FileFormatError, match="is not a head"):
        load_estimator(relabelled, "head")
    write_embeddings(tmp_path / "emb.safetensors", torch.ones(2, 2))
    with pytest.raises(FileFormatError, match="'embeddings' file"):
        load_estimator(tmp_path / "emb.safetensors", "translator")
    write_embeddings(tmp_path / "emb.h5", torch.ones(2, 2))
    with pytest.raises(FileFormatError, match="expected .safetensors"):
        load_estimator(tmp_path / "emb.h5", "translator")


def test_estimator_unknown_class_and_bad_suffix(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "odd.safetensors"
    save_file({"weight_": torch.ones(2)}, str(path), metadata={
        "relcli.format": "1", "relcli.kind": '"translator"', "relcli.estimator": '"NoSuchEstimator"',
        "relcli.params": "{}", "relcli.state": "{}",
    })
    with pytest.raises(FileFormatError, match="unknown estimator 'NoSuchEstimator'") as caught:
        load_estimator(path, "translator")
    assert caught.value.path == str(path)
    with pytest.raises(UsageError, match=".safetensors"):
        save_estimator(tmp_path / "map.h5", _RoundTripScaler().fit(torch.eye(2)), "translator")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["odd.safetensors"]
