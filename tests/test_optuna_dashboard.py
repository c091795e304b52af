"""optuna-dashboard on a finished smoke sweep's optuna.db, read back over HTTP (its JSON API):
the same trials, in the same states, as `sweep status` and the Parquet trials table; PRUNED
trials with their intermediate values; parameter names from the spec."""

from __future__ import annotations

import json
import threading
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]

HOST = "127.0.0.2"
STATES = {"COMPLETED": "Complete", "PRUNED": "Pruned", "FAILED": "Fail"}


class Quiet(WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def dashboard():
    """Serve optuna-dashboard's WSGI app for a storage URL on a free loopback port."""
    import optuna_dashboard

    servers = []

    def serve(storage: str) -> str:
        server = make_server(HOST, 0, optuna_dashboard.wsgi(storage), handler_class=Quiet)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://{HOST}:{server.server_port}"

    yield serve
    for s in servers:
        s.shutdown()
        s.server_close()


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as r:
        return json.loads(r.read())


def test_dashboard_shows_the_sweep_as_it_ran(ray_local, tmp_path, dashboard):
    import pandas as pd
    from typer.testing import CliRunner

    from dipddpm.cli import app
    from dipddpm.sweep.console import SweepConsole
    from dipddpm.sweep.runner import run_sweep

    # quick.yaml's space: plain DIP (stages 1) has only 2 configurations, which TPE suggests
    # again and again; ASHA prunes at 10 iterations. One trial at a time: which trials ASHA
    # stops then depends only on their (seeded) curves, not on which of two parallel trials
    # reached a rung first (two at a time stopped none in one CI run out of many)
    out = run_sweep("sweeps/quick.yaml", smoke=True, num_samples=8,
                    storage=str(tmp_path / "results"), sets=["searcher.max_concurrent=1"],
                    console=SweepConsole("psnr_best", "max", quiet=True))
    sweep = tmp_path / "results" / "quick-smoke"
    trials = pd.read_parquet(sweep / "trials").set_index("trial_id")
    assert len(trials) == 8 == len(out.rows)
    assert (trials["status"] == "PRUNED").any(), "ASHA stopped nothing"

    base = dashboard(f"sqlite:///{sweep}/optuna.db")
    studies = get(f"{base}/api/studies")["study_summaries"]
    assert [s["study_name"] for s in studies] == ["quick-smoke"]
    detail = get(f"{base}/api/studies/{studies[0]['study_id']}")
    shown = detail["trials"]

    # the dashboard's trials are the sweep's: one per Tune trial, in its state
    r = CliRunner().invoke(app, ["sweep", "status", str(sweep), "--json"])
    assert r.exit_code == 0, r.output
    st = json.loads(r.output)
    assert len(shown) == st["trials"] == 8
    states = {}
    for t in shown:
        states[t["state"]] = states.get(t["state"], 0) + 1
    assert states == {STATES[k.upper()]: st[k] for k in ("completed", "pruned", "failed")
                      if st[k]}
    assert {k.capitalize(): v for k, v in st["study"].items()} == states
    by_ray = {a["value"]: t for t in shown for a in t["user_attrs"]
              if a["key"] == "ray_trial_id"}
    assert set(by_ray) == set(trials.index)
    searched = {"stages", "scheduler", "beta_schedule", "t_max", "iters"}  # quick.yaml
    configs = set()
    for tid, row in trials.iterrows():
        t = by_ray[tid]
        assert t["state"] == STATES[row["status"]]
        names = {p["name"] for p in t["params"]}
        assert names <= searched and {"stages", "iters"} <= names
        for p in t["params"]:  # the values the trial ran with
            ran, shown_v = row[f"config.{p['name']}"], p["param_external_value"]
            assert (float(ran) == float(shown_v) if pd.api.types.is_number(ran)
                    else str(ran) == shown_v), (p["name"], ran, shown_v)
        steps = {v["step"]: v["value"] for v in t["intermediate_values"]}
        assert max(steps) == row["iters_done"]
        assert steps[row["iters_done"]] == pytest.approx(row["objective"])
        if row["status"] == "PRUNED":
            assert row["iters_done"] < row["config.iters"] and len(steps) >= 1
        configs.add(tuple(sorted((p["name"], p["param_external_value"]) for p in t["params"])))
    assert len(configs) == len(shown)  # no configuration run (or shown) twice
    # the union of the names the dashboard lists for the study: the spec's searched keys
    union = {p["name"] for p in detail["union_search_space"]}
    assert union <= searched and {"stages", "iters"} <= union
