"""What every ``relcli.api`` function returns: a small record of what it did."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: progress(description, rows done, rows in all): called as rows are done; the CLI draws a bar.
Progress = Callable[[str, int, int], None]


@dataclass
class Result:
    """What a step wrote and chose.

    ``output`` the main file written; ``files`` every file written by role (``output``,
    ``save_map``); ``rows`` × ``dims`` the rows written; ``dropped``/``dropped_ids`` the input rows
    left out under ``drop_invalid``; ``parameters`` what was used (as recorded in the output's
    provenance, defaults resolved); ``scores`` what was measured on the way (the quality estimate,
    training accuracy); ``warnings`` what the user should know; ``notes`` the one-line summaries
    the CLI prints (unless -q); ``details`` what ``-v`` shows.
    """

    command: str
    output: Path | None = None
    rows: int = 0
    dims: int = 0
    dropped: int = 0
    dropped_ids: list = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    details: list[str] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Evaluation(Result):
    """``api.evaluate``: the metrics, the gates that failed (empty when all held), and the report.

    ``report`` is what ``relcli evaluate --format json`` prints.
    """

    metrics: dict[str, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures
