"""Quiet, useful console output of a sweep (instead of Ray's status tables).

One line per trial start and end (COMPLETED / PRUNED / FAILED) with its key params and metric,
a leaderboard every `every_s` seconds while trials run, and a final table with the winner and
the path of the Parquet dataset.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from dipddpm.sweep.rows import ranked, ranked_good, status_counts

MARKS = {"COMPLETED": "[green]done  [/]", "PRUNED": "[yellow]pruned[/]",
         "FAILED": "[red]FAILED[/]"}


def make_console(quiet: bool = False) -> Console:
    """Rich console on stdout; 160 columns when not a terminal (logs, CI), so tables fit."""
    import sys

    width = None if sys.stdout.isatty() else 160
    return Console(highlight=False, quiet=quiet, width=width)


def fmt(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.4g}" if abs(v) < 1e-2 or abs(v) >= 1e4 else f"{v:.3f}".rstrip("0")
    return str(v)


def fmt_params(params: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={fmt(v)}" for k, v in params.items())


# a sweep of one image problem: one image, one noise draw, one seed per configuration
ONE_OBSERVATION_NOTE = (
    "what this can conclude: which configuration fitted this one noisy image best, with this "
    "seed.\nwhat it cannot: whether the winner is better on other images or seeds, nor whether "
    "a gap of a few tenths of a dB is more than seed-to-seed variation (one observation, no "
    "confidence interval).\nfor that, a study fits each configuration to several images and "
    "seeds and gives paired verdicts with CIs, e.g. "
    "dipddpm sweep run sweeps/study_guided_vs_dip.yaml")


class SweepConsole:
    def __init__(self, metric: str, mode: str, quiet: bool = False, every_s: float = 60.0,
                 console: Console | None = None) -> None:
        self.metric, self.mode, self.every_s = metric, mode, every_s
        self.console = console or make_console(quiet)
        self.t0 = time.time()
        self.last_board = time.time()

    def __getstate__(self) -> dict:  # pickled with Tune's callbacks; consoles do not pickle
        state = self.__dict__.copy()
        state["console"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self.console = make_console(False)

    def _clock(self) -> str:
        s = int(time.time() - self.t0)
        return f"[dim]{s // 60:02d}:{s % 60:02d}[/]"

    def line(self, text: str) -> None:
        self.console.print(f"{self._clock()} {text}", soft_wrap=True)

    def trial_start(self, trial_id: str, params: Mapping[str, Any], retries: int = 0) -> None:
        what = "restart" if retries else "start "
        self.line(f"[cyan]{what}[/] {trial_id}  {fmt_params(params)}")

    def trial_end(self, trial_id: str, status: str, iters: int, value: float | None,
                  params: Mapping[str, Any], error: str | None = None) -> None:
        v = "—" if value is None else fmt(value)
        tail = f"  [red]{error}[/]" if error else ""
        self.line(f"{MARKS.get(status, status)} {trial_id}  {self.metric} {v} at {iters} it  "
                  f"{fmt_params(params)}{tail}")

    def board_due(self) -> bool:
        """Whether a leaderboard is due (a caller builds its entries only then)."""
        return time.time() - self.last_board >= self.every_s

    def maybe_leaderboard(self, entries: Sequence[tuple[str, float, int, Mapping]],
                          running: int, done: int) -> None:
        """entries: (trial_id, value, iters, params) of every trial with a result."""
        if not self.board_due() or not entries:
            return
        self.last_board = time.time()
        best = self.ranked(entries)[:3]
        tops = "; ".join(f"{tid} {fmt(v)} @{it}" for tid, v, it, _ in best)
        self.line(f"[bold]leaderboard[/] ({done} ended, {running} running) {self.metric}: "
                  f"{tops}")

    def ranked(self, entries):
        finite = [e for e in entries if e[1] is not None and math.isfinite(e[1])]
        return sorted(finite, key=lambda e: e[1], reverse=self.mode == "max")

    def final(self, rows: Sequence[Mapping[str, Any]], params_of: Sequence[str],
              path: str, summary_by: str | None = None, top: int = 10,
              active=lambda row, key: True) -> None:
        """The final table (best first), the winner, best per `summary_by` value, the path.
        `active(row, key)` says whether a searched key applies to the row (conditional)."""
        c = self.console
        key = self.metric
        rows = ranked(rows, self.mode)
        table = Table(title=f"{len(rows)} trials, best {min(top, len(rows))}", box=None)
        for col in ("trial", "status", "it done", key, *params_of):
            table.add_column(col)
        for r in rows[:top]:
            table.add_row(r["trial_id"], r["status"], str(r["iters_done"]),
                          fmt(r["objective"]) if r["objective"] is not None else "—",
                          *(fmt(r.get(f"config.{p}")) if active(r, p) else "—"
                            for p in params_of))
        c.print(table)
        c.print("  ".join(f"{k} {v}" for k, v in status_counts(rows).items()))
        good = ranked_good(rows, self.mode)
        if good:
            w = good[0]
            ps = {p: w.get(f"config.{p}") for p in params_of if active(w, p)}
            c.print(f"[bold green]winner[/] {w['trial_id']}: {key} {fmt(w['objective'])} "
                    f"({w['status'].lower()}, {w['iters_done']} it)  {fmt_params(ps)}")
        if summary_by and good:
            best: dict[Any, Mapping] = {}
            for r in good:
                best.setdefault(r.get(f"config.{summary_by}"), r)
            parts = [f"{summary_by}={fmt(v)}: {fmt(r['objective'])} ({r['trial_id']})"
                     for v, r in best.items()]
            c.print(f"best per {summary_by}: " + "; ".join(parts))
        c.print(f"results: {path}")

    def one_observation_note(self) -> None:
        """The last lines of a sweep of one image problem (not a study): what its winner can
        and cannot tell."""
        self.console.print(ONE_OBSERVATION_NOTE)
