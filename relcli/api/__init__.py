"""relcli's library API: one function per subcommand, on files, with the flags' names.

``relcli translate --src x.h5 --tgt-anchors ya.h5 --method procrustes -o y.h5`` is
``api.translate("x.h5", tgt_anchors="ya.h5", method="procrustes", output="y.h5")``: keyword
arguments are the flags with dashes as underscores, with the same defaults. Every function
returns a ``Result`` (``Evaluation`` for ``evaluate``, a list of dicts for ``info``), raises
relcli's own errors (``relcli.errors``), prints nothing, and reports progress through an
optional ``progress(description, done, total)`` callback.
"""

from relcli.api._results import Evaluation, Progress, Result
from relcli.api.anchors import anchors
from relcli.api.embed import embed
from relcli.api.evaluate import evaluate
from relcli.api.export import export, import_file
from relcli.api.info import describe, info
from relcli.api.merge import merge
from relcli.api.project import invert, project
from relcli.api.report import report
from relcli.api.search import search
from relcli.api.split import split
from relcli.api.stitch import stitch_apply, stitch_fit, stitch_run
from relcli.api.translate import translate

__all__ = [
    "Evaluation", "Progress", "Result", "anchors", "describe", "embed", "evaluate", "info", "invert", "merge",
    "project", "stitch_apply", "stitch_fit", "stitch_run", "translate",
    "export", "import_file", "report", "search", "split",
]
