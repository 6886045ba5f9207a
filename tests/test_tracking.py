import mlflow
import pytest
from mlflow import MlflowClient

from mtl.commands.train import run
from mtl.errors import ConfigError
from mtl.tracking import MlflowTracker, flatten, tracking_uri

from conftest import compose_train


def runs_of(cfg):
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.tracking.experiment)
    return client, client.search_runs([experiment.experiment_id]) if experiment else []


def test_train_logs_a_parent_and_one_child_per_member(tiny_cfg):
    objective = run(tiny_cfg)
    client, runs = runs_of(tiny_cfg)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id]
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert parent.info.status == "FINISHED" and all(c.info.status == "FINISHED" for c in children)
    assert parent.data.metrics["r2_mean"] == pytest.approx(objective)
    assert {"r2_hardness", "rmse_pitting", "mae_hardness"} <= set(parent.data.metrics)
    for child in children:
        assert {"r2_hardness", "r2_pitting", "rmse_hardness", "mae_pitting", "best_epoch"} <= set(child.data.metrics)
        assert child.data.params["model.trunk.units"] == "16" and "fold" in child.data.params
    curve = client.get_metric_history(children[0].info.run_id, "train_loss_pitting")
    assert len(curve) == int(children[0].data.metrics["epochs_run"]) and curve[0].step == 0
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)} | \
                {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"config.yaml", "plots/parity_hardness.png", "plots/parity_pitting.png"} <= artifacts
    inputs = [d.dataset.name for d in client.get_run(parent.info.run_id).inputs.dataset_inputs]
    assert sorted(inputs) == ["hardness:hardness.csv", "pitting:pitting.csv"]


def test_a_crash_inside_training_ends_the_runs_failed(tiny_overrides):
    cfg = compose_train([*tiny_overrides, "trainer.loss=cubic"])
    with pytest.raises(ConfigError, match="trainer.loss is 'cubic'"):
        run(cfg)
    _, runs = runs_of(cfg)
    assert runs and all(r.info.status == "FAILED" for r in runs)


def test_default_store_is_sqlite_under_mlruns(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    # SQLite stores get a busy timeout: parallel writers wait for the lock instead of failing
    assert tracking_uri(None) == f"sqlite:///{tmp_path}/mlruns/mlflow.db?timeout=60"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(None) == "http://127.0.0.1:5000"
    assert tracking_uri("sqlite:///x.db") == "sqlite:///x.db?timeout=60"
    assert tracking_uri("sqlite:///x.db?timeout=5") == "sqlite:///x.db?timeout=5"


def test_artifacts_of_the_default_store_live_under_mlruns(tiny_overrides, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    cfg = compose_train([o for o in tiny_overrides if not o.startswith("tracking.uri")])
    tracker = MlflowTracker(cfg)
    location = MlflowClient(tracker.uri).get_experiment(tracker.experiment_id).artifact_location
    assert location == (tmp_path / "mlruns" / "artifacts").as_uri()
    mlflow.set_tracking_uri(None)


def test_params_are_the_flattened_config(tiny_cfg):
    params = flatten(tiny_cfg)
    assert params["trainer.max_epochs"] == "15" and params["tasks.pitting.target.column"] == "Epit, mV (SCE)"
