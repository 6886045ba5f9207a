"""Figures people would rather look at than tables (returned, never shown or saved here)."""

from __future__ import annotations

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless: figures go to MLflow, not a window
    import matplotlib.pyplot as plt

    return plt


def parity_plot(y_true: np.ndarray, y_pred: np.ndarray, y_std: np.ndarray, task: str, unit: str, r2: float):
    """Measured vs out-of-fold predicted, error bars = predictive std (ensemble + MC dropout)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5), dpi=110)
    ax.errorbar(y_true, y_pred, yerr=y_std, fmt="o", ms=3, alpha=0.6, elinewidth=0.6, capsize=0)
    lo, hi = np.nanmin([y_true.min(), y_pred.min()]), np.nanmax([y_true.max(), y_pred.max()])
    pad = 0.05 * (hi - lo)
    ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], "k--", lw=1)
    ax.set(xlim=(lo - pad, hi + pad), ylim=(lo - pad, hi + pad), xlabel=f"measured {task} [{unit}]",
           ylabel=f"predicted {task} [{unit}]", title=f"{task}: out-of-fold R² = {r2:.3f} (n={len(y_true)})")
    ax.set_aspect("equal")
    fig.tight_layout()
    return fig


def optimisation_trace(objectives: list[float], initial_design: int, title: str):
    """Objective of each trial in order, the best so far, and where the random design ends."""
    plt = _pyplot()

    y = np.asarray(objectives, dtype=float)
    trials = np.arange(1, len(y) + 1)
    best = np.fmax.accumulate(np.where(np.isfinite(y), y, -np.inf))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.scatter(trials, y, s=22, color="tab:blue", label="trial")
    ax.step(trials, np.where(np.isfinite(best), best, np.nan), where="post", color="tab:red", label="best so far")
    if initial_design < len(y):
        ax.axvline(initial_design + 0.5, color="grey", linestyle=":", label="end of random design")
    ax.set_xlabel("trial")
    ax.set_ylabel("objective: inner-CV R², mean over tasks")
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig
