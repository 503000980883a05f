"""``relcli embed``: raw items (text, tables, arrays) -> an embedding file, batch by batch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import ProgressBar, command, configure, report, settings

ENCODER_HELP = (
    "torchscript:FILE | hf:DIR | sentence-transformers:DIR | onnx:FILE (with --tokenizer) | NAME:ARG from the "
    "relcli.encoders entry points. Local files only."
)


@command
def embed(
    input: Annotated[Path, typer.Argument(help=".txt (one item per line), .csv/.tsv/.jsonl/.parquet, or .npy/.npz/.h5 arrays.")],
    encoder: Annotated[str, typer.Option("--encoder", "-e", help=ENCODER_HELP)],
    output: opt.Output,
    text_column: Annotated[Optional[str], typer.Option("--text-column", help="Tables: column with the text (default 'text').")] = None,
    id_column: Annotated[Optional[str], typer.Option("--id-column", help="Tables: column with row ids.")] = None,
    label_column: Annotated[Optional[str], typer.Option("--label-column", help="Tables: column with labels.")] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="A 1-D .npy of labels, one per item.")] = None,
    normalize: Annotated[bool, typer.Option("--normalize/--no-normalize", help="L2-normalise every output row.")] = False,
    max_length: Annotated[int, typer.Option("--max-length", min=1, help="Text encoders: tokens per item.")] = 256,
    pooling: Annotated[str, typer.Option("--pooling", help="hf/onnx: mean (attention-mask aware) | cls.")] = "mean",
    tokenizer: Annotated[Optional[Path], typer.Option("--tokenizer", help="onnx: a tokenizers JSON file.")] = None,
    key: Annotated[Optional[str], typer.Option("--key", help="Array inputs: which array of an .npz/.h5.")] = None,
    dtype: Annotated[opt.DtypeName, typer.Option("--dtype", help="Output dtype.")] = "float32",
    drop_invalid: Annotated[bool, typer.Option("--drop-invalid", help="Leave out items whose embedding has NaN/Inf instead of failing.")] = False,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Items (rows) read, encoded and written per chunk.")] = 256,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Embed raw items with a local encoder; ids and labels travel with the rows.

    \b
    Examples:
      relcli embed sample_data/digits.npy --encoder torchscript:sample_data/encoders/mnist_cnn.pt --labels sample_data/digits_labels.npy -o mnist.h5
      relcli embed reviews.csv --encoder hf:./minilm --text-column body --id-column id -o reviews.safetensors
    """
    configure(device, quiet, verbose, debug)
    from relcli import api

    with ProgressBar() as bar:
        result = api.embed(
            input, encoder=encoder, output=output, text_column=text_column, id_column=id_column,
            label_column=label_column, labels=labels, normalize=normalize, max_length=max_length, pooling=pooling,
            tokenizer=tokenizer, key=key, dtype=dtype, drop_invalid=drop_invalid, batch_size=batch_size,
            device=settings.device, progress=bar,
        )
    report(result, f"wrote {result.rows:,} x {result.dims} embeddings to {result.output}")
