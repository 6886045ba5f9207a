"""Scalers and imputers, fitted on the training rows of one fold only."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.impute import SimpleImputer
from sklearn.preprocessing import QuantileTransformer, StandardScaler

from mtl.data.dataset import MultiTaskDataset


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
        return self.feature_scaler.transform(self.feature_imputer.transform(features)).astype(np.float32)

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
