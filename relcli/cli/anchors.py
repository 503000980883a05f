"""``relcli anchors``: choose anchors in a space, or take the parallel anchors of another."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import command, configure, resolve_device, say

STRATEGY_HELP = "random | per-class (class-balanced, needs labels) | fps (farthest points on the sphere) | kmeans"


@command
def anchors(
    input: Annotated[Path, typer.Argument(help="Embedding file to take anchors from.")],
    output: opt.Output,
    n_anchors: Annotated[Optional[int], typer.Option("-n", "--n-anchors", min=1, help="How many anchors to choose.")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help=STRATEGY_HELP)] = "fps",
    seed: opt.Seed = 0,
    like: Annotated[
        Optional[Path], typer.Option("--like", help="Anchors file of another space: take the rows with the same ids, in its order.")
    ] = None,
    pairs: Annotated[
        Optional[Path],
        typer.Option("--pairs", help="TSV of (id in --like's space, id in this space) when the ids differ (e.g. EN→IT words)."),
    ] = None,
    drop_invalid: Annotated[
        bool, typer.Option("--drop-invalid", help="Leave NaN/Inf and all-zero rows out of the statistics and the choice.")
    ] = False,
    key: opt.Key = None,
    dtype: opt.Dtype = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Choose anchors (ids + vectors + whole-space statistics), or the parallel anchors of another space.

    \b
    Examples:
      relcli anchors x.h5 -n 768 --strategy fps --seed 0 -o xa.h5
      relcli anchors y.h5 --like xa.h5 -o ya.h5
      relcli anchors fr.h5 --like en_a.h5 --pairs en_fr.tsv -o fr_a.h5
    """
    configure(device, quiet, verbose, debug)
    import numpy as np
    import torch

    from relcli.cli import _pipeline as pipe
    from relcli.core.anchors import STRATEGIES, select_anchors
    from relcli.errors import DataError, UsageError
    from relcli.io.atomic import check_output
    from relcli.io.embeddings import EmbeddingWriter, open_embeddings
    from relcli.io.join import read_pairs, rows_for_keys

    check_output(output)
    if like is None and pairs is not None:
        raise UsageError("--pairs maps ids across spaces and needs --like ANCHORS")
    if like is None and n_anchors is None:
        raise UsageError("give -n/--n-anchors to choose anchors, or --like ANCHORS to take parallel ones")
    if like is not None and n_anchors is not None:
        raise UsageError("-n and --like exclude each other: --like takes as many anchors as its file has")
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown --strategy {strategy!r}; choose one of: {', '.join(STRATEGIES)}")
    torch_device = resolve_device(device)

    with open_embeddings(input, key=key) as reader:
        invalid = pipe.invalid_rows(reader, batch_size) if drop_invalid else np.zeros(0, dtype=np.int64)
        if len(invalid):
            say(f"leaving out {pipe.describe_rows(reader, invalid)} with NaN/Inf or all zeros")
        valid = np.setdiff1d(np.arange(reader.n_rows), invalid)
        stats = pipe.stream_stats(reader, batch_size, skip=invalid)
        source_ids = None
        if like is not None:
            with open_embeddings(like) as reference:
                wanted = reference.row_keys()
            if pairs is not None:
                mapping = read_pairs(pairs)
                unmapped = [k for k in wanted if k not in mapping]
                if unmapped:
                    raise DataError(
                        f"{len(unmapped)} of {len(wanted)} anchor ids of {like.name} have no pair: "
                        + ", ".join(repr(u) for u in unmapped[:5]),
                        pairs,
                    )
                source_ids, wanted = wanted, [mapping[k] for k in wanted]
            rows = rows_for_keys(wanted, reader.row_keys(), input, what=f"anchor ids of {like.name}")
            method = {"like": str(like), "pairs": None if pairs is None else str(pairs)}
        else:
            if n_anchors > len(valid):
                usable = f"{len(valid)} rows" + (" without NaN/Inf or zeros" if len(invalid) else "")
                raise DataError(f"-n {n_anchors}: asked for {n_anchors} anchors but the file has only {usable}", input)
            labels = None
            if strategy == "per-class":
                if reader.labels is None:
                    raise UsageError("--strategy per-class needs labels, and this file has none", input)
                all_labels = np.asarray(reader.labels, dtype=object if isinstance(reader.labels, list) else None)
                _, codes = np.unique(all_labels[valid], return_inverse=True)
                labels = torch.from_numpy(codes.astype(np.int64).reshape(-1))
            x = pipe.load_rows(reader, torch_device, valid if len(invalid) else None) if strategy in ("fps", "kmeans") else None
            with pipe.blame(input):
                chosen = select_anchors(
                    strategy, n_anchors, x=x, labels=labels, n_rows=len(valid), seed=seed, chunk_rows=batch_size
                )
                rows = valid[chosen.numpy()].tolist()
            method = {"n_anchors": n_anchors, "strategy": strategy, "seed": seed}
        vectors = reader.read_rows(rows)
        pipe.check_chunk(reader, vectors.float(), 0)
        ids = pipe.take_rows(reader.ids, rows) if reader.ids is not None else np.asarray(rows, dtype=np.int64)
        labels = pipe.take_rows(reader.labels, rows)
        attrs = {
            "kind": "anchors",
            "source_stats": stats.to_dict(),
            "anchor_method": method,
            "provenance": pipe.provenance("anchors", {**method, "key": key}, [input, like, pairs]),
        }
        out_dtype = pipe.output_dtype(dtype, reader.dtype)
        with EmbeddingWriter(
            output, len(rows), reader.dim, out_dtype, ids=ids, labels=labels, attrs=attrs,
            arrays={k: v.float() for k, v in stats.tensors().items()},
            id_arrays={} if source_ids is None else {"source_ids": source_ids},
        ) as writer:
            writer.write(vectors)
    say(f"wrote {len(rows)} anchors of {reader.n_rows:,} x {reader.dim} to {output}")
