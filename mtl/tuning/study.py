"""A tuning study: Bayesian optimisation of the training config, scored by inner cross-validation.

The data are split once into an outer training part and an outer held-out part (grouped by
composition). A trial trains an inner k-fold ensemble on the outer training part only and scores
the mean over tasks of its out-of-fold R²: the held-out part is never seen while tuning. Trials
run in this process, or ``workers`` at a time in worker processes (batches of proposals).
Only this process writes to MLflow, so a SQLite store never sees concurrent writers.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mtl.data.dataset import MultiTaskDataset
from mtl.errors import ConfigError, MTLError
from mtl.tuning.optimizer import ACQUISITIONS, next_points
from mtl.tuning.space import SearchSpace

log = logging.getLogger(__name__)


@dataclass
class Trial:
    index: int
    assignment: dict[str, Any]
    scores: dict[str, float]  # r2_<task>, r2_mean; empty when the trial failed
    seconds: float
    error: str = ""

    @property
    def objective(self) -> float:
        return float(self.scores.get("r2_mean", math.nan))


@dataclass
class StudyState:
    trials: list[Trial] = field(default_factory=list)

    def best(self) -> Trial | None:
        finished = [t for t in self.trials if math.isfinite(t.objective)]
        return max(finished, key=lambda t: t.objective) if finished else None


def check_tuner(tuner) -> None:
    """Bad settings fail before any training starts."""
    if tuner.acquisition not in ACQUISITIONS:
        raise ConfigError(f"tuner.acquisition is '{tuner.acquisition}'; use one of {', '.join(ACQUISITIONS)}.")
    if tuner.strategy not in ("bayesian", "random"):
        raise ConfigError(f"tuner.strategy is '{tuner.strategy}'; use 'bayesian' or 'random'.")
    for name in ("n_trials", "initial_design", "batch_size", "workers"):
        if getattr(tuner, name) < 1:
            raise ConfigError(f"tuner.{name} is {getattr(tuner, name)}; it must be at least 1.")
    if tuner.n_trials < tuner.initial_design:
        raise ConfigError(f"tuner.n_trials ({tuner.n_trials}) is below tuner.initial_design ({tuner.initial_design}): "
                          "the random initial design alone would not fit; raise n_trials or lower initial_design.")
    if tuner.inner_folds < 2:
        raise ConfigError(f"tuner.inner_folds is {tuner.inner_folds}; cross-validation needs at least 2.")


def trial_config(cfg: DictConfig, space: SearchSpace, assignment: dict[str, Any]) -> DictConfig:
    """The training config of one trial: the point's values, inner folds, no MC dropout (the
    objective scores means), no SHAP or registry."""
    from mtl.config import TuneConfig, validated

    trial = space.apply(cfg, assignment)
    trial.ensemble.folds, trial.ensemble.repeats = cfg.tuner.inner_folds, 1
    trial.trainer.mc_samples, trial.trainer.log_every = 0, 0
    return validated(trial, TuneConfig)


def inner_cv_scores(ds: MultiTaskDataset, cfg: DictConfig) -> dict[str, float]:
    from mtl.ensemble import train_ensemble
    from mtl.tracking import Tracker

    return train_ensemble(ds, cfg, Tracker()).scores


def evaluate(ds: MultiTaskDataset, cfg: DictConfig, space: SearchSpace, index: int, assignment: dict[str, Any]) -> Trial:
    start = time.perf_counter()
    try:
        scores = inner_cv_scores(ds, trial_config(cfg, space, assignment))
        return Trial(index, assignment, {k: v for k, v in scores.items() if k.startswith("r2_")}, time.perf_counter() - start)
    except MTLError:
        raise  # bad settings or data: every trial would fail the same way
    except Exception as exc:  # noqa: BLE001  (one diverging trial must not end the study; it is recorded)
        log.warning("trial %d failed: %s", index, exc)
        return Trial(index, assignment, {}, time.perf_counter() - start, error=f"{type(exc).__name__}: {exc}")


_WORKER: dict = {}


def _init_worker(cfg_yaml: str, rows: list[int], threads: int) -> None:
    """Each worker loads the dataset once (the descriptor cache is warm) and keeps to its share of cores."""
    import tensorflow as tf

    from mtl.config import TuneConfig, validated
    from mtl.data.dataset import load_dataset

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    cfg = validated(OmegaConf.create(cfg_yaml), TuneConfig)
    _WORKER.update(cfg=cfg, ds=load_dataset(cfg).subset(np.asarray(rows)),
                   space=SearchSpace.from_config(cfg.search_space, cfg))


def _worker_trial(index: int, assignment: dict[str, Any]) -> Trial:
    return evaluate(_WORKER["ds"], _WORKER["cfg"], _WORKER["space"], index, assignment)


class Study:
    """Runs the optimisation loop; ``on_trial(trial, state)`` records each finished trial."""

    def __init__(self, cfg: DictConfig, space: SearchSpace, ds: MultiTaskDataset, train_rows: np.ndarray,
                 on_trial: Callable[[Trial, StudyState], None]):
        self.cfg, self.space, self.ds, self.train_rows, self.on_trial = cfg, space, ds, train_rows, on_trial
        self.tuner = cfg.tuner

    def run(self, state: StudyState) -> StudyState:
        ds = self.ds.subset(self.train_rows)
        pool = None
        if self.tuner.workers > 1:
            threads = max(1, (os.cpu_count() or 1) // self.tuner.workers)
            pool = ProcessPoolExecutor(self.tuner.workers, mp_context=multiprocessing.get_context("spawn"),
                                       initializer=_init_worker,
                                       initargs=(OmegaConf.to_yaml(self.cfg), self.train_rows.tolist(), threads))
        try:
            while len(state.trials) < self.tuner.n_trials:
                points = next_points(self.space, self.tuner, [t.assignment for t in state.trials],
                                     [t.objective for t in state.trials])
                indices = range(len(state.trials), len(state.trials) + len(points))
                if pool is None:
                    finished = (evaluate(ds, self.cfg, self.space, i, p) for i, p in zip(indices, points))
                else:
                    finished = pool.map(_worker_trial, indices, points)
                for trial in finished:
                    state.trials.append(trial)
                    self.on_trial(trial, state)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        return state
