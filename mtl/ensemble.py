"""Ensembles over grouped k-fold (or repeated k-fold) splits: one member per fold, trained on the
other folds with its own in-fold preprocessing, scored on the fold it never saw.

Prediction is the mean over members and MC-dropout passes; its spread splits into the ensemble
part (variance of member means) and the MC-dropout part (mean within-member variance).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from mtl.data.dataset import MultiTaskDataset
from mtl.metrics import task_scores
from mtl.model import MultiTaskNet, build_network
from mtl.preprocessing import FoldPreprocessor
from mtl.schedules import make_schedule
from mtl.trainer import AlternatingTrainer, History, TaskArrays

log = logging.getLogger(__name__)


@dataclass
class Prediction:
    """Per-task arrays of shape (n, T), in target units."""

    mean: np.ndarray
    std: np.ndarray
    std_ensemble: np.ndarray
    std_mc: np.ndarray


def aggregate(member_means: np.ndarray, member_vars: np.ndarray) -> Prediction:
    """(M, n, T) member means and MC-dropout variances -> ensemble prediction (law of total variance)."""
    ens_var = member_means.var(axis=0)
    mc_var = member_vars.mean(axis=0)
    return Prediction(mean=member_means.mean(axis=0), std=np.sqrt(ens_var + mc_var),
                      std_ensemble=np.sqrt(ens_var), std_mc=np.sqrt(mc_var))


@dataclass
class Member:
    index: int
    repeat: int
    fold: int
    net: MultiTaskNet
    prep: FoldPreprocessor
    train_rows: np.ndarray
    test_rows: np.ndarray
    history: History

    def predict(self, features: np.ndarray, inputs: dict[str, np.ndarray], mc_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """Mean and MC-dropout variance, (n, T) each, in target units (variance 0 with MC off)."""
        x = self.prep.features(features)
        means, variances = [], []
        for task in self.prep.tasks:
            model_in = self.net.task_inputs(task, x, self.prep.task_inputs(task, inputs[task]))
            if mc_samples:  # all passes in one call: each tiled copy of a row draws its own dropout mask
                tiled = [np.tile(a, (mc_samples, 1)) for a in model_in]
                passes = self.net.task_models[task](tiled, training=True).numpy()[:, 0].reshape(mc_samples, len(x))
                means.append(passes.mean(axis=0))
                variances.append(passes.var(axis=0))
            else:
                means.append(self.net.task_models[task](model_in, training=False).numpy()[:, 0])
                variances.append(np.zeros(len(x)))
        scale = self.prep.target_std
        return self.prep.unscale_targets(np.stack(means, axis=1)), np.stack(variances, axis=1) * scale**2


def label_pattern(ds: MultiTaskDataset) -> np.ndarray:
    """Which tasks each row is labelled for, as one code: stratifying on it keeps every task in every fold."""
    return ds.mask.astype(int) @ (2 ** np.arange(len(ds.tasks)))


def member_splits(ds: MultiTaskDataset, folds: int, repeats: int, seed: int):
    """Yield (repeat, fold, train rows, test rows); a composition never sits on both sides."""
    pattern = label_pattern(ds)
    for repeat in range(repeats):
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed + repeat)
        for fold, (train, test) in enumerate(splitter.split(ds.features, pattern, ds.groups)):
            yield repeat, fold, train, test


def validation_split(ds: MultiTaskDataset, rows: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out about ``fraction`` of the training rows' composition groups for early stopping."""
    if fraction <= 0:
        return rows, rows[:0]
    splitter = StratifiedGroupKFold(n_splits=max(2, round(1 / fraction)), shuffle=True, random_state=seed)
    fit, val = next(splitter.split(rows, label_pattern(ds)[rows], ds.groups[rows]))
    return rows[fit], rows[val]


def task_arrays(ds: MultiTaskDataset, prep: FoldPreprocessor, rows: np.ndarray) -> dict[str, TaskArrays]:
    x, y = prep.features(ds.features[rows]), prep.scale_targets(ds.y[rows])
    arrays = {}
    for t, task in enumerate(ds.tasks):
        own = ds.task_rows(task, rows)
        arrays[task] = TaskArrays(features=x[own], inputs=prep.task_inputs(task, ds.inputs[task][rows[own]]), y=y[own, t])
    return arrays


def train_member(ds: MultiTaskDataset, cfg, rows: np.ndarray, seed: int, on_epoch=None, label: str = "") -> tuple[MultiTaskNet, FoldPreprocessor, History]:
    """Fit preprocessing on ``rows`` (minus a validation part), build and train one network."""
    import keras

    keras.utils.set_random_seed(seed)
    fit_rows, val_rows = validation_split(ds, rows, cfg.trainer.validation_fraction, seed)
    prep = FoldPreprocessor.fit(ds, fit_rows)
    net = build_network(ds.features.shape[1], {t: prep.input_width(t) for t in ds.tasks}, cfg.model)
    trainer = AlternatingTrainer(net, ds.tasks, {t: cfg.tasks[t].learning_rate for t in ds.tasks}, cfg.trainer.loss)
    history = trainer.fit(task_arrays(ds, prep, fit_rows), task_arrays(ds, prep, val_rows),
                          make_schedule(cfg.schedule, len(ds.tasks)), cfg.trainer, seed, on_epoch, label)
    return net, prep, history


@dataclass
class EnsembleResult:
    members: list[Member]
    oof: Prediction  # out-of-fold prediction for every row (averaged over repeats)
    scores: dict[str, float]  # out-of-fold r2/rmse/mae per task


def train_ensemble(ds: MultiTaskDataset, cfg, tracker) -> EnsembleResult:
    """``cfg`` is a ``TrainConfig``; ``tracker`` a :class:`mtl.tracking.Tracker`."""
    folds, repeats, mc = cfg.ensemble.folds, cfg.ensemble.repeats, cfg.trainer.mc_samples
    oof_means = np.full((repeats, len(ds), len(ds.tasks)), np.nan)
    oof_vars = np.zeros_like(oof_means)
    members = []
    total = folds * repeats
    for index, (repeat, fold, train, test) in enumerate(member_splits(ds, folds, repeats, cfg.seed)):
        label = f"member {index + 1}/{total}: "
        log.info("%srepeat %d fold %d, %d training rows, %d held out", label, repeat, fold, len(train), len(test))
        start = time.perf_counter()
        with tracker.member_run(f"member-{index:02d}", {"member": index, "repeat": repeat, "fold": fold}):
            curves = tracker.curve_recorder()
            net, prep, history = train_member(ds, cfg, train, cfg.seed + index, curves.on_epoch, label)
            member = Member(index, repeat, fold, net, prep, train, test, history)
            mean, var = member.predict(ds.features[test], {t: ds.inputs[t][test] for t in ds.tasks}, mc)
            scores = task_scores(ds.y[test], mean, ds.tasks)
            elapsed = time.perf_counter() - start
            curves.flush()
            tracker.log_metrics({**scores, "best_epoch": history.best_epoch + 1, "epochs_run": history.epochs_run,
                                 "train_seconds": elapsed, "n_train": len(train), "n_test": len(test)})
        oof_means[repeat, test], oof_vars[repeat, test] = mean, var
        members.append(member)
        log.info("%sdone in %.1f s after %d epochs: %s", label, elapsed, history.epochs_run,
                 " ".join(f"{k}={v:.3f}" for k, v in scores.items() if k.startswith("r2_")))
    oof = aggregate(oof_means, oof_vars)
    return EnsembleResult(members=members, oof=oof, scores=task_scores(ds.y, oof.mean, ds.tasks))


def predict_ensemble(members: list[Member], features: np.ndarray, inputs: dict[str, np.ndarray], mc_samples: int) -> Prediction:
    outputs = [m.predict(features, inputs, mc_samples) for m in members]
    return aggregate(np.stack([o[0] for o in outputs]), np.stack([o[1] for o in outputs]))
