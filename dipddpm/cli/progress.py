"""A rich progress bar that doubles as a method's report callback."""

from __future__ import annotations

import sys
from collections.abc import Mapping

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class ProgressReport:
    """Use as `with ProgressReport(total, fields) as report: run(..., report=report)`.

    Shows iterations done, time left and the live values of `fields` (e.g. psnr_gt). Quiet
    (no bar) when `enabled` is false, e.g. with --json.
    """

    def __init__(self, total: int, fields: tuple[str, ...], enabled: bool = True,
                 description: str = "fitting") -> None:
        self.fields = fields
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), TextColumn("{task.fields[live]}"),
            console=Console(file=sys.stderr), transient=False, disable=not enabled,
        )
        self.task = self.progress.add_task(description, total=total, live="")
        self.last: dict = {}

    def __enter__(self) -> ProgressReport:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is not None and not self.last:  # failed before any progress: no bar left
            self.progress.live.transient = True
        self.progress.__exit__(*exc)

    def __call__(self, it: int, metrics: Mapping[str, float], state=None) -> None:
        self.last = dict(metrics)
        live = "  ".join(f"{k} {metrics[k]:.2f}" for k in self.fields if k in metrics)
        self.progress.update(self.task, completed=it, live=live)
