"""MLflow: the only module that talks to it. One experiment per study, a parent run per command,
a nested child run per ensemble member (or tuning trial).

Default store: ``sqlite:///<cwd>/mlruns/mlflow.db`` with artefacts under ``<cwd>/mlruns/artifacts``;
``tracking.uri`` or ``$MLFLOW_TRACKING_URI`` points it elsewhere (a tracking server works unchanged).
"""

from __future__ import annotations

import logging
import os
import re
import time
from contextlib import contextmanager
from pathlib import Path

from omegaconf import OmegaConf

log = logging.getLogger(__name__)


SQLITE_BUSY_TIMEOUT_S = 60  # a writer waits this long for a locked SQLite store instead of failing


def tracking_uri(configured: str | None) -> str:
    """The configured URI, else $MLFLOW_TRACKING_URI, else SQLite under ./mlruns. A SQLite URI
    gets a busy timeout: parallel jobs then queue for the write lock instead of failing."""
    uri = configured or os.environ.get("MLFLOW_TRACKING_URI")
    if not uri:
        store = Path.cwd() / "mlruns"
        store.mkdir(exist_ok=True)
        uri = f"sqlite:///{store / 'mlflow.db'}"
    if uri.startswith("sqlite:///") and "?" not in uri:
        uri += f"?timeout={SQLITE_BUSY_TIMEOUT_S}"
    return uri


def prepare_store(cfg) -> None:
    """Create the store's schema and the study's experiment now, from one process: parallel jobs
    that all find an empty SQLite file would each try to create the schema, and fail."""
    MlflowTracker(cfg)


def flatten(cfg) -> dict[str, str]:
    """Nested config -> ``{"model.trunk.units": "64", ...}`` for MLflow params."""
    out = {}

    def walk(node, prefix):
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[re.sub(r"[^\w\-. :/]", "_", prefix[:-1])] = str(node)[:6000]  # MLflow's allowed key characters

    walk(OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg, "")
    return out


def curve_points(history) -> list[tuple[str, float, int]]:
    """A member's per-epoch losses as (metric, value, epoch) points."""
    points = [(f"train_loss_{t}", v, epoch) for epoch, losses in enumerate(history.train_loss) for t, v in losses.items()]
    return points + [(f"val_loss_{t}", v, epoch) for epoch, losses in history.val_loss.items() for t, v in losses.items()]


class Tracker:
    """Tracks nothing: for library use and tests that don't need MLflow."""

    @contextmanager
    def member_run(self, name: str, params: dict):
        yield

    def log_history(self, history) -> None:
        pass

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        pass



class MlflowTracker(Tracker):
    def __init__(self, cfg):
        """``cfg`` is the whole resolved config: its ``tracking`` section says where."""
        import mlflow

        self.mlflow = mlflow
        self.cfg = cfg
        self.uri = tracking_uri(cfg.tracking.uri)
        mlflow.set_tracking_uri(self.uri)
        self.experiment_id = self._experiment(cfg.tracking.experiment)
        self.params = flatten(cfg)

    def _experiment(self, name: str) -> str:
        client = self.mlflow.MlflowClient()
        existing = client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        location = None
        database = self.uri.removeprefix("sqlite:///").split("?")[0]
        if self.uri.startswith("sqlite:///") and database.endswith("mlruns/mlflow.db"):
            location = (Path(database).parent / "artifacts").as_uri()
        return client.create_experiment(name, artifact_location=location)

    @contextmanager
    def parent_run(self, name: str, tags: dict | None = None, resume_id: str | None = None):
        """The run of one command; ends FAILED on an error, KILLED on Ctrl-C. ``resume_id``
        reopens an earlier run (its params stay as first logged)."""
        with self.mlflow.start_run(run_id=resume_id, experiment_id=self.experiment_id,
                                   run_name=None if resume_id else name, tags=tags) as run:
            if resume_id is None:
                self.mlflow.log_params(self.params)
                self.mlflow.log_text(OmegaConf.to_yaml(self.cfg), "config.yaml")
            log.info("tracking: %s run %s in experiment '%s' at %s", "resumed" if resume_id else "started",
                     run.info.run_id, self.cfg.tracking.experiment, self.uri)
            try:
                yield run
            except KeyboardInterrupt:
                self.mlflow.end_run("KILLED")  # interrupted, not broken: `mtl tune` resumes such a run
                raise

    def latest_run_tagged(self, tag: str, value: str):
        """The most recent run of this experiment with ``tag`` = ``value``, or None."""
        runs = self.mlflow.search_runs([self.experiment_id], filter_string=f"tags.`{tag}` = '{value}'",
                                       order_by=["attributes.start_time DESC"], max_results=1, output_format="list")
        return runs[0] if runs else None

    def child_runs(self, parent_id: str) -> list:
        return self.mlflow.search_runs([self.experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
                                       output_format="list", max_results=50000)

    def log_finished_child(self, name: str, params: dict, metrics: dict, tags: dict, start: float, end: float,
                           failed: bool = False) -> str:
        """A child run of the active run for work done elsewhere (a worker process), logged whole
        once it is over: a crash before this point leaves no half-logged run behind."""
        from mlflow.entities import Metric, Param

        client = self.mlflow.MlflowClient()
        parent = self.mlflow.active_run().info.run_id
        run = client.create_run(self.experiment_id, start_time=int(start * 1000), run_name=name,
                                tags={"mlflow.parentRunId": parent, **tags})
        now = int(end * 1000)
        client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                         params=[Param(k, str(v)) for k, v in params.items()])
        client.set_terminated(run.info.run_id, status="FAILED" if failed else "FINISHED", end_time=now)
        return run.info.run_id

    @contextmanager
    def member_run(self, name: str, params: dict):
        with self.mlflow.start_run(run_name=name, nested=True, experiment_id=self.experiment_id) as run:
            self.mlflow.log_params({**self.params, **params})
            yield run

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        self.mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_history(self, history) -> None:
        """Per-epoch training and validation losses of one member, as metric curves."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value, step in curve_points(history)]
        run_id = self.mlflow.active_run().info.run_id
        client = self.mlflow.MlflowClient()
        for i in range(0, len(metrics), 1000):  # the REST API takes at most 1000 metrics per batch
            client.log_batch(run_id, metrics=metrics[i:i + 1000])

    def _client_or_active(self, run_id: str | None):
        """MLflow's fluent API for the active run, or a client call on an earlier (finished) run."""
        if run_id is None:
            return self.mlflow, {}
        return self.mlflow.MlflowClient(), {"run_id": run_id}

    def log_figure(self, figure, path: str, run_id: str | None = None) -> None:
        import matplotlib.pyplot as plt

        api, where = self._client_or_active(run_id)
        api.log_figure(figure=figure, artifact_file=path, **where)
        plt.close(figure)

    def log_table(self, frame, path: str, run_id: str | None = None) -> None:
        api, where = self._client_or_active(run_id)
        api.log_table(data=frame, artifact_file=path, **where)

    def log_dict(self, data: dict, path: str, run_id: str | None = None) -> None:
        api, where = self._client_or_active(run_id)
        api.log_dict(dictionary=data, artifact_file=path, **where)

    def log_source_tables(self, tasks_cfg) -> None:
        """Each task's raw table as an MLflow dataset input (digest, schema and source path)."""
        import pandas as pd

        for name, task in tasks_cfg.items():
            frame = pd.read_csv(task.source)
            dataset = self.mlflow.data.from_pandas(frame, source=str(task.source), name=f"{name}:{Path(task.source).name}",
                                                   targets=task.target.column)
            self.mlflow.log_input(dataset, context=f"training:{name}")
