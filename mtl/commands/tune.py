"""``mtl tune``: Bayesian optimisation of the training config (see :mod:`mtl.tuning.study`), every
trial a child run, resumable from MLflow; then the best config is written, retrained with the
Core training on the outer training part, scored on the held-out part and registered."""

from __future__ import annotations

import hashlib
import logging
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from mtl.commands.train import explain_sample, summary
from mtl.config import TuneConfig, validated
from mtl.data.dataset import load_dataset
from mtl.ensemble import member_splits, train_ensemble
from mtl.errors import ConfigError
from mtl.metrics import task_scores
from mtl.packaged import PackagedEnsemble
from mtl.plots import optimisation_trace
from mtl.registry import log_and_register
from mtl.tracking import MlflowTracker
from mtl.tuning.space import SearchSpace
from mtl.tuning.study import Study, StudyState, Trial, check_tuner

log = logging.getLogger(__name__)

STUDY_TAG = "mtl.study_key"
TRIAL_TAG = "mtl.trial"
NOT_IN_KEY = ("tracking", "registry", "explain")  # settings that do not change what a trial computes


def study_key(cfg) -> str:
    """Same data, tasks, training, search space and tuner settings -> same study (n_trials and
    workers may change between runs: a study can be extended or resumed with more workers)."""
    data = OmegaConf.to_container(cfg, resolve=True)
    for section in NOT_IN_KEY:
        data.pop(section, None)
    for name in ("n_trials", "workers", "resume"):
        data["tuner"].pop(name, None)
    return hashlib.sha256(OmegaConf.to_yaml(OmegaConf.create(data)).encode()).hexdigest()[:16]


def outer_split(ds, cfg) -> tuple[np.ndarray, np.ndarray]:
    tuner = cfg.tuner
    if not 0 <= tuner.outer_fold < tuner.outer_folds:
        raise ConfigError(f"tuner.outer_fold is {tuner.outer_fold}; it must be in 0..{tuner.outer_folds - 1}.")
    splits = list(member_splits(ds, tuner.outer_folds, 1, cfg.seed))
    _, _, train, test = splits[tuner.outer_fold]
    return train, test


def stored_trials(tracker: MlflowTracker, parent_id: str, space: SearchSpace) -> list[Trial]:
    """Finished (and failed) trials of an earlier run of this study, in trial order."""
    trials = []
    for run in tracker.child_runs(parent_id):
        if TRIAL_TAG not in run.data.tags:
            continue
        if run.info.status not in ("FINISHED", "FAILED"):  # interrupted while being logged: run that trial again
            tracker.mlflow.MlflowClient().set_terminated(run.info.run_id, status="KILLED")
            continue
        assignment = {key: space.params[i].parse(run.data.params[key]) for i, key in enumerate(space.keys)}
        scores = {k: v for k, v in run.data.metrics.items() if k.startswith("r2_")}
        trials.append(Trial(int(run.data.tags[TRIAL_TAG]), assignment, scores, run.data.metrics.get("seconds", math.nan),
                            error=run.data.tags.get("mtl.error", "")))
    return sorted(trials, key=lambda t: t.index)


def progress_line(trial: Trial, state: StudyState, n_trials: int) -> str:
    best = state.best()
    scores = " ".join(f"{k.removeprefix('r2_')}={v:.3f}" for k, v in trial.scores.items() if k != "r2_mean")
    outcome = f"objective {trial.objective:.4f} ({scores})" if trial.scores else f"FAILED ({trial.error[:80]})"
    best_text = f"best {best.objective:.4f} (trial {best.index + 1})" if best else "no finished trial yet"
    params = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.assignment.items())
    return f"trial {trial.index + 1}/{n_trials}  {outcome}  {best_text}  {trial.seconds:.0f} s  | {params}"


def trials_table(state: StudyState) -> pd.DataFrame:
    return pd.DataFrame([{"trial": t.index + 1, "objective": t.objective, **t.scores, "seconds": t.seconds,
                          **{k: str(v) for k, v in t.assignment.items()}, "error": t.error} for t in state.trials])


def record_trial(tracker: MlflowTracker, trial: Trial, state: StudyState, n_trials: int) -> None:
    end = time.time()
    tracker.log_finished_child(f"trial-{trial.index + 1:03d}", {**trial.assignment, "trial": trial.index + 1},
                               {**trial.scores, "objective": trial.objective, "seconds": trial.seconds} if trial.scores
                               else {"seconds": trial.seconds},
                               {TRIAL_TAG: str(trial.index), **({"mtl.error": trial.error[:4000]} if trial.error else {})},
                               start=end - trial.seconds, end=end, failed=not trial.scores)
    tracker.log_metrics({"best_objective": state.best().objective} if state.best() else {}, step=trial.index)
    log.info(progress_line(trial, state, n_trials))


def best_config_text(cfg, space: SearchSpace, best: Trial) -> tuple[str, object]:
    """The best training config as a complete Hydra config file (usable as
    ``mtl train --config-dir DIR --config-name best``), and the config itself."""
    best_cfg = validated(space.apply(cfg, best.assignment), TuneConfig)
    trainable = OmegaConf.masked_copy(best_cfg, [k for k in best_cfg if k not in ("search_space", "tuner")])
    text = (f"# best of study '{cfg.study}': trial {best.index + 1}, inner-CV R² {best.objective:.4f}\n"
            f"# as overrides: {' '.join(space.overrides(best.assignment))}\n" + OmegaConf.to_yaml(trainable))
    return text, best_cfg


def save_best_config(tracker: MlflowTracker, text: str) -> str:
    """Logged to the study run, and written to Hydra's output directory when run as ``mtl tune``."""
    from hydra.core.hydra_config import HydraConfig

    tracker.mlflow.log_text(text, "tuning/best.yaml")
    if not HydraConfig.initialized():
        return "the study run (tuning/best.yaml)"
    path = Path(HydraConfig.get().runtime.output_dir) / "best.yaml"
    path.write_text(text)
    return str(path)


def run(cfg) -> float:
    """Returns the held-out mean R² of the retrained best configuration."""
    cfg = validated(cfg, TuneConfig)
    space = SearchSpace.from_config(cfg.search_space, cfg)
    check_tuner(cfg.tuner)
    ds = load_dataset(cfg)  # bad data and bad settings fail here, before any run is opened
    train_rows, test_rows = outer_split(ds, cfg)
    tracker = MlflowTracker(cfg)
    key = study_key(cfg)
    previous = tracker.latest_run_tagged(STUDY_TAG, key) if cfg.tuner.resume else None
    state = StudyState(stored_trials(tracker, previous.info.run_id, space) if previous else [])
    if previous:
        log.info("resuming study run %s: %d of %d trials already done", previous.info.run_id, len(state.trials),
                 cfg.tuner.n_trials)
    log.info("tuning %d hyperparameters over %d trials (%s, %s); objective: %d-fold CV on %d of %d rows",
             len(space.params), cfg.tuner.n_trials, cfg.tuner.strategy, cfg.tuner.acquisition, cfg.tuner.inner_folds,
             len(train_rows), len(ds))
    with tracker.parent_run(f"tune-{cfg.study}", tags={STUDY_TAG: key}, resume_id=previous.info.run_id if previous else None):
        Study(cfg, space, ds, train_rows, lambda t, s: record_trial(tracker, t, s, cfg.tuner.n_trials)).run(state)
        tracker.log_figure(optimisation_trace([t.objective for t in state.trials], cfg.tuner.initial_design,
                                              f"{cfg.study}: {cfg.tuner.strategy} search"), "tuning/trace.png")
        tracker.log_table(trials_table(state), "tuning/trials.json")
        best = state.best()
        if best is None:
            raise ConfigError("every trial failed; see the trial runs' mtl.error tags.")
        text, best_cfg = best_config_text(cfg, space, best)
        log.info("best trial %d (inner-CV R² %.4f); config written to %s; retraining on the outer training part",
                 best.index + 1, best.objective, save_best_config(tracker, text))
        heldout, result, train_ds = final_model(tracker, ds, best_cfg, train_rows, test_rows)
        packaged = PackagedEnsemble.from_training(result.model, train_ds, best_cfg, cfg.explain.background)
        if cfg.explain.enabled:
            explain_sample(tracker, train_ds, packaged, result, best_cfg)
        registered = None
        if cfg.registry.enabled:
            registered = log_and_register(packaged, {t: best_cfg.tasks[t].source for t in ds.tasks}, cfg.registry.name, heldout)
    print(summary(ds.subset(test_rows), heldout,
                  f"held-out scores of the best configuration (outer fold {cfg.tuner.outer_fold}, never seen while tuning):"))
    if registered:
        version, promoted = registered
        print(f"registered {cfg.registry.name} version {version.version}" + ("; it is now @champion" if promoted else "; @champion kept"))
    return heldout["r2_mean"]


def final_model(tracker: MlflowTracker, ds, best_cfg, train_rows: np.ndarray, test_rows: np.ndarray):
    """The best config trained as a normal ensemble on the outer training part, scored on the held-out part."""
    train_ds, test_ds = ds.subset(train_rows), ds.subset(test_rows)
    with tracker.member_run("final", {"rows_train": len(train_rows), "rows_heldout": len(test_rows)}):
        result = train_ensemble(train_ds, best_cfg, tracker)
        prediction = result.model.predict(test_ds.features, test_ds.inputs, best_cfg.trainer.mc_samples)
        heldout = task_scores(test_ds.y, prediction.mean, ds.tasks)
        tracker.log_metrics({**{f"oof_{k}": v for k, v in result.scores.items()}, **{f"heldout_{k}": v for k, v in heldout.items()}})
    tracker.log_metrics({f"heldout_{k}": v for k, v in heldout.items()})
    return heldout, result, train_ds
