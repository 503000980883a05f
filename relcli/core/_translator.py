"""The translator interface every translation method implements (IRP included), and its checks.

``fit(source_anchors, target_anchors, target_norm=None)`` source-first, ``transform(x)`` on
absolute source rows, ``source_dim_``/``target_dim_``; ``fit_moments`` for anchor sets streamed
as sums (``relcli.core.moments``).
"""

from __future__ import annotations

from typing import ClassVar

import torch

from relcli.core._common import DEFAULT_CHUNK_ROWS, check_matrix
from relcli.core._estimator import Estimator
from relcli.errors import DataError


def available_memory() -> int | None:
    """Bytes of memory the system says are available (Linux), else None."""
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_fit_size(k: int, d_x: int, d_y: int) -> None:
    """Refuse a fit whose working memory cannot exist: a direct map holds several D × D float64
    matrices (D = max(d_X, d_Y)) and IRP a k × D one; 200,000-d inputs would need terabytes."""
    dim = max(d_x, d_y)
    needed = 8 * 6 * max(dim * dim, k * dim)
    free = available_memory()
    if free is not None and needed > free:
        raise DataError(
            f"fitting a map between {d_x}-d and {d_y}-d spaces needs about {needed / 2**30:,.0f} GiB of memory, and "
            f"{free / 2**30:,.1f} GiB are available: reduce the dimension first (e.g. with PCA)"
        )


def check_parallel(source_anchors: torch.Tensor, target_anchors: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both anchor matrices checked: 2-D, same number of rows (parallel), not empty, one device, a
    fit that fits in memory."""
    xa = check_matrix(source_anchors, "source anchors")
    ya = check_matrix(target_anchors, "target anchors")
    if xa.shape[0] != ya.shape[0]:
        raise DataError(
            f"source anchors {tuple(xa.shape)} and target anchors {tuple(ya.shape)} must have "
            "the same number of rows (parallel anchors)"
        )
    if xa.shape[0] == 0:
        raise DataError("no anchors to fit on: the anchor matrices have 0 rows")
    if xa.device != ya.device:
        raise DataError(f"source anchors are on {xa.device} but target anchors on {ya.device}")
    check_fit_size(xa.shape[0], xa.shape[1], ya.shape[1])
    return xa, ya


class Translator(Estimator):
    """Maps absolute source rows into a target space; fitted on parallel anchors, source first.

    ``fit(source_anchors (k×d_X), target_anchors (k×d_Y), target_norm=None)`` returns self;
    ``target_norm`` is the whole target space's mean row norm when known (methods that
    normalise rows restore it; the others reproduce the anchors' own scale and ignore it).
    ``transform(x (n×d_X))`` gives (n×d_Y) on x's device in x's dtype. ``needs_direction``
    says whether all-zero input rows are invalid (true for methods built on cosines).
    """

    method: ClassVar[str] = ""
    needs_direction: ClassVar[bool] = False

    def fit(self, source_anchors: torch.Tensor, target_anchors: torch.Tensor, target_norm: float | None = None):
        raise TypeError(f"{type(self).__name__} is an interface: use a method from relcli.core.registry")

    def transform(self, x: torch.Tensor, chunk_rows: int | None = DEFAULT_CHUNK_ROWS) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} is an interface: use a method from relcli.core.registry")

    def fit_moments(self, moments, target_norm: float | None = None):
        """Fit from ``relcli.core.moments.AnchorMoments`` of every anchor pair (a streamed anchor set)
        instead of the rows; hyperparameters chosen from data (cut-offs, penalties) must be fixed."""
        raise TypeError(f"{type(self).__name__} is an interface: use a method from relcli.core.registry")

    def frozen(self) -> "Translator":
        """An unfitted twin with the hyperparameters this fit chose from its anchors made explicit,
        for ``fit_moments`` on a larger anchor set, or for cross-validation folds. Works before any
        fit when ``tunes_on_anchors`` is false (there is nothing to make explicit)."""
        raise TypeError(f"{type(self).__name__} is an interface: use a method from relcli.core.registry")

    @property
    def tunes_on_anchors(self) -> bool:
        """Whether ``fit`` chooses a hyperparameter from the anchors (a cut-off or a penalty, by its own
        cross-validation), so that only a fitted translator can say what ``frozen`` holds fixed."""
        return False

    def diagnostics(self) -> dict:
        """JSON-able facts about the fitted map, recorded in the output's provenance."""
        self.check_fitted()
        return {"source_dim": self.source_dim_, "target_dim": self.target_dim_}

    def _check_input(self, x: torch.Tensor) -> torch.Tensor:
        self.check_fitted()
        x = check_matrix(x, "x")
        if x.shape[1] != self.source_dim_:
            raise DataError(
                f"x has shape {tuple(x.shape)} but the {self.method} map was fitted on "
                f"{self.source_dim_}-dim source anchors"
            )
        return x
