"""`dipddpm.load`: a sweep's results as pandas DataFrames and paired verdicts, in a notebook.

Everything here is the analysis the `dipddpm results` commands print (dipddpm/analysis),
returned as objects instead: `load(...).best()` is `results summarize`'s best-trials table,
`.effect(a=..., b=...)` is `results effect`'s verdict, `.report(path)` is `results report`.
Only the Parquet files are read (no Ray), so a results folder copied from a cluster, or an
s3:// URI, works.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from dipddpm.analysis.effect import Effect
from dipddpm.analysis.load import Sweep


def _filters(side: Mapping[str, Any] | None) -> dict[str, str]:
    """{key: value} as `results effect` reads `--a key=value` (values compared as text)."""
    return {str(k): "null" if v is None else str(v) for k, v in (side or {}).items()}


@dataclass
class Verdict(Effect):
    """A paired verdict of B against A (`results effect`'s numbers): `mean` of the paired
    differences B - A, its 95% bootstrap `ci`, `wins` / `ties` / `losses` of B, the Wilcoxon
    signed-rank `p`, the mean difference `per_image`, over `n` pairs (image, replicate)."""

    @property
    def p(self) -> float | None:
        """The Wilcoxon signed-rank p-value (two-sided); None below 2 pairs."""
        return self.p_wilcoxon

    def plot(self):
        """A plotly figure: the mean difference per image, the CI band of the overall mean."""
        from dipddpm.analysis.effect_panel import effect_figure

        return effect_figure(self)

    def __str__(self) -> str:
        head = f"{self.metric}: B ({self.b}) - A ({self.a}), {self.n} pair(s)"
        if self.mean is None or self.ci is None:
            more = f"; mean delta {self.mean:+.3f}" if self.mean is not None else ""
            return f"{head}: {self.note}{more}"
        p = "n/a" if self.p is None else f"{self.p:.3g}"
        return (f"{head}: mean delta {self.mean:+.3f}, 95% CI [{self.ci[0]:+.3f}, "
                f"{self.ci[1]:+.3f}]; B wins {self.wins}, ties {self.ties}, loses "
                f"{self.losses}; Wilcoxon p = {p}")


class Results:
    """One sweep's results: its tables as DataFrames, its best trials, paired verdicts and
    its HTML report. Made by `dipddpm.load` (or returned by `dipddpm.run`).

    >>> import dipddpm
    >>> results = dipddpm.load("results/quick")
    >>> results.trials.groupby("status").size().to_dict()
    {'COMPLETED': 10, 'FAILED': 1, 'PRUNED': 1}
    >>> list(results.metrics.columns)
    ['trial_id', 'iter', 'metric', 'value']
    """

    def __init__(self, sweep: Sweep | None, source: str | Path | None = None,
                 outcome: dict[str, Any] | None = None) -> None:
        if sweep is None and source is None:
            raise ValueError("Results needs a loaded sweep or its source (a path or URI)")
        self._loaded = sweep
        self.source = str(source if source is not None else sweep.uri)
        self.outcome = outcome  # `dipddpm.run`/`resume`: what `sweep run --json` prints

    @property
    def _sweep(self) -> Sweep:
        """The sweep's tables, read from `source` when first needed (after `dipddpm.run`)."""
        if self._loaded is None:
            from dipddpm.analysis import load_sweep

            self._loaded = load_sweep(self.source)
        return self._loaded

    def __repr__(self) -> str:
        c = self._sweep.counts()
        return (f"<Results {self.name!r}: {len(self.trials)} trials ({c['COMPLETED']} "
                f"completed, {c['PRUNED']} pruned, {c['FAILED']} failed) at {self.source}>")

    @property
    def name(self) -> str:
        """The sweep's name."""
        return self._sweep.name

    @property
    def spec(self) -> dict | None:
        """The spec as run (spec.resolved.yaml), None when the folder has none."""
        return self._sweep.spec

    @property
    def trials(self) -> pd.DataFrame:
        """One row per trial: ids, status, `config.<key>`, final and best metrics, ..."""
        return self._sweep.trials

    @property
    def metrics(self) -> pd.DataFrame:
        """Every report, long: trial_id, iter, metric, value (a study's per-pair rows are in
        `pair_metrics`)."""
        return self._sweep.metrics()

    @property
    def pair_metrics(self) -> pd.DataFrame:
        """A study's per-pair reports: trial_id, iter, metric, value, image, replicate."""
        return self._sweep.metrics(pairs=True)

    @property
    def pairs(self) -> pd.DataFrame:
        """A study's pairs table: a row per trial x image x replicate (empty: not a study)."""
        return self._sweep.pairs()

    @property
    def baselines(self) -> pd.DataFrame:
        """A study's baselines: a row per baseline x image x replicate (empty: none)."""
        return self._sweep.baselines()

    def curves(self, metrics: list[str] | None = None) -> pd.DataFrame:
        """Wide learning curves: a row per (trial_id, iter), a column per metric."""
        return self._sweep.curves(metrics or ["psnr_gt", "psnr_best"])

    def summary(self, by: list[str] | str | None = None, metric: str | None = None,
                top: int = 10, threshold: float | None = None):
        """`results summarize`: `.top` (the best trials) and `.groups` (statistics per
        group of `by`, e.g. by="stages")."""
        from dipddpm.analysis.summarize import summarize

        keys = [by] if isinstance(by, str) else by
        return summarize(self._sweep, by=keys, metric=metric, top=top, threshold=threshold)

    def best(self, n: int = 5, by: str | None = None) -> pd.DataFrame:
        """The `n` best trials ranked by the trials column `by` (default psnr_gt_best, else
        objective), best first: `results summarize`'s table.

        >>> import dipddpm
        >>> best = dipddpm.load("results/quick").best(n=3)
        >>> len(best), list(best.columns[:3])
        (3, ['trial_id', 'status', 'method'])
        """
        return self.summary(metric=by, top=n).top

    def effect(self, a: Mapping[str, Any] | None = None, b: Mapping[str, Any] | None = None,
               metric: str = "psnr_gt_best", mode: str = "max",
               other: Results | None = None) -> Verdict:
        """Is B better than A? Each side is the COMPLETED trials matching its filters,
        narrowed to its best configuration (`mode`); paired by (image, replicate). `other`:
        take B from another sweep. The numbers of `dipddpm results effect`.

        >>> import dipddpm
        >>> v = dipddpm.load("results/quick").effect(a={"stages": 1}, b={"stages": 4})
        >>> v.n, v.wins + v.ties + v.losses
        (2, 2)
        """
        from dipddpm.analysis.effect import effect

        if mode not in ("max", "min"):
            from dipddpm.errors import DipddpmError

            raise DipddpmError(f"mode must be max or min, got {mode!r}")
        sb = other._sweep if other is not None else self._sweep
        e = effect(self._sweep, sb, _filters(a), _filters(b), metric=metric, mode=mode)
        return Verdict(**vars(e))

    def export(self, fmt: str, table: str = "trials", out: str | Path | None = None) -> str:
        """`results export`: the `table` (trials, metrics, pairs or baselines) as `fmt` (csv,
        or json: an array of row objects); written to `out` atomically (its path returned),
        else returned as text.

        >>> import dipddpm
        >>> text = dipddpm.load("results/quick").export("csv")
        >>> text.splitlines()[0].split(",")[:2], len(text.splitlines())
        (['sweep', 'trial_id'], 13)
        """
        from dipddpm.analysis.export import export

        return export(self._sweep, fmt, table, out)

    def plot(self, kind: str = "curves", out: str | Path | None = None, **options: Any):
        """A matplotlib figure of `results plot --kind KIND` (curves, stages, pareto,
        importance, ...; options: by, metric, top, x). `out`: also write it there (.png,
        .svg or .pdf), whole or not at all."""
        from dipddpm.analysis.plots import plot, save_figure

        by = options.pop("by", None)
        fig = plot(self._sweep, kind, by=[by] if isinstance(by, str) else by, **options)
        if out is not None:
            save_figure(fig, out)
        return fig

    def report(self, path: str | Path, top: int = 6, a: Mapping[str, Any] | None = None,
               b: Mapping[str, Any] | None = None, *,
               status: Callable[[str], AbstractContextManager] | None = None) -> Path:
        """Write `results report`'s self-contained HTML page to `path` (with `a` and `b`:
        the paired verdict too); returns its path. `status`: a context manager around the
        build, given a message (the CLI's spinner, e.g. `rich.console.Console().status`)."""
        from dipddpm.analysis import load_sweep
        from dipddpm.analysis.report import write_report
        from dipddpm.dataset.storage import is_remote

        sweep = load_sweep(self.source, artifacts=True) if is_remote(self.source) else \
            self._sweep  # a remote sweep is copied with its artifacts (the thumbnails)
        sides = (_filters(a), _filters(b)) if a or b else None
        with (status or _no_status)(f"building the report of {sweep.name}"):
            return Path(write_report(sweep, Path(path), top=top, sides=sides))

    def watch_report(self, path: str | Path, top: int = 6, a: Mapping[str, Any] | None = None,
                     b: Mapping[str, Any] | None = None, *, every: float = 30.0,
                     echo: Callable[[str], None] = print,
                     status: Callable[[str], AbstractContextManager] | None = None) -> int:
        """`results report --watch`: rewrite the report every `every` seconds while the sweep
        runs (its driver.json says so), re-reading its files each time, and stop after the
        report that sees its end; `echo` gets a line per report. Returns how many were
        written. Only a sweep on this machine's filesystem can be watched."""
        from dipddpm.analysis.watch import watch

        def write() -> str:
            return report_line(Results(None, self.source).report(path, top, a, b,
                                                                 status=status))

        return watch(self.source, write, every, echo)


def _no_status(message: str) -> AbstractContextManager:
    return nullcontext()


def report_line(path: Path) -> str:
    """The line `results report` prints about a page it wrote."""
    return f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)"


def compare(*sweeps: Results | str | Path, by: list[str] | str | None = None,
            metric: str | None = None):
    """`results compare`: the two source-style tables across sweeps (Results, or paths or
    URIs to load), one row per sweep (or per sweep and group of `by`): `.reach_max`
    (iterations to reach max PSNR / SSIM) and `.final_best` (final vs best PSNR and best
    iteration), each row the best COMPLETED trial of its group by `metric`.

    >>> import dipddpm
    >>> c = dipddpm.compare("results/quick", by="stages")
    >>> len(c.reach_max), c.by
    (2, ['stages'])
    """
    from dipddpm.analysis.compare import compare as compare_sweeps

    loaded = [s if isinstance(s, Results) else load(s) for s in sweeps]
    return compare_sweeps([r._sweep for r in loaded], by=[by] if isinstance(by, str) else by,
                          metric=metric)


def load(path_or_uri: str | Path, *, lazy: bool = False) -> Results:
    """Read a sweep's results folder (`<storage>/<sweep>`, local or an s3:// URI). `lazy`:
    read it when first asked for (so a report of an s3:// sweep copies it once, with its
    artifacts; a missing folder is then an error at first use).

    >>> import dipddpm
    >>> results = dipddpm.load("results/quick")
    >>> len(results.trials), sorted(results.trials["status"].unique())
    (12, ['COMPLETED', 'FAILED', 'PRUNED'])
    """
    from dipddpm.analysis import load_sweep

    return Results(None if lazy else load_sweep(path_or_uri), path_or_uri)
