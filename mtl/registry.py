"""The MLflow Model Registry: log the packaged ensemble as a pyfunc model (from code, with its
artifacts), register a version, and move the ``champion`` alias only on improvement.

Each version carries its held-out scores as tags (``heldout_r2_mean``, ``heldout_r2_<task>``);
a new version becomes champion only if it predicts the same tasks (tag ``tasks``) and its
``heldout_r2_mean`` beats the champion's. These are scores on the data each run held out.
"""

from __future__ import annotations

import importlib.metadata
import logging
import tempfile
from pathlib import Path

import pandas as pd

from mtl.config import PROJECT_ROOT
from mtl.errors import MTLError

log = logging.getLogger(__name__)

CHAMPION = "champion"
SCORE_TAG = "heldout_r2_mean"
TASKS_TAG = "tasks"
RUNTIME_PACKAGES = ["tensorflow-cpu", "keras", "numpy", "pandas", "scikit-learn", "mlflow", "shap", "matminer", "pymatgen"]


def pip_requirements() -> list[str]:
    """The packages the model needs at load time, pinned to the versions it was trained with."""
    pins = []
    for name in RUNTIME_PACKAGES:
        try:
            pins.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return pins


def signature(packaged, example: pd.DataFrame, output: pd.DataFrame):
    """Every composition and condition column, optional and of any type (the model checks them
    itself, with errors naming rows); params ``explain``, ``mc_samples``, ``tasks``."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, ParamSchema, ParamSpec, Schema

    columns = []
    for spec in packaged.spec["tasks"].values():
        comp = spec["composition"]
        columns += [comp["column"]] if comp["format"] == "formula" else comp["columns"]
        columns += spec["inputs"]
    inputs = Schema([ColSpec(AnyType(), c, required=False) for c in dict.fromkeys(columns)])
    outputs = Schema([ColSpec("double", c) for c in output.columns])
    params = ParamSchema([ParamSpec("explain", "boolean", False), ParamSpec("mc_samples", "long", -1),
                          ParamSpec("tasks", "string", "")])
    return ModelSignature(inputs=inputs, outputs=outputs, params=params)


def input_example(packaged, sources: dict[str, str], rows: int = 3) -> pd.DataFrame:
    """A few raw rows from a source table that has every task's condition columns (blank ones added otherwise)."""
    needed = [c for spec in packaged.spec["tasks"].values() for c in spec["inputs"]]
    tables = [pd.read_csv(path, dtype=str, keep_default_na=False, nrows=rows) for path in dict.fromkeys(sources.values())]
    table = next((t for t in tables if set(needed) <= set(t.columns)), tables[0])
    table = table.assign(**{c: "" for c in needed if c not in table.columns})
    targets = [spec["target"] for spec in packaged.spec["tasks"].values()]
    return table.drop(columns=[c for c in targets if c in table.columns])


def log_and_register(packaged, sources: dict[str, str], name: str, scores: dict[str, float]):
    """Log the model to the active run, register it as a new version of ``name``, tag its scores
    and move ``champion`` to it if it beats the current champion. Returns (version, promoted)."""
    import mlflow

    example = input_example(packaged, sources)
    output = packaged.predict_table(example)
    with tempfile.TemporaryDirectory() as tmp:
        directory = packaged.save(Path(tmp) / "ensemble")
        info = mlflow.pyfunc.log_model(
            name="model", python_model=str(PROJECT_ROOT / "mtl" / "pyfunc_model.py"), artifacts={"ensemble": str(directory)},
            code_paths=[str(PROJECT_ROOT / "mtl")], signature=signature(packaged, example, output), input_example=example,
            pip_requirements=pip_requirements())
    version = mlflow.register_model(info.model_uri, name)
    client = mlflow.MlflowClient()
    for key, value in scores.items():
        if key.startswith("r2_"):
            client.set_model_version_tag(name, version.version, f"heldout_{key}", f"{value:.6f}")
    tasks = ",".join(packaged.tasks)
    client.set_model_version_tag(name, version.version, TASKS_TAG, tasks)
    promoted = promote_if_better(client, name, version.version, scores["r2_mean"], tasks)
    return version, promoted


def champion_version(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def promote_if_better(client, name: str, version: str, score: float, tasks: str) -> bool:
    """Move @champion to ``version`` if there is none, or if the champion predicts the same tasks
    and scores lower. A model of other tasks never replaces it automatically (`mtl promote` can)."""
    current = champion_version(client, name)
    if current is not None:
        best, their_tasks = current.tags.get(SCORE_TAG), current.tags.get(TASKS_TAG, tasks)
        if their_tasks != tasks:
            log.info("registry: %s version %s predicts %s, champion version %s predicts %s; alias kept (mtl promote %s "
                     "to switch)", name, version, tasks, current.version, their_tasks, version)
            return False
        if best is not None and score <= float(best):
            log.info("registry: %s version %s (held-out mean R² %.4f) does not beat champion version %s (%s); alias kept",
                     name, version, score, current.version, best)
            return False
    client.set_registered_model_alias(name, CHAMPION, version)
    log.info("registry: %s version %s is now @%s (held-out mean R² %.4f%s)", name, version, CHAMPION, score,
             "" if current is None else f", was version {current.version} at {current.tags.get(SCORE_TAG)}")
    return True


def promote(name: str, version: str) -> None:
    """Point ``champion`` at ``version`` by hand."""
    import mlflow
    from mlflow.exceptions import MlflowException

    client = mlflow.MlflowClient()
    try:
        client.get_model_version(name, version)
    except MlflowException:
        known = [str(v.version) for v in client.search_model_versions(f"name='{name}'")]
        raise MTLError(f"registry: model '{name}' has no version {version}; versions: {', '.join(sorted(known, key=int)) or 'none'}.") from None
    client.set_registered_model_alias(name, CHAMPION, version)
