"""The registered model: one pickle-free pyfunc, @champion moved only on improvement, `mtl predict`,
`mtl explain`, `mlflow models serve`, SHAP additivity. One small real training run is shared."""

import json
import os
import pickle
import socket
import subprocess
import sys
import time
import urllib.request

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from mtl.commands import train
from mtl.errors import DataError
from mtl.registry import log_and_register, promote_if_better

from conftest import compose_train, hardness_table, pitting_table, tiny_overrides_for

NAME = "sparse-mtl-test"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A tiny ensemble trained, explained and registered as version 1 (@champion) of NAME."""
    tmp = tmp_path_factory.mktemp("registry")
    paths = {"hardness": tmp / "hardness.csv", "pitting": tmp / "pitting.csv"}
    hardness_table().to_csv(paths["hardness"], index=False)
    pitting_table().to_csv(paths["pitting"], index=False)
    overrides = [*tiny_overrides_for(paths, tmp), "trainer.max_epochs=40", f"registry.name={NAME}", "explain.rows=20",
                 "explain.background=10", "explain.enabled=true", "registry.enabled=true",
                 "tasks.hardness.learning_rate=0.01", "tasks.pitting.learning_rate=0.01"]
    train.run(compose_train(overrides, raw=True))
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    return {"uri": uri, "paths": paths, "tmp": tmp}


def raw(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def champion(store):
    mlflow.set_tracking_uri(store["uri"])
    return mlflow.pyfunc.load_model(f"models:/{NAME}@champion")


def mtl(store, *args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "mtl", *args, "--tracking-uri", store["uri"]], capture_output=True,
                          text=True, env=env, timeout=300)


def test_the_model_is_pickle_free_and_loads_with_pickle_disabled(store, monkeypatch):
    client = MlflowClient(store["uri"])
    version = client.get_model_version_by_alias(NAME, "champion")
    local = mlflow.artifacts.download_artifacts(version.source)
    files = [os.path.join(d, f) for d, _, fs in os.walk(local) for f in fs]
    assert any(f.endswith("network.keras") for f in files) and any(f.endswith("preprocessing.json") for f in files)
    assert not [f for f in files if f.endswith((".pkl", ".pickle", ".cloudpickle"))]

    def refuse(*args, **kwargs):
        raise AssertionError("something was unpickled")

    import cloudpickle

    for module in (pickle, cloudpickle):
        monkeypatch.setattr(module, "load", refuse)
        monkeypatch.setattr(module, "loads", refuse)
    predictions = mlflow.pyfunc.load_model(f"models:/{NAME}@champion").predict(raw(store["paths"]["pitting"]))
    assert {"hardness_mean", "hardness_std", "pitting_mean", "pitting_std_ensemble", "pitting_std_mc"} <= set(predictions)


def test_training_logged_shap_for_the_ensemble_and_each_member(store):
    client = MlflowClient(store["uri"])
    parent = client.get_run(client.get_model_version_by_alias(NAME, "champion").run_id)
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id, "shap")}
    assert {"shap/pitting_beeswarm.png", "shap/hardness_bar.png", "shap/pitting_top_features.json"} <= parent_files
    members = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    assert len(members) == 3
    for member in members:
        assert "shap/pitting_bar.png" in {a.path for a in client.list_artifacts(member.info.run_id, "shap")}


def test_mtl_predict_on_the_raw_tables_equals_the_champion(store, tmp_path):
    out = mtl(store, "predict", "--input", str(store["paths"]["pitting"]), "--output", str(tmp_path / "p.csv"),
              "--model", f"models:/{NAME}@champion")
    assert out.returncode == 0, out.stderr
    written = pd.read_csv(tmp_path / "p.csv")
    expected = champion(store).predict(raw(store["paths"]["pitting"]))
    assert len(written) == len(raw(store["paths"]["pitting"]))
    np.testing.assert_allclose(written.to_numpy(), expected[written.columns].to_numpy(), rtol=1e-9)
    assert (written["pitting_std"] > 0).all() and not written.isna().any().any()
    # the hardness table has no pitting conditions: predict its own task
    out = mtl(store, "predict", "--input", str(store["paths"]["hardness"]), "--output", str(tmp_path / "h.csv"),
              "--model", f"models:/{NAME}@champion", "--tasks", "hardness")
    assert out.returncode == 0, out.stderr
    assert list(pd.read_csv(tmp_path / "h.csv").columns) == ["hardness_mean", "hardness_std", "hardness_std_ensemble", "hardness_std_mc"]


@pytest.mark.parametrize("edit, message", [
    (lambda f: f.assign(Cr=["abc"] + list(f.Cr[1:])), "cannot read 'abc'"),
    (lambda f: f.assign(Pu="1.0"), "never trained on"),
    (lambda f: f.drop(columns=["Test Temp (C)"]), "condition column"),
    (lambda f: f.iloc[:0], "no rows"),
], ids=["wrong type", "unknown element", "missing condition column", "empty"])
def test_bad_input_is_a_clear_error_naming_rows_or_columns(store, edit, message):
    ensemble = champion(store).unwrap_python_model().ensemble
    with pytest.raises(DataError, match=message) as info:
        ensemble.predict_table(edit(raw(store["paths"]["pitting"])))
    if message == "cannot read 'abc'":
        assert "row 1 (line 2)" in str(info.value)


def test_predict_cli_reports_an_empty_file_and_a_missing_model(store, tmp_path):
    (tmp_path / "empty.csv").write_text("")
    out = mtl(store, "predict", "--input", str(tmp_path / "empty.csv"), "--output", str(tmp_path / "o.csv"))
    assert out.returncode == 2 and "is empty" in out.stderr and not (tmp_path / "o.csv").exists()
    out = mtl(store, "predict", "--input", str(store["paths"]["pitting"]), "--output", str(tmp_path / "o.csv"),
              "--model", "models:/no-such-model@champion")
    assert out.returncode == 2 and "cannot load model" in out.stderr


def test_champion_moves_only_on_improvement_and_promote_moves_it_by_hand(store):
    client = MlflowClient(store["uri"])
    first = client.get_model_version_by_alias(NAME, "champion")
    best = float(first.tags["heldout_r2_mean"])
    ensemble = champion(store).unwrap_python_model().ensemble
    sources = {t: str(p) for t, p in store["paths"].items()}
    with mlflow.start_run(experiment_id=client.get_run(first.run_id).info.experiment_id):
        worse, promoted = log_and_register(ensemble, sources, NAME, {"r2_mean": best - 0.1, "r2_pitting": 0.0})
    assert not promoted and client.get_model_version_by_alias(NAME, "champion").version == first.version
    with mlflow.start_run(experiment_id=client.get_run(first.run_id).info.experiment_id):
        better, promoted = log_and_register(ensemble, sources, NAME, {"r2_mean": best + 0.1, "r2_pitting": 0.9})
    assert promoted and client.get_model_version_by_alias(NAME, "champion").version == better.version
    assert client.get_model_version(NAME, better.version).tags["heldout_r2_pitting"] == "0.900000"
    assert client.get_model_version(NAME, better.version).tags["tasks"] == "hardness,pitting"
    # a model of other tasks never takes over automatically, however well it scores
    assert not promote_if_better(client, NAME, worse.version, 0.99, "hardness")
    assert client.get_model_version_by_alias(NAME, "champion").version == better.version
    out = mtl(store, "promote", str(first.version), "--name", NAME)
    assert out.returncode == 0, out.stderr
    assert client.get_model_version_by_alias(NAME, "champion").version == first.version
    out = mtl(store, "promote", "99", "--name", NAME)
    assert out.returncode == 2 and "no version 99" in out.stderr


def test_shap_values_add_up_to_the_prediction(store):
    """Permutation SHAP is exactly additive; tolerance 1e-6 of the target's spread (float32 network)."""
    ensemble = champion(store).unwrap_python_model().ensemble
    frame = raw(store["paths"]["pitting"]).head(12)
    features, inputs = ensemble.model_inputs(frame, ensemble.tasks, "pitting.csv")
    explanation = ensemble.explain(features, inputs)
    members, _ = ensemble.model.member_predictions(features, inputs, mc_samples=0)  # (K, n, T)
    for t, task in enumerate(ensemble.tasks):
        values, base = explanation.task_values(task)
        spread = np.std(members[:, :, t])
        np.testing.assert_allclose(base + values.sum(axis=1), members[:, :, t].mean(axis=0), atol=1e-6 * spread + 1e-4)
        own = explanation.own_columns(task)
        assert np.all(values[:, ~own] == 0)  # another task's conditions cannot move this task
    with_shap = ensemble.predict_table(frame, mc_samples=0, explain=True)
    shap_columns = [c for c in with_shap if c.startswith("pitting_shap_") and c != "pitting_shap_base"]
    np.testing.assert_allclose(with_shap["pitting_shap_base"] + with_shap[shap_columns].sum(axis=1),
                               with_shap["pitting_mean"], atol=1e-3)


def test_mtl_explain_logs_a_run(store):
    out = mtl(store, "explain", "--input", str(store["paths"]["pitting"]), "--model", f"models:/{NAME}@champion")
    assert out.returncode == 0, out.stderr
    assert "pitting:" in out.stdout
    client = MlflowClient(store["uri"])
    run = client.search_runs([client.get_experiment_by_name("sparse-mtl-explain").experiment_id])[0]
    assert "shap/pitting_beeswarm.png" in {a.path for a in client.list_artifacts(run.info.run_id, "shap")}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_mlflow_models_serve_answers_with_the_same_numbers(store):
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": store["uri"], "TF_CPP_MIN_LOG_LEVEL": "3",
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}  # the server runs uvicorn
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@champion",
                               "--env-manager", "local", "--host", "127.0.0.1", "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2)
                break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()[-2000:]
                time.sleep(1)
        frame = raw(store["paths"]["pitting"]).head(20)
        body = json.dumps({"dataframe_split": frame.to_dict(orient="split")}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        served = pd.DataFrame(json.loads(urllib.request.urlopen(request, timeout=60).read())["predictions"])
    finally:
        server.terminate()
        server.wait(timeout=30)
    expected = champion(store).predict(frame)
    np.testing.assert_allclose(served[expected.columns].to_numpy(), expected.to_numpy(), rtol=1e-6)
