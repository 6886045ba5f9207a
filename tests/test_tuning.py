"""Tuning: the search space, real small GPyOpt studies, resume after an interruption, the sweeper."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from mlflow import MlflowClient
from omegaconf import OmegaConf

from mtl.commands import tune
from mtl.config import TuneConfig, validated
from mtl.data.dataset import load_dataset
from mtl.errors import ConfigError
from mtl.tuning.space import SearchSpace
from mtl.tuning.study import Study, StudyState, check_tuner

from conftest import compose_train

# A two-task problem whose best region is known: with 20 epochs, both tasks need a high learning
# rate (the slow corner of the box barely learns), and the trunk width matters little.
KNOWN_SPACE = {"tasks": {"*": {"learning_rate": {"type": "continuous", "low": 1e-5, "high": 1e-1, "log": True}}},
               "model": {"trunk": {"units": {"type": "integer", "low": 4, "high": 32, "log": True}}}}


def tune_cfg(tiny_overrides, *extra):
    return compose_train([*tiny_overrides, "search_space=small", "tuner.inner_folds=2", "tuner.initial_design=3",
                          *extra], config="tune", raw=True)


def space_of(node, tiny_cfg):
    return SearchSpace.from_config(OmegaConf.create(node), tiny_cfg)


def test_space_expands_tasks_and_proposes_every_integer(tiny_cfg):
    space = space_of({**KNOWN_SPACE, "trainer": {"loss": {"type": "categorical", "choices": ["mse", "huber"]}}}, tiny_cfg)
    assert space.keys == ["tasks.hardness.learning_rate", "tasks.pitting.learning_rate", "model.trunk.units", "trainer.loss"]
    units = space.params[2]
    assert sorted({units.decode(v) for v in units.domain()["domain"]}) == list(range(4, 33))
    point = {"tasks.hardness.learning_rate": 3e-3, "tasks.pitting.learning_rate": 1e-4, "model.trunk.units": 17,
             "trainer.loss": "huber"}
    assert space.decode(space.encode(point)) == pytest.approx(point)
    applied = space.apply(tiny_cfg, point)
    assert applied.tasks.pitting.learning_rate == 1e-4 and applied.model.trunk.units == 17


@pytest.mark.parametrize("node, message", [
    ({"model": {"trunk": {"units": {"type": "integer", "low": 64, "high": 16}}}}, "empty or inverted range"),
    ({"model": {"trunk": {"units": {"type": "integer", "low": 16, "high": 16}}}}, "empty or inverted range"),
    ({"model": {"trunk": {"unitz": {"type": "integer", "low": 1, "high": 4}}}}, "unknown hyperparameter 'model.trunk.unitz'.*did you mean 'model.trunk.units'"),
    ({"trainer": {"loss": {"type": "categorical", "choices": ["mse"]}}}, "at least two different choices"),
    ({"model": {"trunk": {"dropout": {"type": "continuous", "low": 0.0, "high": 0.5, "log": True}}}}, "must be positive"),
    ({"model": {"trunk": {"units": {"type": "float", "low": 1, "high": 4}}}}, "type 'float' is unknown"),
], ids=["inverted", "empty", "unknown name", "single choice", "log of zero", "unknown type"])
def test_bad_search_space_is_a_clear_error(tiny_cfg, node, message):
    with pytest.raises(ConfigError, match=message):
        space_of(node, tiny_cfg)


def test_bad_tuner_settings_fail_before_any_training(tiny_overrides, capsys):
    cfg = tune_cfg(tiny_overrides, "tuner.n_trials=2", "tuner.initial_design=5")
    with pytest.raises(ConfigError, match="below tuner.initial_design"):
        tune.run(cfg)
    cfg = tune_cfg(tiny_overrides, "++search_space.model.trunk.units.low=512")
    with pytest.raises(ConfigError, match="inverted range"):
        tune.run(cfg)
    assert not MlflowClient(validated(cfg, TuneConfig).tracking.uri).search_experiments(filter_string="name = 'test'")


def best_found(tiny_overrides, strategy: str, seed: int) -> float:
    cfg = validated(compose_train([*tiny_overrides, "trainer.max_epochs=20", "trainer.patience=20", "tuner.inner_folds=2",
                                   "tuner.n_trials=6", "tuner.initial_design=3", f"tuner.strategy={strategy}",
                                   f"tuner.seed={seed}", "search_space=small"], config="tune", raw=True), TuneConfig)
    cfg.search_space = KNOWN_SPACE
    ds = load_dataset(cfg)
    space = SearchSpace.from_config(cfg.search_space, cfg)
    check_tuner(cfg.tuner)
    state = Study(cfg, space, ds, np.arange(len(ds)), lambda trial, state: None).run(StudyState())
    assert len(state.trials) == 6
    return state.best().objective


def test_bayesian_optimisation_beats_random_search_with_the_same_budget(tiny_overrides, monkeypatch):
    """Same seeded random start (3 points), then 3 GP-EI proposals vs 3 more random points. Both
    strategies start from the same points, so those trials are trained once and reused."""
    from mtl.tuning import study

    trained, real_evaluate = {}, study.evaluate

    def evaluate_once(ds, cfg, space, index, assignment):
        key = (cfg.tuner.seed, tuple(sorted(assignment.items())))
        if key not in trained:
            trained[key] = real_evaluate(ds, cfg, space, index, assignment)
        return trained[key]

    monkeypatch.setattr(study, "evaluate", evaluate_once)
    seeds = [0, 1, 2]
    bayesian = [best_found(tiny_overrides, "bayesian", s) for s in seeds]
    random = [best_found(tiny_overrides, "random", s) for s in seeds]
    print(f"best inner-CV R² per seed: bayesian {np.round(bayesian, 3)}, random {np.round(random, 3)}")
    assert np.mean(bayesian) > np.mean(random)
    assert sum(b >= r for b, r in zip(bayesian, random)) >= 2


def test_a_batch_runs_in_worker_processes_with_the_same_results(tiny_overrides):
    """q=2 proposals per round (local penalisation after the design), evaluated by 2 worker processes."""
    def run(workers):
        cfg = validated(compose_train([*tiny_overrides, "search_space=small", "tuner.inner_folds=2", "tuner.n_trials=4",
                                       "tuner.initial_design=2", "tuner.batch_size=2", f"tuner.workers={workers}"],
                                      config="tune", raw=True), TuneConfig)
        ds = load_dataset(cfg)
        space = SearchSpace.from_config(cfg.search_space, cfg)
        return Study(cfg, space, ds, np.arange(len(ds)), lambda trial, state: None).run(StudyState()).trials

    parallel, serial = run(2), run(1)
    assert [t.index for t in parallel] == [0, 1, 2, 3]
    assert [t.assignment for t in parallel] == [t.assignment for t in serial]
    assert [t.objective for t in parallel] == pytest.approx([t.objective for t in serial], abs=1e-6)
    assert parallel[2].assignment != parallel[3].assignment  # the penalised batch holds two different points


def trial_runs(cfg):
    client = MlflowClient(cfg.tracking.uri)
    experiment = client.get_experiment_by_name(cfg.study)
    runs = client.search_runs([experiment.experiment_id], "tags.`mtl.trial` != ''", max_results=1000)
    return client, experiment, runs


def test_a_study_is_tracked_and_resumes_after_an_interruption(tiny_overrides, tmp_path):
    """Start `mtl tune` as a user would, interrupt it (Ctrl-C) after its second trial, run it again:
    the stored trials are read back, the study continues, nothing is lost or repeated."""
    overrides = [*tiny_overrides, "search_space=small", "tuner.inner_folds=2", "tuner.initial_design=3", "tuner.n_trials=6",
                 f"hydra.run.dir={tmp_path / 'run'}"]
    cfg = validated(compose_train(overrides[:-1], config="tune", raw=True), TuneConfig)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen([sys.executable, "-m", "mtl", "tune", *overrides], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        time.sleep(1)
        try:
            if len(trial_runs(cfg)[2]) >= 2:
                break
        except Exception:  # the store or the experiment does not exist yet
            continue
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    client, experiment, before = trial_runs(cfg)
    assert 2 <= len(before) < 6
    parent = client.get_run(before[0].data.tags["mlflow.parentRunId"])
    assert parent.info.status == "KILLED"

    tune.run(compose_train(overrides, config="tune", raw=True))
    client, experiment, after = trial_runs(cfg)
    indices = sorted(int(r.data.tags["mtl.trial"]) for r in after)
    assert indices == list(range(6))  # none lost, none repeated
    assert {r.info.run_id for r in before} <= {r.info.run_id for r in after}  # the stored trials were kept, not rerun
    assert {r.data.tags["mlflow.parentRunId"] for r in after} == {parent.info.run_id}
    finished = client.get_run(parent.info.run_id)
    assert finished.info.status == "FINISHED"
    assert {"r2_hardness", "r2_pitting", "objective", "seconds"} <= set(after[0].data.metrics)
    assert "heldout_r2_mean" in finished.data.metrics
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "tuning")}
    assert {"tuning/trace.png", "tuning/trials.json", "tuning/best.yaml"} <= artifacts
    best = OmegaConf.create(client.download_artifacts(parent.info.run_id, "tuning/best.yaml", str(tmp_path)) and
                            (tmp_path / "best.yaml").read_text())
    assert "tuner" not in best and "search_space" not in best and best.tasks.pitting.learning_rate > 0


def test_the_gpyopt_sweeper_is_a_hydra_plugin_and_runs_a_sweep(tiny_overrides, tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    listed = subprocess.run([sys.executable, "-m", "mtl", "train", "--info", "plugins"], capture_output=True, text=True,
                            env=env, timeout=120)
    assert "GPyOptSweeper" in listed.stdout
    sweep = subprocess.run([sys.executable, "-m", "mtl", "train", "-m", "hydra/sweeper=gpyopt", "hydra.sweeper.n_trials=4",
                            "hydra.sweeper.batch_size=2", "hydra.sweeper.initial_design=2",
                            "hydra.sweeper.search_space=small", *tiny_overrides, f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                           capture_output=True, text=True, env=env, timeout=600)
    assert sweep.returncode == 0, sweep.stderr[-3000:]
    results = OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml")
    assert len(results.trials) == 4 and np.isfinite(results.best_objective)
    assert results.best_objective == max(t.objective for t in results.trials)
    cfg = compose_train(tiny_overrides)
    client = MlflowClient(cfg.tracking.uri)
    runs = client.search_runs([client.get_experiment_by_name(cfg.study).experiment_id], "attributes.run_name LIKE 'train-%'")
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)
    assert len({r.data.params["model.trunk.units"] for r in runs}) > 1  # the jobs got the proposals
