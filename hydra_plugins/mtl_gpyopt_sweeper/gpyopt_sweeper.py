"""``hydra/sweeper=gpyopt``: Bayesian optimisation (GPyOpt) over Hydra multirun jobs.

    mtl train -m hydra/sweeper=gpyopt hydra.sweeper.n_trials=20 hydra.sweeper.batch_size=2 \
        [hydra/launcher=joblib] [hydra.sweeper.search_space=small]

Each round proposes ``batch_size`` points of the search space (``conf/search_space/<name>.yaml``,
the same files ``mtl tune`` reads), launches them as jobs through the configured launcher (basic,
or joblib for parallel processes) and reads back the objective each job returns (``mtl train``
returns its out-of-fold mean R²). Command-line overrides apply to every job; ``trial_overrides``
too (by default trials skip SHAP and the registry: a sweep explores, ``mtl tune`` registers).

Parallel jobs writing one SQLite store: the schema and the experiment are created here, once,
before any job starts, and the store is opened with a busy timeout so a locked database is waited
for, not an error. For many parallel workers, use a tracking server (``mlflow server``) instead.
"""

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, List, Optional

import numpy as np
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


@dataclass
class GPyOptSweeperConf:
    _target_: str = "hydra_plugins.mtl_gpyopt_sweeper.gpyopt_sweeper.GPyOptSweeper"
    n_trials: int = 20
    batch_size: int = 1
    initial_design: int = 5
    acquisition: str = "EI"
    seed: int = 0
    search_space: str = "default"  # conf/search_space/<name>.yaml
    trial_overrides: List[str] = field(default_factory=lambda: ["explain.enabled=false", "registry.enabled=false"])


ConfigStore.instance().store(group="hydra/sweeper", name="gpyopt", node=GPyOptSweeperConf, provider="sparse-mtl")


class GPyOptSweeper(Sweeper):
    def __init__(self, n_trials: int, batch_size: int, initial_design: int, acquisition: str, seed: int,
                 search_space: str, trial_overrides: List[str]):
        self.n_trials, self.batch_size, self.initial_design = n_trials, batch_size, initial_design
        self.acquisition, self.seed, self.search_space_name = acquisition, seed, search_space
        self.trial_overrides = list(trial_overrides)
        self.config: Optional[DictConfig] = None
        self.launcher = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(hydra_context=hydra_context, task_function=task_function,
                                                                config=config)

    def _space(self):
        from mtl.config import CONF_DIR, validated
        from mtl.errors import ConfigError
        from mtl.tuning.space import SearchSpace

        path = CONF_DIR / "search_space" / f"{self.search_space_name}.yaml"
        if not path.is_file():
            known = ", ".join(sorted(p.stem for p in path.parent.glob("*.yaml")))
            raise ConfigError(f"hydra.sweeper.search_space: no {path}; choose one of {known}.")
        job_cfg = validated(OmegaConf.masked_copy(self.config, [k for k in self.config if k != "hydra"]))
        return SearchSpace.from_config(OmegaConf.load(path), job_cfg, where=f"search_space/{path.name}"), job_cfg

    def sweep(self, arguments: List[str]) -> Any:
        from mtl.tracking import prepare_store
        from mtl.tuning.optimizer import next_points
        from mtl.tuning.study import check_tuner

        space, job_cfg = self._space()
        tuner = OmegaConf.create({"acquisition": self.acquisition, "strategy": "bayesian", "n_trials": self.n_trials,
                                  "initial_design": self.initial_design, "batch_size": self.batch_size, "workers": 1,
                                  "inner_folds": 2, "seed": self.seed})
        check_tuner(tuner)
        prepare_store(job_cfg)  # schema and experiment exist before parallel jobs write to them
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        assignments, objectives, returns = [], [], []
        while len(assignments) < self.n_trials:
            batch = next_points(space, tuner, assignments, objectives)
            jobs = [[*arguments, *self.trial_overrides, *space.overrides(a)] for a in batch]
            self.validate_batch_is_legal(jobs)
            results = self.launcher.launch(jobs, initial_job_idx=len(assignments))
            for assignment, result in zip(batch, results):
                value = float(result.return_value) if result.status == JobStatus.COMPLETED else math.nan
                assignments.append(assignment)
                objectives.append(value)
                best = np.nanmax(objectives) if np.isfinite(objectives).any() else math.nan
                log.info("trial %d/%d  objective %.4f  best %.4f  | %s", len(assignments), self.n_trials, value, best,
                         " ".join(space.overrides(assignment)))
            returns.append(results)
        self._save_results(sweep_dir, space, objectives, assignments)
        return returns

    def _save_results(self, sweep_dir: Path, space: Any, objectives: List[float], assignments: List[dict]) -> None:
        best = int(np.nanargmax(objectives)) if np.isfinite(objectives).any() else None
        results = {"name": "gpyopt", "trials": [{"objective": o, "overrides": space.overrides(a)}
                                                for o, a in zip(objectives, assignments)]}
        if best is not None:
            results.update(best_objective=objectives[best], best_overrides=space.overrides(assignments[best]))
        OmegaConf.save(OmegaConf.create(results), sweep_dir / "optimization_results.yaml")
        log.info("best of %d trials: %s -> %s", len(objectives), results.get("best_objective"), results.get("best_overrides"))
