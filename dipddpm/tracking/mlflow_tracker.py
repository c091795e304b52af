"""`tracking: [mlflow]`: the sweep as one MLflow parent run, each trial a child run.

- parent: tags `dipddpm.sweep` (the sweep directory), the method, metric and mode, the git sha
  (also as `mlflow.source.git.commit`); artifacts `spec.resolved.yaml` (the spec as run, its
  search space included) and, when every trial has finished, `verdict.json` (counts per
  status, the best trial and its parameters; also as tags);
- child per trial (`mlflow.parentRunId`): its config as params (as its trials row holds it),
  every reported metric as a metric history (step = iteration), the output image at each
  checkpoint (`log_image`, key `output`), tags `dipddpm.status` (COMPLETED / PRUNED / FAILED),
  `dipddpm.error`, `dipddpm.iters_done`; a study's pairs table as `pairs.csv`. Run status:
  FINISHED, KILLED (pruned) or FAILED.

Where: `tracking_uri` in the spec, else `MLFLOW_TRACKING_URI`, else an SQLite store in the sweep
directory (`sqlite:///<sweep>/mlflow.db`, artifacts beside it in `mlartifacts/`; open it with
`mlflow ui --backend-store-uri sqlite:///<sweep>/mlflow.db`). A sweep on object storage needs
a tracking server. A driver that resumes the sweep finds the parent run by its
`dipddpm.sweep` tag and each trial's child by `dipddpm.trial_id`: it adds no duplicate, and
reports it replays from a checkpoint are not logged twice.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dipddpm.errors import DipddpmError, first_line
from dipddpm.tracking.base import TRACKING, SweepContext, Tracker, TrialEnd

ENV = "MLFLOW_TRACKING_URI"
DB_FILE = "mlflow.db"
RUN_STATUS = {"COMPLETED": "FINISHED", "PRUNED": "KILLED", "FAILED": "FAILED"}
BATCH = 1000  # MLflow's most metrics per log_batch (params: 100)


@dataclass(frozen=True)
class MlflowOptions:
    # the tracking server or store; null: MLFLOW_TRACKING_URI, else sqlite in the sweep folder
    tracking_uri: str | None = None
    experiment: str | None = None  # the MLflow experiment; null: the sweep's name
    images: bool = True  # log the output image at every checkpoint (and the final ones)
    timeout_s: int = 5  # seconds: the start-up probe and each HTTP request to a server
    retries: int = 1  # retries of a failed HTTP request (then the backend is dropped)


def tracking_uri(options: MlflowOptions, ctx: SweepContext) -> str:
    """The spec's URI, else $MLFLOW_TRACKING_URI, else SQLite in the (local) sweep folder."""
    uri = options.tracking_uri or os.environ.get(ENV)
    if uri:
        return uri
    if not ctx.local:
        raise DipddpmError(f"tracking: mlflow for a sweep on {ctx.sweep_uri} needs a tracking "
                           f"server: set {ENV} or tracking: {{mlflow: {{tracking_uri: "
                           f"http://HOST:5000}}}}")
    return f"sqlite:///{os.path.abspath(os.path.join(ctx.sweep_uri, DB_FILE))}"


def _source(options: MlflowOptions) -> str:
    return "tracking.mlflow.tracking_uri" if options.tracking_uri else ENV


def preflight(options: MlflowOptions, ctx: SweepContext) -> None:
    """A server answers within timeout_s (any HTTP status will do); an SQLite store's folder
    exists. One line naming the URI and where it came from otherwise."""
    import urllib.error
    import urllib.request

    uri = tracking_uri(options, ctx)
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=options.timeout_s)
        except urllib.error.HTTPError:
            return  # it answered
        except (OSError, ValueError) as e:
            raise DipddpmError(
                f"tracking: the MLflow server {uri} ({_source(options)}) does not answer "
                f"within {options.timeout_s} s ({first_line(e)}); start it, fix the URI, or "
                f"drop mlflow from tracking:") from None
    elif uri.startswith("sqlite:///") and (options.tracking_uri or os.environ.get(ENV)):
        folder = os.path.dirname(uri.removeprefix("sqlite:///")) or "."
        if not os.path.isdir(folder):
            raise DipddpmError(f"tracking: the MLflow store {uri} ({_source(options)}) is in "
                               f"{folder}, which does not exist; create it or fix the URI")


def _http_settings(options: MlflowOptions) -> None:
    """Bounded requests, so a server that went away costs seconds, not minutes (the user's
    own MLFLOW_HTTP_REQUEST_* settings win)."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(options.timeout_s))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(options.retries))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")


def _quote(v: str) -> str:
    return v.replace("\\", "\\\\").replace("'", "\\'")


class MlflowSink:
    def __init__(self, options: MlflowOptions, ctx: SweepContext) -> None:
        import logging

        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # no store-creation notes
        _http_settings(options)
        self.options, self.ctx = options, ctx
        self.uri = tracking_uri(options, ctx)
        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment_id = self._experiment(options.experiment or ctx.spec.name)
        self.parent = self._parent()
        self.children = self._children()  # trial id -> run id

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        where = None
        if self.uri.startswith("sqlite:///"):  # artifacts beside the store, not in the cwd
            where = "file://" + os.path.join(
                os.path.dirname(os.path.abspath(self.uri.removeprefix("sqlite:///"))),
                "mlartifacts")
        return self.client.create_experiment(name, artifact_location=where)

    def _search(self, query: str) -> list:
        runs, token = [], None
        while True:
            page = self.client.search_runs([self.experiment_id], query, max_results=1000,
                                           page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs

    def _parent(self) -> str:
        """The sweep's run: the one a previous driver made, else a new one."""
        found = self._search(f"tags.`dipddpm.sweep` = '{_quote(self.ctx.sweep_uri)}' and "
                             f"tags.`dipddpm.role` = 'sweep'")
        if found:
            run_id = found[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        return self._new_parent()

    def _new_parent(self) -> str:
        import yaml

        spec = self.ctx.spec
        tags = {"dipddpm.sweep": self.ctx.sweep_uri, "dipddpm.role": "sweep",
                "dipddpm.method": spec.method, "dipddpm.metric": spec.metric,
                "dipddpm.mode": spec.mode, "dipddpm.git_sha": self.ctx.git_sha,
                "mlflow.source.git.commit": self.ctx.git_sha,
                "dipddpm.search": ", ".join(d.key for d in spec.search)}
        run = self.client.create_run(self.experiment_id, run_name=spec.name, tags=tags)
        text = yaml.safe_dump(spec.resolved_dict(), sort_keys=False)
        self.client.log_text(run.info.run_id, text, "spec.resolved.yaml")
        return run.info.run_id

    def _children(self) -> dict[str, str]:
        runs = self._search(f"tags.`mlflow.parentRunId` = '{self.parent}'")
        return {r.data.tags["dipddpm.trial_id"]: r.info.run_id for r in runs
                if "dipddpm.trial_id" in r.data.tags}

    # --- events ----------------------------------------------------------------------------
    def trial_started(self, trial_id: str, params: Mapping[str, Any]) -> int:
        run_id = self.children.get(trial_id)
        if run_id is not None:  # a resumed sweep: the same child, what it holds kept
            self.client.update_run(run_id, status="RUNNING")
            history = self.client.get_metric_history(run_id, self.ctx.spec.metric)
            return max((m.step for m in history), default=0)
        from mlflow.entities import Param

        tags = {"mlflow.parentRunId": self.parent, "dipddpm.trial_id": trial_id,
                "dipddpm.sweep": self.ctx.sweep_uri, "dipddpm.status": "RUNNING"}
        run = self.client.create_run(self.experiment_id, run_name=trial_id, tags=tags)
        self.children[trial_id] = run_id = run.info.run_id
        items = [Param(k, str(v)) for k, v in params.items() if v is not None]
        for i in range(0, len(items), 100):
            self.client.log_batch(run_id, params=items[i:i + 100])
        return 0

    def reported(self, trial_id: str, reports: list[tuple[int, dict[str, float]]]) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, it) for it, m in reports for k, v in m.items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.children[trial_id], metrics=items[i:i + BATCH])

    def checkpointed(self, trial_id: str, it: int, images: Mapping[str, bytes]) -> None:
        if self.options.images and "output" in images:
            self.client.log_image(self.children[trial_id], _pil(images["output"]),
                                  key="output", step=it)

    def trial_ended(self, end: TrialEnd) -> None:
        run_id = self.children[end.trial_id]
        tags = {"dipddpm.status": end.status, "dipddpm.iters_done": str(end.iters_done)}
        if end.error:
            tags["dipddpm.error"] = end.error[:5000]
        for k, v in tags.items():
            self.client.set_tag(run_id, k, v)
        if self.options.images:
            for name, png in end.images.items():
                self.client.log_image(run_id, _pil(png), artifact_file=f"{name}.png")
        if end.pairs:
            import pandas as pd

            self.client.log_text(run_id, pd.DataFrame(list(end.pairs)).to_csv(index=False),
                                 "pairs.csv")
        self.client.set_terminated(run_id, status=RUN_STATUS.get(end.status, "FINISHED"))

    def close(self, verdict: Mapping[str, Any] | None, known: set[str]) -> None:
        if verdict is None:
            return  # trials left: `sweep resume` continues this parent
        for tid in set(self.children) - known:  # run again under another id: not a trial
            self.client.delete_run(self.children.pop(tid))
        self.client.log_dict(self.parent, dict(verdict), "verdict.json")
        best = verdict.get("best") or {}
        if best:
            self.client.set_tag(self.parent, "dipddpm.best_trial_id", best["trial_id"])
            self.client.set_tag(self.parent, "dipddpm.best_value", str(best["value"]))
        self.client.set_terminated(self.parent, status="FINISHED")


def _pil(png: bytes):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(png)).convert("RGB")


TRACKING.register("mlflow")(Tracker(
    options=MlflowOptions, open=MlflowSink, requires=("mlflow",), preflight=preflight,
    wants_images=True,
    help="MLflow: a parent run per sweep, a child run per trial (params, metric histories, "
         "status tags, output images)"))
