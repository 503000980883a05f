"""``relcli split``: seeded (stratified) train/test id lists, written both or neither.

Ground truth: the sizes of DESIGN-free arithmetic (ceil(f·n) test rows, floor(f·n) train rows),
per-class shares within one row of n_side·n_c/n, disjointness, and the lists read back by
``relcli.io.join.read_id_list`` (what evaluate --ids reads).
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from relcli import api
from relcli.io.embeddings import write_embeddings
from relcli.io.join import read_id_list

from .conftest import N, assert_clean_error, invoke, ok, snapshot


def lines(path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def test_fraction_split_is_disjoint_complete_seeded_and_in_row_order(data, tmp_path):
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    result = ok(invoke("split", data.x_h5, "--test-size", "0.25", "--seed", "3", "--train-out", train, "--test-out", test))
    assert f"wrote {N - math.ceil(0.25 * N)} train ids to {train}" in result.stderr
    tr, te = lines(train), lines(test)
    assert len(te) == math.ceil(0.25 * N) and len(tr) == N - len(te)
    assert not set(tr) & set(te) and set(tr) | set(te) == set(data.ids)
    position = {k: i for i, k in enumerate(data.ids)}
    assert [position[k] for k in te] == sorted(position[k] for k in te)  # the file's row order
    assert read_id_list(test) == te
    again = tmp_path / "again"
    again.mkdir()
    ok(invoke("split", data.x_h5, "--test", "0.25", "--seed", "3", "--train-out", again / "a.txt", "--test-out", again / "b.txt"))
    assert (again / "a.txt").read_bytes() == train.read_bytes() and (again / "b.txt").read_bytes() == test.read_bytes()
    ok(invoke("split", data.x_h5, "--test-size", "0.25", "--seed", "4", "--train-out", again / "a.txt", "--test-out", again / "b.txt"))
    assert lines(again / "b.txt") != te


def test_counts_and_train_size_leave_the_rest_out(data, tmp_path):
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    result = ok(invoke("split", data.x_h5, "--test-size", "50", "--train-size", "100", "--train-out", train, "--test-out", test))
    assert len(lines(test)) == 50 and len(lines(train)) == 100
    assert f"{N - 150} rows in neither" in result.stderr
    split = api.split(data.x_h5, train_out=tmp_path / "a.txt", test_out=tmp_path / "b.txt", test_size=0.1, train_size=0.5)
    assert (len(split.test), len(split.train)) == (math.ceil(0.1 * N), math.floor(0.5 * N))
    assert split.test == lines(tmp_path / "b.txt") and split.parameters["left_out"] == N - len(split.test) - len(split.train)


def test_a_file_without_ids_is_split_by_row_number(data, tmp_path):
    split = api.split(data.x_npy, train_out=tmp_path / "a.txt", test_out=tmp_path / "b.txt", test_size=0.5)
    assert sorted(split.train + split.test) == list(range(N))
    assert lines(tmp_path / "b.txt") == [str(i) for i in split.test]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_stratified_shares_are_within_one_row_of_exact(tmp_path, seed):
    rng = np.random.default_rng(seed)
    sizes = {"a": 101, "b": 37, "c": 9, "d": 3, "e": 1}  # skewed, with a class of one row
    labels = [name for name, count in sizes.items() for _ in range(count)]
    rng.shuffle(labels)
    n = len(labels)
    path = write_embeddings(tmp_path / "x.h5", rng.standard_normal((n, 4)).astype(np.float32),
                            ids=[f"r{i}" for i in range(n)], labels=labels)
    split = api.split(path, train_out=tmp_path / "tr.txt", test_out=tmp_path / "te.txt", test_size=0.3, stratify=True,
                      seed=seed)
    label_of = dict(zip([f"r{i}" for i in range(n)], labels))
    n_test = math.ceil(0.3 * n)
    assert len(split.test) == n_test and len(split.train) == n - n_test
    test_counts = Counter(label_of[k] for k in split.test)
    for name, count in sizes.items():
        assert abs(test_counts[name] - n_test * count / n) < 1, (name, test_counts[name])
    assert any("class(es) have too few rows" in w for w in split.warnings)  # the class of one row


def test_stratify_through_the_cli_and_evaluate_reads_the_lists(data, tmp_path):
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    ok(invoke("split", data.x_h5, "--test-size", "0.2", "--stratify", "--train-out", train, "--test-out", test))
    label_of = dict(zip(data.ids, data.labels.tolist()))
    counts, totals = Counter(label_of[k] for k in lines(test)), Counter(data.labels.tolist())
    assert all(abs(counts[c] - len(lines(test)) * totals[c] / N) < 1 for c in totals)
    result = ok(invoke("evaluate", data.y_h5, "--reference", data.y_st, "--ids", test, "--metrics", "cosine", "--format", "json"),
                data=True)
    assert f'"rows": {len(lines(test))}' in result.stdout


def test_usage_errors_exit_2_and_write_nothing(data, tmp_path):
    out = dict(train=tmp_path / "train.txt", test=tmp_path / "test.txt")
    args = ["--train-out", out["train"], "--test-out", out["test"]]
    assert_clean_error(invoke("split", data.x_h5, "--test-size", "1.5", *args), 2, "--test-size", "whole")
    assert_clean_error(invoke("split", data.x_h5, "--test-size", N, *args), 2, "do not fit")
    assert_clean_error(invoke("split", data.x_h5, "--test-size", "0.5", "--train-size", "0.6", *args), 2, "do not fit")
    assert_clean_error(invoke("split", data.x_h5, "--train-out", tmp_path / "a.h5", "--test-out", out["test"]), 2, ".txt")
    assert_clean_error(invoke("split", data.x_h5, "--train-out", out["test"], "--test-out", out["test"]), 2, "same file")
    assert_clean_error(invoke("split", data.x_nolabels, "--stratify", *args), 1, "no labels to stratify", path=data.x_nolabels)
    assert not out["train"].exists() and not out["test"].exists()


def test_ids_that_cannot_be_lines_fail_before_either_file_is_touched(tmp_path):
    path = write_embeddings(tmp_path / "x.h5", np.ones((6, 2), np.float32), ids=["a", "b", " c", "d", "e", "f"])
    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    train.write_text("old\n")
    before = snapshot(tmp_path)
    line = assert_clean_error(invoke("split", path, "--test-size", "0.5", "--train-out", train, "--test-out", test), 1,
                              "' c'", "one per line", path=path)
    assert "Traceback" not in line
    assert snapshot(tmp_path) == before  # the old train list untouched, no test list, no temp file


def test_stitch_fit_on_the_train_side_only(data, tmp_path):
    """`stitch fit --ids train.txt` fits on those rows; `--exclude-ids test.txt` and `--ids -` (stdin) agree."""
    import torch
    from typer.testing import CliRunner

    from relcli.cli.app import app
    from relcli.io.kinds import load_estimator

    train, test = tmp_path / "train.txt", tmp_path / "test.txt"
    ok(invoke("split", data.y_h5, "--test-size", "0.25", "--train-out", train, "--test-out", test))
    heads = {name: tmp_path / f"{name}.safetensors" for name in ("ids", "exclude", "stdin", "all")}
    said = {"ids": ok(invoke("stitch", "fit", data.y_h5, "--ids", train, "-o", heads["ids"])).stderr,
            "exclude": ok(invoke("stitch", "fit", data.y_h5, "--exclude-ids", test, "-o", heads["exclude"])).stderr,
            "stdin": ok(CliRunner().invoke(app, ["stitch", "fit", str(data.y_h5), "--ids", "-", "-o", str(heads["stdin"])],
                                           input=train.read_text())).stderr,
            "all": ok(invoke("stitch", "fit", data.y_h5, "-o", heads["all"])).stderr}
    assert f"on {N:,} x" in said["all"]
    assert all(f"on {len(lines(train)):,} x" in said[name] for name in ("ids", "exclude", "stdin"))

    def state(path):
        head = load_estimator(path, "head")[0]
        return {name: getattr(head, name) for name in type(head)._state if isinstance(getattr(head, name), torch.Tensor)}

    fitted = {name: state(path) for name, path in heads.items()}
    for name in ("exclude", "stdin"):
        assert all(torch.equal(value, fitted[name][key]) for key, value in fitted["ids"].items())
    assert not all(torch.equal(value, fitted["all"][key]) for key, value in fitted["ids"].items())
    assert_clean_error(invoke("stitch", "fit", data.y_h5, "--ids", tmp_path / "none.txt", "-o", tmp_path / "h.safetensors"),
                       1, "no such id list")
    assert not (tmp_path / "h.safetensors").exists()


def test_an_id_list_keeps_unicode_spaces_inside_and_around_ids_and_reads_crlf(tmp_path):
    """Only ASCII spaces and CR are stripped and only line feeds split: a word of a .vec file may
    end in a no-break space or hold a line separator, and must still name its row."""
    path = tmp_path / "ids.txt"
    path.write_bytes("\ufeffa\u00a0\r\n b \n\nc\u2028d\n".encode())
    assert read_id_list(path) == ["a\u00a0", "b", "c\u2028d"]


def test_ids_from_standard_input_that_are_not_utf8_are_an_error(data, tmp_path):
    from .conftest import app, runner

    out = tmp_path / "head.safetensors"
    result = runner.invoke(app, ["stitch", "fit", str(data.y_h5), "--ids", "-", "-o", str(out)], input=b"a\xff\n")
    assert_clean_error(result, 1, "<stdin>: is not valid UTF-8 text")
    assert not out.exists()
