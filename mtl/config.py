"""Structured schemas for the Hydra configs in ``conf/``: a misspelt key fails here, by name."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mtl.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONF_DIR = PROJECT_ROOT / "conf"

# ${mtl_root:} in conf/ points at the project, so the shipped data is found from any directory.
OmegaConf.register_new_resolver("mtl_root", lambda: str(PROJECT_ROOT), replace=True)


@dataclass
class FilterConfig:
    column: str = "???"
    op: str = "=="  # ==, !=, in, not_in, >=, <=, not_blank
    value: Any = None


@dataclass
class TargetConfig:
    column: str = "???"
    unit: str = ""
    censored: str = "drop"  # '>800' style values: drop | bound (use the bound as the value)


@dataclass
class CompositionConfig:
    format: str = "formula"  # formula | element_columns
    column: str = "FORMULA"  # formula column (format=formula)
    columns: List[str] = field(default_factory=list)  # element columns (format=element_columns)
    basis: str = "at"  # wt | at percent (format=element_columns)


@dataclass
class TaskConfig:
    source: str = "???"
    target: TargetConfig = field(default_factory=TargetConfig)
    composition: CompositionConfig = field(default_factory=CompositionConfig)
    inputs: List[str] = field(default_factory=list)  # task-only inputs, fed to this task's head
    missing_inputs: str = "impute"  # impute (in-fold median + missing indicator) | drop
    filters: List[FilterConfig] = field(default_factory=list)
    learning_rate: float = 1e-3


@dataclass
class DataConfig:
    raw_dir: str = "data/raw"
    cache_dir: str = ".cache/mtl"
    descriptors: Optional[str] = "WenAlloys"  # a matminer composition featurizer, or null


@dataclass
class LayersConfig:
    layers: int = 2
    units: int = 64
    dropout: float = 0.1


@dataclass
class ModelConfig:
    activation: str = "relu"
    trunk: LayersConfig = field(default_factory=LayersConfig)
    head: LayersConfig = field(default_factory=lambda: LayersConfig(layers=1, units=32))


@dataclass
class ScheduleConfig:
    name: str = "round_robin"  # round_robin | blocks | proportional
    epochs_per_block: int = 1  # blocks: epochs each task trains before the next task


@dataclass
class TrainerConfig:
    max_epochs: int = 300
    batch_size: int = 32
    loss: str = "mse"  # mse | mae | huber
    patience: int = 30  # epochs without validation improvement before stopping
    validation_fraction: float = 0.15  # of the training fold's composition groups
    mc_samples: int = 20  # MC-dropout passes at prediction time (0 = off)
    log_every: int = 25  # progress line every N epochs
    jit_compile: bool = True  # compile each epoch with XLA: slower to start, ~2x faster per step on CPU


@dataclass
class EnsembleConfig:
    folds: int = 5
    repeats: int = 1


@dataclass
class TrackingConfig:
    uri: Optional[str] = None  # null: $MLFLOW_TRACKING_URI, else sqlite under ./mlruns
    experiment: str = "sparse-mtl"


@dataclass
class ExplainConfig:
    enabled: bool = True  # SHAP per task (and per member) at the end of training
    rows: int = 100  # rows explained, sampled from the dataset
    background: int = 25  # training rows the SHAP expectation is taken over (stored with the model)
    permutations: int = 1  # antithetic permutation pairs per row: more = less noisy values, linearly slower


@dataclass
class RegistryConfig:
    enabled: bool = True  # log the ensemble as a pyfunc model and register a version
    name: str = "sparse-mtl"


@dataclass
class TrainConfig:
    study: str = "flagship"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    tasks: Dict[str, TaskConfig] = field(default_factory=dict)
    model: ModelConfig = field(default_factory=ModelConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    explain: ExplainConfig = field(default_factory=ExplainConfig)
    registry: RegistryConfig = field(default_factory=RegistryConfig)


@dataclass
class TunerConfig:
    strategy: str = "bayesian"  # bayesian (GPyOpt) | random
    n_trials: int = 30
    initial_design: int = 8  # random points before the surrogate takes over
    acquisition: str = "EI"  # EI | MPI | LCB
    batch_size: int = 1  # proposals per round (> 1: GPyOpt local penalisation)
    workers: int = 1  # trials evaluated in parallel processes
    inner_folds: int = 3  # cross-validation inside the outer training part: the objective
    outer_folds: int = 5  # 1/outer_folds of the compositions are held out from tuning
    outer_fold: int = 0
    seed: int = 0
    resume: bool = True  # continue the latest study with the same settings, from MLflow


@dataclass
class TuneConfig(TrainConfig):
    search_space: Dict[str, Any] = field(default_factory=dict)
    tuner: TunerConfig = field(default_factory=TunerConfig)


def validated(cfg: DictConfig, schema: type = TrainConfig) -> DictConfig:
    """Merge ``cfg`` onto the schema: unknown keys and wrong types become a ConfigError."""
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), cfg)
        OmegaConf.resolve(merged)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", None) or ""
        raise ConfigError(f"config: {exc.msg if hasattr(exc, 'msg') else exc} (key '{key}'); check the spelling against conf/.") from None
    missing = sorted(OmegaConf.missing_keys(merged))
    if missing:
        raise ConfigError(f"config: required keys have no value: {', '.join(missing)}.")
    if not merged.tasks:
        raise ConfigError("config: no tasks; list at least one under 'tasks' (e.g. task@tasks.hardness=hardness).")
    bad = [name for name in merged.tasks if not re.fullmatch(r"[A-Za-z][A-Za-z0-9]*(_[A-Za-z0-9]+)*", name)]
    if bad:
        raise ConfigError(f"config: task name(s) {bad} must be letters and digits joined by single underscores.")
    return merged
