"""Scalers and imputers, fitted on the training rows of one fold only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import QuantileTransformer, StandardScaler

from mtl.data.dataset import MultiTaskDataset


QUANTILE_BOUND = 1e-7  # sklearn's BOUNDS_THRESHOLD


def quantile_normal(x: np.ndarray, quantiles: np.ndarray, references: np.ndarray) -> np.ndarray:
    """``QuantileTransformer(output_distribution="normal").transform`` for NaN-free ``x``, same
    numbers, one ``ndtri`` over the whole matrix instead of scipy.stats per column: prediction and
    SHAP call this on many rows, and sklearn's version dominated their time."""
    from scipy.special import ndtri

    uniform = np.empty(x.shape, dtype=float)
    for j in range(x.shape[1]):
        col, q = x[:, j], quantiles[:, j]
        u = 0.5 * (np.interp(col, q, references) - np.interp(-col, -q[::-1], -references[::-1]))
        u[col + QUANTILE_BOUND > q[-1]] = 1.0
        u[col - QUANTILE_BOUND < q[0]] = 0.0
        uniform[:, j] = u
    with np.errstate(divide="ignore"):
        normal = ndtri(uniform)
    return np.clip(normal, ndtri(QUANTILE_BOUND - np.spacing(1)), ndtri(1 - (QUANTILE_BOUND - np.spacing(1))))


def _imputer_and_scaler(values: np.ndarray) -> tuple[SimpleImputer | None, StandardScaler | None]:
    if values.shape[1] == 0:  # a task without inputs of its own
        return None, None
    imputer = SimpleImputer(strategy="median", keep_empty_features=True).fit(values)
    return imputer, StandardScaler().fit(imputer.transform(values))


@dataclass
class FoldPreprocessor:
    """Shared features: median-impute (descriptors can be missing), then map each feature through
    its in-fold quantiles onto a normal distribution: alloy descriptors are heavy-tailed (Yang's
    omega reaches 1e7 where the mixing enthalpy is near 0), and one such value in a test fold
    would otherwise throw the network far outside anything it was trained on.
    Task-only inputs: median-impute, standardise, and append one missing-indicator per column
    (always, so every fold has the same input width). Targets: standardised per task."""

    tasks: list[str]
    feature_imputer: SimpleImputer
    feature_scaler: QuantileTransformer
    input_imputers: dict[str, SimpleImputer | None]
    input_scalers: dict[str, StandardScaler | None]
    target_mean: np.ndarray  # (T,)
    target_std: np.ndarray  # (T,)

    @classmethod
    def fit(cls, ds: MultiTaskDataset, rows: np.ndarray) -> FoldPreprocessor:
        feature_imputer = SimpleImputer(strategy="median", keep_empty_features=True).fit(ds.features[rows])
        feature_scaler = QuantileTransformer(n_quantiles=min(1000, len(rows)), output_distribution="normal")
        feature_scaler.fit(feature_imputer.transform(ds.features[rows]))
        input_imputers, input_scalers = {}, {}
        for task in ds.tasks:
            labelled = rows[ds.task_rows(task, rows)]
            input_imputers[task], input_scalers[task] = _imputer_and_scaler(ds.inputs[task][labelled])
        y = ds.y[rows]
        std = np.nanstd(y, axis=0)
        return cls(tasks=list(ds.tasks), feature_imputer=feature_imputer, feature_scaler=feature_scaler,
                   input_imputers=input_imputers, input_scalers=input_scalers,
                   target_mean=np.nanmean(y, axis=0), target_std=np.where(std > 0, std, 1.0))

    def features(self, features: np.ndarray) -> np.ndarray:
        imputed = self.feature_imputer.transform(features)
        return quantile_normal(imputed, self.feature_scaler.quantiles_, self.feature_scaler.references_).astype(np.float32)

    def task_inputs(self, task: str, inputs: np.ndarray) -> np.ndarray:
        if self.input_scalers[task] is None:
            return np.zeros((len(inputs), 0), dtype=np.float32)
        missing = np.isnan(inputs).astype(np.float32)
        scaled = self.input_scalers[task].transform(self.input_imputers[task].transform(inputs))
        return np.hstack([scaled.astype(np.float32), missing])

    def scale_targets(self, y: np.ndarray) -> np.ndarray:
        return ((y - self.target_mean) / self.target_std).astype(np.float32)

    def unscale_targets(self, y: np.ndarray) -> np.ndarray:
        """(..., T) standardised -> target units."""
        return y * self.target_std + self.target_mean

    def input_width(self, task: str) -> int:
        scaler = self.input_scalers[task]
        return 0 if scaler is None else 2 * len(scaler.scale_)

    def to_dict(self) -> dict:
        """Everything ``features``/``task_inputs``/``unscale_targets`` need, as plain JSON values."""
        q = self.feature_scaler
        return {
            "tasks": self.tasks,
            "feature_medians": self.feature_imputer.statistics_.tolist(),
            "quantiles": q.quantiles_.tolist(), "references": q.references_.tolist(),
            "inputs": {t: None if self.input_scalers[t] is None else {
                "medians": self.input_imputers[t].statistics_.tolist(),
                "mean": self.input_scalers[t].mean_.tolist(), "scale": self.input_scalers[t].scale_.tolist()}
                for t in self.tasks},
            "target_mean": self.target_mean.tolist(), "target_std": self.target_std.tolist(),
        }

    @classmethod
    def from_dict(cls, spec: dict) -> FoldPreprocessor:
        """The fitted transformers rebuilt from :meth:`to_dict` (sklearn objects, no unpickling)."""
        feature_imputer = _fitted_imputer(spec["feature_medians"])
        quantiles = np.asarray(spec["quantiles"])
        scaler = QuantileTransformer(n_quantiles=len(quantiles), output_distribution="normal")
        scaler.quantiles_, scaler.references_ = quantiles, np.asarray(spec["references"])
        scaler.n_quantiles_, scaler.n_features_in_ = len(quantiles), quantiles.shape[1]
        input_imputers, input_scalers = {}, {}
        for task, values in spec["inputs"].items():
            if values is None:
                input_imputers[task] = input_scalers[task] = None
                continue
            input_imputers[task] = _fitted_imputer(values["medians"])
            input_scalers[task] = StandardScaler()
            input_scalers[task].mean_, input_scalers[task].scale_ = np.asarray(values["mean"]), np.asarray(values["scale"])
            input_scalers[task].var_ = input_scalers[task].scale_ ** 2
            input_scalers[task].n_features_in_ = len(values["mean"])
        return cls(tasks=list(spec["tasks"]), feature_imputer=feature_imputer, feature_scaler=scaler,
                   input_imputers=input_imputers, input_scalers=input_scalers,
                   target_mean=np.asarray(spec["target_mean"]), target_std=np.asarray(spec["target_std"]))


def _fitted_imputer(medians: list[float]) -> SimpleImputer:
    """A median imputer with its statistics set, as if fitted on data with these medians."""
    imputer = SimpleImputer(strategy="median", keep_empty_features=True)
    imputer.fit(np.asarray(medians, dtype=float)[None, :])
    return imputer
