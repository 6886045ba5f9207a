"""SHAP per task for the ensemble, in the target's units.

One ``shap.PermutationExplainer`` pass explains every member and every task at once: the
explained function returns each member's prediction for each task (MC dropout off), so the values
come out per member, and the ensemble's are their mean (SHAP values are linear in the model).
Permutation SHAP is exactly additive: base value + sum of values = prediction, for every row.

Explained columns: the shared features (atomic fractions, descriptors) and each task's test
conditions (``pitting:Test Temp (C)``); a task's values for another task's conditions are 0.
Columns constant over the background and the explained rows cannot change any prediction: they
get 0 without being evaluated, which keeps the cost to the columns that vary.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mtl.ensemble import EnsembleModel

log = logging.getLogger(__name__)


@dataclass
class Explanation:
    values: np.ndarray  # (n, F, K, T) per member and task
    base: np.ndarray  # (K, T) expected prediction over the background
    data: np.ndarray  # (n, F) explained rows, raw values
    columns: list[str]  # F names
    tasks: list[str]

    def own_columns(self, task: str) -> np.ndarray:
        """Columns that can affect ``task``: shared features and its own conditions."""
        return np.array([":" not in c or c.startswith(f"{task}:") for c in self.columns])

    def task_values(self, task: str, member: int | None = None) -> tuple[np.ndarray, float]:
        t = self.tasks.index(task)
        if member is None:
            return self.values[:, :, :, t].mean(axis=2), float(self.base[:, t].mean())
        return self.values[:, :, member, t], float(self.base[member, t])

    def to_shap(self, task: str, member: int | None = None):
        import shap

        values, base = self.task_values(task, member)
        own = self.own_columns(task)
        return shap.Explanation(values=values[:, own], base_values=np.full(len(values), base), data=self.data[:, own],
                                feature_names=[c for c, o in zip(self.columns, own) if o])

    def importance(self, task: str, member: int | None = None) -> pd.Series:
        """Mean |SHAP| per column, largest first."""
        values, _ = self.task_values(task, member)
        own = self.own_columns(task)
        return pd.Series(np.abs(values[:, own]).mean(axis=0), index=[c for c, o in zip(self.columns, own) if o]).sort_values(ascending=False)

    def long_table(self, task: str, member: int | None = None) -> pd.DataFrame:
        """One row per (explained row, column): value of the column and its SHAP value."""
        values, base = self.task_values(task, member)
        n, f = values.shape
        return pd.DataFrame({"row": np.repeat(np.arange(n), f), "feature": np.tile(self.columns, n),
                             "value": self.data.ravel(), "shap": values.ravel(), "base": base})

    def wide_table(self, tasks: list[str]) -> pd.DataFrame:
        """``<task>_shap_<column>`` for each task's own columns, and ``<task>_shap_base``."""
        out = {}
        for task in tasks:
            values, base = self.task_values(task)
            out[f"{task}_shap_base"] = np.full(len(values), base)
            for j in np.flatnonzero(self.own_columns(task)):
                out[f"{task}_shap_{self.columns[j]}"] = values[:, j]
        return pd.DataFrame(out)


def joint_columns(feature_names: list[str], input_names: dict[str, list[str]]) -> list[str]:
    return list(feature_names) + [f"{task}:{name}" for task, names in input_names.items() for name in names]


def explain_rows(model: EnsembleModel, feature_names: list[str], input_names: dict[str, list[str]], features: np.ndarray,
                 inputs: dict[str, np.ndarray], background_features: np.ndarray, background_inputs: dict[str, np.ndarray],
                 seed: int = 0) -> Explanation:
    """SHAP values of ``features``/``inputs`` rows against the background rows (raw values)."""
    import shap

    tasks, d = model.tasks, features.shape[1]
    widths = [len(input_names[t]) for t in tasks]
    joined = np.hstack([features, *(inputs[t] for t in tasks)])
    background = np.hstack([background_features, *(background_inputs[t] for t in tasks)])
    both = np.vstack([joined, background])
    varying = np.flatnonzero(~np.all((both == both[:1]) | (np.isnan(both) & np.isnan(both[:1])), axis=0))
    k, n_tasks = len(model.preps), len(tasks)

    def member_outputs(x_varying: np.ndarray) -> np.ndarray:
        full = np.repeat(joined[:1], len(x_varying), axis=0)
        full[:, varying] = x_varying
        parts = np.split(full[:, d:], np.cumsum(widths)[:-1], axis=1)
        means, _ = model.member_predictions(full[:, :d], dict(zip(tasks, parts)), mc_samples=0)  # (K, m, T)
        return means.transpose(1, 0, 2).reshape(len(x_varying), k * n_tasks)

    values = np.zeros((len(joined), both.shape[1], k, n_tasks))
    base = member_outputs(background[:, varying]).mean(axis=0).reshape(k, n_tasks)
    if len(varying):
        masker = shap.maskers.Independent(background[:, varying], max_samples=len(background))
        explainer = shap.PermutationExplainer(member_outputs, masker, seed=seed)
        result = explainer(joined[:, varying], max_evals=2 * len(varying) + 1, batch_size=2 * len(varying) + 1,
                           silent=True)
        values[:, varying] = result.values.reshape(len(joined), len(varying), k, n_tasks)
        base = np.asarray(result.base_values)[0].reshape(k, n_tasks)
    return Explanation(values=values, base=base, data=joined, columns=joint_columns(feature_names, input_names), tasks=tasks)


def summary_figures(explanation: Explanation, task: str, unit: str, member: int | None = None,
                    kinds: tuple[str, ...] = ("beeswarm", "bar")) -> dict[str, object]:
    """Beeswarm and bar plots of one task's SHAP values, as matplotlib figures keyed by name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    figures = {}
    plots = {"beeswarm": shap.plots.beeswarm, "bar": shap.plots.bar}
    for kind in kinds:
        plot = plots[kind]
        plot(explanation.to_shap(task, member), max_display=15, show=False)
        fig = plt.gcf()
        fig.suptitle(f"SHAP {task} ({unit})" + ("" if member is None else f", member {member}"))
        fig.set_size_inches(8, 6)
        fig.tight_layout()
        figures[kind] = fig
    return figures


def log_explanation(tracker, explanation: Explanation, units: dict[str, str], member_runs: dict[int, str]) -> None:
    """Per task: beeswarm and bar plots, the values and the top features on the active run; a bar
    plot and the feature importance on each member's run (``member_runs``: member -> run id)."""
    for task in explanation.tasks:
        for kind, fig in summary_figures(explanation, task, units[task]).items():
            tracker.log_figure(fig, f"shap/{task}_{kind}.png")
        tracker.log_table(explanation.long_table(task), f"shap/{task}_values.json")
        tracker.log_dict(explanation.importance(task).head(15).to_dict(), f"shap/{task}_top_features.json")
        for member, run_id in member_runs.items():
            fig = summary_figures(explanation, task, units[task], member, kinds=("bar",))["bar"]
            tracker.log_figure(fig, f"shap/{task}_bar.png", run_id=run_id)
            tracker.log_dict(explanation.importance(task, member).to_dict(), f"shap/{task}_importance.json", run_id=run_id)
    log.info("SHAP top features: %s", "; ".join(
        f"{task}: {', '.join(explanation.importance(task).head(3).index)}" for task in explanation.tasks))
