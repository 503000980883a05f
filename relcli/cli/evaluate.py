"""``relcli evaluate``: how good a translation or a stitching is, against a reference file."""

import json
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import ProgressBar, command, configure, detail, error, settings, warn

METRICS_HELP = """Comma-separated metrics (default: all that apply). Embeddings vs reference rows (same id; the
ranked metrics search the reference rows that have an id of INPUT, --pairs every reference row):
cosine = mean_i cos(pred_i, ref_i); mse = mean (pred - ref)^2 per element;
top{k} = fraction of rows whose reference is among the k most cosine-similar reference rows
(rank_i = 1 + #{j != i: cos(p_i, r_j) > cos(p_i, r_i)}); mrr = mean 1/rank_i; mrr@{k} = mean of 1/rank_i
if rank_i <= k else 0 (relreps); jaccard@{k} = mean |kNN_pred(i) & kNN_ref(i)| / |kNN_pred(i) | kNN_ref(i)|;
cka = linear CKA ||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F) on column-centred data (works across dimensions);
csls_top{k} = top-k under CSLS = 2cos - r_T - r_S with 10-NN mean cosines (r_S among the queries' rows).
Predictions vs reference labels: accuracy; macro_f1 = mean over classes of 2TP / (2TP + FP + FN)."""


class EvalFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


def parse_gates(values: list[str] | None, option: str) -> dict[str, float]:
    """--min/--max METRIC=VALUE (repeatable) as {metric: value}."""
    from relcli.errors import UsageError

    gates = {}
    for value in values or []:
        name, sep, threshold = value.partition("=")
        try:
            number = float(threshold)
        except ValueError:
            number = None
        if not sep or not name.strip() or number is None:
            raise UsageError(f"{option} {value!r}: expected METRIC=NUMBER, e.g. {option} cosine=0.8")
        gates[name.strip()] = number
    return gates


@command
def evaluate(
    input: Annotated[Path, typer.Argument(help="Embeddings (e.g. translated) or predictions file to judge.")],
    reference: Annotated[Path, typer.Option("--reference", "-r", help="Reference file; rows are matched by id.")],
    metrics: Annotated[Optional[str], typer.Option("--metrics", help=METRICS_HELP)] = None,
    output_format: Annotated[EvalFormat, typer.Option("--format", "-f", help="table | json | csv, on stdout.")] = EvalFormat.table,
    minimum: Annotated[Optional[list[str]], typer.Option("--min", help="Gate: exit 1 unless METRIC >= VALUE (repeatable).")] = None,
    maximum: Annotated[Optional[list[str]], typer.Option("--max", help="Gate: exit 1 unless METRIC <= VALUE (repeatable).")] = None,
    ids: opt.Ids = None,
    exclude_ids: opt.ExcludeIds = None,
    query_sample: Annotated[
        Optional[int], typer.Option("--query-sample", min=1, help="Retrieval, Jaccard and CSLS over this many "
                                    "sampled queries, each against every row (default: all, or 10,000 above 50,000 rows).")
    ] = None,
    query_batch: Annotated[int, typer.Option("--query-batch", min=1, help="Query rows per matrix product (memory is bounded "
                                                                "either way).")] = 4096,
    pairs: Annotated[Optional[Path], typer.Option("--pairs", help="A bilingual dictionary (source word, reference word; "
                                                  "tab- or space-separated, many-to-many): rank each translated source "
                                                  "word among every reference row, any of its translations a hit "
                                                  "(top{k} = precision@k of word translation; default top1, top5, "
                                                  "top10, mrr; csls_top{k} under CSLS, its hubness among every row of "
                                                  "INPUT: costs INPUT rows x reference rows).")] = None,
    drop_invalid: opt.DropInvalid = False,
    seed: opt.Seed = 0,
    key: opt.Key = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    force: opt.Force = False,
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
      relcli evaluate en_in_fr.h5 --reference fr.h5 --pairs en-fr.5000-6500.txt   (word translation)
    """
    configure(device, quiet, verbose, debug)
    gates_min, gates_max = parse_gates(minimum, "--min"), parse_gates(maximum, "--max")
    from relcli import api

    with ProgressBar() as bar:
        result = api.evaluate(
            input, reference=reference, metrics=metrics, min=gates_min, max=gates_max, ids=ids, exclude_ids=exclude_ids,
            query_sample=query_sample, query_batch=query_batch, seed=seed, key=key, batch_size=batch_size,
            force=force, device=settings.device, pairs=pairs, drop_invalid=drop_invalid, progress=bar,
        )
    for message in result.warnings:
        warn(message)
    for message in result.details:
        detail(message)
    _print(result.report, output_format)
    if result.failures:
        error(f"{input}: gate failed: {'; '.join(result.failures)}")
        raise typer.Exit(1)


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
