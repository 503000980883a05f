"""``relcli translate``: source embeddings -> a target space, by IRP or a direct translator."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _irp_options as irp_opt
from relcli.cli import _options as opt
from relcli.cli._runtime import command, configure, detail, resolve_device, say, warn



def fit_from_files(
    src_reader, src_path: Path, tgt_anchors: Path, src_anchors: Path | None, method: str, center: bool,
    scaling: str, rcond: str, prune_threshold: float, subspaces: int, allow_rank_deficient: bool,
    seed: int, device,
):
    """Fit a translator from the files of `translate` / `stitch run`; returns (translator, info)."""
    from relcli.cli import _pipeline as pipe
    from relcli.core import fit_translator
    from relcli.errors import DataError, UsageError

    target = pipe.load_anchor_set(tgt_anchors, device)
    if src_anchors is not None:
        source_vectors = pipe.align_anchor_sets(pipe.load_anchor_set(src_anchors, device), target)
    else:
        rows = pipe.parallel_source_rows(target, src_reader.row_keys(), src_path)
        source_vectors = pipe.load_rows(src_reader, device, rows)
    if source_vectors.shape[1] != src_reader.dim:
        raise DataError(
            f"dimension mismatch: {src_path.name} has {src_reader.dim} dims, source anchors have {source_vectors.shape[1]}",
            src_anchors or src_path,
        )
    cdtype = pipe.compute_dtype(src_reader.dtype)
    source_vectors, target_vectors = source_vectors.to(cdtype), target.vectors.to(cdtype)
    if method == "irp":
        params = dict(
            rcond=irp_opt.parse_rcond(rcond, "irp"), center=center, prune_threshold=prune_threshold,
            n_subspaces=subspaces, allow_rank_deficient=allow_rank_deficient, seed=seed,
        )
        norm = None if center else target.stats.mean_norm
        with pipe.blame(tgt_anchors):
            translator = fit_translator("irp", source_vectors, target_vectors, target_norm=norm, **params)
        irp_opt.report_conditioning(translator, tgt_anchors, detail, warn)
    else:
        if center or prune_threshold or subspaces != 1 or allow_rank_deficient:
            raise UsageError("--center, --prune-threshold, --subspaces and --allow-rank-deficient are IRP options")
        params = dict(scaling=scaling, rcond=irp_opt.parse_rcond(rcond, method))
        with pipe.blame(tgt_anchors):
            translator = fit_translator(method, source_vectors, target_vectors, **params)
    info = {"method": method, **params, "anchors": int(target_vectors.shape[0])}
    if method == "irp":
        info.update(rcond_chosen=translator.rcond_, rcond_scores=translator.rcond_scores_,
                    condition_numbers=translator.condition_numbers_, ranks=translator.ranks_)
    return translator, info


@command
def translate(
    src: Annotated[Path, typer.Option("--src", help="Source embedding file to translate.")],
    output: opt.Output,
    tgt_anchors: Annotated[
        Optional[Path],
        typer.Option("--tgt-anchors", help="Target-space anchors (an anchors file, or any embedding file: all its rows)."),
    ] = None,
    src_anchors: Annotated[
        Optional[Path],
        typer.Option("--src-anchors", help="Source-space anchors parallel to --tgt-anchors (default: --src rows with the same ids)."),
    ] = None,
    method: irp_opt.Method = "irp",
    center: irp_opt.Center = False,
    scaling: irp_opt.Scaling = "standard",
    rcond: irp_opt.Rcond = "auto",
    prune_threshold: irp_opt.Prune = 0.0,
    subspaces: irp_opt.Subspaces = 1,
    allow_rank_deficient: irp_opt.AllowRankDeficient = False,
    save_map: Annotated[Optional[Path], typer.Option("--save-map", help="Also save the fitted map (.safetensors) for --map.")] = None,
    map_file: Annotated[Optional[Path], typer.Option("--map", help="Apply a saved map instead of fitting one.")] = None,
    drop_invalid: opt.DropInvalid = False,
    seed: opt.Seed = 0,
    key: opt.Key = None,
    dtype: opt.Dtype = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Translate embeddings into another space using parallel anchors (IRP by default).

    \b
    Examples:
      relcli translate --src x.h5 --tgt-anchors ya.h5 -o y_hat.h5
      relcli translate --src x.h5 --src-anchors xa.h5 --tgt-anchors ya.h5 --method procrustes -o y_hat.h5
      relcli translate --src x.h5 --tgt-anchors ya.h5 --save-map map.safetensors -o y_hat.h5
      relcli translate --src x_new.h5 --map map.safetensors -o y_new.h5
    """
    configure(device, quiet, verbose, debug)
    from relcli.cli import _pipeline as pipe
    from relcli.core import TRANSLATION_METHODS, apply_translator
    from relcli.errors import DataError, UsageError
    from relcli.io.atomic import check_output, check_writable
    from relcli.io.embeddings import open_embeddings
    from relcli.io.estimators import load_estimator, save_estimator

    check_output(output)
    if save_map is not None:
        if save_map.suffix.lower() != ".safetensors":
            raise UsageError("--save-map writes a .safetensors file", save_map)
        check_writable(save_map)
    if method not in TRANSLATION_METHODS:
        raise UsageError(f"unknown --method {method!r}; choose one of: {', '.join(TRANSLATION_METHODS)}")
    if (map_file is None) == (tgt_anchors is None):
        raise UsageError("give either --tgt-anchors (to fit a map) or --map (to apply a saved one)")
    torch_device = resolve_device(device)
    with open_embeddings(src, key=key) as reader:
        if map_file is not None:
            translator, meta = load_estimator(map_file, kinds=("translator",))
            info = meta.get("translation", {"method": meta.get("estimator")})
            inputs = [src, map_file]
        else:
            translator, info = fit_from_files(
                reader, src, tgt_anchors, src_anchors, method, center, scaling, rcond, prune_threshold,
                subspaces, allow_rank_deficient, seed, torch_device,
            )
            inputs = [src, tgt_anchors, src_anchors]
        translator.to(torch_device, pipe.compute_dtype(reader.dtype))
        source_dim = int(translator.map_.shape[0]) if hasattr(translator, "map_") else int(translator.source_dim_)
        target_dim = int(translator.map_.shape[1]) if hasattr(translator, "map_") else int(translator.target_dim_)
        if reader.dim != source_dim:
            raise DataError(f"dimension mismatch: {src.name} has {reader.dim} dims, the map expects {source_dim}", src)
        attrs = {
            "kind": "embeddings",
            "translation": info,
            "provenance": pipe.provenance("translate", {**info, "key": key}, inputs),
        }
        dropped = pipe.stream_map(
            reader, output, lambda chunk: apply_translator(translator, chunk), target_dim,
            device=torch_device, batch_size=batch_size, dtype=pipe.output_dtype(dtype, reader.dtype),
            attrs=attrs, description=f"translate ({info.get('method')})", drop_invalid=drop_invalid,
        )
    if save_map is not None:
        save_estimator(save_map, translator, "translator", {"translation": info, "provenance": attrs["provenance"]})
        say(f"saved the fitted map to {save_map}")
    if dropped:
        say(f"dropped {dropped} invalid row(s)")
    say(f"wrote {reader.n_rows - dropped:,} x {target_dim} rows to {output} ({info.get('method')})")
