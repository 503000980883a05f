"""Atomic writes (DESIGN §3): a failed, interrupted or killed write leaves no output and never
touches an existing one; stale temp files are cleaned; reading and writing one path is safe."""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from relcli.errors import DataError, FileFormatError, RelcliError, UsageError
from relcli.io.atomic import TEMP_SUFFIX, atomic_output, check_writable, output_format
from relcli.io.embeddings import EmbeddingWriter, open_embeddings, write_embeddings

FORMATS = ["hdf5", "safetensors"]
EXT = {"hdf5": ".h5", "safetensors": ".safetensors"}
ROOT = Path(__file__).resolve().parents[2]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def previous_output(folder: Path, fmt: str) -> tuple[Path, str]:
    """An existing output file and the hash of its bytes."""
    path = folder / f"out{EXT[fmt]}"
    write_embeddings(path, torch.arange(12.0).reshape(4, 3), ids=["a", "b", "c", "d"])
    return path, digest(path)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


class Boom(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# (a) an exception inside the block
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("exc", [Boom, KeyboardInterrupt])
@pytest.mark.parametrize("rows_before", [0, 5, 10])
def test_exception_in_block_leaves_previous_output(fmt, exc, rows_before, tmp_path):
    path, before = previous_output(tmp_path, fmt)
    with pytest.raises(exc):
        with EmbeddingWriter(path, 10, 3, ids=[str(i) for i in range(10)]) as writer:
            if rows_before:
                writer.write(torch.ones(rows_before, 3))
            temps = [n for n in names(tmp_path) if n.endswith(TEMP_SUFFIX)]
            assert len(temps) == 1 and re.fullmatch(rf"\.{re.escape(path.name)}\.{os.getpid()}\.[0-9a-f]+{TEMP_SUFFIX}", temps[0])
            assert digest(path) == before  # not replaced before success
            raise exc()
    assert names(tmp_path) == [path.name]
    assert digest(path) == before


@pytest.mark.parametrize("fmt", FORMATS)
def test_exception_without_previous_output_leaves_nothing(fmt, tmp_path):
    with pytest.raises(Boom):
        with EmbeddingWriter(tmp_path / f"new{EXT[fmt]}", 4, 2) as writer:
            writer.write(np.ones((4, 2), dtype=np.float32))
            raise Boom
    assert names(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# (b) a writer killed with SIGKILL
# ---------------------------------------------------------------------------------------------
SLOW_WRITER = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from relcli.io.embeddings import EmbeddingWriter

    path, rows, dim, step = sys.argv[1], 400_000, 64, 2_000
    block = np.ones((step, dim), dtype=np.float32)
    with EmbeddingWriter(path, rows, dim, ids=[f"id{i}" for i in range(rows)]) as writer:
        for start in range(0, rows, step):
            writer.write(block)
            if start == 3 * step:
                print("writing", flush=True)
            time.sleep(0.01)
    print("finished", flush=True)
    """
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_sigkill_mid_write_leaves_previous_output_and_stale_temp_is_cleaned(fmt, tmp_path):
    path, before = previous_output(tmp_path, fmt)
    child = subprocess.Popen(
        [sys.executable, "-c", SLOW_WRITER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = child.stdout.readline()
        assert line == "writing\n", child.stderr.read()
        stale = [n for n in names(tmp_path) if n.endswith(TEMP_SUFFIX)]
        assert len(stale) == 1 and f".{child.pid}." in stale[0]
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        child.stdout.close()
        child.stderr.close()
    assert names(tmp_path) == sorted([path.name, stale[0]])  # the half file never has the output's name
    assert digest(path) == before
    with open_embeddings(path) as f:
        assert f.shape == (4, 3)

    write_embeddings(path, torch.full((2, 3), 7.0))  # the next successful write cleans up
    assert names(tmp_path) == [path.name]
    with open_embeddings(path) as f:
        assert f.read_all().tolist() == [[7.0] * 3] * 2


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_only_stale_temps_of_the_same_output_are_removed(tmp_path):
    dead = _dead_pid()
    keep = [
        f".out.h5.{os.getpid()}.aaaa{TEMP_SUFFIX}",  # a live writer (this process)
        f".other.h5.{dead}.bbbb{TEMP_SUFFIX}",  # another output's temp file
        f".out.h5.notapid.cccc{TEMP_SUFFIX}",
        "out.h5.backup",
    ]
    removed = [f".out.h5.{dead}.dddd{TEMP_SUFFIX}", f".out.h5.{dead}.eeee{TEMP_SUFFIX}"]
    for name in keep + removed:
        (tmp_path / name).write_bytes(b"partial")
    write_embeddings(tmp_path / "out.h5", torch.ones(2, 2))
    assert names(tmp_path) == sorted(keep + ["out.h5"])


def test_glob_characters_in_the_output_name(tmp_path):
    dead = _dead_pid()
    out = tmp_path / "we[ir]d*?.safetensors"
    (tmp_path / f".{out.name}.{dead}.ffff{TEMP_SUFFIX}").write_bytes(b"x")
    (tmp_path / f".wei.safetensors.{dead}.ffff{TEMP_SUFFIX}").write_bytes(b"x")
    write_embeddings(out, torch.ones(2, 2))
    assert names(tmp_path) == sorted([out.name, f".wei.safetensors.{dead}.ffff{TEMP_SUFFIX}"])


# ---------------------------------------------------------------------------------------------
# (c) too few or too many rows, wrong shapes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("written", [0, 1, 9])
def test_fewer_rows_than_announced_is_a_data_error(fmt, written, tmp_path):
    path, before = previous_output(tmp_path, fmt)
    with pytest.raises(DataError, match=f"wrote {written} of 10 rows") as caught:
        with EmbeddingWriter(path, 10, 3) as writer:
            if written:
                writer.write(torch.ones(written, 3))
    assert caught.value.path == str(path)
    assert names(tmp_path) == [path.name] and digest(path) == before


@pytest.mark.parametrize("fmt", FORMATS)
def test_more_rows_or_wrong_width_is_a_data_error(fmt, tmp_path):
    out = tmp_path / f"x{EXT[fmt]}"
    with pytest.raises(DataError, match="more rows"):
        with EmbeddingWriter(out, 4, 3) as writer:
            writer.write(torch.ones(3, 3))
            writer.write(torch.ones(2, 3))
    with pytest.raises(DataError, match=r"\[4, 2\] does not fit"):
        with EmbeddingWriter(out, 4, 3) as writer:
            writer.write(torch.ones(4, 2))
    with pytest.raises(DataError, match="does not fit"):
        with EmbeddingWriter(out, 4, 3) as writer:
            writer.write(torch.ones(12))
    assert names(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# (d) reading and writing the same path in one step
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("batch", [7, 1000])
def test_read_and_write_the_same_path(fmt, batch, tmp_path):
    path = tmp_path / f"same{EXT[fmt]}"
    m = torch.randn(500, 8, generator=torch.Generator().manual_seed(0))
    ids = [f"r{i}" for i in range(500)]
    write_embeddings(path, m, ids=ids, attrs={"kind": "anchors"})
    with open_embeddings(path) as source:
        with EmbeddingWriter(path, source.n_rows, source.dim, ids=source.ids, attrs=source.attrs) as writer:
            for _, chunk in source.iter_chunks(batch):
                writer.write(chunk * 2 + 1)
    assert names(tmp_path) == [path.name]
    with open_embeddings(path) as f:
        assert f.ids.tolist() == ids and f.kind == "anchors"
        assert torch.equal(f.read_all(), m * 2 + 1)


# ---------------------------------------------------------------------------------------------
# writer-side bad inputs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["x.npy", "x.txt", "x", "x.h5.tmp", "x.pt"])
def test_unknown_output_extension_is_a_usage_error(name, tmp_path):
    with pytest.raises(UsageError, match="unknown output extension") as caught:
        EmbeddingWriter(tmp_path / name, 2, 2)
    assert caught.value.exit_code == 2 and caught.value.path == str(tmp_path / name)
    with pytest.raises(UsageError):
        write_embeddings(tmp_path / name, torch.ones(2, 2))
    assert names(tmp_path) == []


@pytest.mark.parametrize("name,fmt", [("X.H5", "hdf5"), ("x.HDF5", "hdf5"), ("x.SafeTensors", "safetensors")])
def test_output_extension_is_case_insensitive(name, fmt, tmp_path):
    assert output_format(tmp_path / name) == fmt
    write_embeddings(tmp_path / name, torch.ones(2, 2))
    assert open_embeddings(tmp_path / name).format == fmt


@pytest.mark.parametrize("fmt", FORMATS)
def test_missing_output_folder(fmt, tmp_path):
    out = tmp_path / "no" / "such" / f"x{EXT[fmt]}"
    with pytest.raises(FileFormatError, match="does not exist") as caught:
        write_embeddings(out, torch.ones(2, 2))
    assert caught.value.path == str(out) and "no/such" in caught.value.message
    assert names(tmp_path) == []


def test_output_that_is_a_folder(tmp_path):
    (tmp_path / "x.h5").mkdir()
    with pytest.raises(FileFormatError, match="it is a folder"):
        write_embeddings(tmp_path / "x.h5", torch.ones(2, 2))
    assert (tmp_path / "x.h5").is_dir()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root ignores folder permissions")
@pytest.mark.parametrize("fmt", FORMATS)
def test_output_folder_not_writable(fmt, tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(FileFormatError, match="not writable"):
            write_embeddings(folder / f"x{EXT[fmt]}", torch.ones(2, 2))
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o700)


def test_check_writable_and_atomic_output(tmp_path):
    assert check_writable(tmp_path / "a.h5") == tmp_path / "a.h5"
    target = tmp_path / "plain.bin"
    with atomic_output(target) as temp:
        temp.write_bytes(b"hello")
        assert not target.exists()
    assert target.read_bytes() == b"hello" and names(tmp_path) == ["plain.bin"]
    with pytest.raises(RelcliError, match="nothing was written"):
        with atomic_output(tmp_path / "empty.bin"):
            pass
    assert names(tmp_path) == ["plain.bin"]
