"""``api.export`` and ``api.import_file``: embedding files to and from Parquet, ``.npy``, JSON lines and ``.vec``.

Formats, chosen by the extension of the file written (export) or read (import):

- ``.parquet``: columns ``id`` (int64 or string; the row number for files without ids),
  ``label`` (int64 or string, when the file has labels) and ``vector``, a fixed-size list of
  float32 (float64 for float64 files or ``dtype="float64"``): the layout pyarrow, pandas and LanceDB
  read as a vector column (DuckDB reads it as a list, ``FLOAT[]``: cast with ``vector::FLOAT[d]``
  for its array functions). One row group per chunk of rows
  (``batch_size``, default about 32 MiB of rows). The schema metadata ``relcli`` holds JSON: the
  source's kind and provenance and this export's provenance.
- ``.npy``: the matrix (float32, or float64 as above) written as it streams, plus ``NAME.ids.txt``
  (one id per line, always written: row numbers for files without ids) and ``NAME.labels.txt``
  (one label per line, when the file has labels) beside it. ``x.ids.txt`` is an id list for
  ``evaluate --ids``.
- ``.jsonl``: one object per row, ``{"id": ..., "label": ..., "vector": [...]}`` (``label`` when
  present). Numbers are written as the exact decimal of the stored float (float32 values widened
  to double), so reading them back as doubles and narrowing gives the same bits.
- ``.vec``: word vectors in the word2vec/fastText text format, the ids as the words (``N D``, then
  ``word v_1 … v_D`` a line; ``relcli.io.wordvec``), with the digits that read back bit for bit.
  No labels, no metadata: what fastText, MUSE and gensim read. Import also reads ``.vec.gz``, files
  without the header (GloVe), and the same text named ``.txt`` or ``.txt.gz`` (``glove.6B.300d.txt``).

Import reads these four back (and Parquet from other tools: the vector column may be a list,
large list or fixed-size list of floats or integers; ``id``/``label`` columns are optional) and
writes ``.h5``/``.safetensors`` through the same row loop and writer as every other step. Ids and
labels in ``.txt`` files that all read as canonical integers (``str(int(s)) == s``) become int64.
Every write is atomic: all of an export's files or none.

The format writers are in ``relcli.api._export_formats``, the import readers in
``relcli.api._import_sources``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from relcli.api._context import DEFAULT_BATCH, check_batch_size, output_dtype, provenance
from relcli.api._export_formats import (
    EXPORT_DTYPES,
    FORMATS,
    NPY_HEADER_BYTES,
    _format,
    _JsonlSink,
    _need_pyarrow,
    _NpySink,
    _ParquetSink,
    _VecSink,
    npy_header,
    sidecars,
)
from relcli.api._import_sources import _JsonlSource, _NpySource, _ParquetSource, word_vector_source
from relcli.api._results import Progress, Result
from relcli.api._rows import RowLoop
from relcli.api.split import id_lines
from relcli.errors import DataError, FileFormatError, OutputError, UsageError

__all__ = ["EXPORT_DTYPES", "FORMATS", "NPY_HEADER_BYTES", "export", "import_file", "npy_header", "sidecars"]


def export(
    input,
    *,
    output,
    dtype: str | None = None,
    drop_invalid: bool = False,
    key: str | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> Result:
    """Write the rows of ``input`` (with ids and labels) as Parquet, ``.npy`` + id list, or JSON lines, by ``output``'s extension.

    ``dtype``: float32 or float64 (default: float64 for float64 files, else float32, so nothing is
    lost). Rows with NaN/Inf are an error naming their ids (``drop_invalid`` leaves them out).
    ``batch_size``: rows per chunk, and per Parquet row group.
    """
    import torch

    from relcli.io.atomic import OutputGroup, check_writable
    from relcli.io.embeddings import open_embeddings

    input, output = Path(input), Path(output)
    kind = _format(output, "-o", "export writes")
    check_writable(output)
    check_batch_size(batch_size)
    if dtype is not None and dtype not in EXPORT_DTYPES:
        raise UsageError(f"export writes float32 or float64 vectors, not --dtype {dtype!r}")
    if kind == "parquet":
        _need_pyarrow()
    ids_path, labels_path = sidecars(output)
    warnings: list[str] = []
    with open_embeddings(input, key=key) as reader:
        if reader.dim == 0:  # Parquet, .vec and JSON lines have no way to say "vectors of 0 numbers"
            raise DataError("has vectors of 0 dimensions: nothing to export", input)
        out_dtype = dtype or ("float64" if reader.dtype == "float64" else "float32")
        ids = np.arange(reader.n_rows, dtype=np.int64) if reader.ids is None else reader.ids
        labels = reader.labels
        if kind == "npy":  # fail before the work when an id or label cannot be one line
            id_lines(ids.tolist(), input)
            if labels is not None:
                id_lines(labels.tolist(), input, "labels")
        if kind == "vec":
            from relcli.io.wordvec import check_words

            check_words(ids, input)  # the same: fail before the work when an id cannot be a word
            if labels is not None:
                warnings.append(f"{output.name} holds no labels: the .vec format has no place for them")
        parameters = {"format": kind, "dtype": out_dtype, "key": key}
        metadata = {"format": 1, "source_kind": reader.kind, "source_dtype": reader.dtype,
                    "source_provenance": reader.attrs.get("provenance"),
                    "provenance": provenance("export", parameters, [input])}
        loop = RowLoop(input, reader.n_rows, ids, labels, drop_invalid=drop_invalid, progress=progress,
                       description=f"export {input.name}")
        with OutputGroup() as group:
            temp = group.temp(output)
            try:
                if kind == "parquet":
                    sink = _ParquetSink(temp, output, reader.dim, out_dtype, ids, labels, metadata)
                elif kind == "npy":
                    sink = _NpySink(temp, output, reader.dim, out_dtype, reader.n_rows)
                elif kind == "vec":
                    sink = _VecSink(temp, output, reader.dim, out_dtype, reader.n_rows)
                else:
                    sink = _JsonlSink(temp, output, reader.dim, out_dtype)
            except OSError as exc:
                from relcli.io.atomic import describe_os_error

                raise OutputError(describe_os_error(exc), output) from None
            try:
                chunks = loop.read(reader, device=torch.device("cpu"), dtype=getattr(torch, out_dtype),
                                   batch_size=batch_size, need_direction=False)
                loop.run(chunks, lambda chunk: chunk, sink)
            finally:
                sink.close()
            files = {"output": output}
            if kind == "npy":
                from relcli.api.split import write_text

                write_text(ids_path, id_lines(sink.ids, input), group)
                files["ids"] = ids_path
                if labels is not None:
                    write_text(labels_path, id_lines(sink.labels, input, "labels"), group)
                    files["labels"] = labels_path
                elif labels_path.exists():
                    warnings.append(f"{labels_path} is from before (this file has no labels) and was left as it was; "
                                    f"`relcli import {output.name}` would read it: remove it")
        dims = reader.dim
    return Result("export", output, loop.written, dims, len(loop.dropped), loop.dropped_ids, parameters=parameters,
                  warnings=warnings, files=files)



def _later_repeats(source, input: Path) -> tuple[np.ndarray | None, list[str]]:
    """(rows to leave out: every row whose id came at an earlier row, or None; the warning that counts
    them). The first row is kept as it is: if ``--drop-invalid`` then leaves it out, that warning names it."""
    from relcli.io._reader import repeated_rows

    later = repeated_rows(source.ids)
    if not len(later):
        return None, []
    exclude = np.zeros(source.n_rows, dtype=bool)
    exclude[later] = True
    word = source.ids[later[:1]].tolist()[0]
    first = source.ids[:later[0]].tolist().index(word)
    lines = getattr(source, "lines", None)
    where = (f"lines {lines[first]} and {lines[later[0]]}" if lines is not None else f"rows {first} and {later[0]}")
    return exclude, [f"{input}: left out {len(later):,} later row(s) of repeated ids, each id keeping its first row "
                     f"(first: {word!r} at {where})"]


def import_file(
    input,
    *,
    output,
    vector_column: str | None = None,
    id_column: str | None = None,
    label_column: str | None = None,
    ids=None,
    labels=None,
    dtype: str | None = None,
    drop_invalid: bool = False,
    drop_duplicates: bool = False,
    batch_size: int | None = DEFAULT_BATCH,
    progress: Progress | None = None,
) -> Result:
    """Read Parquet, ``.npy`` (+ ``NAME.ids.txt``/``NAME.labels.txt``), JSON lines or word vectors (``.vec``,
    ``.vec.gz``, ``.txt``, ``.txt.gz``: the words become the ids) into an ``.h5``/``.safetensors`` file.

    ``vector_column`` (Parquet, JSONL): default ``vector`` (Parquet: else the only list column).
    ``id_column``/``label_column``: default ``id``/``label`` when present, ``""`` for none.
    ``ids``/``labels`` (``.npy``): text files, one per line (default: the sidecars beside it, if any).
    ``dtype``: the output's (default: the input's float type; JSON numbers give float32).
    Rows with NaN/Inf are an error naming their ids (``drop_invalid`` leaves them out). A repeated id
    is an error naming it and its lines or rows; ``drop_duplicates`` keeps each id's first row instead
    and warns how many later rows were left out (as MUSE and gensim read a .vec that repeats a word).
    """
    import torch

    from relcli.io.atomic import check_output
    from relcli.io.embeddings import EmbeddingWriter

    input, output = Path(input), check_output(output)
    kind = _format(input, "INPUT", "import reads", reading=True)
    check_batch_size(batch_size)
    if not input.is_file():
        raise FileFormatError("no such file", input)
    if kind != "npy" and (ids is not None or labels is not None):
        raise UsageError("--ids/--labels files go with a .npy input; Parquet and JSONL have columns (--id-column, "
                         "--label-column), a .vec file its words")
    if kind in ("npy", "vec") and (vector_column or id_column is not None or label_column is not None):
        raise UsageError(f"a .{kind} input has no columns" + (": give --ids/--labels files instead" if kind == "npy" else ""))
    if kind == "parquet":
        _need_pyarrow()
        source = _ParquetSource(input, vector_column, id_column, label_column)
    elif kind == "npy":
        source = _NpySource(input, None if ids is None else Path(ids), None if labels is None else Path(labels))
    elif kind == "vec":
        source = word_vector_source(input)
    else:
        source = _JsonlSource(input, vector_column or "vector", id_column, label_column)
    warnings, exclude = [], None
    try:
        if source.ids is not None and drop_duplicates:
            exclude, note = _later_repeats(source, input)
            warnings += note
        elif source.ids is not None:
            from relcli.io._reader import check_unique

            try:
                check_unique(source.ids, input, lines=getattr(source, "lines", None))  # named in the file read
            except FileFormatError as exc:
                raise FileFormatError(f"{exc.message}; use --drop-duplicates to keep each id's first row", input) from None
        out_dtype = output_dtype(dtype, "float32" if kind in ("jsonl", "vec") else source.dtype)
        inputs = [input] + ([f for f in source.files if f is not None] if kind == "npy" else [])
        parameters = {"format": kind, "vector_column": getattr(source, "vector_column", None),
                      "id_column": getattr(source, "id_column", None), "label_column": getattr(source, "label_column", None)}
        attrs = {"kind": "embeddings", "provenance": provenance("import", parameters, inputs)}
        loop = RowLoop.over(source, drop_invalid=drop_invalid, progress=progress, description=f"import {input.name}",
                            exclude=exclude)
        read_dtype = torch.float64 if out_dtype == "float64" or source.dtype == "float64" else torch.float32
        with EmbeddingWriter(output, None, source.dim, out_dtype, attrs=attrs) as writer:
            chunks = loop.read(source, device=torch.device("cpu"), dtype=read_dtype, batch_size=batch_size,
                               need_direction=False)
            loop.run(chunks, lambda chunk: chunk, writer)
            writer.attrs["dropped"] = len(loop.dropped)
            if loop.written == 0:
                raise DataError("no row could be imported", input)
    finally:
        source.close()
    if getattr(source, "replaced", None):
        lines = source.replaced
        warnings.append(f"{input}: the words of {len(lines):,} line(s) hold bytes that are not UTF-8 (first: line {lines[0]}); "
                        "they were read with U+FFFD in their place")
    return Result("import", output, loop.written, source.dim, len(loop.dropped), loop.dropped_ids,
                  parameters=parameters, files={"output": output}, warnings=warnings)
