"""Analysis of sweep results: load, summarize, compare, plot, report, export.

Reads only the Parquet dataset (and optional artifacts / Optuna study) of a sweep directory;
never imports Ray, so it works on a results folder copied from a cluster.
"""

from dipddpm.analysis.load import Sweep, load_sweep

__all__ = ["Sweep", "load_sweep"]
