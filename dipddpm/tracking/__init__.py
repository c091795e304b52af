"""Tracking backends: where a sweep is recorded besides its Parquet dataset.

A spec lists them (`tracking: [mlflow, tensorboard]`, or names -> options); each is an entry of
the `TRACKING` registry that owns its options, its checks before Ray starts and its sink
(tracking/base.py). The sweep runner adds one Tune callback feeding them
(`tracking_callbacks`); a backend failing mid-sweep is dropped with one warning, never failing
the sweep. Their packages come with `pip install 'dipddpm[tracking]'`; importing this package
imports none of them.

    mlflow       a parent run per sweep, a child run per trial (mlflow_tracker.py)
    wandb        a run per trial grouped by sweep, offline without an API key (wandb_tracker.py)
    tensorboard  scalars per trial in <sweep>/tensorboard (tensorboard_tracker.py)
"""

from dipddpm.tracking import mlflow_tracker, tensorboard_tracker, wandb_tracker  # noqa: F401
from dipddpm.tracking.base import EXTRA, TRACKING, SweepContext, Tracker, TrialEnd
from dipddpm.tracking.spec import parse_tracking, preflight, tracking_callbacks

__all__ = ["EXTRA", "TRACKING", "SweepContext", "Tracker", "TrialEnd", "parse_tracking",
           "preflight", "tracking_callbacks"]
