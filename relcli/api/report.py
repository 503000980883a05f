"""``api.report``: the pictures to judge a translation by, as one PNG, SVG or HTML file.

Panels, each drawn when its inputs are there (the ``Report`` result says which were left out, and why):

- **Row norms** of the translated rows, and of the reference rows with the same ids: IRP (and any
  decoder downstream) relies on the translated rows having the target space's scale (Maiorca et
  al. 2024 rescale to the target's mean norm). Needs only INPUT; the reference adds its series.
- **Anchor singular spectra**: σ_i/σ_1 of the source and target anchors, rows L2-normalised (the
  matrix IRP inverts), log scale down to the numerical-rank floor max(k, d)·eps, with the numerical
  rank and the condition number σ_1/σ_rank over it, and the IRP cut-off rcond when IRP was used.
  Long flat tails mean well-conditioned anchors; a cliff means few directions survive the cut-off.
  Needs ``src_anchors`` and/or ``tgt_anchors`` (more than 20,000 rows: a seeded sample of them).
- **Method scores**: the held-out anchor score (and its spread over folds) of every candidate that
  ``translate`` cross-validated (``relcli.translation`` → ``selection.candidates`` in INPUT's
  metadata), the chosen one highlighted. Needs INPUT made by ``relcli translate``.
- **Similarity heatmaps**: cosines among a seeded sample of rows (``sample``, ordered by label when
  there are labels), translated vs the same rows in the reference; their Pearson correlation (upper
  triangles) is ``scores["similarity_correlation"]``. Needs ``reference``.

matplotlib is an optional extra (``pip install 'relcli[plot]'``); the figure is drawn on an Agg
canvas without pyplot, so no global backend is switched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from relcli.api._context import DEFAULT_BATCH, check_batch_size, check_seed, compute_dtype_of, resolve_device, rows_by_keys
from relcli.api._results import Progress, Result
from relcli.api._rows import RowLoop
from relcli.errors import DataError, OutputError, UsageError

DEFAULT_SAMPLE = 64
MAX_SAMPLE = 2000
MAX_SPECTRUM_ROWS = 20_000
OUTPUT_KINDS = {".png": "png", ".svg": "svg", ".html": "html", ".htm": "html"}
PANELS = ("norms", "spectra", "methods", "heatmaps")


@dataclass
class Report(Result):
    """``api.report``: ``panels`` the titles of the panels drawn (in order), ``omitted`` the panels
    left out ({name: why}), ``format`` png, svg or html. ``scores`` holds the numbers drawn."""

    panels: list[str] = field(default_factory=list)
    omitted: dict[str, str] = field(default_factory=dict)
    format: str = "png"


def _norms(reader, device, batch_size, progress) -> np.ndarray:
    """L2 norm of every row, through the row loop (rows with NaN/Inf are an error naming their ids)."""
    import torch

    out = np.empty(reader.n_rows, dtype=np.float64)
    loop = RowLoop.over(reader, progress=progress, description=f"norms of {reader.path.name}", hint="")
    chunks = loop.read(reader, device=device, dtype=compute_dtype_of(reader.dtype), batch_size=batch_size,
                       need_direction=False)

    def keep(rows, norms):
        out[rows] = norms.cpu().numpy()

    loop.run(chunks, lambda chunk: torch.linalg.vector_norm(chunk, dim=1).double(), on_output=keep)
    return out


def _unit_rows(reader, rows: np.ndarray, device):
    """Rows of ``reader`` (at ``rows``) L2-normalised in float64; rows without a direction are an error naming them."""
    import torch

    from relcli.core._common import invalid_rows

    data = reader.read_rows(rows).to(device=device, dtype=torch.float64)
    loop = RowLoop.over(reader, hint="")
    for problem, positions in invalid_rows(data, need_direction=True)[1]:
        loop.reject(rows[positions.cpu().numpy()], problem)
    return data / torch.linalg.vector_norm(data, dim=1, keepdim=True)


def _spectrum(path: Path, option: str, device, seed: int) -> tuple[np.ndarray, str, int]:
    """Singular values of the row-normalised anchors (a seeded sample of MAX_SPECTRUM_ROWS when more),
    a description, and the numerical rank: #{σ_i > σ_1 · max(k, d) · eps}, eps of the file's dtype
    (float32 for half precision: what the kernels compute in)."""
    import torch

    from relcli.core.metrics import query_indices
    from relcli.io.embeddings import open_embeddings
    from relcli.io.kinds import expect_kind

    with open_embeddings(path) as reader:
        expect_kind(reader, ("anchors", "embeddings"), option)
        if reader.n_rows == 0:
            raise DataError("has no rows", path)
        rows = query_indices(reader.n_rows, MAX_SPECTRUM_ROWS if reader.n_rows > MAX_SPECTRUM_ROWS else None, seed).numpy()
        unit = _unit_rows(reader, rows, device)
        values = torch.linalg.svdvals(unit).cpu().numpy()
        sampled = f", sample of {len(rows):,}" if len(rows) < reader.n_rows else ""
        eps = float(torch.finfo(compute_dtype_of(reader.dtype)).eps)
        rank = int((values > values[0] * max(unit.shape) * eps).sum())
        return values, f"{path.name}: {reader.n_rows:,} x {reader.dim}{sampled}", rank


def _candidates(translation: dict) -> tuple[list[dict] | None, str | None]:
    """The cross-validated candidates recorded by ``translate``, or (None, why not)."""
    from relcli.core.selection import describe

    selection = translation.get("selection")
    if not isinstance(selection, dict) or not isinstance(selection.get("candidates"), list) or not selection["candidates"]:
        return None, "the file records no cross-validated methods (translated with --map, or before relcli 0.2)"
    chosen = selection.get("chosen")
    out = []
    for entry in selection["candidates"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("method"), str):
            continue
        options = entry.get("options") if isinstance(entry.get("options"), dict) else {}
        name = describe(entry["method"], options)
        score = entry.get("score")
        error = entry.get("error")
        if error is None and (isinstance(score, bool) or not isinstance(score, (int, float)) or not np.isfinite(score)):
            error = "no score recorded"
        spread = entry.get("spread")
        out.append({"name": name, "score": None if error else float(score), "error": error,
                    "spread": float(spread) if isinstance(spread, (int, float)) and np.isfinite(spread) else 0.0,
                    "chosen": name == chosen})
    return (out, None) if out else (None, "the file's relcli.translation.selection lists no readable candidates")


def report(
    input,
    *,
    output,
    reference=None,
    src_anchors=None,
    tgt_anchors=None,
    sample: int = DEFAULT_SAMPLE,
    seed: int = 0,
    dpi: int = 100,
    force: bool = False,
    key: str | None = None,
    batch_size: int | None = DEFAULT_BATCH,
    device: str | None = None,
    progress: Progress | None = None,
) -> Report:
    """Draw the report of a translated file ``input`` into ``output`` (.png, .svg, or .html with the PNG inline).

    ``reference``: the true rows in the target space (joined by id); ``src_anchors``/``tgt_anchors``:
    the anchors the translation was fitted on; ``sample``: rows in the similarity heatmaps (seeded
    by ``seed``, at most 2,000). Panels whose inputs are missing are left out (``Report.omitted``).
    ``reference`` must be in ``input``'s recorded space unless ``force``.
    """
    import torch

    from relcli.api import _plots
    from relcli.core.metrics import query_indices
    from relcli.io.atomic import OutputGroup, check_writable, describe_os_error
    from relcli.io.embeddings import open_embeddings
    from relcli.io.kinds import expect_kind
    from relcli.io.spaces import check_same_space, read_space

    input, output = Path(input), Path(output)
    kind = OUTPUT_KINDS.get(output.suffix.lower())
    if kind is None:
        raise UsageError(f"relcli report writes .png, .svg or .html (by extension), not {output.suffix.lower() or '(none)'!r}",
                         output)
    check_writable(output)
    if isinstance(sample, bool) or not isinstance(sample, int) or not 2 <= sample <= MAX_SAMPLE:
        raise UsageError(f"--sample must be a whole number from 2 to {MAX_SAMPLE}, got {sample!r}")
    if isinstance(dpi, bool) or not isinstance(dpi, int) or not 20 <= dpi <= 600:
        raise UsageError(f"--dpi must be a whole number from 20 to 600, got {dpi!r}")
    check_seed(seed)
    check_batch_size(batch_size)
    _plots.need_matplotlib()
    torch_device = resolve_device(device)
    omitted: dict[str, str] = {}
    scores: dict[str, Any] = {}
    with open_embeddings(input, key=key) as reader:
        expect_kind(reader, ("embeddings", "anchors"), "`relcli report`")
        if reader.n_rows == 0:
            raise DataError("has no rows to draw", input)
        translation = reader.attrs.get("translation") if isinstance(reader.attrs.get("translation"), dict) else None
        panels = _plots.Panels(title=f"{input.name}: translation report")
        if translation is not None:
            estimate = translation.get("estimate") if isinstance(translation.get("estimate"), dict) else {}
            score = estimate.get("score")
            panels.title += f" ({translation.get('method')}" + (
                f", estimated held-out score {score:.3f})" if isinstance(score, (int, float)) else ")")
        panels.norms = _norms(reader, torch_device, batch_size, progress)
        scores["mean_norm"] = float(panels.norms.mean())
        if reference is None:
            omitted["heatmaps"] = "no --reference given"
        else:
            reference = Path(reference)
            with open_embeddings(reference) as ref:
                expect_kind(ref, ("embeddings", "anchors"), "--reference")
                check_same_space((input, read_space(reader.attrs, input)), (reference, read_space(ref.attrs, reference)), force)
                if ref.dim != reader.dim:
                    raise DataError(f"dimension mismatch: {input.name} has {reader.dim} dims, the reference {ref.dim}; "
                                    "give the true rows in the target space", reference)
                ref_rows = np.asarray(rows_by_keys(reader.row_keys(), ref.row_keys(), reference, f"row ids of {input.name}"),
                                      dtype=np.int64)
                panels.reference_norms = _norms(ref, torch_device, batch_size, progress)[ref_rows]
                scores["reference_mean_norm"] = float(panels.reference_norms.mean())
                scores["norm_ratio"] = scores["mean_norm"] / scores["reference_mean_norm"]
                panels.notes.append(f"mean norm translated / reference = {scores['norm_ratio']:.3f}")
                n = reader.n_rows
                if n < 2:
                    omitted["heatmaps"] = "fewer than 2 rows to compare"
                else:
                    picked = query_indices(n, sample if sample < n else None, seed).numpy()
                    labels = reader.labels if reader.labels is not None else ref.labels[ref_rows] if ref.labels is not None else None
                    if labels is not None:
                        names = [str(v) for v in labels[picked].tolist()]
                        order = sorted(range(len(picked)), key=lambda i: names[i])
                        picked = picked[order]
                        panels.sample_labels = [names[i] for i in order]
                    x = _unit_rows(reader, picked, torch_device)
                    y = _unit_rows(ref, ref_rows[picked], torch_device)
                    panels.sims, panels.reference_sims = (x @ x.T).cpu().numpy(), (y @ y.T).cpu().numpy()
                    upper = np.triu_indices(len(picked), k=1)
                    a, b = panels.sims[upper], panels.reference_sims[upper]
                    if a.std() > 0 and b.std() > 0:
                        scores["similarity_correlation"] = float(np.corrcoef(a, b)[0, 1])
                        panels.notes.append(f"similarity correlation over {len(picked)} rows r = "
                                            f"{scores['similarity_correlation']:.3f}")
        rows_total, dims = reader.n_rows, reader.dim
    for label, path, option in (("source anchors", src_anchors, "--src-anchors"), ("target anchors", tgt_anchors, "--tgt-anchors")):
        if path is not None:
            values, described, rank = _spectrum(Path(path), option, torch_device, seed)
            panels.spectra[f"{label} ({described})"] = (values, rank)
            side = label.split()[0]
            scores[f"{side}_anchors_rank"] = rank
            scores[f"{side}_anchors_condition"] = float(values[0] / values[rank - 1])
    if not panels.spectra:
        omitted["spectra"] = "no --src-anchors/--tgt-anchors given"
    elif translation is not None and translation.get("method") == "irp":
        cutoff = translation.get("rcond_chosen", translation.get("rcond"))
        if isinstance(cutoff, (int, float)) and not isinstance(cutoff, bool):
            panels.cutoff = float(cutoff)
    if translation is None:
        omitted["methods"] = "not made by relcli translate (no relcli.translation metadata)"
    else:
        panels.candidates, why = _candidates(translation)
        if why:
            omitted["methods"] = why
        else:
            scores["method_scores"] = {c["name"]: c["score"] for c in panels.candidates}
    figure = _plots.draw(panels)
    drawn = _plots.titles(figure)
    picture = _plots.render(figure, "svg" if kind == "svg" else "png", dpi)
    if kind == "html":
        facts = {k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in scores.items()}
        picture = _plots.html_page(picture, panels.title, drawn, omitted, facts).encode("utf-8")
    with OutputGroup() as group:
        try:
            group.temp(output).write_bytes(picture)
        except OSError as exc:
            raise OutputError(describe_os_error(exc), output) from None
    parameters = {"reference": None if reference is None else str(reference), "src_anchors": None if src_anchors is None else
                  str(src_anchors), "tgt_anchors": None if tgt_anchors is None else str(tgt_anchors), "sample": sample,
                  "seed": seed, "dpi": dpi}
    return Report("report", output, rows_total, dims, parameters=parameters, scores=scores, files={"output": output},
                  panels=drawn, omitted=omitted, format=kind)
