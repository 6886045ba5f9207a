"""Raw-format rows -> what a trained model reads, for prediction.

A table to predict is in the format of a task's source table (the shipped CSVs work as they are):
a formula column or element columns, plus the test conditions of the tasks to predict; target
columns, when present, are ignored. The rules are the training rules (blank element cell = 0,
``<x`` = x/2, text in a condition column = missing), and every offending row is reported at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mtl.data.composition import fractions_from_element_columns, line_of, parse_formula, periodic_table
from mtl.errors import DataError

MAX_LISTED = 10  # offending rows listed in one error message


def _raise_collected(problems: list[str], what: str, fix: str) -> None:
    if problems:
        more = f"\n  ... and {len(problems) - MAX_LISTED} more" if len(problems) > MAX_LISTED else ""
        raise DataError(f"{what} ({len(problems)} rows):\n  " + "\n  ".join(problems[:MAX_LISTED]) + more + f"\n{fix}")


def composition_format(frame: pd.DataFrame, compositions: dict[str, dict], source: str) -> dict:
    """The first task's composition format that the table's columns match."""
    for spec in compositions.values():
        if spec["format"] == "formula" and spec["column"] in frame.columns:
            return spec
        if spec["format"] == "element_columns" and set(spec["columns"]) & set(frame.columns):
            return spec
    expected = "; or ".join(f"a '{s['column']}' column" if s["format"] == "formula" else
                            f"element columns ({', '.join(s['columns'][:6])}, ...)" for s in compositions.values())
    raise DataError(f"{source}: no composition columns; expected {expected}.")


def read_fractions(frame: pd.DataFrame, spec: dict, source: str) -> list[dict[str, float]]:
    """Atomic fractions of every row, or one error listing every row that does not parse."""
    fractions, problems = [], []
    if spec["format"] == "formula":
        for i, formula in enumerate(frame[spec["column"]]):
            try:
                fractions.append(parse_formula(formula, f"{line_of(i)}, column '{spec['column']}'"))
            except DataError as exc:
                problems.append(str(exc))
    else:
        columns = [c for c in spec["columns"] if c in frame.columns]
        reject_unknown_element_columns(frame, columns, source)
        numbered = frame.set_axis(range(len(frame)))
        try:  # the whole table at once; only a failure pays for the row-by-row pass that lists every bad row
            return fractions_from_element_columns(numbered, columns, spec["basis"], source)
        except DataError:
            for i in range(len(frame)):
                try:
                    fractions_from_element_columns(numbered.iloc[[i]], columns, spec["basis"], source)
                except DataError as exc:
                    problems.append(str(exc).removeprefix(f"{source}, "))
    _raise_collected(problems, f"{source}: compositions that cannot be read", "Fix these cells or drop the rows.")
    return fractions


def reject_unknown_element_columns(frame: pd.DataFrame, known: list[str], source: str) -> None:
    """An element column the model does not read must be empty: otherwise part of the alloy would be ignored."""
    element = periodic_table()
    extra = [c for c in frame.columns if c not in known and element.is_valid_symbol(c)]
    problems = []
    for column in extra:
        amounts = pd.to_numeric(frame[column].astype(str).str.strip().str.lstrip("<").replace("", "0"), errors="coerce")
        problems += [f"{line_of(i)}: {column} = {frame[column].iloc[i]}" for i in np.flatnonzero(~(amounts == 0))]
    _raise_collected(problems, f"{source}: amounts of elements the model was never trained on",
                     f"The model reads the element columns {', '.join(known)}; it cannot predict alloys with other elements.")


def check_known_elements(fractions: list[dict[str, float]], elements: list[str], source: str) -> None:
    problems = [f"{line_of(i)}: {', '.join(sorted(set(f) - set(elements)))}"
                for i, f in enumerate(fractions) if set(f) - set(elements)]
    _raise_collected(problems, f"{source}: elements the model was never trained on",
                     f"The model knows {', '.join(elements)}; it cannot predict alloys with other elements.")


def fraction_matrix(fractions: list[dict[str, float]], elements: list[str]) -> np.ndarray:
    return np.array([[f.get(el, 0.0) for el in elements] for f in fractions], dtype=float).reshape(len(fractions), len(elements))


def condition_inputs(frame: pd.DataFrame, task: str, columns: list[str], source: str) -> np.ndarray:
    """A task's test conditions as numbers; text or blank cells are missing (imputed, as in training)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: task '{task}' needs the condition column(s) {', '.join(repr(c) for c in missing)}; "
                        "add them (blank cells are imputed with the training median), or predict other tasks only "
                        "(mtl predict --tasks ..., or params={'tasks': '...'}).")
    values = frame[columns].apply(lambda col: pd.to_numeric(col.astype(str).str.strip().replace("", np.nan), errors="coerce"))
    return values.to_numpy(dtype=float).reshape(len(frame), len(columns))
