"""Drawing for ``api.report``: numpy data in, a matplotlib ``Figure`` out (Agg canvas; pyplot never imported).

Nothing here reads files or computes anything heavier than a histogram: ``relcli.api.report``
gathers the numbers, this module lays them out. Every panel is an ``Axes`` with a title, so
tests (and callers) can check which panels a report has by their titles.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from relcli.errors import UsageError

TRANSLATED, REFERENCE, SOURCE, TARGET, CHOSEN, OTHER, FAILED = (
    "#d95f02", "#1b9e77", "#7570b3", "#1b9e77", "#d95f02", "#7f7f7f", "#bbbbbb")


def need_matplotlib():
    """The matplotlib module, or a one-line UsageError saying how to install it."""
    try:
        import matplotlib
        from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
        from matplotlib.figure import Figure  # noqa: F401
    except ImportError:
        raise UsageError("relcli report draws with matplotlib, which is not installed: pip install 'relcli[plot]'") from None
    return matplotlib


@dataclass
class Panels:
    """The numbers each panel draws; a panel whose field is None is left out."""

    title: str
    norms: np.ndarray | None = None  # translated rows' L2 norms
    reference_norms: np.ndarray | None = None  # the reference rows' (same ids)
    spectra: dict[str, tuple[np.ndarray, int]] = field(default_factory=dict)  # label -> (singular values desc, numerical rank)
    cutoff: float | None = None  # IRP rcond: the relative cut-off on singular values
    candidates: list[dict[str, Any]] | None = None  # {"name", "score", "spread", "error", "chosen"}
    sims: np.ndarray | None = None  # m x m cosines of the translated sample
    reference_sims: np.ndarray | None = None  # m x m cosines of the same rows in the reference
    sample_labels: list | None = None  # the sample's labels (sorted), to mark class blocks
    notes: list[str] = field(default_factory=list)  # shown under the title


def _hist(ax, panels: Panels) -> None:
    series = [("translated", panels.norms, TRANSLATED)]
    if panels.reference_norms is not None:
        series.append(("reference", panels.reference_norms, REFERENCE))
    values = np.concatenate([s[1] for s in series])
    lo, hi = float(values.min()), float(values.max())
    bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 41)
    for name, norms, colour in series:
        ax.hist(norms, bins=bins, alpha=0.55, color=colour, label=f"{name}: mean {norms.mean():.3g}, sd {norms.std():.3g}")
        ax.axvline(float(norms.mean()), color=colour, linewidth=1.2, linestyle="--")
    ax.set_title("Row norms: translated vs reference" if panels.reference_norms is not None else "Row norms: translated")
    ax.set_xlabel("L2 norm of a row")
    ax.set_ylabel("rows")
    ax.legend(fontsize=8)


def _spectra(ax, panels: Panels) -> None:
    colours = iter((SOURCE, TARGET, OTHER))
    floor = 1.0
    for label, (values, rank) in panels.spectra.items():
        relative = values / values[0]
        floor = min(floor, float(relative[rank - 1]))
        shown = np.where(relative > 0, relative, np.nan)
        ax.semilogy(np.arange(1, len(values) + 1), shown, color=next(colours), linewidth=1.5,
                    label=f"{label}\nrank {rank} of {len(values)}, condition {values[0] / values[rank - 1]:.3g}")
    ax.set_ylim(bottom=floor / 10, top=2.0)  # below the numerical rank is rounding noise
    if panels.cutoff is not None and panels.cutoff > 0:
        ax.axhline(panels.cutoff, color="black", linestyle=":", linewidth=1, label=f"IRP cut-off rcond={panels.cutoff:g}")
    ax.set_title("Anchor singular spectra (rows L2-normalised)")
    ax.set_xlabel("i")
    ax.set_ylabel("σ_i / σ_1")
    ax.legend(fontsize=8)


def _methods(ax, panels: Panels) -> None:
    rows = panels.candidates
    names = [c["name"] for c in rows]
    scores = [0.0 if c.get("error") else float(c["score"]) for c in rows]
    spreads = [0.0 if c.get("error") else float(c.get("spread") or 0.0) for c in rows]
    colours = [FAILED if c.get("error") else CHOSEN if c.get("chosen") else OTHER for c in rows]
    y = np.arange(len(rows))
    ax.barh(y, scores, xerr=spreads, color=colours, capsize=3, height=0.6)
    for i, c in enumerate(rows):  # the name above its bar (no tick labels: they would need a margin)
        ax.text(0.005, i - 0.34, names[i], va="bottom", fontsize=8, transform=ax.get_yaxis_transform())
        text = f"failed: {str(c['error'])[:50]}" if c.get("error") else f"{scores[i]:.3f}" + ("  (chosen)" if c.get("chosen") else "")
        ax.text(max(scores[i], 0) + max(spreads[i], 0) + 0.01, i, text, va="center", fontsize=8)
    ax.set_yticks([])
    ax.set_ylim(len(rows) - 0.5, -0.9)
    top = max([s + e for s, e in zip(scores, spreads)] + [0.0])
    ax.set_xlim(min(0.0, min(scores)), max(1.0, top + 0.25))
    ax.set_title("Method scores on held-out anchors (translate --method auto)")
    ax.set_xlabel("held-out score (0 = chance, 1 = perfect; bars: spread over folds)")


def _heatmap(ax, sims: np.ndarray, title: str, vmin: float, labels: list | None):
    image = ax.imshow(sims, vmin=vmin, vmax=1.0, cmap="viridis", interpolation="nearest")
    ax.set_title(title)
    if labels:
        edges = [i for i in range(1, len(labels)) if labels[i] != labels[i - 1]]
        for edge in edges:
            ax.axhline(edge - 0.5, color="white", linewidth=0.4)
            ax.axvline(edge - 0.5, color="white", linewidth=0.4)
    ax.set_xticks([])
    ax.set_yticks([])
    return image


def draw(panels: Panels):
    """The report figure: the panels whose numbers are there, two to a row, heatmaps on a row of their own."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    singles = [p for p, there in ((_hist, panels.norms is not None), (_spectra, bool(panels.spectra)),
                                  (_methods, bool(panels.candidates))) if there]
    heat = panels.sims is not None and panels.reference_sims is not None
    rows = max((len(singles) + 1) // 2 + (1 if heat else 0), 1)
    height = 4.6 * rows + 0.8
    figure = Figure(figsize=(13, height))
    FigureCanvasAgg(figure)
    # a fixed layout: matplotlib's constrained layout would double the drawing time
    grid = figure.add_gridspec(rows, 2, left=0.06, right=0.97, bottom=0.55 / height, top=1 - 0.95 / height,
                               wspace=0.22, hspace=0.42)
    for i, draw_panel in enumerate(singles):
        draw_panel(figure.add_subplot(grid[i // 2, i % 2]), panels)
    if heat:
        m = panels.sims.shape[0]
        vmin = float(min(panels.sims.min(), panels.reference_sims.min()))
        left = figure.add_subplot(grid[rows - 1, 0])
        right = figure.add_subplot(grid[rows - 1, 1])
        _heatmap(left, panels.sims, f"Cosine similarities: translated ({m} rows)", vmin, panels.sample_labels)
        image = _heatmap(right, panels.reference_sims, f"Cosine similarities: reference ({m} rows)", vmin, panels.sample_labels)
        figure.colorbar(image, ax=[left, right], shrink=0.85, label="cosine")
    figure.suptitle(panels.title + ("\n" + "; ".join(panels.notes) if panels.notes else ""), fontsize=11,
                    y=1 - 0.15 / height, va="top")
    return figure


def titles(figure) -> list[str]:
    """The titles of the figure's panels, in drawing order (colour bars have none)."""
    return [ax.get_title() for ax in figure.axes if ax.get_title()]


def render(figure, kind: str, dpi: int) -> bytes:
    """The figure as PNG or SVG bytes (no timestamps: the same numbers give the same bytes)."""
    from io import BytesIO

    buffer = BytesIO()
    metadata = {"Date": None} if kind == "svg" else {"Software": None}
    figure.savefig(buffer, format=kind, dpi=dpi, metadata=metadata)
    return buffer.getvalue()


def html_page(png: bytes, title: str, panels: list[str], omitted: dict[str, str], facts: dict[str, Any]) -> str:
    """A self-contained HTML page: the PNG inline (base64), what is drawn, what was left out and why."""
    import base64
    import html

    def items(pairs):
        return "".join(f"<li><b>{html.escape(str(k))}</b>: {html.escape(str(v))}</li>" for k, v in pairs)

    image = base64.b64encode(png).decode("ascii")
    left_out = f"<h2>Left out</h2><ul>{items(omitted.items())}</ul>" if omitted else ""
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;margin:2em;max-width:1400px}img{max-width:100%}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<img alt=\"{html.escape('; '.join(panels))}\" src=\"data:image/png;base64,{image}\">"
        f"<h2>Panels</h2><ul>{''.join(f'<li>{html.escape(p)}</li>' for p in panels)}</ul>{left_out}"
        f"<h2>Numbers</h2><ul>{items(facts.items())}</ul></body></html>\n"
    )
