"""Export a sweep's trials or metrics table as CSV or JSON, for tools that do not read Parquet.

CSV: one header line, one line per row. JSON: an array of row objects (null for missing values,
ISO 8601 timestamps). Written atomically when a file is given, else returned as text.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from dipddpm.analysis.load import Sweep
from dipddpm.analysis.output import write_atomic
from dipddpm.analysis.tables import records
from dipddpm.errors import DipddpmError

FORMATS = ("csv", "json")
TABLES = ("trials", "metrics", "pairs", "baselines")


def table_of(sweep: Sweep, table: str) -> pd.DataFrame:
    if table == "trials":
        return sweep.trials
    if table == "metrics":
        m = sweep.metrics()
        m.insert(0, "sweep", sweep.name)
        return m
    if table == "pairs":  # a study's row per trial x image x replicate
        return sweep.pairs()
    if table == "baselines":  # a study's baselines on its observations
        return sweep.baselines()
    raise DipddpmError(f"--table must be one of {', '.join(TABLES)}, got {table!r}")


def export_text(sweep: Sweep, fmt: str, table: str = "trials") -> str:
    """The table as CSV or JSON text."""
    if fmt not in FORMATS:
        raise DipddpmError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    df = table_of(sweep, table)
    if fmt == "csv":
        return df.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%S.%fZ")
    return json.dumps(records(df)) + "\n"


def export(sweep: Sweep, fmt: str, table: str = "trials", out: str | Path | None = None) -> str:
    """Export to `out` (atomically) and return its path, or return the text when out is None."""
    text = export_text(sweep, fmt, table)
    if out is None:
        return text
    return str(write_atomic(out, text))
