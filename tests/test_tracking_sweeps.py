"""Smoke sweeps recorded in MLflow, TensorBoard and W&B, read back with each one's own reader
(MlflowClient, TensorBoard's EventAccumulator, W&B's offline run log), against the Parquet
dataset; Tune's own readers on the sweep's tune/; a tracking server killed mid-sweep; a
resumed sweep adding no duplicate run."""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.ray, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[1]
TINY = {"width": 8, "depth": 3, "input_depth": 4, "report_every": 5}


def write_spec(tmp_path: Path, **spec) -> Path:
    base = {"method": "guided_dip", "preset": "tiny",
            "problem": {"image": "skimage:astronaut", "size": 32, "sigma": 25, "seed": 0},
            "metric": "psnr_best", "mode": "max", "checkpoint_every": 10,
            "storage": str(tmp_path / "results")}
    p = tmp_path / f"{spec['name']}.yaml"
    p.write_text(yaml.safe_dump({**base, **spec}, sort_keys=False))
    return p


def quiet():
    from dipddpm.sweep.console import SweepConsole

    return SweepConsole("psnr_best", "max", quiet=True)


def mlflow_runs(uri: str, experiment: str):
    """(parent run, {trial id: child run}) of the sweep's experiment."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("dipddpm.role") == "sweep"]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1, [r.data.tags for r in parents]
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)
    by_trial = {r.data.tags["dipddpm.trial_id"]: r for r in children}
    assert len(by_trial) == len(children), "two runs of one trial"
    return client, parents[0], by_trial


def history(client, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))


def table_history(metrics, trial_id: str, key: str) -> list[tuple[int, float]]:
    m = metrics[(metrics.trial_id == trial_id) & (metrics.metric == key)
                & metrics.image.isna()]
    return sorted(zip(m["iter"].astype(int), m["value"], strict=True))


def test_mlflow_and_tensorboard_record_what_the_parquet_dataset_holds(ray_local, tmp_path,
                                                                       monkeypatch):
    import json

    import pandas as pd
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from dipddpm.sweep.runner import run_sweep

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'store.db'}"
    (tmp_path / "mlflow").mkdir()
    spec = write_spec(
        tmp_path, name="tracked", fixed={**TINY, "iters": 40, "stages": 2},
        search={"scheduler": {"choice": ["uniform", "exp_weighted"]},
                "exp_c": {"loguniform": [50, 1000], "when": {"scheduler": "exp_weighted"}},
                "lr": {"loguniform": [1e-4, 3e-2]}},
        searcher={"type": "optuna", "sampler": "tpe", "seed": 0, "max_concurrent": 2},
        scheduler={"type": "asha", "grace_period": 10, "reduction_factor": 2},
        num_samples=6, tracking=[{"mlflow": {"tracking_uri": uri}}, "tensorboard"])
    out = run_sweep(spec, console=quiet())
    sweep = Path(out.path)
    trials = pd.read_parquet(sweep / "trials").set_index("trial_id")
    metrics = pd.read_parquet(sweep / "metrics")
    assert {"COMPLETED", "PRUNED"} <= set(trials["status"]), "need both statuses to check"

    client, parent, children = mlflow_runs(uri, "tracked")
    assert set(children) == set(trials.index)  # one child per trial
    assert parent.data.tags["dipddpm.git_sha"] == trials["git_sha"].iloc[0]
    assert parent.info.status == "FINISHED"
    names = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"spec.resolved.yaml", "verdict.json"} <= names
    import mlflow

    verdict = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="verdict.json", dst_path=str(tmp_path),
        tracking_uri=uri)).read_text())
    assert verdict["best"]["trial_id"] == trials["objective"].idxmax()
    assert verdict["pruned"] == int((trials["status"] == "PRUNED").sum())
    for tid, run in children.items():
        row = trials.loc[tid]
        # params equal the trials table (config.<key>, keys that did not apply left out)
        config = {c.removeprefix("config."): row[c] for c in trials.columns
                  if c.startswith("config.") and pd.notna(row[c])}
        expected = {k: str(v.item() if hasattr(v, "item") else v) for k, v in config.items()}
        assert run.data.params == {**expected, "seed": str(row["seed"])}, tid
        # every report of the objective, as the metrics table holds it
        assert history(client, run.info.run_id, "psnr_best") == \
            table_history(metrics, tid, "psnr_best")
        assert run.data.tags["dipddpm.status"] == row["status"]
        assert run.info.status == {"COMPLETED": "FINISHED", "PRUNED": "KILLED"}[row["status"]]
        assert run.data.tags["dipddpm.iters_done"] == str(row["iters_done"])
        arts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "images" in arts  # the output at checkpoints (log_image, step = iteration)
        assert "output.png" in arts  # a pruned trial's: its last checkpoint's, as in Parquet

    # TensorBoard: one event folder per trial; its scalars are the metrics table's
    for tid in trials.index:
        acc = EventAccumulator(str(sweep / "tensorboard" / tid))
        acc.Reload()
        for key in ("psnr_best", "psnr_gt", "loss"):
            got = sorted((e.step, e.value) for e in acc.Scalars(key))
            want = table_history(metrics, tid, key)
            assert [s for s, _ in got] == [s for s, _ in want]
            assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-6)

    # Tune's own readers: one row per trial, its config and last metrics
    from ray import tune

    from dipddpm.sweep.trainable import make_trainable

    df = tune.ExperimentAnalysis(str(sweep / "tune")).dataframe()
    assert len(df) == len(trials) and set(df["trial_id"]) == set(trials.index)
    df = df.set_index("trial_id")
    assert (df["iter"] == trials.loc[df.index, "iters_done"]).all()
    assert (df["status"] == trials.loc[df.index, "status"]).all()
    assert df["psnr_best"].to_numpy() == pytest.approx(
        trials.loc[df.index, "objective"].to_numpy())
    assert (df["config/lr"] == trials.loc[df.index, "config.lr"]).all()
    from dipddpm.sweep.spec import load_spec

    grid = tune.Tuner.restore(str(sweep / "tune"),
                              make_trainable(load_spec(spec), str(sweep))).get_results()
    gdf = grid.get_dataframe().set_index("trial_id")
    assert set(gdf.index) == set(trials.index)
    assert gdf["psnr_best"].to_numpy() == pytest.approx(
        trials.loc[gdf.index, "objective"].to_numpy())


def wandb_records(run_file: Path) -> list:
    """The records of a W&B offline run file (`run-<id>.wandb`: a 7-byte header, then
    LevelDB-log records in 32 KiB blocks, each a protobuf `Record`)."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, buf, out = run_file.read_bytes(), 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header: padding
            pos += 32768 - pos % 32768
            continue
        _crc, n, kind = struct.unpack("<IHB", data[pos:pos + 7])
        buf, pos = buf + data[pos + 7:pos + 7 + n], pos + 7 + n
        if kind in (1, 4):  # a whole record, or a record's last fragment
            r = pb.Record()
            r.ParseFromString(buf)
            out.append(r)
            buf = b""
    return out


def test_wandb_offline_writes_a_run_per_trial_with_its_config(ray_local, tmp_path,
                                                              monkeypatch):
    import json

    import pandas as pd

    from dipddpm.sweep.runner import run_sweep

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: no key, so offline
    spec = write_spec(tmp_path, name="wb", fixed={**TINY, "iters": 20, "stages": 2},
                      search={"lr": {"grid": [0.01, 0.02]}}, searcher={"type": "grid"},
                      scheduler={"type": "none"}, num_samples=1, tracking=["wandb"])
    try:
        out = run_sweep(spec, console=quiet())
    finally:
        import wandb

        wandb.teardown()
    sweep = Path(out.path)
    trials = pd.read_parquet(sweep / "trials").set_index("trial_id")
    metrics = pd.read_parquet(sweep / "metrics")
    folders = sorted((sweep / "wandb").glob("offline-run-*"))
    assert len(folders) == len(trials) == 2
    for folder in folders:
        records = wandb_records(next(folder.glob("run-*.wandb")))
        run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
        tid = run.display_name
        assert run.run_group == "wb" and run.job_type == "trial" and tid in trials.index
        config = {i.key: json.loads(i.value_json) for i in run.config.update}
        assert config["lr"] == trials.loc[tid, "config.lr"] and config["stages"] == 2
        assert config["seed"] == 0 and config["iters"] == 20
        logged = [{i.nested_key[0]: json.loads(i.value_json) for i in r.history.item}
                  for r in records if r.WhichOneof("record_type") == "history"]
        got = [(h["_step"], h["psnr_best"]) for h in logged]
        assert got == table_history(metrics, tid, "psnr_best")


def mlflow_server(tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """`mlflow server` on a free loopback port, its store SQLite in tmp_path."""
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    log = open(tmp_path / "mlflow-server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
         "--backend-store-uri", f"sqlite:///{tmp_path / 'server.db'}",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(uri + "/health", timeout=2)
            return proc, uri
        except OSError:
            assert proc.poll() is None, (tmp_path / "mlflow-server.log").read_text()[-2000:]
            time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    raise AssertionError("mlflow server did not start")


def test_a_tracking_server_killed_mid_sweep_leaves_the_sweep_completed(ray_local, tmp_path):
    import pandas as pd
    from mlflow.tracking import MlflowClient

    proc, uri = mlflow_server(tmp_path)
    spec = write_spec(tmp_path, name="gone", fixed={**TINY, "iters": 150, "stages": 2},
                      search={"lr": {"grid": [0.01, 0.012, 0.014]}},
                      searcher={"type": "grid", "max_concurrent": 1},
                      scheduler={"type": "none"}, num_samples=1, tracking=["mlflow"])
    address = ray_local.get_runtime_context().gcs_address
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(REPO)}
    driver = subprocess.Popen(
        [sys.executable, "-c", "from dipddpm.cli import main; main()", "sweep", "run",
         str(spec), "--address", address], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env)
    try:
        client = MlflowClient(tracking_uri=uri)
        deadline = time.time() + 180
        while time.time() < deadline:  # the first trial is being recorded: kill the server
            exp = client.get_experiment_by_name("gone")
            runs = client.search_runs([exp.experiment_id]) if exp else []
            if any(r.data.metrics for r in runs):
                break
            time.sleep(0.2)
        else:
            raise AssertionError("no metric reached the server")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    out, err = driver.communicate(timeout=300)
    assert driver.returncode == 0, err[-3000:]
    trials = pd.read_parquet(tmp_path / "results" / "gone" / "trials")
    assert len(trials) == 3 and (trials["status"] == "COMPLETED").all()
    warnings = [ln for ln in err.splitlines() if ln.startswith("warning: tracking mlflow")]
    assert len(warnings) == 1, err[-3000:]
    assert "the sweep goes on without it" in warnings[0]


def test_a_resumed_sweep_reattaches_to_its_mlflow_runs(ray_local, tmp_path, monkeypatch):
    """SIGKILL the driver at a checkpoint, resume: one parent, one child per trial, each
    report logged once (the default store: SQLite in the sweep folder)."""
    import pandas as pd
    from test_sweep_resume import SPEC, files_settle, kill_driver_at_a_checkpoint

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec_path = tmp_path / "killme.yaml"
    spec_path.write_text(yaml.safe_dump({**SPEC, "storage": str(tmp_path / "results"),
                                         "tracking": ["mlflow"]}, sort_keys=False))
    sweep = tmp_path / "results" / "killme"
    address = ray_local.get_runtime_context().gcs_address
    kill_driver_at_a_checkpoint(spec_path, sweep, address, tmp_path / "driver.log")
    files_settle(sweep / "tune")
    uri = f"sqlite:///{sweep / 'mlflow.db'}"
    _, parent, before = mlflow_runs(uri, "killme")
    assert before, "the first driver recorded no trial"
    r = subprocess.run(
        [sys.executable, "-c", "from dipddpm.cli import main; main()", "sweep", "resume",
         str(sweep), "--address", address], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr[-2000:]
    assert "warning: tracking" not in r.stderr
    trials = pd.read_parquet(sweep / "trials")
    metrics = pd.read_parquet(sweep / "metrics")
    client, parent_after, children = mlflow_runs(uri, "killme")
    assert parent_after.info.run_id == parent.info.run_id  # the same parent run
    assert parent_after.info.status == "FINISHED"
    assert set(children) == set(trials["trial_id"])  # no duplicate, none lost
    for tid in set(before) & set(children):
        assert children[tid].info.run_id == before[tid].info.run_id
    for tid, run in children.items():
        assert history(client, run.info.run_id, "psnr_best") == \
            table_history(metrics, tid, "psnr_best")  # each report once
        assert run.data.tags["dipddpm.status"] == "COMPLETED"


def test_a_study_trial_child_holds_its_pairs_table(ray_local, tmp_path, monkeypatch):
    import io

    import mlflow
    import pandas as pd

    from dipddpm.sweep.runner import run_sweep

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = write_spec(
        tmp_path, name="study", fixed={**TINY, "iters": 10, "stages": 2},
        problem={"images": ["skimage:astronaut", "skimage:camera"], "replicates": 2,
                 "size": 32, "sigma": 25, "seed": 0},
        search={"lr": {"grid": [0.01, 0.02]}}, searcher={"type": "grid"},
        faults=[{"when": {"lr": 0.02}, "at_iter": 5, "kind": "nan"}],
        scheduler={"type": "none"}, num_samples=1, tracking=["mlflow"])
    out = run_sweep(spec, console=quiet())
    sweep = Path(out.path)
    pairs = pd.read_parquet(sweep / "pairs")
    trials = pd.read_parquet(sweep / "trials").set_index("config.lr")
    client, _, children = mlflow_runs(f"sqlite:///{sweep / 'mlflow.db'}", "study")
    assert set(children) == set(trials["trial_id"])
    failed = children[trials.loc[0.02, "trial_id"]]  # FAILED, with the error, as in Parquet
    assert failed.info.status == "FAILED" and failed.data.tags["dipddpm.status"] == "FAILED"
    assert failed.data.tags["dipddpm.error"] == trials.loc[0.02, "error"]
    tid = trials.loc[0.01, "trial_id"]
    run = children[tid]
    text = Path(mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="pairs.csv", dst_path=str(tmp_path),
        tracking_uri=f"sqlite:///{sweep / 'mlflow.db'}")).read_text()
    logged = pd.read_csv(io.StringIO(text))
    assert len(logged) == len(pairs) == 4  # 2 images x 2 replicates
    mine = pairs[pairs.trial_id == tid].sort_values(["image", "replicate"])
    logged = logged.sort_values(["image", "replicate"])
    assert list(logged["image"]) == list(mine["image"])
    assert logged["psnr_gt_best"].to_numpy() == pytest.approx(mine["psnr_gt_best"].to_numpy())
