"""The MLflow pyfunc model, logged from code: MLflow stores this file and runs it at load time,
so no Python object is pickled. The ensemble itself comes from the ``ensemble`` artifact
directory (``.keras`` and JSON, see :mod:`mtl.packaged`).

Input: a DataFrame in the format of a raw task table. Output: ``<task>_mean``, ``<task>_std``,
``<task>_std_ensemble``, ``<task>_std_mc`` per task. Params: ``explain`` (add SHAP columns),
``mc_samples`` (-1: the model's own), ``tasks`` (comma-separated; empty: all).
"""

import mlflow
from mlflow.pyfunc import PythonModel


class EnsemblePyfunc(PythonModel):
    def load_context(self, context):
        from mtl.packaged import PackagedEnsemble

        self.ensemble = PackagedEnsemble.load(context.artifacts["ensemble"])

    def predict(self, context, model_input, params=None):
        params = params or {}
        tasks = [t.strip() for t in str(params.get("tasks") or "").split(",") if t.strip()]
        mc_samples = int(params.get("mc_samples", -1))
        return self.ensemble.predict_table(model_input, tasks=tasks or None, mc_samples=None if mc_samples < 0 else mc_samples,
                                           explain=bool(params.get("explain", False)))


mlflow.models.set_model(EnsemblePyfunc())
