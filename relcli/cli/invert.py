"""``relcli invert``: relative representations -> a target space, by inverse relative projection."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _irp_options as irp_opt
from relcli.cli import _options as opt
from relcli.cli._runtime import command, configure, detail, resolve_device, say, warn


@command
def invert(
    input: Annotated[Path, typer.Argument(help="Relative file made by `relcli project` (cosine).")],
    anchors: Annotated[Path, typer.Option("--anchors", "-a", help="Target-space anchors parallel to the relative file's anchors.")],
    output: opt.Output,
    rcond: irp_opt.Rcond = "auto",
    prune_threshold: irp_opt.Prune = 0.0,
    subspaces: irp_opt.Subspaces = 1,
    allow_rank_deficient: irp_opt.AllowRankDeficient = False,
    target_norm: Annotated[
        Optional[float],
        typer.Option("--target-norm", min=0.0, help="Norm of every output row (default: the target space's mean norm from the anchors file's statistics)."),
    ] = None,
    seed: opt.Seed = 0,
    dtype: opt.Dtype = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Invert relative rows into the target space: Ŷ = R (Â_Yᵀ)⁺, rows rescaled to the target's norm.

    Example: relcli invert x_rel.h5 --anchors ya.h5 -o y_hat.h5
    """
    configure(device, quiet, verbose, debug)
    import torch

    from relcli.cli import _pipeline as pipe
    from relcli.core.irp import IRP
    from relcli.errors import DataError
    from relcli.io.atomic import check_output
    from relcli.io.embeddings import open_embeddings
    from relcli.io.join import rows_for_keys

    check_output(output)
    torch_device = resolve_device(device)
    target = pipe.load_anchor_set(anchors, torch_device)
    with open_embeddings(input) as reader:
        if reader.kind != "relative":
            raise DataError(f"is a {reader.kind!r} file; invert needs a relative file made by `relcli project`", input)
        similarities = reader.attrs.get("similarities", ["cosine"])
        if list(similarities) != ["cosine"]:
            raise DataError(f"IRP inverts cosine relative representations; this file uses {similarities}", input)
        center = bool(reader.attrs.get("center", False))
        anchor_ids = reader.strings("anchor_ids")
        if anchor_ids is None:
            raise DataError("has no anchor_ids: it was not made by `relcli project`", input)
        relative_keys = [str(a) for a in (anchor_ids.tolist() if hasattr(anchor_ids, "tolist") else anchor_ids)]
        if reader.dim != len(relative_keys):
            raise DataError(f"has {reader.dim} columns but {len(relative_keys)} anchor ids", input)
        target_keys = target.source_keys or target.keys
        if sorted(relative_keys) != sorted(target_keys):
            missing = [k for k in relative_keys if k not in set(target_keys)]
            raise DataError(
                f"anchors do not match {anchors.name}: {len(missing)} of the {len(relative_keys)} anchor ids of the "
                f"relative file are not among its {len(target_keys)} anchors"
                + (f" (e.g. {', '.join(repr(m) for m in missing[:3])})" if missing else ""),
                input,
            )
        order = rows_for_keys(relative_keys, target_keys, anchors, what="anchor ids")
        target_vectors = target.vectors[torch.as_tensor(order, device=torch_device)]
        norm = target_norm if target_norm is not None else (None if center else target.stats.mean_norm)
        cutoff = irp_opt.parse_rcond(rcond, "irp")
        anchor_relative = None
        if cutoff == "auto":
            # The anchor items' own relative rows, when the relative file holds them, let IRP choose its cut-off.
            positions = {key: row for row, key in enumerate(reader.row_keys())}
            if all(k in positions for k in relative_keys):
                anchor_relative = pipe.load_rows(reader, torch_device, [positions[k] for k in relative_keys], check=False)
            else:
                cutoff = irp_opt.FALLBACK_RCOND
                warn(f"{input}: the anchor items are not among its rows, so --rcond auto cannot cross-validate; using {cutoff:g}")
        cdtype = pipe.compute_dtype(reader.dtype)
        with pipe.blame(anchors):
            irp = IRP(cutoff, center, prune_threshold, subspaces, allow_rank_deficient, seed).fit(
                target_vectors.to(cdtype), target_norm=norm,
                anchor_relative=None if anchor_relative is None else anchor_relative.to(cdtype),
            )
        irp_opt.report_conditioning(irp, anchors, detail, warn)
        parameters = {
            "rcond": cutoff, "rcond_chosen": irp.rcond_, "rcond_scores": irp.rcond_scores_, "prune_threshold": prune_threshold, "subspaces": subspaces,
            "allow_rank_deficient": allow_rank_deficient, "center": center, "target_norm": irp.target_norm_, "seed": seed,
        }
        attrs = {
            "kind": "embeddings",
            "irp": {**parameters, "condition_numbers": [float(c) for c in irp.condition_numbers_], "ranks": irp.ranks_},
            "provenance": pipe.provenance("invert", parameters, [input, anchors]),
        }
        dropped = pipe.stream_map(
            reader, output, lambda chunk: irp.transform(chunk, chunk_rows=None), target_vectors.shape[1],
            device=torch_device, batch_size=batch_size, dtype=pipe.output_dtype(dtype, reader.dtype),
            attrs=attrs, description="invert", allow_zero=True,
        )
    say(f"wrote {reader.n_rows - dropped:,} x {target_vectors.shape[1]} rows to {output}")
