"""Tune's own readers on a sweep's tune/ folder (sweep/tune_results.py): one result.json per
trial, written once when it ends; on S3 (moto's server on loopback) that is one request per
trial whatever the sweep's length, and `ExperimentAnalysis` reads the rows from the bucket.
(The local-disk case, with `Tuner.restore(...).get_results()`, is in test_tracking_sweeps.py.)"""

from __future__ import annotations

import re
import sys

import pytest
import yaml
from test_sweep_s3 import BUCKET, aws_env, cli, s3  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.ray, pytest.mark.slow]

RESULT_PUT = re.compile(r'"PUT /[^ ]*/tune/[^ ]*/result\.json')
REQUEST = re.compile(r'"(GET|PUT|POST|HEAD|DELETE) /')


def noop_spec(tmp_path, name: str, trials: int, iters: int):
    p = tmp_path / f"{name}.yaml"
    p.write_text(yaml.safe_dump({
        "name": name, "method": "noop", "problem": {}, "metric": "score", "mode": "max",
        "fixed": {"iters": iters, "report_every": 2}, "search": {"x": {"uniform": [0, 1]}},
        "searcher": {"type": "optuna", "seed": 0, "max_concurrent": 2},
        "scheduler": {"type": "none"}, "num_samples": trials, "checkpoint_every": 4}))
    return p


def requests_during(server, fn) -> list[str]:
    """The moto log lines of the requests made while `fn` runs."""
    start = len(server.log.read_text().splitlines())
    fn()
    return [ln for ln in server.log.read_text().splitlines()[start:] if REQUEST.search(ln)]


def test_result_files_cost_one_request_per_trial_on_s3(aws_env, s3, tmp_path):  # noqa: F811
    import pyarrow.fs as pafs
    from ray.tune import ExperimentAnalysis

    from dipddpm.dataset.storage import resolve

    counts = {}
    for name, trials, iters in (("two", 2, 8), ("three-longer", 3, 24)):
        spec = noop_spec(tmp_path, name, trials, iters)

        def go(spec=spec):
            r = cli("sweep", "run", str(spec), "--storage", f"s3://{BUCKET}/readers",
                    env=aws_env)
            assert r.returncode == 0, r.stderr[-2000:]

        lines = requests_during(s3, go)
        puts = [ln for ln in lines if RESULT_PUT.search(ln)]
        counts[name] = (len(puts), len(lines))
        assert len(puts) == trials, puts  # one write per trial, when it ends
        loc = resolve(f"s3://{BUCKET}/readers/{name}/tune")
        df = ExperimentAnalysis(f"{BUCKET}/readers/{name}/tune",
                                storage_filesystem=loc.fs).dataframe()
        assert len(df) == trials and (df["iter"] == iters).all()
        assert df["config/x"].between(0, 1).all() and (df["status"] == "COMPLETED").all()
    # 3 times the iterations and checkpoints: still one result.json request per trial
    assert counts["three-longer"][0] == 3 < counts["three-longer"][1] / 3
    sys.stderr.write(f"result.json PUTs / all requests: {counts}\n")
    assert isinstance(loc.fs, pafs.FileSystem)
