"""Every Parquet column the sweep writes, declared once: name -> arrow type, with the schema
version beside them. `column_type` answers for a column of any table; a column that is not
declared and not of a declared family is an error naming it, so a new column is added here
(one line) before any row can carry it, never discovered as a float64 surprise at write time.

Families (a prefix and how its type is found):
    config.*   typed from the method's config dataclass (tuples and dicts: JSON strings)
    problem.*  typed from the value (problem keys are free-form; lists: JSON strings)
    last.*     float64: the last report's values
    extra.*    string (JSON): the method's extra result info (guided DIP's stage counts)
    summary metrics: int64 where they count iterations, else float64 (numbers only)

Each declared trials column also has its role, on the same line: a `metric` is a result one
ranks or compares trials by (`results summarize`, the leaderboard); `bookkeeping` (a seed, a
count of retries, a time stamp) is not. Analysis asks `is_metric`; a family's role follows
from it (config., problem., extra.: bookkeeping; last. and summary metrics: metrics).
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from typing import Any

from dipddpm.errors import DipddpmError

SCHEMA_VERSION = "1"  # readers accept files of this version (analysis/load.py)

STATUSES = ("COMPLETED", "PRUNED", "FAILED")  # the values of the trials' `status` column

STRING, INT, FLOAT, TIME, BOOL = "string", "int64", "float64", "timestamp", "bool"

METRIC, BOOKKEEPING = "metric", "bookkeeping"  # a trials column's role
TRIALS: dict[str, str] = {}  # trials column -> its arrow kind
ROLES: dict[str, str] = {}  # trials column -> its role


def declare(kind: str, role: str, *names: str) -> None:
    """Declare trials columns: their kind and their role (a column is declared once)."""
    for name in names:
        if name in TRIALS:
            raise ValueError(f"trials column {name!r} is already declared")
        TRIALS[name], ROLES[name] = kind, role


def undeclare(*names: str) -> None:
    """Take declared columns out again (a column a test declared)."""
    for name in names:
        TRIALS.pop(name)
        ROLES.pop(name)


declare(STRING, BOOKKEEPING, "sweep", "trial_id", "status", "stopped_by", "error", "method",
        "preset", "node_ip", "node_id", "hostname", "gpu", "gpu_uuid", "artifact_output",
        "dipddpm_version", "torch_version", "ray_version", "optuna_version", "git_sha",
        "python_version", "reproduce")
declare(STRING, BOOKKEEPING, "cloned_from")  # the trial whose checkpoint it last continued
# from (a Tune scheduler's clone, PBT's exploit); null: its own
declare(INT, BOOKKEEPING, "seed", "retries", "resumed_from_iter", "iters_done",
        "artifact_iter", "n_pairs")
declare(FLOAT, METRIC, "objective")
declare(FLOAT, BOOKKEEPING, "wall_s")
declare(TIME, BOOKKEEPING, "started_at", "ended_at")
METRICS: dict[str, str] = {"sweep": STRING, "trial_id": STRING, "iter": INT, "metric": STRING,
                           "value": FLOAT, "image": STRING, "replicate": INT}
PAIRS: dict[str, str] = {
    **dict.fromkeys(("sweep", "trial_id", "image", "reproduce", "artifact_output"), STRING),
    **dict.fromkeys(("replicate", "seed", "noise_seed", "iter_es", "height", "width"), INT),
}
BASELINES = {**PAIRS, "baseline": STRING}  # sweep/baselines.py: a row per baseline x pair
TABLES = {"trials": TRIALS, "metrics": METRICS, "pairs": PAIRS, "baselines": BASELINES}
# summary metrics that count iterations (int64); every other summary metric is float64
INT_METRICS = ("iters", "n_backtracks")


def is_metric(key: str) -> bool:
    """Whether a trials column is a result to rank trials by (its declared role; undeclared
    columns by family: config., problem. and extra. are not, last.* and summary metrics
    are)."""
    if key in ROLES:
        return ROLES[key] == METRIC
    return not key.startswith(("config.", "problem.", "extra."))


def arrow(kind: str):
    import pyarrow as pa

    return {STRING: pa.string(), INT: pa.int64(), FLOAT: pa.float64(), BOOL: pa.bool_(),
            TIME: pa.timestamp("us", tz="UTC")}[kind]


def is_int_metric(key: str) -> bool:
    """Summary metrics that count iterations are int64; every other metric is float64
    (`last.*` columns hold the last report's values, all float64)."""
    if key.startswith("last."):
        return False
    return key.endswith("_iter") or key in INT_METRICS


def config_kind(method: str, key: str) -> str:
    from dipddpm.methods import METHODS

    hint = typing.get_type_hints(METHODS.get(method).config_cls).get(key, str)
    if typing.get_origin(hint) in (tuple, list, dict):
        return STRING  # stored as JSON
    args = set(typing.get_args(hint)) or {hint}
    for tp, kind in ((bool, BOOL), (int, INT), (float, FLOAT)):
        if tp in args and not (tp is int and bool in args):
            return kind
    return STRING


def value_kind(v: Any) -> str:
    if isinstance(v, bool):
        return BOOL
    if isinstance(v, int):
        return INT
    if isinstance(v, float):
        return FLOAT
    return STRING


def column_kind(table: str, row: Mapping[str, Any], key: str) -> str:
    """The declared kind of column `key` of `table` (see the module docstring)."""
    declared = TABLES[table]
    if key in declared:
        return declared[key]
    if key.startswith("config."):
        return config_kind(row["method"], key[len("config."):])
    if key.startswith("problem."):
        return value_kind(row[key])
    if key.startswith("extra."):
        return STRING
    if table != "metrics" and key.startswith("last."):
        return FLOAT
    v = row.get(key)
    if table != "metrics" and (v is None or isinstance(v, int | float)) and not isinstance(
            v, bool):
        return INT if is_int_metric(key) else FLOAT  # a summary metric
    raise DipddpmError(f"column {key!r} of the {table} table holds {type(v).__name__} values "
                       f"but is not declared; declare it in dipddpm/dataset/columns.py "
                       f"({table.upper()}: name -> type)")


def column_type(row: Mapping[str, Any], key: str, table: str = "trials"):
    """The arrow type of a column (stable across the trials of a sweep)."""
    return arrow(column_kind(table, row, key))
