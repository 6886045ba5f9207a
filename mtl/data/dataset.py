"""Several task tables -> one multi-task dataset: one input space, a label mask per task,
task-only inputs per task, and a composition group per row for grouped splitting."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mtl.data.composition import composition_key
from mtl.data.descriptors import compute_descriptors
from mtl.data.tasks import TaskTable, load_task

log = logging.getLogger(__name__)


@dataclass
class MultiTaskDataset:
    tasks: list[str]
    units: dict[str, str]
    features: np.ndarray  # (n, d) shared inputs: atomic fractions, then descriptors
    feature_names: list[str]
    y: np.ndarray  # (n, T) targets, NaN where a row has no label for that task
    inputs: dict[str, np.ndarray]  # task -> (n, k_t) task-only inputs, NaN where missing
    input_names: dict[str, list[str]]
    groups: np.ndarray  # (n,) composition group id
    compositions: list[str]  # (n,) composition key of each row
    origin: list[tuple[str, int]]  # (n,) (source file, 0-based data row)

    @property
    def mask(self) -> np.ndarray:
        return ~np.isnan(self.y)

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, rows: np.ndarray) -> MultiTaskDataset:
        """The given rows only (e.g. an outer training split), as a dataset of their own."""
        return MultiTaskDataset(tasks=self.tasks, units=self.units, features=self.features[rows],
                                feature_names=self.feature_names, y=self.y[rows],
                                inputs={t: v[rows] for t, v in self.inputs.items()}, input_names=self.input_names,
                                groups=self.groups[rows], compositions=[self.compositions[r] for r in rows],
                                origin=[self.origin[r] for r in rows])

    def select_tasks(self, tasks: list[str]) -> MultiTaskDataset:
        """Only these tasks, and only the rows labelled for at least one of them (same features)."""
        columns = [self.tasks.index(t) for t in tasks]
        rows = np.flatnonzero(self.mask[:, columns].any(axis=1))
        ds = self.subset(rows)
        return MultiTaskDataset(tasks=list(tasks), units={t: self.units[t] for t in tasks}, features=ds.features,
                                feature_names=ds.feature_names, y=ds.y[:, columns], inputs={t: ds.inputs[t] for t in tasks},
                                input_names={t: ds.input_names[t] for t in tasks}, groups=ds.groups,
                                compositions=ds.compositions, origin=ds.origin)

    def task_rows(self, task: str, rows: np.ndarray | None = None) -> np.ndarray:
        """Indices (into ``rows`` when given) of the rows labelled for ``task``."""
        labelled = self.mask[:, self.tasks.index(task)]
        return np.flatnonzero(labelled if rows is None else labelled[rows])


def _element_order(symbols: set[str]) -> list[str]:
    from pymatgen.core.periodic_table import Element

    return sorted(symbols, key=lambda s: Element(s).Z)


def build_dataset(tables: list[TaskTable], descriptors: pd.DataFrame | None = None) -> MultiTaskDataset:
    """Union the task tables; rows from the same source row (one alloy, two targets) are merged."""
    tasks = [t.name for t in tables]
    row_of: dict[tuple[str, int], int] = {}
    fractions: list[dict[str, float]] = []
    for table in tables:
        for r, frac in zip(table.rows, table.fractions):
            if (table.source, int(r)) not in row_of:
                row_of[(table.source, int(r))] = len(fractions)
                fractions.append(frac)
    n = len(fractions)
    y = np.full((n, len(tasks)), np.nan)
    inputs, input_names = {}, {}
    for t, table in enumerate(tables):
        idx = np.array([row_of[(table.source, int(r))] for r in table.rows])
        y[idx, t] = table.y
        inputs[table.name] = np.full((n, table.inputs.shape[1]), np.nan)
        inputs[table.name][idx] = table.inputs.to_numpy(dtype=float)
        input_names[table.name] = list(table.inputs.columns)

    elements = _element_order({el for f in fractions for el in f})
    frac_matrix = np.array([[f.get(el, 0.0) for el in elements] for f in fractions])
    keys = [composition_key(f) for f in fractions]
    features, names = frac_matrix, [f"frac_{el}" for el in elements]
    if descriptors is not None:
        features = np.hstack([features, descriptors.loc[keys].to_numpy(dtype=float)])
        names += list(descriptors.columns)
    groups = pd.factorize(pd.Series(keys))[0]
    log.info("dataset: %d rows, %d compositions, %d features; labels per task: %s", n, groups.max() + 1, len(names),
             ", ".join(f"{t}={int((~np.isnan(y[:, i])).sum())}" for i, t in enumerate(tasks)))
    return MultiTaskDataset(tasks=tasks, units={t.name: t.unit for t in tables}, features=features, feature_names=names,
                            y=y, inputs=inputs, input_names=input_names, groups=groups, compositions=keys,
                            origin=sorted(row_of, key=row_of.get))


def load_dataset(cfg) -> MultiTaskDataset:
    """Config (``TrainConfig``) -> dataset: read every task, add descriptors from the cache."""
    tables = [load_task(name, task_cfg) for name, task_cfg in cfg.tasks.items()]
    descriptors = None
    if cfg.data.descriptors:
        unique = {composition_key(f): f for t in tables for f in t.fractions}
        descriptors = compute_descriptors(unique, cfg.data.descriptors, cfg.data.cache_dir)
    return build_dataset(tables, descriptors)
