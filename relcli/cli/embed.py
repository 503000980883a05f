"""``relcli embed``: raw items (text, tables, arrays) -> an embedding file, batch by batch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import command, configure, progress, resolve_device, say

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
    dtype: Annotated[str, typer.Option("--dtype", help="Output dtype: float16|bfloat16|float32|float64.")] = "float32",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Items per encoder call.")] = 256,
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
    import torch

    from relcli.cli import _pipeline as pipe
    from relcli.core._common import l2_normalize
    from relcli.encoders import EncoderOptions, load_encoder
    from relcli.errors import DataError
    from relcli.io.atomic import check_output
    from relcli.io.embeddings import EmbeddingWriter
    from relcli.io.items import open_items

    check_output(output)
    pipe.output_dtype(dtype, "float32")
    torch_device = resolve_device(device)
    items = open_items(input, text_column, id_column, label_column, key, labels)
    model = load_encoder(encoder, EncoderOptions(torch_device, max_length, pooling, tokenizer))
    if model.modality != items.modality:
        raise DataError(f"encoder {encoder!r} takes {model.modality} input, but {input.name} holds {items.modality} items", input)

    def encode(start, batch):
        vectors = model.encode(batch)
        if not isinstance(vectors, torch.Tensor) or vectors.ndim != 2 or vectors.shape[0] != len(batch):
            shape = tuple(getattr(vectors, "shape", ()))
            raise DataError(f"encoder output has shape {shape} for a batch of {len(batch)}; expected (rows, dims)", encoder.partition(":")[2] or encoder)
        vectors = vectors.float()
        if normalize:
            vectors = l2_normalize(vectors, f"embeddings of rows {start}..{start + len(batch) - 1}")
        return vectors

    batches = items.batches(batch_size)
    start, batch = next(batches)
    first = encode(start, batch)
    parameters = {"encoder": encoder, "normalize": normalize, "max_length": max_length, "pooling": pooling}
    attrs = {"kind": "embeddings", "encoder": encoder, "provenance": pipe.provenance("embed", parameters, [input, labels])}
    with EmbeddingWriter(output, items.n_rows, first.shape[1], dtype, ids=items.ids, labels=items.labels, attrs=attrs) as writer, \
            progress(items.n_rows, f"embed {input.name}") as advance:
        writer.write(first)
        advance(len(batch))
        for start, batch in batches:
            vectors = encode(start, batch)
            if vectors.shape[1] != first.shape[1]:
                raise DataError(f"encoder returned {vectors.shape[1]} dims for rows from {start}, {first.shape[1]} before", input)
            writer.write(vectors)
            advance(len(batch))
    say(f"wrote {items.n_rows:,} x {first.shape[1]} embeddings to {output}")
