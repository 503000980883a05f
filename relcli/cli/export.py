"""``relcli export`` / ``relcli import``: embedding files to and from Parquet, .npy (+ id list), JSON lines and .vec."""

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import ProgressBar, command, configure, report

ExportDtype = Literal["float32", "float64"]


@command
def export(
    input: Annotated[Path, typer.Argument(help="Embedding file to export (.h5, .safetensors, .npy).")],
    output: Annotated[Path, typer.Option("-o", "--output", help=".parquet (id, label, vector: fixed-size list), .npy (+ "
                                         "NAME.ids.txt, NAME.labels.txt), .jsonl ({id, label, vector} per line) or .vec "
                                         "(word2vec/fastText text, ids as words), by extension.")],
    dtype: Annotated[Optional[ExportDtype], typer.Option("--dtype", help="Vector type (default: float64 for float64 "
                                                         "files, else float32: nothing is lost).")] = None,
    drop_invalid: opt.DropInvalid = False,
    key: opt.Key = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Rows per chunk, and per Parquet row "
                                                      "group (default: about 32 MiB of rows).")] = opt.DEFAULT_BATCH,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Export an embedding file for other tools: Parquet (pandas, DuckDB, LanceDB), .npy + id list, JSON lines or .vec.

    Streams row by row and writes atomically (all files or none). Files without ids get their row
    numbers as ids. JSON and .vec numbers are exact, so `relcli import` gives back the same bits
    (float32 by default: import a float64 file's export with `--dtype float64`).

    \b
    Examples:
      relcli export y.h5 -o y.parquet
      relcli export y.h5 -o y.npy               (writes y.npy, y.ids.txt and, with labels, y.labels.txt)
      relcli export y.h5 -o y.jsonl
      relcli export fr_in_en.h5 -o fr_in_en.vec  (word vectors for fastText, MUSE, gensim)
      duckdb -c "SELECT id, label, vector[1] FROM 'y.parquet' LIMIT 3"
    """
    configure(None, quiet, verbose, debug)
    from relcli import api

    with ProgressBar() as bar:
        result = api.export(input, output=output, dtype=dtype, drop_invalid=drop_invalid, key=key, batch_size=batch_size,
                            progress=bar)
    also = [str(p) for role, p in result.files.items() if role != "output"]
    report(result, f"wrote {result.rows:,} x {result.dims} rows to {result.output}" + (f" (and {', '.join(also)})" if also else ""))


@command
def import_(
    input: Annotated[Path, typer.Argument(help=".parquet, .npy, .jsonl or .vec/.vec.gz/.txt/.txt.gz (word "
                                                "vectors: the words become the ids) to read (by extension).")],
    output: opt.Output,
    vector_column: Annotated[Optional[str], typer.Option("--vector-column", help="Parquet/JSONL: the vector column, a "
                                                         "list or fixed-size list of numbers (default: 'vector'; Parquet: "
                                                         "else the only list column).")] = None,
    id_column: Annotated[Optional[str], typer.Option("--id-column", help="Parquet/JSONL: the id column (default: 'id' "
                                                     "if present; '' for row numbers).")] = None,
    label_column: Annotated[Optional[str], typer.Option("--label-column", help="Parquet/JSONL: the label column (default: "
                                                        "'label' if present; '' for none).")] = None,
    ids: Annotated[Optional[Path], typer.Option("--ids", help=".npy: ids, one per line (default: NAME.ids.txt beside it, "
                                                "if there).")] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help=".npy: labels, one per line (default: "
                                                   "NAME.labels.txt beside it, if there).")] = None,
    dtype: opt.Dtype = None,
    drop_invalid: opt.DropInvalid = False,
    drop_duplicates: Annotated[bool, typer.Option("--drop-duplicates", help="Keep the first row of a repeated id (a "
                                                  "word a .vec lists twice) and leave the later ones out, with a warning "
                                                  "that counts them, instead of failing (as MUSE and gensim do); the first row is kept as it "
                                                  "is, even where --drop-invalid then leaves it out.")] = False,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Import Parquet, .npy (+ id list), JSON lines or word vectors (.vec) into an embedding file (.h5 or .safetensors).

    Parquet from other tools works too (pandas list<double>, LanceDB fixed-size lists). Ids and
    labels in .txt files that are all integers become integers.

    \b
    Examples:
      relcli import y.parquet -o y.h5
      relcli import y.npy -o y.safetensors      (reads y.ids.txt and y.labels.txt when they are there)
      relcli import table.parquet --vector-column embedding --id-column doc_id --label-column '' -o docs.h5
      relcli import y.jsonl -o y.h5
      relcli import cc.fr.300.vec.gz -o fr.h5   (fastText/word2vec text, with or without the 'N D' header)
    """
    configure(None, quiet, verbose, debug)
    from relcli import api

    with ProgressBar() as bar:
        result = api.import_file(input, output=output, vector_column=vector_column, id_column=id_column,
                                 label_column=label_column, ids=ids, labels=labels, dtype=dtype, drop_invalid=drop_invalid,
                                 drop_duplicates=drop_duplicates,
                                 batch_size=batch_size, progress=bar)
    report(result, f"wrote {result.rows:,} x {result.dims} rows to {result.output}")
