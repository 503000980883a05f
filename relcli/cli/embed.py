"""``relcli embed``: raw items (text, tables, arrays) -> an embedding file, batch by batch."""

from pathlib import Path
from typing import Annotated, Literal, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import ProgressBar, command, configure, report, settings

ENCODER_HELP = (
    "torchscript:FILE | hf:DIR | sentence-transformers:DIR | onnx:FILE (tokenizer.json beside it, or --tokenizer) | "
    "NAME:ARG from the relcli.encoders entry points. Local files only."
)
TextFormat = Literal["txt", "csv", "tsv", "jsonl", "parquet"]


@command
def embed(
    input: Annotated[Path, typer.Argument(help=".txt (one item per line), .csv/.tsv/.jsonl/.parquet, .npy/.npz/.h5 arrays, "
                                          "or - for standard input (lines, or JSONL).")],
    encoder: Annotated[str, typer.Option("--encoder", "-e", help=ENCODER_HELP)],
    output: opt.Output,
    text_column: Annotated[Optional[str], typer.Option("--text-column", help="Tables: column with the text (default 'text').")] = None,
    id_column: Annotated[Optional[str], typer.Option("--id-column", help="Tables: column with row ids (default: 'id' if "
                                                     "present, else row numbers; '' for row numbers).")] = None,
    label_column: Annotated[Optional[str], typer.Option("--label-column", help="Tables: column with labels (default: "
                                                        "'label' if present; '' for none).")] = None,
    labels: Annotated[Optional[Path], typer.Option("--labels", help="A 1-D .npy of labels, one per item.")] = None,
    normalize: Annotated[bool, typer.Option("--normalize/--no-normalize", help="L2-normalise every output row.")] = False,
    prefix: Annotated[Optional[str], typer.Option("--prefix", help="Text put before every item, e.g. 'query: ' or "
                                                  "'passage: ' for e5 models.")] = None,
    max_length: Annotated[Optional[int], typer.Option("--max-length", min=1, help="Text encoders: tokens per item "
                                                      "(default: the model's/tokenizer's own limit).")] = None,
    pooling: Annotated[Optional[str], typer.Option("--pooling", help="hf/onnx: mean | cls | max | mean_sqrt_len_tokens | "
                                                   "weightedmean | lasttoken (default: the model folder's, else mean).")] = None,
    tokenizer: Annotated[Optional[Path], typer.Option("--tokenizer", help="onnx: a tokenizers JSON file (default: "
                                                      "tokenizer.json beside the model).")] = None,
    output_name: Annotated[Optional[str], typer.Option("--output-name", help="onnx: the model output to use (default: "
                                                       "its pooled 2-D float output, else its 3-D token states, pooled).")] = None,
    key: Annotated[Optional[str], typer.Option("--key", help="Array inputs: which array of an .npz/.h5.")] = None,
    input_format: Annotated[Optional[TextFormat], typer.Option("--format", help="Read INPUT as this format (default: by "
                                                               "extension; for - text lines, or JSONL if it starts with '{').")] = None,
    skip_empty: Annotated[bool, typer.Option("--skip-empty", help="Leave out items whose text is empty or null instead "
                                             "of failing.")] = False,
    dtype: Annotated[opt.DtypeName, typer.Option("--dtype", help="Output dtype.")] = "float32",
    shard: opt.Shard = None,
    rows: opt.Rows = None,
    drop_invalid: Annotated[bool, typer.Option("--drop-invalid", help="Leave out items whose embedding has NaN/Inf instead of failing.")] = False,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Items per encoder call (default: 64 "
                                                      "texts, 256 arrays).")] = None,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Embed raw items with a local encoder; ids and labels travel with the rows.

    \b
    Examples:
      relcli embed sample_data/digits.npy --encoder torchscript:sample_data/encoders/mnist_cnn.pt --labels sample_data/digits_labels.npy -o mnist.h5
      relcli embed sample_data/wordnet.tsv --encoder hf:./all-MiniLM-L6-v2 --text-column definition --id-column synset_id --label-column lexname --dtype float16 -o wordnet.h5
      relcli embed docs.jsonl --encoder onnx:model/onnx/model.onnx --prefix "passage: " --skip-empty -o docs.safetensors
      cat queries.txt | relcli embed - --encoder sentence-transformers:./e5-small --prefix "query: " -o queries.h5
    """
    configure(device, quiet, verbose, debug)
    from relcli import api
    from relcli.encoders import library_output

    with ProgressBar() as bar, library_output(settings.quiet):  # -q: the model libraries' logging too
        result = api.embed(
            input, encoder=encoder, output=output, text_column=text_column, id_column=id_column,
            label_column=label_column, labels=labels, normalize=normalize, max_length=max_length, pooling=pooling,
            prefix=prefix, tokenizer=tokenizer, output_name=output_name, key=key, format=input_format,
            skip_empty=skip_empty, dtype=dtype, shard=shard, rows=rows, drop_invalid=drop_invalid, batch_size=batch_size,
            device=settings.device, progress=bar,
        )
    report(result, f"wrote {result.rows:,} x {result.dims} embeddings to {result.output}")
