"""The file contract of DESIGN §3 against plain h5py / safetensors / numpy code, both ways.

relcli's files must read back with nothing but h5py or safetensors and the schema, and files
written by plain code (one 2-D array under any name, ``key=`` among several, bare .npy,
safetensors.torch.save_file) must read with relcli.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import load_file, save_file

from relcli.errors import FileFormatError, UsageError
from relcli.io.embeddings import open_embeddings, write_embeddings

IDS = ["alpha", "βeta", "", "猫", "id with space", "emoji 🙂"]


def matrix(n: int = 6, d: int = 5, dtype=np.float32, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(dtype)


def same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    signed = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.contiguous().view(signed), b.contiguous().view(signed))


def provenance() -> dict:
    return {"relcli_version": "0.1.0", "subcommand": "test", "parameters": {"n": 3}, "inputs": [], "created_utc": "x"}


# ---------------------------------------------------------------------------------------------
# relcli -> plain code
# ---------------------------------------------------------------------------------------------
def test_relcli_hdf5_reads_with_plain_h5py(tmp_path):
    path = tmp_path / "x.h5"
    m = matrix(300, 7)
    ids = [f"{IDS[i % len(IDS)]}#{i}" for i in range(300)]
    labels = np.arange(300) % 4
    write_embeddings(
        path, m, ids=ids, labels=labels, id_arrays={"anchor_ids": ["a", "b"]},
        arrays={"space_mean": np.arange(7, dtype=np.float32)},
        attrs={"kind": "anchors", "provenance": provenance(), "source_stats": {"mean_norm": 1.5}},
    )
    with h5py.File(path, "r") as f:
        data = f["embeddings"]
        assert data.shape == (300, 7) and data.dtype == np.float32
        assert data.chunks is not None and data.chunks[1] == 7  # chunked by rows
        np.testing.assert_array_equal(data[...], m)
        assert f["ids"].dtype.kind in "OS" and list(f["ids"].asstr()[...]) == ids
        assert f["labels"].dtype == np.int64 and f["labels"][...].tolist() == labels.tolist()
        assert list(f["anchor_ids"].asstr()[...]) == ["a", "b"]
        np.testing.assert_array_equal(f["space_mean"][...], np.arange(7, dtype=np.float32))
        attrs = dict(f.attrs)
        assert int(attrs["relcli.format"]) == 1
        assert attrs["relcli.kind"] == "anchors"
        assert json.loads(attrs["relcli.provenance"]) == provenance()
        assert json.loads(attrs["relcli.source_stats"]) == {"mean_norm": 1.5}
        assert all(k.startswith("relcli.") for k in attrs)


def test_relcli_hdf5_int_ids_and_string_labels(tmp_path):
    path = tmp_path / "x.hdf5"
    write_embeddings(path, matrix(), ids=np.arange(10, 16), labels=["a", "b", "a", "c", "b", "é"])
    with h5py.File(path, "r") as f:
        assert f["ids"].dtype == np.int64 and f["ids"][...].tolist() == list(range(10, 16))
        assert list(f["labels"].asstr()[...]) == ["a", "b", "a", "c", "b", "é"]


def _decode_strings(f, name: str) -> list[str]:
    blob = f.get_tensor(f"{name}_utf8").tobytes()
    offsets = f.get_tensor(f"{name}_offsets")
    assert offsets.dtype == np.int64 and offsets[0] == 0 and offsets[-1] == len(blob)
    return [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(len(offsets) - 1)]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16", "float64"])
def test_relcli_safetensors_reads_with_plain_safetensors(dtype, tmp_path):
    path = tmp_path / "x.safetensors"
    m = torch.from_numpy(matrix(6, 5)).to(getattr(torch, dtype))
    write_embeddings(
        path, m, ids=IDS, labels=["x", "y", "x", "z", "y", "x"],
        arrays={"space_std": torch.arange(5, dtype=torch.float64)}, id_arrays={"anchor_ids": np.array([7, 8])},
        attrs={"kind": "relative", "provenance": provenance(), "similarities": ["cosine"]},
    )
    with safe_open(str(path), framework="pt") as f:
        assert set(f.keys()) == {"embeddings", "ids_utf8", "ids_offsets", "labels_utf8", "labels_offsets", "space_std", "anchor_ids"}
        emb = f.get_tensor("embeddings")
        assert emb.dtype == m.dtype and same_bits(emb, m)
        assert same_bits(f.get_slice("embeddings")[2:5], m[2:5])
        assert f.get_tensor("ids_utf8").dtype == torch.uint8
        assert f.get_tensor("anchor_ids").dtype == torch.int64
        meta = f.metadata()
    assert all(k.startswith("relcli.") and isinstance(v, str) for k, v in meta.items())
    assert json.loads(meta["relcli.format"]) == 1
    assert json.loads(meta["relcli.kind"]) == "relative"
    assert json.loads(meta["relcli.provenance"]) == provenance()
    assert json.loads(meta["relcli.similarities"]) == ["cosine"]
    with safe_open(str(path), framework="np") as f:
        if dtype != "bfloat16":
            np.testing.assert_array_equal(f.get_tensor("embeddings"), m.numpy())
        assert _decode_strings(f, "ids") == IDS
        assert _decode_strings(f, "labels") == ["x", "y", "x", "z", "y", "x"]
    assert torch.equal(load_file(str(path))["space_std"], torch.arange(5, dtype=torch.float64))


def test_relcli_safetensors_int_ids(tmp_path):
    path = tmp_path / "x.safetensors"
    write_embeddings(path, matrix(), ids=[5, -1, 2**40, 0, 3, 9], labels=np.array([0, 1, 0, 1, 2, 2]))
    tensors = load_file(str(path))
    assert set(tensors) == {"embeddings", "ids", "labels"}
    assert tensors["ids"].dtype == torch.int64 and tensors["ids"].tolist() == [5, -1, 2**40, 0, 3, 9]
    assert tensors["labels"].dtype == torch.int64 and tensors["labels"].tolist() == [0, 1, 0, 1, 2, 2]


# ---------------------------------------------------------------------------------------------
# plain code -> relcli
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["vectors", "group/vectors", "a/b/c/deep"])
def test_plain_hdf5_with_one_matrix_under_any_name(name, tmp_path):
    path = tmp_path / "foreign.h5"
    m = matrix(9, 4, np.float64)
    with h5py.File(path, "w") as f:
        f[name] = m
        f["counts"] = np.arange(9)  # a 1-D array is never the matrix
        f.attrs["creator"] = "someone else"
    with open_embeddings(path) as e:
        assert (e.format, e.key, e.shape, e.dtype, e.kind) == ("hdf5", name, (9, 4), "float64", "embeddings")
        assert e.ids is None and e.labels is None and e.attrs == {}
        np.testing.assert_array_equal(e.read_all().numpy(), m)


def test_unsigned_ids_past_int64_are_text_not_wrapped(tmp_path):
    """uint64 ids ≥ 2^63 cannot be int64: they are read as their decimal text (as integer ids past
    int64 in .txt lists), never wrapped to negative numbers; smaller unsigned ids stay integers."""
    path = tmp_path / "big.safetensors"
    save_numpy({"embeddings": matrix(3, 2), "ids": np.array([1, 2**63, 2**64 - 1], dtype=np.uint64)}, str(path))
    with open_embeddings(path) as e:
        assert e.ids.tolist() == ["1", "9223372036854775808", "18446744073709551615"]
    big = tmp_path / "big.h5"
    with h5py.File(big, "w") as f:
        f["emb"] = matrix(2, 2)
        f["ids"] = np.array([7, 2**63], dtype=np.uint64)
    with open_embeddings(big) as e:
        assert e.ids.tolist() == ["7", "9223372036854775808"]
    small = tmp_path / "small.h5"
    with h5py.File(small, "w") as f:
        f["emb"] = matrix(2, 2)
        f["ids"] = np.array([7, 2**63 - 1], dtype=np.uint64)
    with open_embeddings(small) as e:
        assert e.ids.dtype == np.int64 and e.ids.tolist() == [7, 2**63 - 1]


def test_plain_hdf5_ids_and_labels_of_other_types(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["emb"] = matrix(3, 2)
        f["ids"] = np.array([b"x", b"y", b"z"])  # fixed-length bytes
        f["labels"] = np.array([1, 2, 1], dtype=np.int32)
    with open_embeddings(path) as e:
        assert e.ids.tolist() == ["x", "y", "z"]
        assert e.labels.dtype == np.int64 and e.labels.tolist() == [1, 2, 1]


@pytest.mark.parametrize("store", ["vlen bytes", "vlen str", "fixed", "fixed with NUL"])
def test_plain_hdf5_string_ids_of_every_storage(store, tmp_path):
    """Ids are decoded a block at a time, joined at NUL bytes; fixed-length strings may hold a NUL
    inside (HDF5's variable-length ones cannot), and those blocks are decoded one by one."""
    ids = IDS[:2] + [f"id{i}" for i in range(70000)] + IDS[2:]  # past one 65,536-id block
    if store == "fixed with NUL":
        ids[3] = "a\x00b"
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["emb"] = np.zeros((len(ids), 2), np.float32)
        encoded = [i.encode("utf-8") for i in ids]
        if store.startswith("fixed"):
            f["ids"] = np.array(encoded)
        else:
            f.create_dataset("ids", data=encoded if store == "vlen bytes" else ids,
                             dtype=h5py.vlen_dtype(bytes) if store == "vlen bytes" else h5py.string_dtype())
    with open_embeddings(path) as e:
        assert e.ids.tolist() == ids


def test_plain_hdf5_ids_that_are_not_utf8(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["emb"] = np.zeros((3, 2), np.float32)
        f.create_dataset("ids", data=[b"a", b"\xff\xfe", b"c"], dtype=h5py.vlen_dtype(bytes))
    with pytest.raises(FileFormatError, match="'ids' holds strings that are not valid UTF-8"):
        open_embeddings(path)


def test_key_chooses_among_several(tmp_path):
    path = tmp_path / "several.h5"
    a, b = matrix(5, 3, seed=1), matrix(8, 2, seed=2)
    with h5py.File(path, "w") as f:
        f["a"] = a
        f["nested/b"] = b
    with pytest.raises(UsageError, match="several 2-D arrays.*--key") as caught:
        open_embeddings(path)
    assert caught.value.path == str(path)
    with open_embeddings(path, key="a") as e:
        assert e.shape == (5, 3) and np.array_equal(e.read_all().numpy(), a)
    with open_embeddings(path, key="nested/b") as e:
        assert e.shape == (8, 2) and np.array_equal(e.read_all().numpy(), b)
    with pytest.raises(UsageError, match="no array 'c'"):
        open_embeddings(path, key="c")


def test_embeddings_name_wins_over_other_matrices(tmp_path):
    path = tmp_path / "x.h5"
    with h5py.File(path, "w") as f:
        f["embeddings"] = matrix(4, 3)
        f["other"] = matrix(2, 2)
    with open_embeddings(path) as e:
        assert e.key == "embeddings" and e.shape == (4, 3)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_bare_npy(dtype, tmp_path):
    path = tmp_path / "m.npy"
    m = matrix(11, 6, dtype)
    np.save(path, m)
    with open_embeddings(path) as e:
        assert (e.format, e.shape, e.dtype, e.ids) == ("npy", (11, 6), np.dtype(dtype).name, None)
        np.testing.assert_array_equal(e.read_all().numpy(), m)


def test_fortran_order_npy(tmp_path):
    m = matrix(7, 3)
    np.save(tmp_path / "f.npy", np.asfortranarray(m))
    with open_embeddings(tmp_path / "f.npy") as e:
        np.testing.assert_array_equal(e.read_all().numpy(), m)
        np.testing.assert_array_equal(e.read_rows([6, 0, 6]).numpy(), m[[6, 0, 6]])


@pytest.mark.parametrize("fmt", ["npy", "hdf5"])
def test_big_endian_foreign_matrix(fmt, tmp_path):
    m = matrix(4, 3)
    path = tmp_path / ("be.npy" if fmt == "npy" else "be.h5")
    if fmt == "npy":
        np.save(path, m.astype(">f4"))
    else:
        with h5py.File(path, "w") as f:
            f["x"] = m.astype(">f4")
    with open_embeddings(path) as e:
        np.testing.assert_array_equal(e.read_all().numpy(), m)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_safetensors_torch_save_file(dtype, tmp_path):
    path = tmp_path / "model.safetensors"
    weight = torch.randn(10, 4, generator=torch.Generator().manual_seed(3)).to(dtype)
    save_file({"weight": weight, "bias": torch.zeros(4)}, str(path), metadata={"producer": "torch"})
    with open_embeddings(path) as e:
        assert (e.format, e.key, e.shape, e.dtype, e.attrs) == ("safetensors", "weight", (10, 4), str(dtype)[6:], {})
        got = e.read_all()
        assert got.dtype == dtype and torch.equal(got, weight)
        assert torch.equal(e.read_rows([9, 0, 9]), weight[[9, 0, 9]])
        assert e.array("bias").tolist() == [0.0] * 4


def test_safetensors_key_and_int_ids(tmp_path):
    path = tmp_path / "two.safetensors"
    a, b = torch.ones(3, 2), torch.arange(12.0).reshape(4, 3)
    save_file({"a": a, "b": b, "ids": torch.tensor([4, 5, 6, 7])}, str(path))
    with pytest.raises(UsageError, match="--key"):
        open_embeddings(path)
    with open_embeddings(path, key="b") as e:
        assert e.shape == (4, 3) and torch.equal(e.read_all(), b)
        assert e.ids.tolist() == [4, 5, 6, 7]


def test_safetensors_numpy_save_file(tmp_path):
    path = tmp_path / "np.safetensors"
    m = matrix(5, 5, np.float64)
    save_numpy({"embeddings": m, "labels": np.array([1, 1, 2, 2, 3], dtype=np.int64)}, str(path))
    with open_embeddings(path) as e:
        np.testing.assert_array_equal(e.read_all().numpy(), m)
        assert e.labels.tolist() == [1, 1, 2, 2, 3]


def test_a_nul_in_a_string_id_is_refused_for_hdf5_and_kept_by_safetensors(tmp_path):
    from relcli.errors import DataError

    ids = ["a", "b\x00c", "d"]
    with pytest.raises(DataError, match="ids contain a NUL character, which HDF5 strings cannot hold"):
        write_embeddings(tmp_path / "x.h5", matrix(3, 2), ids=ids)
    assert not list(tmp_path.iterdir())
    write_embeddings(tmp_path / "x.safetensors", matrix(3, 2), ids=ids)
    with open_embeddings(tmp_path / "x.safetensors") as e:
        assert e.ids.tolist() == ids
