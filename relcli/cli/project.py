"""``relcli project``: absolute embeddings -> relative representations over anchors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import command, configure, resolve_device, say

SIMILARITY_HELP = (
    "cosine | angular | euclidean | l1 | linf; repeat or comma-separate for a product of invariances "
    "(each block standardised per row)."
)


def parse_similarities(values: list[str] | None) -> list[str]:
    names = [part.strip() for value in (values or ["cosine"]) for part in value.split(",") if part.strip()]
    return names or ["cosine"]


@command
def project(
    input: Annotated[Path, typer.Argument(help="Embedding file (absolute space).")],
    anchors: Annotated[Path, typer.Option("--anchors", "-a", help="Anchors file of the same space.")],
    output: opt.Output,
    similarity: Annotated[Optional[list[str]], typer.Option("--similarity", "-s", help=SIMILARITY_HELP)] = None,
    aggregate: Annotated[str, typer.Option("--aggregate", help="concat | sum, for several similarities.")] = "concat",
    center: Annotated[bool, typer.Option("--center/--no-center", help="Subtract the anchors' mean first.")] = False,
    drop_invalid: opt.DropInvalid = False,
    key: opt.Key = None,
    dtype: opt.Dtype = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Project embeddings onto anchors: r_j = cos(x, a_j) (or other similarities), one column per anchor.

    Example: relcli project x.h5 --anchors xa.h5 -o x_rel.h5
    """
    configure(device, quiet, verbose, debug)
    from relcli.cli import _pipeline as pipe
    from relcli.core.relative import RelativeProjector
    from relcli.errors import DataError
    from relcli.io.atomic import check_output
    from relcli.io.embeddings import open_embeddings

    check_output(output)
    similarities = parse_similarities(similarity)
    torch_device = resolve_device(device)
    anchor_set = pipe.load_anchor_set(anchors, torch_device)
    with open_embeddings(input, key=key) as reader:
        if reader.dim != anchor_set.vectors.shape[1]:
            raise DataError(
                f"dimension mismatch: {input.name} is {reader.n_rows} x {reader.dim}, anchors {anchors.name} are "
                f"{tuple(anchor_set.vectors.shape)[0]} x {anchor_set.vectors.shape[1]}",
                input,
            )
        projector = RelativeProjector(similarities, aggregate, center).fit(
            anchor_set.vectors.to(pipe.compute_dtype(reader.dtype))
        )
        k = anchor_set.vectors.shape[0]
        out_dim = k if aggregate == "sum" else k * len(similarities)
        parameters = {"similarities": similarities, "aggregate": aggregate, "center": center}
        attrs = {
            "kind": "relative",
            **parameters,
            "anchors_file": str(anchors),
            "provenance": pipe.provenance("project", {**parameters, "key": key}, [input, anchors]),
        }
        dropped = pipe.stream_map(
            reader, output, lambda chunk: projector.transform(chunk, chunk_rows=None), out_dim,
            device=torch_device, batch_size=batch_size, dtype=pipe.output_dtype(dtype, reader.dtype),
            attrs=attrs, description="project", drop_invalid=drop_invalid,
            id_arrays={"anchor_ids": anchor_set.ids if anchor_set.ids is not None else list(range(k))},
        )
    if dropped:
        say(f"dropped {dropped} invalid row(s)")
    say(f"wrote {reader.n_rows - dropped:,} x {out_dim} relative rows to {output}")
