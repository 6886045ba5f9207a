"""The search space: config keys to tune, each with a type and a range (``conf/search_space/``).

A search-space file mirrors the training config; a leaf is a mapping with a ``type``:
    continuous  low, high, optional log: true      (a float)
    integer     low, high, optional log: true      (every integer in [low, high] can be proposed)
    categorical choices: [a, b, ...]               (at least two)
``tasks.*`` stands for every configured task (``tasks.*.learning_rate``: one rate per task).

GPyOpt sees continuous values (log10 when ``log``), integers as a discrete set (of their log10
when ``log``) and categoricals as an index; :meth:`SearchSpace.decode` turns a point back into
config values and :meth:`SearchSpace.encode` does the reverse (for trials read back from MLflow).
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from mtl.errors import ConfigError

KINDS = ("continuous", "integer", "categorical")


@dataclass(frozen=True)
class Param:
    key: str  # dotted config key, e.g. "model.trunk.units"
    kind: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple = ()

    def domain(self) -> dict:
        if self.kind == "continuous":
            bounds = (math.log10(self.low), math.log10(self.high)) if self.log else (self.low, self.high)
            return {"name": self.key, "type": "continuous", "domain": bounds}
        if self.kind == "integer":
            values = np.arange(int(self.low), int(self.high) + 1)
            return {"name": self.key, "type": "discrete", "domain": tuple(np.log10(values) if self.log else values.astype(float))}
        return {"name": self.key, "type": "categorical", "domain": tuple(range(len(self.choices)))}

    def decode(self, x: float) -> Any:
        if self.kind == "continuous":
            return float(10**x if self.log else x)
        if self.kind == "integer":
            return int(min(self.high, max(self.low, round(10**x if self.log else x))))
        return self.choices[int(round(x))]

    def encode(self, value: Any) -> float:
        if self.kind == "categorical":
            return float([str(c) for c in self.choices].index(str(value)))
        return math.log10(float(value)) if self.log else float(value)

    def parse(self, text: str) -> Any:
        """A value as MLflow stores it (text) -> the config value."""
        if self.kind == "categorical":
            return self.choices[[str(c) for c in self.choices].index(text)]
        return int(float(text)) if self.kind == "integer" else float(text)


class SearchSpace:
    def __init__(self, params: list[Param]):
        self.params = params

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.params]

    def domain(self) -> list[dict]:
        return [p.domain() for p in self.params]

    def decode(self, x: np.ndarray) -> dict[str, Any]:
        return {p.key: p.decode(v) for p, v in zip(self.params, x)}

    def encode(self, assignment: dict[str, Any]) -> np.ndarray:
        return np.array([p.encode(assignment[p.key]) for p in self.params])

    def overrides(self, assignment: dict[str, Any]) -> list[str]:
        """Hydra command-line overrides for one point (``++``: set even where a config file leaves
        the key to the schema's default, e.g. ``schedule.epochs_per_block`` under round_robin)."""
        return [f"++{key}={value}" for key, value in assignment.items()]

    def apply(self, cfg: DictConfig, assignment: dict[str, Any]) -> DictConfig:
        """A copy of ``cfg`` with the point's values set."""
        out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
        for key, value in assignment.items():
            OmegaConf.update(out, key, value, merge=False)
        return out

    @classmethod
    def from_config(cls, node, base_cfg: DictConfig, where: str = "search_space") -> SearchSpace:
        """Parse and check a search-space node against the training config it will modify."""
        spec = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
        leaves = list(_leaves(spec or {}, ""))
        if not leaves:
            raise ConfigError(f"{where}: no hyperparameters; give at least one key with a 'type' (see conf/search_space/).")
        params = []
        for key, leaf in leaves:
            for expanded in _expand_tasks(key, base_cfg, where):
                _check_key_exists(expanded, base_cfg, where)
                params.append(_param(expanded, leaf, f"{where}.{key}"))
        return cls(params)


def _leaves(node: dict, prefix: str):
    for name, child in node.items():
        key = f"{prefix}{name}"
        if isinstance(child, dict) and "type" in child:
            yield key, child
        elif isinstance(child, dict):
            yield from _leaves(child, f"{key}.")
        else:
            raise ConfigError(f"search_space.{key}: expected a mapping with a 'type' ({', '.join(KINDS)}), got {child!r}.")


def _expand_tasks(key: str, cfg: DictConfig, where: str) -> list[str]:
    if not key.startswith("tasks.*."):
        return [key]
    return [key.replace("*", task, 1) for task in cfg.tasks]


def _check_key_exists(key: str, cfg: DictConfig, where: str) -> None:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(cfg, parent) if parent else cfg
    if isinstance(node, DictConfig) and leaf in node and not isinstance(node[leaf], DictConfig):
        return
    siblings = list(node.keys()) if isinstance(node, DictConfig) else []
    close = difflib.get_close_matches(leaf, [str(s) for s in siblings], n=1)
    hint = f" (did you mean '{parent}.{close[0]}'?)" if close else ""
    raise ConfigError(f"{where}: unknown hyperparameter '{key}': no such key in the training config{hint}.")


def _param(key: str, leaf: dict, where: str) -> Param:
    kind = leaf.get("type")
    extra = set(leaf) - {"type", "low", "high", "log", "choices"}
    if kind not in KINDS:
        raise ConfigError(f"{where}: type '{kind}' is unknown; use {', '.join(KINDS)}.")
    if extra:
        raise ConfigError(f"{where}: unknown field(s) {sorted(extra)}; a {kind} takes " +
                          ("'choices'." if kind == "categorical" else "'low', 'high' and optionally 'log'."))
    if kind == "categorical":
        choices = tuple(leaf.get("choices") or ())
        if len(set(map(str, choices))) < 2:
            raise ConfigError(f"{where}: a categorical needs at least two different choices (got {list(choices)}); "
                              "fix the value in the config instead of searching it.")
        return Param(key, kind, choices=choices)
    low, high, log = leaf.get("low"), leaf.get("high"), bool(leaf.get("log", False))
    if low is None or high is None:
        raise ConfigError(f"{where}: a {kind} needs 'low' and 'high'.")
    if not low < high:
        raise ConfigError(f"{where}: empty or inverted range [{low}, {high}]; 'low' must be below 'high'.")
    if kind == "integer" and (float(low) != int(low) or float(high) != int(high)):
        raise ConfigError(f"{where}: integer bounds must be whole numbers (got [{low}, {high}]).")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log-scale range must be positive (got low={low}).")
    return Param(key, kind, float(low), float(high), log)
