"""``api.embed``: raw items (text, tables, arrays) -> an embedding file, batch by batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from relcli.api._context import as_path, check_batch_size, provenance, resolve_device, row_range
from relcli.api._results import Progress, Result
from relcli.api._rows import RowLoop
from relcli.errors import DataError, UsageError, describe_rows

#: Texts per encoder call. Measured with all-MiniLM-L6-v2 (hf:) on 1,000 WordNet glosses on a
#: shared 2-core CPU, length-sorted, seconds (quiet machine / busy machine) and peak memory over
#: the loaded model: 16: 15.8 / 58-61 s, +136 MB; 32: 8.0 / 33 s, +161 MB; 64: 7.3 / 22 s,
#: +167 MB; 128: 12.0 / 17 s, +230 MB; 256: 14.9 / 15 s, +468 MB. 64 is the fastest on a quiet
#: machine at the memory of 32.
DEFAULT_TEXT_BATCH = 64
#: Arrays (images) per encoder call.
DEFAULT_TENSOR_BATCH = 256
#: Text rows read and written per chunk, in encoder batches: texts are sorted by length inside
#: a chunk (less padding), encoded batch by batch, and put back in input order.
TEXT_CHUNK_BATCHES = 16


def embed(
    input,
    *,
    encoder: str,
    output,
    text_column: str | None = None,
    id_column: str | None = None,
    label_column: str | None = None,
    labels=None,
    normalize: bool = False,
    max_length: int | None = None,
    pooling: str | None = None,
    prefix: str | None = None,
    tokenizer=None,
    output_name: str | None = None,
    key: str | None = None,
    format: str | None = None,
    skip_empty: bool = False,
    dtype: str = "float32",
    shard=None,
    rows=None,
    drop_invalid: bool = False,
    batch_size: int | None = None,
    device: str | None = None,
    progress: Progress | None = None,
) -> Result:
    """Embed every item of ``input`` with a local ``encoder`` (``BACKEND:PATH``); ids and labels travel with the rows.

    ``input`` ``-`` is standard input (text lines, or JSONL). ``max_length`` and ``pooling``
    default to the model's own; ``prefix`` is put before every text (``"query: "`` for e5
    models). Text batches are length-sorted (less padding), the output keeps the input's order.
    An empty or null text is an error naming its rows (``skip_empty`` leaves them out). An
    encoder output holding NaN/Inf is an error naming the items (or, with ``drop_invalid``,
    those items are left out). The model libraries' own progress bars never reach stderr.
    """
    import torch

    from relcli.api._context import output_dtype
    from relcli.core._common import l2_normalize
    from relcli.encoders import EncoderOptions, load_encoder
    from relcli.io.atomic import check_output
    from relcli.io.embeddings import EmbeddingWriter
    from relcli.io.items import STDIN, open_items
    from relcli.io.spaces import SPACE_KEY, encoder_space

    from_stdin = str(input) == STDIN
    input, output, labels, tokenizer = Path(input), check_output(output), as_path(labels), as_path(tokenizer)
    if batch_size is not None:
        check_batch_size(batch_size)
    output_dtype(dtype, "float32")
    if max_length is not None and (isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1):
        raise UsageError(f"--max-length must be a positive integer, got {max_length!r}")
    torch_device = resolve_device(device)
    items = open_items(STDIN if from_stdin else input, text_column, id_column, label_column, key, labels,
                       format=format, skip_empty=skip_empty)
    if items.modality != "text" and prefix is not None:
        raise UsageError(f"--prefix applies to text items, but {items.path.name} holds {items.modality} items")
    options = EncoderOptions(device=torch_device, max_length=max_length, pooling=pooling, tokenizer=tokenizer,
                             output_name=output_name)
    model = load_encoder(encoder, options)
    if model.modality != items.modality:
        raise DataError(f"encoder {encoder!r} takes {model.modality} input, but {items.path.name} holds {items.modality} items",
                        items.path)
    model_path = getattr(model, "path", None) or encoder
    batch = batch_size or (DEFAULT_TEXT_BATCH if items.modality == "text" else DEFAULT_TENSOR_BATCH)
    dims: dict[str, int] = {}

    def checked(vectors, n: int):
        if not isinstance(vectors, torch.Tensor) or vectors.ndim != 2 or vectors.shape[0] != n:
            shape = tuple(getattr(vectors, "shape", ()))
            raise DataError(f"encoder output has shape {shape} for a batch of {n}; expected (rows, dims)", model_path)
        if dims.setdefault("dim", vectors.shape[1]) != vectors.shape[1]:
            raise DataError(f"encoder returned {vectors.shape[1]} dims for a batch, {dims['dim']} before", model_path)
        return vectors.float()

    def encode_texts(chunk: list[str]):
        """Longest first, ``batch`` texts per call, rows put back in the chunk's order."""
        texts = [prefix + t for t in chunk] if prefix else chunk
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = None
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            vectors = checked(model.encode([texts[i] for i in rows]), len(rows))
            if out is None:
                out = torch.empty(len(texts), vectors.shape[1], dtype=vectors.dtype, device=vectors.device)
            out[torch.as_tensor(rows, device=vectors.device)] = vectors
        return out

    def encode(chunk):
        vectors = encode_texts(chunk) if items.modality == "text" else checked(model.encode(chunk), len(chunk))
        return l2_normalize(vectors, "output") if normalize else vectors

    settings = dict(getattr(model, "settings", None) or {})
    parameters = {
        "encoder": encoder,
        "normalize": normalize,
        "max_length": settings.get("max_length", max_length),
        "pooling": settings.get("pooling", pooling),
        "prefix": prefix,
        "batch_size": batch,
        "skip_empty": skip_empty,
        "encoder_settings": settings,
    }
    if from_stdin:
        parameters.update(input="-", format=format, stdin_sha256=items.sha256)
    start, stop, shard_record = row_range(items.n_rows, shard, rows)
    if shard_record:
        shard_record["source"] = "-" if from_stdin else str(input)
        parameters["shard"] = shard_record
    attrs = {"kind": "embeddings", "encoder": encoder, **({"shard": shard_record} if shard_record else {}),
             "provenance": provenance("embed", parameters, [None if from_stdin else input, labels])}
    chunk_rows = batch * TEXT_CHUNK_BATCHES if items.modality == "text" else batch
    loop = RowLoop(items.path, items.n_rows, items.ids, items.labels, drop_invalid=drop_invalid, progress=progress,
                   description=f"embed {items.path.name}", span=(start, stop))
    with EmbeddingWriter(output, None, None, dtype, attrs=attrs) as writer:
        chunks = items.batches(chunk_rows, start, stop)
        batches = ((np.arange(first, first + len(chunk), dtype=np.int64), chunk) for first, chunk in chunks)
        loop.run(batches, encode, writer)
        writer.attrs["dropped"] = len(loop.dropped)
        writer.attrs["skipped_empty"] = len(items.skipped)
        if loop.written == 0:
            raise DataError("no item could be embedded", items.path)
        writer.attrs[SPACE_KEY] = encoder_space(encoder, model, dims["dim"])
    notes = [f"skipped {describe_rows(items.skipped, items.id_noun)} with an empty text"] if items.skipped else []
    return Result("embed", output, loop.written, dims.get("dim", 0), len(loop.dropped), loop.dropped_ids,
                  parameters=parameters, notes=notes, files={"output": output})

