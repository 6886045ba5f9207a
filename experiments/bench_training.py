"""Benchmark: one tuning trial's worth of training on the shipped data, three ways.

(a) reference: the alternating algorithm written the obvious way, as the original work did:
    one Keras model per member (a shared trunk, a head per task, each task model compiled with
    its own Adam), ``model.fit`` on one task's rows per block of epochs, members one after another;
(c) mtl's vectorised trainer: all members in one stacked network and one compiled graph.

Same members (splits, in-fold preprocessing, architecture), same epochs, same rows: both train on
every training row of their fold for a fixed number of epochs (no validation part, no early
stopping), and predict their held-out fold without MC dropout. Prints wall time per trial, the
ratio, out-of-fold R² of each, and peak memory. Then, when a registered model exists, the time to
predict 10,000 rows with it after loading, and SHAP for 100 rows.

    python experiments/bench_training.py                     # 12 members, 500 epochs
    python experiments/bench_training.py trainer.max_epochs=50 ensemble=kfold   # a quick look
"""

from __future__ import annotations

import os
import resource
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from hydra import compose, initialize_config_dir

from mtl.config import CONF_DIR, validated
from mtl.data.dataset import load_dataset
from mtl.ensemble import fit_ensemble, member_splits
from mtl.metrics import task_scores
from mtl.preprocessing import FoldPreprocessor

BENCH_OVERRIDES = ["ensemble=repeated_kfold", "schedule=blocks", "trainer.max_epochs=500", "trainer.patience=100000",
                   "trainer.validation_fraction=0", "trainer.mc_samples=0", "trainer.log_every=100"]


def reference_member(ds, cfg, train_rows: np.ndarray, seed: int):
    """One member the obvious way: Keras models sharing a trunk, ``fit`` per task per block."""
    import keras

    keras.utils.set_random_seed(seed)
    prep = FoldPreprocessor.fit(ds, train_rows)
    m = cfg.model
    features = keras.Input((ds.features.shape[1],))
    h = features
    for _ in range(m.trunk.layers):
        h = keras.layers.Dropout(m.trunk.dropout)(keras.layers.Dense(m.trunk.units, activation=m.activation)(h))
    models, data = [], []
    for t, task in enumerate(ds.tasks):
        inputs, head = [features], h
        if prep.input_width(task):
            conditions = keras.Input((prep.input_width(task),))
            inputs, head = [features, conditions], keras.layers.Concatenate()([h, conditions])
        for _ in range(m.head.layers):
            head = keras.layers.Dropout(m.head.dropout)(keras.layers.Dense(m.head.units, activation=m.activation)(head))
        model = keras.Model(inputs, keras.layers.Dense(1)(head))
        model.compile(keras.optimizers.Adam(cfg.tasks[task].learning_rate), loss=cfg.trainer.loss)
        models.append(model)
        rows = train_rows[ds.task_rows(task, train_rows)]
        x = [prep.features(ds.features[rows]), prep.task_inputs(task, ds.inputs[task][rows])][:len(inputs)]
        data.append((x, prep.scale_targets(ds.y[rows])[:, t]))
    block = cfg.schedule.epochs_per_block
    for b in range(cfg.trainer.max_epochs // block):
        t = b % len(ds.tasks)
        models[t].fit(*data[t], epochs=block, batch_size=cfg.trainer.batch_size, shuffle=True, verbose=0)

    def predict(rows):
        out = []
        for t, task in enumerate(ds.tasks):
            x = [prep.features(ds.features[rows]), prep.task_inputs(task, ds.inputs[task][rows])][:len(models[t].inputs)]
            out.append(models[t].predict(x, verbose=0, batch_size=4096)[:, 0])
        return prep.unscale_targets(np.stack(out, axis=1))

    return predict


def oof_scores(ds, splits, member_predictions) -> dict[str, float]:
    repeats = max(r for r, *_ in splits) + 1
    oof = np.full((repeats, len(ds), len(ds.tasks)), np.nan)
    for (repeat, _, _, test), predicted in zip(splits, member_predictions):
        oof[repeat, test] = predicted
    return task_scores(ds.y, oof.mean(axis=0), ds.tasks)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(overrides: list[str]) -> None:
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = validated(compose("train", overrides=[*BENCH_OVERRIDES, *overrides]))
    ds = load_dataset(cfg)
    import keras  # noqa: F401  (imported before the clocks start: both contenders need it)

    splits = list(member_splits(ds, cfg.ensemble.folds, cfg.ensemble.repeats, cfg.seed))
    t = cfg.trainer
    print(f"trial: {len(splits)} members, {t.max_epochs} epochs, schedule {cfg.schedule.name} "
          f"(epochs per block {cfg.schedule.epochs_per_block}), batch {t.batch_size}, {len(ds)} rows, "
          f"{ds.features.shape[1]} features, {os.cpu_count()} CPU cores", flush=True)

    start = time.perf_counter()
    model, _ = fit_ensemble(ds, cfg, splits)
    means, _ = model.member_predictions(ds.features, ds.inputs, mc_samples=0)
    vectorised_s = time.perf_counter() - start
    vectorised = oof_scores(ds, splits, [means[k, test] for k, (_, _, _, test) in enumerate(splits)])
    vectorised_peak = peak_rss_mb()
    print(f"(c) vectorised: {vectorised_s:.1f} s", flush=True)

    start = time.perf_counter()
    predictions = []
    for k, (_, _, train, test) in enumerate(splits):
        predictions.append(reference_member(ds, cfg, train, cfg.seed + k)(test))
        print(f"(a) reference: member {k + 1}/{len(splits)} after {time.perf_counter() - start:.0f} s", flush=True)
    reference_s = time.perf_counter() - start
    reference = oof_scores(ds, splits, predictions)

    print("\nwall time per trial and out-of-fold R²")
    print(f"{'':<34}{'seconds':>9}" + "".join(f"{'R2 ' + task:>16}" for task in ds.tasks))
    for name, seconds, scores in [("(a) reference (Keras model.fit)", reference_s, reference),
                                  ("(c) vectorised (mtl)", vectorised_s, vectorised)]:
        print(f"{name:<34}{seconds:>9.1f}" + "".join(f"{scores[f'r2_{task}']:>16.3f}" for task in ds.tasks))
    print(f"speed-up (a)/(c): {reference_s / vectorised_s:.1f}x")
    print(f"R² difference (c)-(a): " + ", ".join(f"{task} {vectorised[f'r2_{task}'] - reference[f'r2_{task}']:+.3f}"
                                                  for task in ds.tasks))
    print(f"peak memory of the process after (c): {vectorised_peak:.0f} MB (resident set)")
    time_registered_model(cfg)


def time_registered_model(cfg, rows: int = 10_000, explained: int = 100) -> None:
    """Load the champion, then time 10,000 raw rows (drawn from the shipped tables) and SHAP for 100."""
    import mlflow
    import pandas as pd
    from mlflow.exceptions import MlflowException

    from mtl.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(cfg.tracking.uri))
    uri = f"models:/{cfg.registry.name}@champion"
    try:
        start = time.perf_counter()
        model = mlflow.pyfunc.load_model(uri)
        load_s = time.perf_counter() - start
    except MlflowException:
        print(f"\n{uri} not found: run `make run` (or `mtl train`) first to time the registered model")
        return
    ensemble = model.unwrap_python_model().ensemble
    source = max((task.source for task in cfg.tasks.values()), key=lambda p: len(pd.read_csv(p).columns))
    table = pd.read_csv(source, dtype=str, keep_default_na=False)
    frame = table.sample(n=rows, replace=True, random_state=0).reset_index(drop=True)
    timings = {}
    for passes in (ensemble.spec["mc_samples"], 0):
        params = {"mc_samples": passes}
        model.predict(frame, params=params)  # warm-up: compiles the prediction graph, featurizes unseen alloys once
        start = time.perf_counter()
        predicted = model.predict(frame, params=params)
        timings[passes] = time.perf_counter() - start
    start = time.perf_counter()
    features, inputs = ensemble.model_inputs(frame.head(explained), ensemble.tasks, source)
    ensemble.explain(features, inputs)
    shap_s = time.perf_counter() - start
    print(f"\nregistered model {uri} ({len(ensemble.model.preps)} members, {ensemble.spec['mc_samples']} MC passes):")
    print(f"  load {load_s:.1f} s; predict {len(predicted):,} raw rows of {source.split('/')[-1]} (after a warm-up call): "
          + ", ".join(f"{seconds:.2f} s with {passes} MC passes" for passes, seconds in timings.items())
          + f"; SHAP for {explained} rows: {shap_s:.2f} s")


if __name__ == "__main__":
    main(sys.argv[1:])
