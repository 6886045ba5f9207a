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
from mtl.model import EnsembleNet
from mtl.preprocessing import FoldPreprocessor
from mtl.schedules import make_schedule
from mtl.trainer import EnsembleTrainer, History, MemberArrays

log = logging.getLogger(__name__)

MAX_PREDICTION_CELLS = 2**24  # floats per layer activation in one prediction call: bounds memory


def bucket(n: int, largest: int) -> int:
    """Rows per prediction call: the next power of two (at least 64), capped at ``largest``, so a
    compiled prediction graph is reused across calls of similar size."""
    return min(largest, max(64, 1 << (max(n, 1) - 1).bit_length()))


def pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    """(K, n, w) -> (K, rows, w), zero rows appended."""
    return np.pad(a, ((0, 0), (0, rows - a.shape[1]), (0, 0)))


MC_SEED = 1_000_003  # the dropout stream of prediction, apart from training's per-step streams


def row_keys(features: np.ndarray, inputs: dict[str, np.ndarray], tasks: list[str]) -> np.ndarray:
    """A 62-bit key per row from its raw values (NaN included): equal rows, equal keys."""
    values = np.ascontiguousarray(np.hstack([features, *(inputs[t] for t in tasks)]), dtype=np.float64)
    bits = np.nan_to_num(values, nan=-1.2345e300).view(np.uint64)
    weights = (np.arange(1, bits.shape[1] + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)) | np.uint64(1)
    mixed = bits * weights
    mixed ^= mixed >> np.uint64(29)
    return (np.bitwise_xor.reduce(mixed, axis=1) >> np.uint64(2)).astype(np.int64)


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


class EnsembleModel:
    """The trained ensemble: the stacked network and each member's in-fold preprocessing.
    Predicts raw feature rows (the dataset's shared features and task inputs) in target units."""

    def __init__(self, net: EnsembleNet, preps: list[FoldPreprocessor]):
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")  # each model traces its own graph: TF's "retracing" warning is noise here
        self.net, self.preps, self.tasks = net, preps, net.tasks
        # XLA fuses the dropout hashing with the layers; calls come in a few bucketed shapes (see ``bucket``)
        self._forward = tf.function(lambda x, c, seeds, keys: net.forward_all(x, c, seeds, keys), jit_compile=True)

    def member_arrays(self, features: np.ndarray, inputs: dict[str, np.ndarray], y: np.ndarray | None = None) -> MemberArrays:
        """Rows as each member sees them: (K, n, d) features, (K, n, c_t) task inputs, (K, n, T)
        standardised targets (0 where unlabelled or ``y`` is None)."""
        targets = np.zeros((len(features), len(self.tasks))) if y is None else y
        # rows repeat (one alloy, many test conditions): transform each distinct feature row once
        distinct, inverse = np.unique(features, axis=0, return_inverse=True)
        return MemberArrays(features=np.stack([p.features(distinct) for p in self.preps])[:, inverse.ravel()],
                            inputs={t: np.stack([p.task_inputs(t, inputs[t]) for p in self.preps]) for t in self.tasks},
                            y=np.stack([np.nan_to_num(p.scale_targets(targets)) for p in self.preps]))

    def member_predictions(self, features: np.ndarray, inputs: dict[str, np.ndarray], mc_samples: int) -> tuple[np.ndarray, np.ndarray]:
        """Each member's mean and MC-dropout variance, (K, n, T) each, in target units (variance 0
        with MC off). A row's dropout masks are keyed by its content, so its prediction does not
        depend on the other rows predicted with it."""
        keys = row_keys(features, inputs, self.tasks) if mc_samples else None
        return self.predict_arrays(self.member_arrays(features, inputs), mc_samples, keys)

    def predict_arrays(self, arrays: MemberArrays, mc_samples: int = 0, keys: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`member_predictions` for rows already preprocessed by each member (``keys``: the
        rows' dropout keys, needed with MC dropout)."""
        k, n = arrays.features.shape[:2]
        samples = max(mc_samples, 1)
        chunk = bucket(n, max(1, MAX_PREDICTION_CELLS // (k * samples * self.net.widest_layer())))
        seeds = np.array([[m, MC_SEED] for m in range(k)], np.int64)
        means, variances = np.zeros((k, n, len(self.tasks))), np.zeros((k, n, len(self.tasks)))
        for start in range(0, n, chunk):
            part = slice(start, start + chunk)
            rows = len(range(n)[part])
            x = pad_rows(arrays.features[:, part], chunk)
            c = {task: pad_rows(arrays.inputs[task][:, part], chunk) for task in self.tasks}
            if mc_samples:  # all passes in one call: pass s of a row draws the masks of (row key, s)
                part_keys = np.pad(keys[part], (0, chunk - rows))
                sample_keys = (part_keys[None, :] + np.arange(samples, dtype=np.int64)[:, None] * 0x632BE5AB).ravel()
                tiled = {task: np.tile(v, (1, samples, 1)) for task, v in c.items()}
                passes = self._forward(np.tile(x, (1, samples, 1)), tiled, seeds, sample_keys).numpy()
                passes = passes.reshape(k, samples, chunk, len(self.tasks))[:, :, :rows]
                means[:, part], variances[:, part] = passes.mean(1), passes.var(1)
            else:
                means[:, part] = self._forward(x, c, None, None).numpy()[:, :rows]
        shift = np.stack([p.target_mean for p in self.preps])[:, None, :]  # (K, 1, T)
        scale = np.stack([p.target_std for p in self.preps])[:, None, :]
        return means * scale + shift, variances * scale**2

    def predict(self, features: np.ndarray, inputs: dict[str, np.ndarray], mc_samples: int) -> Prediction:
        return aggregate(*self.member_predictions(features, inputs, mc_samples))


@dataclass
class Member:
    index: int
    repeat: int
    fold: int
    train_rows: np.ndarray
    test_rows: np.ndarray
    history: History
    scores: dict[str, float]
    run_id: str | None = None  # its MLflow run, when tracked


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


def rows_by_task(ds: MultiTaskDataset, rows: np.ndarray) -> list[np.ndarray]:
    return [rows[ds.task_rows(task, rows)] for task in ds.tasks]


@dataclass
class EnsembleResult:
    model: EnsembleModel
    members: list[Member]
    oof: Prediction  # out-of-fold prediction for every row (averaged over repeats)
    scores: dict[str, float]  # out-of-fold r2/rmse/mae per task


def fit_ensemble(ds: MultiTaskDataset, cfg, splits: list[tuple[int, int, np.ndarray, np.ndarray]]) -> tuple[EnsembleModel, list[History]]:
    """One member per split, all trained together; each fits its preprocessing on its own training
    rows minus a grouped validation part (for early stopping)."""
    import keras

    seeds = [cfg.seed + i for i in range(len(splits))]
    keras.utils.set_random_seed(cfg.seed)
    parts = [validation_split(ds, train, cfg.trainer.validation_fraction, s) for (_, _, train, _), s in zip(splits, seeds)]
    preps = [FoldPreprocessor.fit(ds, fit) for fit, _ in parts]
    net = EnsembleNet.build(ds.features.shape[1], {t: preps[0].input_width(t) for t in ds.tasks}, cfg.model, seeds)
    model = EnsembleModel(net, preps)
    trainer = EnsembleTrainer(net, model.member_arrays(ds.features, ds.inputs, ds.y), {t: cfg.tasks[t].learning_rate for t in ds.tasks}, cfg.trainer.loss, seeds)
    histories = trainer.fit([rows_by_task(ds, fit) for fit, _ in parts], [rows_by_task(ds, val) for _, val in parts],
                            make_schedule(cfg.schedule, len(ds.tasks)), cfg.trainer, seeds, label=f"{len(splits)} members: ")
    return model, histories


def train_ensemble(ds: MultiTaskDataset, cfg, tracker) -> EnsembleResult:
    """``cfg`` is a ``TrainConfig``; ``tracker`` a :class:`mtl.tracking.Tracker`."""
    folds, repeats = cfg.ensemble.folds, cfg.ensemble.repeats
    splits = list(member_splits(ds, folds, repeats, cfg.seed))
    log.info("training %d members together (%d folds x %d repeats), %d rows", len(splits), folds, repeats, len(ds))
    start = time.perf_counter()
    model, histories = fit_ensemble(ds, cfg, splits)
    elapsed = time.perf_counter() - start
    means, variances = model.member_predictions(ds.features, ds.inputs, cfg.trainer.mc_samples)
    oof_means = np.full((repeats, len(ds), len(ds.tasks)), np.nan)
    oof_vars = np.zeros_like(oof_means)
    members = []
    for index, ((repeat, fold, train, test), history) in enumerate(zip(splits, histories)):
        oof_means[repeat, test], oof_vars[repeat, test] = means[index, test], variances[index, test]
        member = Member(index, repeat, fold, train, test, history, task_scores(ds.y[test], means[index, test], ds.tasks))
        members.append(member)
        with tracker.member_run(f"member-{index:02d}", {"member": index, "repeat": repeat, "fold": fold}) as run:
            member.run_id = run.info.run_id if run is not None else None
            tracker.log_history(history)
            tracker.log_metrics({**member.scores, "best_epoch": history.best_epoch + 1, "epochs_run": history.epochs_run,
                                 "n_train": len(train), "n_test": len(test)})
        log.info("member %d/%d (repeat %d fold %d): best epoch %d of %d, held out %s", index + 1, len(splits), repeat, fold,
                 history.best_epoch + 1, history.epochs_run,
                 " ".join(f"{k}={v:.3f}" for k, v in member.scores.items() if k.startswith("r2_")))
    log.info("ensemble trained in %.1f s", elapsed)
    oof = aggregate(oof_means, oof_vars)
    return EnsembleResult(model=model, members=members, oof=oof, scores=task_scores(ds.y, oof.mean, ds.tasks))
