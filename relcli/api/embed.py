"""``api.embed``: raw items (text, tables, arrays) -> an embedding file, batch by batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from relcli.api._context import as_path, check_batch_size, provenance, resolve_device
from relcli.api._results import Progress, Result
from relcli.api._rows import RowLoop
from relcli.errors import DataError, UsageError

DEFAULT_TEXT_BATCH = 256


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
    max_length: int = 256,
    pooling: str = "mean",
    tokenizer=None,
    key: str | None = None,
    dtype: str = "float32",
    drop_invalid: bool = False,
    batch_size: int = DEFAULT_TEXT_BATCH,
    device: str | None = None,
    progress: Progress | None = None,
) -> Result:
    """Embed every item of ``input`` with a local ``encoder`` (``BACKEND:PATH``); ids and labels travel with the rows.

    An encoder output holding NaN/Inf is an error naming the items (or, with ``drop_invalid``,
    those items are left out).
    """
    import torch

    from relcli.api._context import output_dtype
    from relcli.core._common import l2_normalize
    from relcli.encoders import EncoderOptions, load_encoder
    from relcli.io.atomic import check_output
    from relcli.io.embeddings import EmbeddingWriter
    from relcli.io.items import open_items

    input, output, labels, tokenizer = Path(input), check_output(output), as_path(labels), as_path(tokenizer)
    check_batch_size(batch_size)
    output_dtype(dtype, "float32")
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise UsageError(f"--max-length must be a positive integer, got {max_length!r}")
    torch_device = resolve_device(device)
    items = open_items(input, text_column, id_column, label_column, key, labels)
    model = load_encoder(encoder, EncoderOptions(torch_device, max_length, pooling, tokenizer))
    if model.modality != items.modality:
        raise DataError(f"encoder {encoder!r} takes {model.modality} input, but {input.name} holds {items.modality} items", input)
    model_path = encoder.partition(":")[2] or encoder
    dims: dict[str, int] = {}

    def encode(batch):
        vectors = model.encode(batch)
        if not isinstance(vectors, torch.Tensor) or vectors.ndim != 2 or vectors.shape[0] != len(batch):
            shape = tuple(getattr(vectors, "shape", ()))
            raise DataError(f"encoder output has shape {shape} for a batch of {len(batch)}; expected (rows, dims)", model_path)
        if dims.setdefault("dim", vectors.shape[1]) != vectors.shape[1]:
            raise DataError(f"encoder returned {vectors.shape[1]} dims for a batch, {dims['dim']} before", model_path)
        vectors = vectors.float()
        return l2_normalize(vectors, "output") if normalize else vectors

    parameters = {"encoder": encoder, "normalize": normalize, "max_length": max_length, "pooling": pooling}
    attrs = {"kind": "embeddings", "encoder": encoder, "provenance": provenance("embed", parameters, [input, labels])}
    loop = RowLoop(input, items.n_rows, items.ids, items.labels, drop_invalid=drop_invalid, progress=progress,
                   description=f"embed {input.name}")
    with EmbeddingWriter(output, None, None, dtype, attrs=attrs) as writer:
        batches = ((np.arange(start, start + len(batch), dtype=np.int64), batch) for start, batch in items.batches(batch_size))
        loop.run(batches, encode, writer)
        writer.attrs["dropped"] = len(loop.dropped)
        if loop.written == 0:
            raise DataError("no item could be embedded", input)
    return Result("embed", output, loop.written, dims.get("dim", 0), len(loop.dropped), loop.dropped_ids,
                  parameters=parameters, files={"output": output})
