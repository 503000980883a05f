"""``relcli evaluate`` and ``relcli info`` on outputs through typer's CliRunner: metrics, formats,
gates, row selection, exit codes, stdout vs stderr.

Ground truth comes from NumPy in float64 on the same small files (see conftest.py): X, and
Y = 2.5 X Q + noise with the same ids. Commands that are not asked for data print nothing on
stdout; their one "wrote ..." line goes to stderr (DESIGN §6).
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from relcli.core.evaluation import EMBEDDING_METRICS
from relcli.io.embeddings import write_embeddings

from ._commands_helpers import evaluate_json
from .conftest import K, N, assert_clean_error, invoke, load, ok, row_cosines, unit_rows


# ---------------------------------------------------------------------------------------------
# evaluate
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def translated(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("translated") / "y_hat.h5"
    ok(invoke("translate", "--src", data.x_h5, "--tgt-anchors", data.ya, "--method", "procrustes", "-o", out))
    return out


def test_evaluate_json(data, translated):
    report = evaluate_json(translated, "--reference", data.y_st)
    assert (report["file"], report["reference"], report["rows"]) == (str(translated), str(data.y_st), N)
    metrics = report["metrics"]
    assert list(metrics) == list(EMBEDDING_METRICS)
    y_hat = load(translated).matrix
    assert metrics["cosine"] == pytest.approx(row_cosines(y_hat, data.y).mean(), abs=1e-6)
    assert metrics["mse"] == pytest.approx(np.mean((y_hat.astype(np.float64) - data.y) ** 2), rel=1e-5)
    sims = unit_rows(y_hat) @ unit_rows(data.y).T
    ranks = 1 + (sims > np.diag(sims)[:, None]).sum(axis=1)
    assert metrics["top1"] == pytest.approx(np.mean(ranks == 1))
    assert metrics["top5"] == pytest.approx(np.mean(ranks <= 5))
    assert metrics["mrr"] == pytest.approx(np.mean(1 / ranks), abs=1e-6)


def test_evaluate_table_and_csv(data, translated):
    table = ok(invoke("evaluate", translated, "--reference", data.y_st), data=True)
    assert table.stderr == ""
    assert "cosine" in table.stdout and "top1" in table.stdout and f"({N:,} rows)" in table.stdout
    report = evaluate_json(translated, "--reference", data.y_st)
    assert f"{report['metrics']['cosine']:.4f}" in table.stdout

    result = ok(invoke("evaluate", translated, "--reference", data.y_st, "--format", "csv"), data=True)
    assert result.stderr == ""
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert len(rows) == 2 and rows[0] == ["file", "reference", "rows", *EMBEDDING_METRICS]
    assert rows[1][:3] == [str(translated), str(data.y_st), str(N)]
    for name, value in zip(rows[0][3:], rows[1][3:]):
        assert float(value) == pytest.approx(report["metrics"][name], rel=1e-5, abs=1e-9)


def test_evaluate_chosen_metrics_in_order(data, translated):
    report = evaluate_json(translated, "--reference", data.y_st, "--metrics", "mrr@5,cosine,top3,cka")
    assert list(report["metrics"]) == ["mrr@5", "cosine", "top3", "cka"]


def test_evaluate_joins_rows_by_id(data, translated, tmp_path):
    perm = np.random.default_rng(3).permutation(N)
    shuffled = write_embeddings(tmp_path / "y_perm.safetensors", data.y[perm], ids=[data.ids[p] for p in perm])
    a = evaluate_json(translated, "--reference", data.y_st, "--metrics", "cosine,mse,top1")["metrics"]
    b = evaluate_json(translated, "--reference", shuffled, "--metrics", "cosine,mse,top1")["metrics"]
    assert b == pytest.approx(a, rel=1e-6)


@pytest.mark.parametrize("fmt", ["json", "table"])
def test_evaluate_gates(data, translated, fmt):
    passing = invoke("evaluate", translated, "--reference", data.y_st, "--format", fmt,
                     "--min", "cosine=0.9", "--min", "top1=0.5", "--max", "mse=1.0")
    ok(passing, data=True)
    assert passing.stderr == ""

    failing = invoke("evaluate", translated, "--reference", data.y_st, "--format", fmt,
                     "--min", "cosine=0.9", "--min", "top1=1.01", "--max", "mse=0")
    assert failing.exit_code == 1 and isinstance(failing.exception, SystemExit)
    assert "Traceback" not in failing.output
    # the data are still printed, and complete
    if fmt == "json":
        report = json.loads(failing.stdout)
        assert report["metrics"]["top1"] <= 1.0
    else:
        assert "top1" in failing.stdout and "mse" in failing.stdout
    lines = failing.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and str(translated) in lines[0]
    assert "gate failed" in lines[0] and "top1" in lines[0] and "mse" in lines[0]
    assert "cosine" not in lines[0]  # the gate that passed is not reported


def test_evaluate_gate_adds_its_metric(data, translated):
    """A gate on a metric not in --metrics is computed anyway (and shown)."""
    result = invoke("evaluate", translated, "--reference", data.y_st, "--format", "json",
                    "--metrics", "cosine", "--min", "top1=0.5")
    ok(result, data=True)
    assert set(json.loads(result.stdout)["metrics"]) == {"cosine", "top1"}


def cka_numpy(x: np.ndarray, y: np.ndarray) -> float:
    x = x.astype(np.float64) - x.mean(axis=0)
    y = y.astype(np.float64) - y.mean(axis=0)
    return float(np.linalg.norm(y.T @ x) ** 2 / (np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)))


def test_evaluate_cka_across_dimensions(data):
    report = evaluate_json(data.x_h5, "--reference", data.z_h5, "--metrics", "cka")
    assert list(report["metrics"]) == ["cka"]
    assert report["metrics"]["cka"] == pytest.approx(cka_numpy(data.x, data.z), abs=1e-5)
    assert report["metrics"]["cka"] > 0.99  # Z = X W + small noise


def test_evaluate_default_metrics_across_dimensions(data):
    report = evaluate_json(data.x_h5, "--reference", data.z_h5)
    assert list(report["metrics"]) == ["cka", "jaccard@10"]  # what applies across dims
    assert report["metrics"]["cka"] == pytest.approx(cka_numpy(data.x, data.z), abs=1e-5)
    assert report["metrics"]["jaccard@10"] > 0.8


def test_evaluate_cka_in_one_space(data, translated):
    """The CKA formula itself, where dims match (so this runs while the across-dims bug stands)."""
    report = evaluate_json(translated, "--reference", data.y_st, "--metrics", "cka")
    assert report["metrics"]["cka"] == pytest.approx(cka_numpy(load(translated).matrix, data.y), abs=1e-6)


def test_evaluate_same_space_metrics_refused_across_dimensions(data):
    wrong = invoke("evaluate", data.x_h5, "--reference", data.z_h5, "--metrics", "cosine")
    assert_clean_error(wrong, 2, "'cosine'", "cka")
    assert wrong.stdout == ""


def test_evaluate_ids_and_exclude_ids_select_rows(data, tmp_path):
    """--ids keeps only the listed rows, --exclude-ids drops them (lists as .txt or embedding files)."""
    from relcli.io.embeddings import open_embeddings

    with open_embeddings(data.xa) as anchors_file:
        anchor_ids = anchors_file.row_keys()
    with open_embeddings(data.x_h5) as x_file:
        n_rows = x_file.n_rows
    listing = tmp_path / "ids.txt"
    listing.write_text("\n".join(anchor_ids[:5]) + "\n")
    only = evaluate_json(data.x_h5, "--reference", data.x_h5, "--metrics", "cosine", "--ids", listing)
    assert only["rows"] == 5 and only["metrics"]["cosine"] == pytest.approx(1.0)
    rest = evaluate_json(data.x_h5, "--reference", data.x_h5, "--metrics", "cosine", "--exclude-ids", data.xa)
    assert rest["rows"] == n_rows - len(anchor_ids)
    assert rest["selection"] == {"ids": None, "exclude_ids": str(data.xa)}


def test_evaluate_drop_invalid_leaves_out_the_rows_of_either_file(data, tmp_path):
    """A NaN row in the judged file or an all-zero row in the reference is an error naming its id,
    or with --drop-invalid is left out (a warning names it) and the metrics are those of the rest;
    a zero row is only invalid for metrics that need a direction."""
    import torch

    from relcli.core.evaluation import compute_embedding_metrics

    judged, reference = data.y.copy(), data.y + np.float32(0.1)
    judged[3] = np.nan
    reference[7] = 0.0
    judged_path = write_embeddings(tmp_path / "judged.h5", judged, ids=data.ids, allow_nonfinite=True)
    reference_path = write_embeddings(tmp_path / "ref.h5", reference, ids=data.ids)
    assert_clean_error(invoke("evaluate", judged_path, "--reference", reference_path), 1, repr(data.ids[3]),
                       "use --drop-invalid", path=judged_path)
    names = ["cosine", "top1", "mrr"]
    result = ok(invoke("evaluate", judged_path, "--reference", reference_path, "--drop-invalid", "--metrics",
                       ",".join(names), "--format", "json"), data=True)
    assert f"left out 1 row(s) (ids {data.ids[3]!r}) of judged.h5: NaN/Inf" in result.stderr
    assert f"left out 1 row(s) (ids {data.ids[7]!r}) of ref.h5" in result.stderr
    kept = [i for i in range(N) if i not in (3, 7)]
    expected = compute_embedding_metrics(torch.from_numpy(judged[kept]), torch.from_numpy(reference[kept]), names)
    report = json.loads(result.stdout)
    assert report["rows"] == len(kept)
    for name in names:
        assert report["metrics"][name] == pytest.approx(expected[name], abs=1e-9), name
    mse_only = ok(invoke("evaluate", judged_path, "--reference", reference_path, "--drop-invalid", "--metrics", "mse",
                         "--format", "json"), data=True)  # no direction needed: the zero row stays
    assert json.loads(mse_only.stdout)["rows"] == N - 1 and "ref.h5" not in mse_only.stderr


# ---------------------------------------------------------------------------------------------
# info on outputs
# ---------------------------------------------------------------------------------------------
def test_info_describes_a_relative_file(data, tmp_path):
    out = tmp_path / "rel.safetensors"
    ok(invoke("project", data.x_h5, "--anchors", data.xa, "-o", out))
    result = ok(invoke("info", out, "--format", "json"), data=True)
    assert result.stderr == ""
    summary = json.loads(result.stdout)
    assert (summary["kind"], summary["rows"], summary["dims"]) == ("relative", N, K)
    assert summary["metadata"]["similarities"] == ["cosine"]
    assert summary["provenance"]["subcommand"] == "project"
    table = ok(invoke("info", out), data=True)
    assert "relative" in table.stdout and table.stderr == ""


def test_row_metrics_stream_in_chunks_and_agree_with_the_closed_form(data, tmp_path):
    """cosine and mse are means over rows: computed chunk by chunk (any --batch-size) they equal the
    closed form over the whole, rows matched by id (the reference is in another order)."""
    rng = np.random.default_rng(5)
    order = rng.permutation(N)
    noisy = data.y + 0.1 * rng.standard_normal(data.y.shape).astype(np.float32)
    judged = write_embeddings(tmp_path / "judged.h5", noisy[order], ids=[data.ids[i] for i in order])
    expected_cos = float(np.mean(row_cosines(noisy.astype(np.float64), data.y.astype(np.float64))))
    expected_mse = float(np.mean((noisy.astype(np.float64) - data.y) ** 2))
    for batch in ("7", "100000"):
        report = json.loads(ok(invoke("evaluate", judged, "--reference", data.y_h5, "--metrics", "cosine,mse",
                                      "--batch-size", batch, "--format", "json"), data=True).stdout)
        assert report["rows"] == N
        assert report["metrics"]["cosine"] == pytest.approx(expected_cos, rel=1e-6)
        assert report["metrics"]["mse"] == pytest.approx(expected_mse, rel=1e-5)


@pytest.mark.parametrize("sample", [None, 37])
def test_every_metric_streams_through_files_and_equals_the_in_memory_result(data, tmp_path, sample):
    """evaluate reads both files chunk by chunk (memory flat in the rows): at any --batch-size, with the
    reference in another order and a query sample or none, every metric equals ``compute_embedding_metrics``
    on the whole matrices joined by id."""
    import torch

    from relcli.core.evaluation import compute_embedding_metrics

    rng = np.random.default_rng(6)
    order = rng.permutation(N)
    noisy = data.y + 0.3 * rng.standard_normal(data.y.shape).astype(np.float32)
    judged = write_embeddings(tmp_path / "judged.h5", noisy[order], ids=[data.ids[i] for i in order])
    names = [*EMBEDDING_METRICS, "top3", "jaccard@4", "csls_top5"]
    expected = compute_embedding_metrics(torch.from_numpy(noisy[order]), torch.from_numpy(data.y[order]), names,
                                         query_sample=sample, seed=3)
    for batch in ("5", "64", "100000"):
        extra = [] if sample is None else ["--query-sample", str(sample)]
        report = evaluate_json(judged, "--reference", data.y_h5, "--metrics", ",".join(names), "--batch-size", batch,
                               "--seed", "3", *extra)
        for name in names:  # float32 files: CKA's products are float32 and their sums depend on the chunks (~1e-8)
            tolerance = 1e-6 if name == "cka" else 1e-9
            assert report["metrics"][name] == pytest.approx(expected[name], abs=tolerance), (batch, name)


def test_a_file_with_fewer_rows_than_the_reference_is_ranked_among_its_own_ids_and_told_so(data, tmp_path):
    """Ranks search the reference rows the judged file has ids for; a translated subset would otherwise
    look better than against the whole index without a word. --pairs with 'id id' lines searches it all."""
    half = write_embeddings(tmp_path / "half.h5", data.x[: N // 2], ids=data.ids[: N // 2])
    result = ok(invoke("evaluate", half, "--reference", data.x_h5, "--metrics", "top1,cosine", "-f", "json"), data=True)
    assert f"top1 rank each row of half.h5 among the {N // 2:,} reference rows with its ids, not among all {N:,}" in result.stderr
    quiet = ok(invoke("evaluate", data.x_h5, "--reference", data.x_h5, "--metrics", "top1", "-f", "json"), data=True)
    assert "rank each row" not in quiet.stderr
    broken = data.x.copy()
    broken[3] = np.nan  # a row --drop-invalid leaves out is not a row the judged file lacks
    broken_h5 = write_embeddings(tmp_path / "broken.h5", broken, ids=data.ids, allow_nonfinite=True)
    dropped = ok(invoke("evaluate", data.x_h5, "--reference", broken_h5, "--metrics", "top1", "--drop-invalid", "-f",
                        "json"), data=True)
    assert "rank each row" not in dropped.stderr
    neighbours = ok(invoke("evaluate", half, "--reference", data.x_h5, "--metrics", "jaccard@5", "-f", "json"), data=True)
    assert "rank each row" not in neighbours.stderr  # Jaccard compares neighbourhoods; --pairs would not help it
    pairs = tmp_path / "same.txt"
    pairs.write_text("".join(f"{i} {i}\n" for i in data.ids[: N // 2]))
    whole = json.loads(ok(invoke("evaluate", half, "--reference", data.x_h5, "--pairs", pairs, "--metrics", "top1",
                                 "-f", "json"), data=True).stdout)
    assert whole["metrics"]["top1"] == 1.0  # each row is itself in the reference: found first among all N


def test_default_metrics_leave_out_the_ks_that_need_more_rows(data, tmp_path):
    """'All that apply': with 5 rows top10, jaccard@10 and CSLS's 10 neighbours do not apply (they were
    an error); asked for by name, they still are."""
    five = write_embeddings(tmp_path / "five.h5", data.x[:5], ids=data.ids[:5])
    five_ref = write_embeddings(tmp_path / "five_ref.h5", data.y[:5], ids=data.ids[:5])
    result = ok(invoke("evaluate", five, "--reference", five_ref, "--force", "-f", "json", "-v"), data=True)
    metrics = json.loads(result.stdout)["metrics"]
    assert "top5" in metrics and "mrr" in metrics and not {"top10", "jaccard@10", "csls_top1"} & set(metrics)
    assert "top10, jaccard@10, csls_top1 left out: 5 rows are too few for them" in result.stderr
    assert_clean_error(invoke("evaluate", five, "--reference", five_ref, "--force", "--metrics", "top10"), 1, "top10")
    one = write_embeddings(tmp_path / "one.h5", data.x[:1], ids=data.ids[:1])
    single = json.loads(ok(invoke("evaluate", one, "--reference", five_ref, "--force", "-f", "json"), data=True).stdout)
    assert set(single["metrics"]) == {"cosine", "mse"}  # a rank among one row, or CKA of one row, says nothing
