"""Every bundled spec's smoke block runs end to end on the shared local Ray."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]
SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"


@pytest.mark.parametrize("name", ["quick", "staged_dip_f16", "guided_dip_butterfly",
                                  "ddpm_mnist", "dip_prior_ddpm",
                                  "study_guided_vs_dip", "dip_cset9"])
def test_smoke_block_runs(ray_local, tmp_path, name, request):
    import pandas as pd

    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import run_sweep
    from dipddpm.sweep.spec import load_spec

    sets = []
    if name == "dip_prior_ddpm":
        sets = [f"fixed.checkpoint={request.getfixturevalue('tiny_ddpm')}"]
    spec = load_spec(SWEEPS / f"{name}.yaml", smoke=True, sets=sets)
    out = run_sweep(SWEEPS / f"{name}.yaml", smoke=True, sets=sets, storage=str(tmp_path),
                    console=SweepConsole(spec.metric, spec.mode, quiet=True))
    trials = pd.read_parquet(Path(out.path) / "trials")
    assert len(trials) >= 1 and trials["trial_id"].is_unique
    assert (trials["status"] != "FAILED").all(), trials[["status", "error"]].to_string()
    assert trials["objective"].notna().all()
    assert (trials["status"] == "COMPLETED").any()
    metrics = pd.read_parquet(Path(out.path) / "metrics")
    assert spec.metric in set(metrics["metric"])
