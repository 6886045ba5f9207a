"""``mtl train``: train the multi-task ensemble and track it in MLflow."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtl.config import validated
from mtl.data.dataset import MultiTaskDataset, load_dataset
from mtl.ensemble import EnsembleResult, train_ensemble
from mtl.explain import log_explanation
from mtl.packaged import PackagedEnsemble
from mtl.plots import parity_plot
from mtl.registry import log_and_register
from mtl.tracking import MlflowTracker


def oof_table(ds: MultiTaskDataset, result: EnsembleResult) -> pd.DataFrame:
    """One row per labelled (row, task): measured, out-of-fold mean and its std parts."""
    frames = []
    for t, task in enumerate(ds.tasks):
        rows = ds.task_rows(task)
        frames.append(pd.DataFrame({
            "task": task, "source": [ds.origin[r][0] for r in rows], "source_row": [ds.origin[r][1] for r in rows],
            "composition": [ds.compositions[r] for r in rows], "measured": ds.y[rows, t],
            "predicted": result.oof.mean[rows, t], "std": result.oof.std[rows, t],
            "std_ensemble": result.oof.std_ensemble[rows, t], "std_mc": result.oof.std_mc[rows, t]}))
    return pd.concat(frames, ignore_index=True)


def log_results(tracker: MlflowTracker, ds: MultiTaskDataset, result: EnsembleResult) -> None:
    tracker.log_metrics(result.scores)
    table = oof_table(ds, result)
    tracker.log_table(table, "predictions/out_of_fold.json")
    for task in ds.tasks:
        rows = table[table.task == task]
        fig = parity_plot(rows.measured.to_numpy(), rows.predicted.to_numpy(), rows["std"].to_numpy(), task,
                          ds.units[task], result.scores.get(f"r2_{task}", np.nan))
        tracker.log_figure(fig, f"plots/parity_{task}.png")


def explain_sample(tracker: MlflowTracker, ds: MultiTaskDataset, packaged: PackagedEnsemble, result: EnsembleResult,
                   cfg) -> None:
    """SHAP per task on a sample of rows, for the ensemble (this run) and each member (its run)."""
    rows = np.random.default_rng(cfg.seed).choice(len(ds), size=min(cfg.explain.rows, len(ds)), replace=False)
    explanation = packaged.explain(ds.features[rows], {t: ds.inputs[t][rows] for t in ds.tasks})
    log_explanation(tracker, explanation, ds.units, {m.index: m.run_id for m in result.members if m.run_id})


OOF_HEADING = "out-of-fold scores (each row predicted by the member that never saw its composition):"


def summary(ds: MultiTaskDataset, scores: dict[str, float], heading: str = OOF_HEADING) -> str:
    lines = [f"{'task':<16}{'n':>6}{'R2':>9}{'RMSE':>11}{'MAE':>11}  unit"]
    for task in ds.tasks:
        n = len(ds.task_rows(task))
        lines.append(f"{task:<16}{n:>6}{scores[f'r2_{task}']:>9.3f}{scores[f'rmse_{task}']:>11.2f}{scores[f'mae_{task}']:>11.2f}  {ds.units[task]}")
    return heading + "\n" + "\n".join(lines)


def run(cfg) -> float:
    """Returns the mean out-of-fold R² over tasks (what a Hydra sweeper optimises)."""
    cfg = validated(cfg)
    ds = load_dataset(cfg)  # bad data fails here, before any run is opened
    tracker = MlflowTracker(cfg)
    with tracker.parent_run(f"train-{cfg.study}"):
        tracker.log_source_tables(cfg.tasks)
        result = train_ensemble(ds, cfg, tracker)
        log_results(tracker, ds, result)
        packaged = PackagedEnsemble.from_training(result.model, ds, cfg, cfg.explain.background)
        if cfg.explain.enabled:
            explain_sample(tracker, ds, packaged, result, cfg)
        registered = None
        if cfg.registry.enabled:
            registered = log_and_register(packaged, {t: cfg.tasks[t].source for t in ds.tasks}, cfg.registry.name, result.scores)
    print(summary(ds, result.scores), flush=True)
    if registered:
        version, promoted = registered
        print(f"registered {cfg.registry.name} version {version.version}"
              + (f"; it is now models:/{cfg.registry.name}@champion" if promoted else "; @champion kept (it scores higher)"))
    return result.scores["r2_mean"]
