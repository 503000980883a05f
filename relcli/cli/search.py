"""``relcli search``: the k nearest rows of an index file to ids, rows of a file, or texts; JSON lines on stdout."""

import json
from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import ProgressBar, command, configure, detail, say, settings, warn

SimilarityName = Literal["cosine", "csls"]

SIMILARITY_HELP = (
    "cosine: cos(q, y). csls: 2cos(q, y) - r_T(q) - r_S(y) (Conneau et al. 2018), r_T(q) = mean cosine of q to its "
    "--csls-k nearest index rows, r_S(y) = mean cosine of index row y to its --csls-k nearest rows of the query side "
    "(the --queries file, else the index itself without y; a seeded sample of --csls-sample rows when larger). "
    "CSLS demotes hubs: rows near everything."
)


@command
def search(
    index: Annotated[Path, typer.Argument(help="Embedding file to search in (the index); streamed, any size.")],
    query_id: Annotated[Optional[list[str]], typer.Option("--id", help="A query: the row with this id (of --queries "
                                                          "if given, else of INDEX). Repeatable.")] = None,
    ids: Annotated[Optional[Path], typer.Option("--ids", help="Query ids from a file (.txt, one per line, or an "
                                                "embedding file's ids).")] = None,
    queries: Annotated[Optional[Path], typer.Option("--queries", help="Embedding file of query rows (all of them, or "
                                                    "those picked by --id/--ids), e.g. translated into INDEX's space.")] = None,
    text: Annotated[Optional[list[str]], typer.Option("--text", help="A query text, embedded with --encoder. Repeatable.")] = None,
    encoder: Annotated[Optional[str], typer.Option("--encoder", "-e", help="For --text: the encoder that made INDEX "
                                                   "(torchscript:, hf:, sentence-transformers:, onnx: or a plugin; "
                                                   "as `relcli embed`).")] = None,
    prefix: Annotated[Optional[str], typer.Option("--prefix", help="For --text: put before every text, e.g. 'query: ' "
                                                  "for e5 models.")] = None,
    pooling: Annotated[Optional[str], typer.Option("--pooling", help="For --text with hf:/onnx: the pooling (as `relcli embed`).")] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", min=1, help="For --text: tokens per text.")] = None,
    tokenizer: Annotated[Optional[Path], typer.Option("--tokenizer", help="For --text with onnx: a tokenizers JSON file.")] = None,
    k: Annotated[int, typer.Option("-k", "--top-k", min=1, help="Neighbours per query (fewer when the index has fewer rows).")] = 10,
    similarity: Annotated[SimilarityName, typer.Option("--similarity", help=SIMILARITY_HELP)] = "cosine",
    csls_k: Annotated[int, typer.Option("--csls-k", min=1, help="CSLS neighbourhood size for r_T and r_S.")] = 10,
    csls_sample: Annotated[int, typer.Option("--csls-sample", min=1, help="CSLS: r_S from at most this many rows "
                                             "(seeded sample; exact when the query side has no more).")] = 10_000,
    include_self: Annotated[bool, typer.Option("--include-self", help="Let a query that is a row of INDEX find itself.")] = False,
    drop_invalid: Annotated[bool, typer.Option("--drop-invalid", help="Skip index rows with NaN/Inf or all zeros instead "
                                               "of failing (queries must always be valid).")] = False,
    seed: opt.Seed = 0,
    key: opt.Key = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    force: opt.Force = False,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Top-k nearest rows of INDEX for each query, one JSON line per query on stdout.

    Each line is {"query": ID or TEXT, "neighbours": [{"id": ..., "score": ..., "rank": 1, "label": ...}, ...]}
    ("label" when INDEX has labels; scores rounded to 6 decimals; ties go to the earlier row).
    INDEX is read once in chunks, so memory stays flat however many rows it has.

    \b
    Examples:
      relcli search y.h5 --id n02084071 --id n02121808 -k 5
      relcli search y.h5 --ids test.txt --similarity csls
      relcli search y.h5 --queries y_hat.h5 --ids test.txt -k 10 > hits.jsonl
      relcli search wordnet_minilm.h5 --text "a domesticated carnivorous mammal" --encoder hf:./all-MiniLM-L6-v2
    """
    configure(device, quiet, verbose, debug)
    from relcli import api
    from relcli.encoders import library_output

    with ProgressBar() as bar, library_output(settings.quiet):
        result = api.search(
            index, id=query_id, ids=ids, queries=queries, text=text, encoder=encoder, prefix=prefix, pooling=pooling,
            max_length=max_length, tokenizer=tokenizer, k=k, similarity=similarity, csls_k=csls_k,
            csls_sample=csls_sample, include_self=include_self, drop_invalid=drop_invalid, seed=seed, key=key,
            batch_size=batch_size, force=force, device=settings.device, progress=bar,
        )
    for message in result.warnings:
        warn(message)
    if result.dropped:
        from relcli.errors import describe_rows

        say(f"skipped {describe_rows(result.dropped_ids)} of {index} that could not be used")
    for message in result.details:
        detail(message)
    for record in result.records():
        typer.echo(json.dumps(record, ensure_ascii=False))
