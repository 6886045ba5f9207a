"""SHAP per task for the ensemble, in the target's units.

Permutation SHAP (the estimator of ``shap.PermutationExplainer``) explains every member and every
task in one pass: the explained function returns each member's prediction for each task (MC
dropout off), so the values come out per member, and the ensemble's are their mean (SHAP values
are linear in the model). It is exactly additive: base value + sum of values = prediction, for
every row. It runs here, batched over rows, coalitions and background rows in a few large model
calls, because ``shap``'s own explainer spends ~15 s compiling numba code in every new process
and calls the model once per row; ``shap`` draws the plots.

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
from mtl.trainer import MemberArrays

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


def permutation_shap(coalition_values, n_rows: int, n_cols: int, permutations: int, rng: np.random.Generator,
                     rows_per_call: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """Permutation SHAP with antithetic pairs (each random order of the columns is walked forward
    and backward): the estimator of ``shap.PermutationExplainer``, batched over rows and coalitions.

    ``coalition_values(rows (r,), inside (r, S, F) bool) -> (r, S, O)``: the expected output
    when the columns inside a coalition come from the row and the others from the background.
    Returns values (n, F, O) and the base value (O,). Each walk from the empty coalition to the
    full row telescopes, so base + sum of values = the row's output, exactly."""
    values, base = None, None
    steps = np.arange(n_cols + 1)
    for start in range(0, n_rows, rows_per_call):
        rows = np.arange(start, min(start + rows_per_call, n_rows))
        for _ in range(permutations):
            order = np.argsort(rng.random((len(rows), n_cols)), axis=1)
            for walk in (order, order[:, ::-1]):
                rank = np.argsort(walk, axis=1)  # position of each column in the walk
                out = coalition_values(rows, rank[:, None, :] < steps[None, :, None])  # (r, F+1, O)
                if values is None:
                    values, base = np.zeros((n_rows, n_cols, out.shape[2])), out[0, 0]
                np.add.at(values, (rows[:, None], walk), np.diff(out, axis=1))  # what each column of the walk added
    return values / (2 * permutations), base


def explain_rows(model: EnsembleModel, feature_names: list[str], input_names: dict[str, list[str]], features: np.ndarray,
                 inputs: dict[str, np.ndarray], background_features: np.ndarray, background_inputs: dict[str, np.ndarray],
                 permutations: int = 1, seed: int = 0) -> Explanation:
    """SHAP values of ``features``/``inputs`` rows against the background rows (raw values).

    Every preprocessing step works column by column, so a coalition's row is assembled from the
    row's and the background's already-preprocessed columns (per member): the model is the only
    thing evaluated per coalition."""
    tasks, d = model.tasks, features.shape[1]
    widths = [len(input_names[t]) for t in tasks]
    joined = np.hstack([features, *(inputs[t] for t in tasks)])
    background = np.hstack([background_features, *(background_inputs[t] for t in tasks)])
    both = np.vstack([joined, background])
    varying = np.flatnonzero(~np.all((both == both[:1]) | (np.isnan(both) & np.isnan(both[:1])), axis=0))
    row_arrays, bg_arrays = model.member_arrays(features, inputs), model.member_arrays(background_features, background_inputs)
    offsets = np.cumsum([d, *widths])
    k, n_tasks, n_bg = len(model.preps), len(tasks), len(background)

    def mix(row_part: np.ndarray, bg_part: np.ndarray, rows: np.ndarray, inside: np.ndarray) -> np.ndarray:
        """(K, r*S*B, w): the row's columns where ``inside`` (r, S, w), the background's elsewhere."""
        mixed = np.where(inside[None, :, :, None, :], row_part[:, rows, None, None, :], bg_part[:, None, None, :, :])
        return mixed.reshape(k, len(rows) * inside.shape[1] * n_bg, row_part.shape[2])

    def coalition_values(rows: np.ndarray, inside_varying: np.ndarray) -> np.ndarray:
        inside = np.ones((*inside_varying.shape[:2], joined.shape[1]), bool)  # constant columns: either side is the same
        inside[:, :, varying] = inside_varying
        arrays = MemberArrays(features=mix(row_arrays.features, bg_arrays.features, rows, inside[:, :, :d]), inputs={},
                              y=np.zeros(0))
        for t, task in enumerate(tasks):
            own = inside[:, :, offsets[t]:offsets[t + 1]]
            if widths[t]:  # a condition's scaled value and its missing indicator travel together
                own = np.concatenate([own, own], axis=2)
            arrays.inputs[task] = mix(row_arrays.inputs[task], bg_arrays.inputs[task], rows, own)
        means, _ = model.predict_arrays(arrays)  # (K, r*S*B, T)
        means = means.reshape(k, len(rows), inside.shape[1], n_bg, n_tasks).mean(axis=3)
        return means.transpose(1, 2, 0, 3).reshape(len(rows), inside.shape[1], k * n_tasks)

    values = np.zeros((len(joined), both.shape[1], k, n_tasks))
    found, base = permutation_shap(coalition_values, len(joined), len(varying), permutations, np.random.default_rng(seed))
    values[:, varying] = found.reshape(len(joined), len(varying), k, n_tasks)
    return Explanation(values=values, base=base.reshape(k, n_tasks), data=joined,
                       columns=joint_columns(feature_names, input_names), tasks=tasks)


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
