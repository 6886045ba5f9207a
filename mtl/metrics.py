"""Per-task regression scores, skipping rows without a label for the task."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error


def task_scores(y_true: np.ndarray, y_pred: np.ndarray, tasks: list[str]) -> dict[str, float]:
    """``{r2_<task>, rmse_<task>, mae_<task>}`` over the labelled rows of each task."""
    scores = {}
    for t, task in enumerate(tasks):
        labelled = ~np.isnan(y_true[:, t]) & ~np.isnan(y_pred[:, t])
        if labelled.sum() < 2:
            continue
        yt, yp = y_true[labelled, t], y_pred[labelled, t]
        scores[f"r2_{task}"] = float(r2_score(yt, yp))
        scores[f"rmse_{task}"] = float(root_mean_squared_error(yt, yp))
        scores[f"mae_{task}"] = float(mean_absolute_error(yt, yp))
    r2s = [v for k, v in scores.items() if k.startswith("r2_")]
    if r2s:
        scores["r2_mean"] = float(np.mean(r2s))
    return scores
