"""Trials grouped by key columns: the one grouping of `results summarize` and `compare`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd


def groups(table: pd.DataFrame, by: list[str]) -> Iterator[tuple[dict[str, Any], pd.DataFrame]]:
    """(key values, rows) per group of `by` values, in sorted order. A null value (a
    conditional key that did not apply to those trials) is a group of its own, its value None.
    No keys: the whole table as one group with an empty key."""
    if not by:
        yield {}, table
        return
    for key, g in table.groupby(by, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        yield {k: None if pd.isna(v) else v for k, v in zip(by, key, strict=True)}, g
