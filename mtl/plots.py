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
