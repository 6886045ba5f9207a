"""The whole trained ensemble as one self-contained directory, and predictions from raw-format tables.

Directory layout (everything JSON, CSV or ``.keras``; nothing pickled):
    network.keras, network.json   the stacked member networks (:class:`mtl.model.EnsembleNet`)
    preprocessing.json            each member's in-fold imputers, scalers and target scaling
    spec.json                     tasks (units, composition format, condition columns), elements,
                                  descriptor featurizer, MC-dropout passes
    descriptors.csv               descriptors of the training compositions (others are computed)
    background.json               a sample of training rows: the SHAP background

This is what the MLflow pyfunc model (:mod:`mtl.pyfunc_model`) loads.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd

from mtl.data.composition import composition_key
from mtl.data.rows import check_known_elements, composition_format, condition_inputs, fraction_matrix, read_fractions
from mtl.ensemble import EnsembleModel
from mtl.errors import DataError
from mtl.model import EnsembleNet
from mtl.preprocessing import FoldPreprocessor

log = logging.getLogger(__name__)

OUTPUT_PARTS = ("mean", "std", "std_ensemble", "std_mc")


def task_spec(task_cfg) -> dict:
    comp = task_cfg.composition
    return {"unit": task_cfg.target.unit, "target": task_cfg.target.column, "inputs": list(task_cfg.inputs),
            "composition": {"format": comp.format, "column": comp.column, "columns": list(comp.columns), "basis": comp.basis}}


class PackagedEnsemble:
    def __init__(self, model: EnsembleModel, spec: dict, descriptors: pd.DataFrame | None, background: dict):
        self.model, self.spec, self.descriptors, self.background = model, spec, descriptors, background
        self.tasks = list(spec["tasks"])

    @classmethod
    def from_training(cls, model: EnsembleModel, ds, cfg, background_rows: int = 100) -> PackagedEnsemble:
        elements = [n.removeprefix("frac_") for n in ds.feature_names if n.startswith("frac_")]
        descriptor_names = ds.feature_names[len(elements):]
        descriptors = None
        if descriptor_names:
            descriptors = pd.DataFrame(ds.features[:, len(elements):], index=ds.compositions, columns=descriptor_names)
            descriptors = descriptors[~descriptors.index.duplicated()]
        spec = {"tasks": {t: task_spec(cfg.tasks[t]) for t in ds.tasks}, "elements": elements,
                "descriptor_columns": descriptor_names, "featurizer": cfg.data.descriptors,
                "mc_samples": int(cfg.trainer.mc_samples), "seed": int(cfg.seed),
                "permutations": int(cfg.explain.permutations)}
        rows = np.random.default_rng(cfg.seed).choice(len(ds), size=min(background_rows, len(ds)), replace=False)
        background = {"features": ds.features[rows].tolist(), "inputs": {t: ds.inputs[t][rows].tolist() for t in ds.tasks}}
        return cls(model, spec, descriptors, background)

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        self.model.net.save(directory)
        (directory / "preprocessing.json").write_text(json.dumps([p.to_dict() for p in self.model.preps]))
        (directory / "spec.json").write_text(json.dumps(self.spec, indent=1))
        (directory / "background.json").write_text(json.dumps(self.background))
        if self.descriptors is not None:
            self.descriptors.to_csv(directory / "descriptors.csv")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> PackagedEnsemble:
        directory = Path(directory)
        preps = [FoldPreprocessor.from_dict(p) for p in json.loads((directory / "preprocessing.json").read_text())]
        model = EnsembleModel(EnsembleNet.load(directory), preps)
        descriptors = None
        if (directory / "descriptors.csv").exists():
            descriptors = pd.read_csv(directory / "descriptors.csv", index_col=0, float_precision="round_trip")
        return cls(model, json.loads((directory / "spec.json").read_text()), descriptors,
                   json.loads((directory / "background.json").read_text()))

    def model_inputs(self, frame: pd.DataFrame, tasks: list[str], source: str) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Raw-format rows -> shared features (n, d) and every task's condition inputs."""
        if len(frame) == 0:
            raise DataError(f"{source}: no rows to predict.")
        compositions = {t: s["composition"] for t, s in self.spec["tasks"].items()}
        fractions = read_fractions(frame, composition_format(frame, compositions, source), source)
        check_known_elements(fractions, self.spec["elements"], source)
        features = fraction_matrix(fractions, self.spec["elements"])
        if self.spec["descriptor_columns"]:
            features = np.hstack([features, self._descriptors([composition_key(f) for f in fractions], fractions)])
        inputs = {t: condition_inputs(frame, t, self.spec["tasks"][t]["inputs"], source) if t in tasks
                  else np.full((len(frame), len(self.spec["tasks"][t]["inputs"])), np.nan) for t in self.tasks}
        return features, inputs

    def _descriptors(self, keys: list[str], fractions: list[dict[str, float]]) -> np.ndarray:
        """Known compositions from the training table; new ones computed (matminer) once each and
        kept for later calls (a served model sees the same alloys again)."""
        from mtl.data.descriptors import featurize

        known = self.descriptors if self.descriptors is not None else pd.DataFrame(columns=self.spec["descriptor_columns"])
        new = {k: f for k, f in zip(keys, fractions) if k not in known.index}
        if new:
            log.info("descriptors: computing %s for %d compositions not seen in training", self.spec["featurizer"], len(new))
            known = self.descriptors = pd.concat([known, featurize(new, self.spec["featurizer"])[known.columns]])
        return known.loc[keys].to_numpy(dtype=float)

    @property
    def feature_names(self) -> list[str]:
        return [f"frac_{el}" for el in self.spec["elements"]] + list(self.spec["descriptor_columns"])

    def explain(self, features: np.ndarray, inputs: dict[str, np.ndarray]):
        """SHAP values (:class:`mtl.explain.Explanation`) against the stored training background."""
        from mtl.explain import explain_rows

        background = self.background
        return explain_rows(self.model, self.feature_names, {t: self.spec["tasks"][t]["inputs"] for t in self.tasks},
                            features, inputs, np.asarray(background["features"], dtype=float),
                            {t: np.asarray(v, dtype=float).reshape(len(background["features"]), -1)
                             for t, v in background["inputs"].items()}, self.spec.get("permutations", 1), self.spec["seed"])

    def predict_table(self, frame: pd.DataFrame, tasks: list[str] | None = None, mc_samples: int | None = None,
                      explain: bool = False, source: str = "input") -> pd.DataFrame:
        """One row per input row: ``<task>_mean``, ``_std``, ``_std_ensemble``, ``_std_mc`` per task, in
        target units; with ``explain``, ``<task>_shap_<feature>`` columns and ``<task>_shap_base``."""
        tasks = self.tasks if not tasks else tasks
        unknown = [t for t in tasks if t not in self.tasks]
        if unknown:
            raise DataError(f"unknown task(s) {unknown}; this model predicts {', '.join(self.tasks)}.")
        features, inputs = self.model_inputs(frame, tasks, source)
        mc = self.spec["mc_samples"] if mc_samples is None else mc_samples
        prediction = self.model.predict(features, inputs, mc)
        out = {}
        for task in tasks:
            t = self.tasks.index(task)
            for part in OUTPUT_PARTS:
                out[f"{task}_{part}"] = getattr(prediction, part)[:, t]
        result = pd.DataFrame(out, index=frame.index)
        bad = result.columns[result.isna().any()].tolist()
        if bad:  # never silently: NaN here means a bug or an input the checks above missed
            raise DataError(f"{source}: the model produced NaN in {bad} for rows {np.flatnonzero(result.isna().any(axis=1))[:10].tolist()}.")
        if explain:
            shap_frame = self.explain(features, inputs).wide_table(tasks)
            result = pd.concat([result, shap_frame.set_axis(frame.index)], axis=1)
        return result
