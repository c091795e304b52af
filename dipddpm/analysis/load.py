"""Read one sweep's results directory (the Parquet layout the sweep runner writes).

    <storage>/<sweep>/trials/*.parquet    one row per trial (part-<id>: one trial;
                                          compact-NNNNN: many, see dataset/compaction.py)
    <storage>/<sweep>/metrics/*.parquet   long: sweep, trial_id, iter, metric, value
    <storage>/<sweep>/artifacts/...            PNGs (optional here)
    <storage>/<sweep>/spec.resolved.yaml       the spec as run (optional here)
    <storage>/<sweep>/optuna.db                the Optuna study (optional)

Only the Parquet files are required, so a directory copied from a cluster (no Ray session, no
checkpoints) is enough. Trials files may differ in their columns (a conditional search space,
a metric that is null for a failed trial); their schemas are unified, missing columns read as
null. Anything that is not a sweep result is a one-line `DipddpmError` saying what was expected.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from dipddpm.dataset.columns import (  # declared once, there
    SCHEMA_VERSION,
    STATUSES,
    TRIALS,
    is_metric,
)
from dipddpm.errors import DipddpmError, closest, first_line

TRIAL_COLUMNS = ("sweep", "trial_id", "status", "method", "iters_done")
METRIC_COLUMNS = ("sweep", "trial_id", "iter", "metric", "value")
LAYOUT = "<storage>/<sweep>/trials/part-*.parquet, as `dipddpm sweep run` writes"
# trial-level columns that are bookkeeping, not something to rank or group trials by: their
# declared role (dipddpm/dataset/columns.py, `is_metric`); this tuple is that list at import
NOT_METRICS = tuple(c for c in TRIALS if not is_metric(c))


@dataclass
class Sweep:
    """A loaded sweep: the trials table in memory; metrics read on demand (they can be large)."""

    path: Path
    name: str
    trials: pd.DataFrame  # one row per trial, sorted by trial_id
    metric_files: list[Path]
    spec: dict | None = None  # spec.resolved.yaml, parsed; None when absent
    spec_text: str | None = None
    file_metadata: dict = field(default_factory=dict)  # dipddpm.* Parquet metadata
    uri: str = ""  # where the sweep is (an s3:// URI read through a local copy, see remote.py)

    def __post_init__(self) -> None:
        self.uri = self.uri or str(self.path)

    @property
    def config_columns(self) -> list[str]:
        return [c for c in self.trials.columns if c.startswith("config.")]

    @property
    def study_path(self) -> Path | None:
        p = self.path / "optuna.db"
        return p if p.is_file() else None

    def counts(self, trials: pd.DataFrame | None = None) -> dict[str, int]:
        """Number of trials per status: COMPLETED, PRUNED, FAILED (+ any other seen)."""
        t = self.trials if trials is None else trials
        counts = {s: int((t["status"] == s).sum()) for s in STATUSES}
        for s, n in t["status"].value_counts().items():
            counts.setdefault(str(s), int(n))
        return counts

    def varying_config(self) -> list[str]:
        """Config columns with more than one value among trials (the searched parameters); null
        (a conditional key that did not apply to a trial) counts as a value of its own."""
        return [c for c in self.config_columns
                if self.trials[c].astype("string").nunique(dropna=False) > 1]

    def configurations(self) -> pd.Series:
        """A number per distinct configuration (method and every config value, null included),
        indexed like `trials`: trials that differ only in their seed share one."""
        cols = ["method", *self.config_columns]
        return self.trials[cols].astype("string").fillna("<null>").groupby(
            cols, sort=False).ngroup()

    @functools.cached_property
    def metric_names(self) -> list[str]:
        """Names in the metrics table (psnr_gt, ssim_gt, stage, ...)."""
        if not self.metric_files:
            return []
        import pyarrow.compute as pc

        col = self._dataset().to_table(columns=["metric"]).column("metric")
        return sorted(str(v) for v in pc.unique(col).to_pylist() if v is not None)

    def _dataset(self):
        import pyarrow.dataset as ds

        from dipddpm.dataset.parquet import metrics_schema

        return ds.dataset([str(f) for f in self.metric_files], format="parquet",
                          schema=metrics_schema())

    @property
    def pair_files(self) -> list[Path]:
        return _part_files(self.path / "pairs")

    def pairs(self) -> pd.DataFrame:
        """A study's pairs table: one row per trial x image x replicate (empty: not a study)."""
        return _read_rows(self.pair_files, "trial_id")

    def baselines(self) -> pd.DataFrame:
        """A study's baselines table: one row per baseline x image x replicate (empty: none)."""
        return _read_rows(_part_files(self.path / "baselines"), "baseline")

    def metrics(self, names: list[str] | None = None,
                trial_ids: list[str] | None = None, pairs: bool = False) -> pd.DataFrame:
        """The long metrics table (trial_id, iter, metric, value), filtered while reading:
        the trials' own values; `pairs`: a study's per-pair rows instead (with image and
        replicate columns)."""
        empty = pd.DataFrame({"trial_id": pd.Series(dtype="string"),
                              "iter": pd.Series(dtype="int64"),
                              "metric": pd.Series(dtype="string"),
                              "value": pd.Series(dtype="float64")})
        if not self.metric_files:
            return empty
        import pyarrow.dataset as ds

        expr = ds.field("image").is_valid() if pairs else ds.field("image").is_null()
        if names is not None:
            expr = expr & ds.field("metric").isin(list(names))
        if trial_ids is not None:
            by_trial = ds.field("trial_id").isin(list(trial_ids))
            expr = expr & by_trial
        columns = ["trial_id", "iter", "metric", "value"] + (["image", "replicate"] if pairs
                                                              else [])
        table = self._dataset().to_table(columns=columns, filter=expr)
        df = table.to_pandas()
        if df.empty:
            return empty
        return df.sort_values(["trial_id", "metric", "iter"], ignore_index=True)

    def curves(self, names: list[str], trial_ids: list[str] | None = None) -> pd.DataFrame:
        """Wide per-iteration table: one row per (trial_id, iter), one column per metric."""
        long = self.metrics(names, trial_ids)
        wide = long.pivot_table(index=["trial_id", "iter"], columns="metric", values="value",
                                aggfunc="last")
        wide.columns.name = None
        return wide.reset_index()

    def require_metric(self, name: str) -> None:
        """Error unless `name` is in the metrics table."""
        if name not in self.metric_names:
            raise DipddpmError(
                f"unknown metric {name!r} in the metrics table of sweep {self.name!r}"
                f"{closest(name, self.metric_names)}; expected one of: "
                f"{', '.join(self.metric_names) or '(none recorded)'}")

    def column(self, key: str, what: str = "group key") -> str:
        """The trials column named `key`; `scheduler` finds `config.scheduler` too."""
        cols = list(self.trials.columns)
        for cand in (key, f"config.{key}", f"problem.{key}"):
            if cand in cols:
                return cand
        short = [c.removeprefix("config.") for c in self.config_columns]
        hint = closest(key, cols + short)
        raise DipddpmError(
            f"unknown {what} {key!r} for sweep {self.name!r}{hint}; expected a trials column "
            f"such as {', '.join(self.varying_config()[:6] or self.config_columns[:6])} "
            f"(the config. prefix is optional) or method, status, seed")


def to_pandas(table) -> pd.DataFrame:
    """Arrow -> pandas keeping integers and booleans with nulls as integers and booleans."""
    import pyarrow as pa

    types = {pa.int64(): pd.Int64Dtype(), pa.int32(): pd.Int64Dtype(),
             pa.bool_(): pd.BooleanDtype()}
    return table.to_pandas(types_mapper=types.get)


def _read_rows(files: list[Path], first: str) -> pd.DataFrame:
    """The rows of per-(image, replicate) part files, sorted by (first, image, replicate)."""
    if not files:
        return pd.DataFrame({first: pd.Series(dtype="string"),
                             "image": pd.Series(dtype="string"),
                             "replicate": pd.Series(dtype="int64")})
    import pyarrow as pa
    import pyarrow.dataset as ds

    unified = pa.unify_schemas(_read_schemas(files), promote_options="permissive")
    table = ds.dataset([str(f) for f in files], schema=unified, format="parquet").to_table()
    return to_pandas(table).sort_values([first, "image", "replicate"], ignore_index=True)


def _part_files(folder: Path) -> list[Path]:
    """The Parquet files of a folder (part-<trial id> and compacted ones), hidden ones left
    out (a write or a compaction in progress)."""
    from dipddpm.dataset.compaction import data_files

    return data_files(folder)


def _not_a_sweep(path: Path, why: str) -> DipddpmError:
    inner = sorted(p.parent.parent for p in path.glob("*/trials/*.parquet"))
    hint = ""
    if inner:
        names = ", ".join(str(p) for p in dict.fromkeys(inner))
        hint = f" (it holds sweeps: {names}; pass one of those)"
    return DipddpmError(f"{path} is not a sweep result: {why}; expected {LAYOUT}{hint}")


def _read_schemas(files: list[Path]):
    import pyarrow as pa
    import pyarrow.parquet as pq

    schemas = []
    for f in files:
        try:
            schemas.append(pq.read_schema(f))
        except (pa.ArrowInvalid, OSError) as e:
            first = first_line(e)
            raise DipddpmError(f"cannot read {f}: {first}; expected a Parquet file written by "
                               "`dipddpm sweep run`") from None
    return schemas


def _check_metadata(files: list[Path], schemas) -> dict:
    meta: dict = {}
    for f, s in zip(files, schemas, strict=True):
        m = {k.decode(): v.decode() for k, v in (s.metadata or {}).items()
             if k.startswith(b"dipddpm.")}
        version = m.get("dipddpm.schema_version")
        if version is not None and version != SCHEMA_VERSION:
            raise DipddpmError(f"{f} has results schema version {version!r}, this dipddpm "
                               f"reads version {SCHEMA_VERSION!r}; use the dipddpm version that "
                               "wrote the sweep (see its dipddpm_version column)")
        meta = meta or m
    return meta


def _require_columns(f: Path, schema, required) -> None:
    missing = [c for c in required if c not in schema.names]
    if missing:
        raise DipddpmError(f"{f} is not a dipddpm results file: it lacks column(s) "
                           f"{', '.join(missing)}; expected {', '.join(required)}")


def load_sweep(path: str | Path, artifacts: bool = False) -> Sweep:
    """Read and check a sweep directory, or an s3:// (gs://, ...) URI of one, copied locally
    first (with its artifacts/ when `artifacts`); raises DipddpmError if it is not a
    (non-empty) sweep."""
    from dipddpm.dataset.storage import is_remote

    if not is_remote(str(path)):
        return _load_local(Path(path))
    from dipddpm.analysis.remote import local_copy

    uri = str(path).rstrip("/") or str(path)
    local = local_copy(str(path), artifacts=artifacts)
    try:
        sweep = _load_local(local)
    except DipddpmError as e:  # name the URI, not the temporary copy
        raise DipddpmError(str(e).replace(str(local), uri)) from None
    sweep.uri = uri
    return sweep


def _load_local(path: Path) -> Sweep:
    import pyarrow as pa
    import pyarrow.dataset as ds

    if not path.exists():
        raise DipddpmError(f"{path} does not exist; expected a sweep results directory "
                           f"({LAYOUT})")
    if not path.is_dir():
        raise _not_a_sweep(path, "it is a file, not a directory")
    trials_dir = path / "trials"
    if not trials_dir.is_dir():
        raise _not_a_sweep(path, "it has no trials/ folder")
    files = _part_files(trials_dir)
    if not files:
        raise DipddpmError(f"sweep {path} has no trials yet ({trials_dir} holds no "
                           "*.parquet); expected at least one finished trial: wait for "
                           "the sweep or check it with `dipddpm sweep status`")
    schemas = _read_schemas(files)
    for f, s in zip(files, schemas, strict=True):
        _require_columns(f, s, TRIAL_COLUMNS)
    meta = _check_metadata(files, schemas)
    unified = pa.unify_schemas(schemas, promote_options="permissive")
    table = ds.dataset([str(f) for f in files], schema=unified, format="parquet").to_table()
    trials = to_pandas(table).sort_values("trial_id", ignore_index=True)
    if trials.empty:
        raise DipddpmError(f"sweep {path} has no trial rows; expected one row per trial in "
                           f"{trials_dir}")

    metric_files = _part_files(path / "metrics")
    metric_schemas = _read_schemas(metric_files)
    for f, s in zip(metric_files, metric_schemas, strict=True):
        _require_columns(f, s, METRIC_COLUMNS)
    _check_metadata(metric_files, metric_schemas)

    spec = spec_text = None
    spec_path = path / "spec.resolved.yaml"
    if spec_path.is_file():
        import yaml

        spec_text = spec_path.read_text()
        try:
            spec = yaml.safe_load(spec_text)
        except yaml.YAMLError:
            spec = None
    name = meta.get("dipddpm.sweep") or str(trials["sweep"].iloc[0])
    return Sweep(path=path, name=name, trials=trials, metric_files=metric_files, spec=spec,
                 spec_text=spec_text, file_metadata=meta)
