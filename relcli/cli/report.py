"""``relcli report``: the pictures to judge a translation by (PNG, SVG, or HTML with the PNG inline)."""

from pathlib import Path
from typing import Annotated, Optional

import typer

from relcli.cli import _options as opt
from relcli.cli._runtime import ProgressBar, command, configure, report as tell, say, settings


@command
def report(
    input: Annotated[Path, typer.Argument(help="Translated embeddings (from relcli translate or invert).")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Picture to write: .png, .svg, or .html (the PNG "
                                         "inline, with the numbers), by extension.")],
    reference: Annotated[Optional[Path], typer.Option("--reference", "-r", help="The true rows in the target space "
                                                      "(matched by id): norms side by side and similarity heatmaps.")] = None,
    src_anchors: Annotated[Optional[Path], typer.Option("--src-anchors", help="Source anchors: their singular spectrum.")] = None,
    tgt_anchors: Annotated[Optional[Path], typer.Option("--tgt-anchors", help="Target anchors: their singular spectrum "
                                                        "(with the IRP cut-off when IRP was used).")] = None,
    sample: Annotated[int, typer.Option("--sample", min=2, max=2000, help="Rows in the similarity heatmaps (seeded sample, "
                                        "ordered by label).")] = 64,
    dpi: Annotated[int, typer.Option("--dpi", min=20, max=600, help="Resolution of the PNG.")] = 100,
    seed: opt.Seed = 0,
    key: opt.Key = None,
    batch_size: opt.BatchSize = opt.DEFAULT_BATCH,
    force: opt.Force = False,
    device: opt.Device = None,
    quiet: opt.Quiet = False,
    verbose: opt.Verbose = False,
    debug: opt.Debug = False,
) -> None:
    """Draw what to look at to judge a translation: row norms (translated vs true), the anchors' singular
    spectra, the scores of the methods translate --method auto tried, and similarity heatmaps of a sample.

    Panels whose inputs are not given are left out, and the command says which. Needs matplotlib:
    pip install 'relcli[plot]'.

    \b
    Examples:
      relcli report y_hat.h5 --reference y.h5 -o report.png
      relcli report y_hat.h5 --reference y.h5 --src-anchors xa.h5 --tgt-anchors ya.h5 -o report.html
      relcli report y_hat.h5 -o methods.svg
    """
    configure(device, quiet, verbose, debug)
    from relcli import api

    with ProgressBar() as bar:
        result = api.report(input, output=output, reference=reference, src_anchors=src_anchors, tgt_anchors=tgt_anchors,
                            sample=sample, dpi=dpi, seed=seed, key=key, batch_size=batch_size, force=force, device=settings.device,
                            progress=bar)
    for name, why in result.omitted.items():
        say(f"left out {name}: {why}")
    tell(result, f"wrote {result.output} ({len(result.panels)} panels: {'; '.join(result.panels)})")
