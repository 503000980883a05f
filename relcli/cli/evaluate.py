"""``relcli evaluate``: how good a translation or a stitching is, against a reference file."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import command, configure, error, resolve_device, say

METRICS_HELP = """Comma-separated metrics (default: all that apply). Embeddings vs reference rows (same id):
cosine = mean_i cos(pred_i, ref_i); mse = mean (pred - ref)^2 per element;
top{k} = fraction of rows whose reference is among the k most cosine-similar reference rows
(rank_i = 1 + #{j != i: cos(p_i, r_j) > cos(p_i, r_i)}); mrr = mean 1/rank_i; mrr@{k} = mean of 1/rank_i
if rank_i <= k else 0 (relreps); jaccard@{k} = mean |kNN_pred(i) & kNN_ref(i)| / |kNN_pred(i) | kNN_ref(i)|;
cka = linear CKA ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F) on column-centred data (works across dimensions);
csls_top{k} = top-k under CSLS = 2cos - r_T - r_S with 10-NN mean cosines.
Predictions vs reference labels: accuracy; macro_f1 = mean over classes of 2TP / (2TP + FP + FN)."""
LARGE_N = 50_000
DEFAULT_QUERY_SAMPLE = 10_000


class EvalFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def parse_gates(values: list[str] | None, option: str) -> dict[str, float]:
    from relcli.errors import UsageError

    gates = {}
    for value in values or []:
        name, sep, threshold = value.partition("=")
        try:
            gates[name.strip()] = float(threshold)
        except ValueError:
            raise UsageError(f"{option} {value!r}: expected METRIC=NUMBER, e.g. {option} cosine=0.8") from None
        if not sep or not name.strip():
            raise UsageError(f"{option} {value!r}: expected METRIC=NUMBER, e.g. {option} cosine=0.8")
    return gates


def _check_names(names: list[str], allowed_embedding: bool, dims_match: bool) -> None:
    """Reject unknown or inapplicable metric names before any work (usage error, exit 2)."""
    import re

    from relcli.core.metrics import EMBEDDING_METRICS, LABEL_METRICS
    from relcli.errors import UsageError

    k_pattern = re.compile(r"^(top|mrr@|jaccard@|csls_top)[1-9][0-9]*$")
    for name in names:
        is_embedding = name in EMBEDDING_METRICS or bool(k_pattern.match(name))
        if name in LABEL_METRICS and allowed_embedding:
            raise UsageError(f"metric {name!r} needs a predictions file (from `relcli stitch`)")
        if is_embedding and not allowed_embedding:
            raise UsageError(f"metric {name!r} compares embeddings; a predictions file has: {', '.join(LABEL_METRICS)}")
        if not is_embedding and name not in LABEL_METRICS:
            raise UsageError(
                f"unknown metric {name!r}; valid: {', '.join(EMBEDDING_METRICS + LABEL_METRICS)} "
                "(top{k}, mrr@{k}, jaccard@{k}, csls_top{k} take any k)"
            )
        if is_embedding and not dims_match and not (name == "cka" or name.startswith("jaccard@")):
            raise UsageError(f"metric {name!r} needs both files in the same space; across dimensions use cka or jaccard@k")


@command
def evaluate(
    input: Annotated[Path, typer.Argument(help="Embeddings (e.g. translated) or predictions file to judge.")],
    reference: Annotated[Path, typer.Option("--reference", "-r", help="Reference file; rows are matched by id.")],
    metrics: Annotated[Optional[str], typer.Option("--metrics", help=METRICS_HELP)] = None,
    output_format: Annotated[EvalFormat, typer.Option("--format", "-f", help="table | json | csv, on stdout.")] = EvalFormat.table,
    minimum: Annotated[Optional[list[str]], typer.Option("--min", help="Gate: exit 1 unless METRIC >= VALUE (repeatable).")] = None,
    maximum: Annotated[Optional[list[str]], typer.Option("--max", help="Gate: exit 1 unless METRIC <= VALUE (repeatable).")] = None,
    ids: Annotated[
        Optional[Path], typer.Option("--ids", help="Judge only the rows whose ids are in this file (.txt list or embedding file).")
    ] = None,
    exclude_ids: Annotated[
        Optional[Path],
        typer.Option("--exclude-ids", help="Leave out rows whose ids are in this file, e.g. the anchors or a head's training rows."),
    ] = None,
    query_sample: Annotated[
        Optional[int], typer.Option("--query-sample", min=1, help=f"Retrieval over this many sampled queries (default: all, or {DEFAULT_QUERY_SAMPLE:,} above {LARGE_N:,} rows).")
    ] = None,
    seed: opt.Seed = 0,
    key: opt.Key = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Query rows per similarity block.")] = 4096,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Score a file against a reference (rows aligned by id): similarity, retrieval, CKA, or accuracy/F1.

    \b
    Examples:
      relcli evaluate y_hat.h5 --reference y.h5 --format json
      relcli evaluate preds.h5 --reference y.h5 --min accuracy=0.9
      relcli evaluate x.h5 --reference y.h5 --metrics cka          (two spaces, no translation)
    """
    configure(device, quiet, verbose, debug)
    gates_min, gates_max = parse_gates(minimum, "--min"), parse_gates(maximum, "--max")
    import torch

    from relcli.cli import _pipeline as pipe
    from relcli.core.metrics import EMBEDDING_METRICS, LABEL_METRICS, compute_embedding_metrics, compute_label_metrics
    from relcli.errors import DataError
    from relcli.io.embeddings import open_embeddings
    from relcli.io.join import read_id_list, rows_for_keys

    torch_device = resolve_device(device)
    with open_embeddings(input, key=key) as judged, open_embeddings(reference) as ref:
        is_predictions = judged.kind == "predictions"
        dims_match = judged.dim == ref.dim
        asked = [m.strip() for m in metrics.split(",") if m.strip()] if metrics else None
        if asked is None:
            if is_predictions:
                asked = list(LABEL_METRICS)
            elif dims_match:
                asked = list(EMBEDDING_METRICS)
            else:
                asked = ["cka", "jaccard@10"]
        names = asked + [g for g in {**gates_min, **gates_max} if g not in asked]
        _check_names(names, not is_predictions, dims_match)
        judged_keys = judged.row_keys()
        selected = None
        if ids is not None or exclude_ids is not None:
            wanted = set(read_id_list(ids)) if ids is not None else None
            dropped = set(read_id_list(exclude_ids)) if exclude_ids is not None else set()
            selected = [i for i, k in enumerate(judged_keys) if (wanted is None or k in wanted) and k not in dropped]
            if not selected:
                raise DataError("no rows left to judge after --ids/--exclude-ids", input)
            judged_keys = [judged_keys[i] for i in selected]
        rows = rows_for_keys(judged_keys, ref.row_keys(), reference, what=f"row ids of {input.name}")
        n = len(rows)
        if is_predictions:
            if ref.labels is None:
                raise DataError("has no labels to judge predictions against", reference)
            if judged.labels is None:
                raise DataError("is a predictions file without predicted labels", input)
            judged_labels = judged.labels if selected is None else pipe.take_rows(judged.labels, selected)
            predicted, truth = _label_codes(judged_labels, pipe.take_rows(ref.labels, rows))
            results = compute_label_metrics(predicted, truth, names)
        else:
            pred = pipe.load_rows(judged, torch_device, selected)
            truth = pipe.load_rows(ref, torch_device, rows)
            if query_sample is None and n > LARGE_N and any(not m in ("cosine", "mse", "cka") for m in names):
                query_sample = DEFAULT_QUERY_SAMPLE
                say(f"{n:,} rows: retrieval metrics use {query_sample:,} sampled queries (--query-sample to change)")
            dtype = torch.promote_types(pred.dtype, truth.dtype)
            results = compute_embedding_metrics(
                pred.to(dtype), truth.to(dtype), names, chunk_rows=batch_size,
                query_sample=query_sample if query_sample is None else min(query_sample, n), seed=seed,
            )
    report = {"file": str(input), "reference": str(reference), "rows": n, "metrics": results}
    if selected is not None:
        report["selection"] = {"ids": None if ids is None else str(ids), "exclude_ids": None if exclude_ids is None else str(exclude_ids)}
    if query_sample is not None and not is_predictions:
        report["query_sample"] = min(query_sample, n)
    _print(report, output_format)
    failures = [f"{m} = {results[m]:.4f} < {v}" for m, v in gates_min.items() if not results[m] >= v]
    failures += [f"{m} = {results[m]:.4f} > {v}" for m, v in gates_max.items() if not results[m] <= v]
    if failures:
        error(f"{input}: gate failed: {'; '.join(failures)}")
        raise typer.Exit(1)


def _label_codes(predicted, truth):
    """Both label arrays as int64 codes over a shared vocabulary (labels may be strings or ints)."""
    import numpy as np
    import torch

    def as_list(values):
        return [str(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]

    pred_list, true_list = as_list(predicted), as_list(truth)
    vocabulary = {v: i for i, v in enumerate(sorted(set(pred_list) | set(true_list)))}
    encode = lambda values: torch.from_numpy(np.array([vocabulary[v] for v in values], dtype=np.int64))  # noqa: E731
    return encode(pred_list), encode(true_list)


def _print(report: dict, output_format: EvalFormat) -> None:
    results = report["metrics"]
    if output_format is EvalFormat.json:
        typer.echo(json.dumps(report))
    elif output_format is EvalFormat.csv:
        import csv
        import io

        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["file", "reference", "rows", *results])
        writer.writerow([report["file"], report["reference"], report["rows"], *(f"{v:.6g}" for v in results.values())])
        typer.echo(buffer.getvalue(), nl=False)
    else:
        from rich.console import Console
        from rich.table import Table

        console = Console()
        console.print(f"{report['file']} vs {report['reference']} ({report['rows']:,} rows)", soft_wrap=True)
        table = Table()
        table.add_column("metric")
        table.add_column("value", justify="right")
        for name, value in results.items():
            table.add_row(name, f"{value:.4f}")
        console.print(table)
