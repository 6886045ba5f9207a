"""One task: its table, the rules that turn raw cells into a clean target, and its task-only inputs.

Target rules (counts are returned, logged and tracked):
- a number is used as it is;
- a censored value (``>800``, ``<-500``) is dropped, or with ``censored: bound`` replaced by its bound;
- any other text (``Transpassive``) and blanks are dropped: no number can stand in for them.
Task-only inputs: text in a numeric input column (``steady state``) counts as missing; missing
inputs are imputed inside the training fold with a missing indicator, or the rows are dropped
(``missing_inputs: drop``).
"""

from __future__ import annotations

import difflib
import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mtl.data.composition import fractions_from_element_columns, fractions_from_formulas
from mtl.errors import DataError

log = logging.getLogger(__name__)

_CENSORED = re.compile(r"^\s*([<>])\s*(-?[0-9.]+)\s*$")


@dataclass
class TaskTable:
    """The clean rows of one task, indexed by their 0-based row in the source file."""

    name: str
    source: str
    unit: str
    rows: np.ndarray  # 0-based data rows of the source file
    fractions: list[dict[str, float]]
    y: np.ndarray
    inputs: pd.DataFrame  # task-only inputs, NaN where missing
    counts: dict[str, int] = field(default_factory=dict)


def read_table(path: str | Path, task: str) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"task '{task}': source file '{path}' not found; check 'source' in conf/task/{task}.yaml or data.raw_dir.")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise DataError(f"task '{task}': cannot read '{path}' as CSV: {exc}") from None
    return table


def require_columns(table: pd.DataFrame, columns: list[str], source: str, task: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        hints = []
        for col in missing:
            close = difflib.get_close_matches(col, table.columns, n=1)
            hints.append(f"'{col}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
        raise DataError(f"task '{task}': {source} has no column {', '.join(hints)}; fix the task config or the file.")


def apply_filters(table: pd.DataFrame, filters, source: str, task: str) -> pd.DataFrame:
    for f in filters:
        cells = table[f.column]
        if f.op == "not_blank":
            keep = cells.str.strip() != ""
        elif f.op in ("in", "not_in"):
            keep = cells.isin([str(v) for v in f.value])
            keep = keep if f.op == "in" else ~keep
        elif f.op in ("==", "!="):
            keep = cells == str(f.value)
            keep = keep if f.op == "==" else ~keep
        elif f.op in (">=", "<="):
            numbers = pd.to_numeric(cells, errors="coerce")
            keep = numbers >= float(f.value) if f.op == ">=" else numbers <= float(f.value)
        else:
            raise DataError(f"task '{task}': filter on '{f.column}' has unknown op '{f.op}'; use ==, !=, in, not_in, >=, <= or not_blank.")
        table = table[keep.to_numpy()]
    return table


def parse_targets(cells: pd.Series, censored: str, task: str) -> tuple[pd.Series, Counter]:
    """Apply the target rules; returns the numeric targets (NaN = drop) and what was dropped."""
    if censored not in ("drop", "bound"):
        raise DataError(f"task '{task}': target.censored is '{censored}'; use 'drop' or 'bound'.")
    values, dropped = [], Counter()
    for cell in cells:
        text = cell.strip()
        try:
            values.append(float(text))
            continue
        except ValueError:
            pass
        match = _CENSORED.match(text)
        if match and censored == "bound":
            values.append(float(match.group(2)))
            dropped["censored_as_bound"] += 1  # counted, kept
            continue
        values.append(np.nan)
        dropped["dropped_censored" if match else ("dropped_blank" if not text else f"dropped_text:{text}")] += 1
    return pd.Series(values, index=cells.index), dropped


def load_task(name: str, cfg) -> TaskTable:
    """Read and clean one task's table according to its config (a ``TaskConfig``)."""
    source = str(cfg.source)
    table = read_table(source, name)
    comp = cfg.composition
    comp_columns = [comp.column] if comp.format == "formula" else list(comp.columns)
    if comp.format not in ("formula", "element_columns"):
        raise DataError(f"task '{name}': composition.format '{comp.format}' is unknown; use 'formula' or 'element_columns'.")
    require_columns(table, [cfg.target.column, *comp_columns, *cfg.inputs, *(f.column for f in cfg.filters)], source, name)
    counts: Counter = Counter(rows_read=len(table))

    table = apply_filters(table, cfg.filters, source, name)
    counts["dropped_by_filters"] = counts["rows_read"] - len(table)
    y, dropped = parse_targets(table[cfg.target.column], cfg.target.censored, name)
    counts.update(dropped)
    table, y = table[y.notna()], y[y.notna()]

    inputs = table[list(cfg.inputs)].apply(lambda col: pd.to_numeric(col.str.strip().replace("", np.nan), errors="coerce"))
    text_inputs = (table[list(cfg.inputs)].apply(lambda c: c.str.strip() != "") & inputs.isna()).sum()
    for col, n in text_inputs.items():
        if n:
            counts[f"input_text_as_missing:{col}"] = int(n)
    if cfg.missing_inputs == "drop":
        complete = inputs.notna().all(axis=1)
        counts["dropped_missing_inputs"] = int((~complete).sum())
        table, y, inputs = table[complete], y[complete], inputs[complete]
    elif cfg.missing_inputs != "impute":
        raise DataError(f"task '{name}': missing_inputs is '{cfg.missing_inputs}'; use 'impute' or 'drop'.")
    else:
        counts["rows_with_missing_inputs"] = int(inputs.isna().any(axis=1).sum())

    if len(table) == 0:
        raise DataError(f"task '{name}': no labelled rows left in {source} after the filters and target rules ({dict(counts)}); loosen the filters or check the target column.")
    if comp.format == "formula":
        fractions = fractions_from_formulas(table[comp.column], source, comp.column)
    else:
        fractions = fractions_from_element_columns(table, comp_columns, comp.basis, source)
    counts["rows_used"] = len(table)
    log.info("task %s: %d of %d rows used from %s (%s)", name, len(table), counts["rows_read"], source,
             ", ".join(f"{k}={v}" for k, v in counts.items() if k not in ("rows_read", "rows_used") and v))
    return TaskTable(name=name, source=source, unit=cfg.target.unit, rows=table.index.to_numpy(), fractions=fractions,
                     y=y.to_numpy(dtype=float), inputs=inputs.reset_index(drop=True), counts=dict(counts))
