"""Alloy compositions -> atomic fractions.

Rules for element cells (wt.% or at.% tables):
- a blank cell means the element is absent (0);
- ``<x`` (below detection limit x) counts as ``x / 2``, the usual half-detection-limit rule;
- any other text, a negative amount or an all-zero row is an error naming the file, row and column.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from mtl.errors import DataError

_BELOW_LIMIT = re.compile(r"^\s*<\s*([0-9.]+(?:[eE][-+]?\d+)?)\s*$")
_FORMULA_TOKEN = re.compile(r"([A-Z][a-z]?)\s*([0-9]*\.?[0-9]*(?:[eE][-+]?\d+)?)")


def periodic_table():
    from pymatgen.core.periodic_table import Element  # imported late: ~0.5 s

    return Element


def check_element(symbol: str, where: str) -> None:
    if not periodic_table().is_valid_symbol(symbol):
        raise DataError(f"{where}: '{symbol}' is not a chemical element; fix the symbol in the data.")


def line_of(row_index: int) -> str:
    """Human row reference for a 0-based data row of a CSV with one header line."""
    return f"row {row_index + 1} (line {row_index + 2})"


def parse_formula(formula: str, where: str) -> dict[str, float]:
    """Parse a molar-ratio formula such as ``Al0.25 Co1 Fe1 Ni1`` into atomic fractions."""
    text = str(formula).strip() if not pd.isna(formula) else ""
    compact = text.replace(" ", "")
    tokens = _FORMULA_TOKEN.findall(compact)
    if not text or "".join(sym + amt for sym, amt in tokens) != compact:
        raise DataError(f"{where}: formula '{text}' does not parse; expected element symbols with amounts, e.g. 'Al0.25 Co1 Fe1 Ni1'.")
    amounts: dict[str, float] = {}
    for symbol, amount in tokens:
        check_element(symbol, f"{where}: formula '{text}'")
        amounts[symbol] = amounts.get(symbol, 0.0) + (float(amount) if amount else 1.0)
    return _normalised(amounts, where)


def _normalised(amounts: dict[str, float], where: str) -> dict[str, float]:
    negative = [el for el, v in amounts.items() if v < 0]
    if negative:
        raise DataError(f"{where}: negative amount for {', '.join(negative)}; compositions must be non-negative.")
    total = sum(amounts.values())
    if total <= 0:
        raise DataError(f"{where}: composition is all zero; give at least one element a positive amount or drop the row.")
    return {el: v / total for el, v in amounts.items() if v > 0}


def parse_cell(value, where: str) -> float:
    """One element cell: number, blank (0) or ``<x`` (x/2)."""
    if pd.isna(value) or (isinstance(value, str) and not value.strip()):
        return 0.0
    if isinstance(value, (int, float, np.number)):
        return float(value)
    match = _BELOW_LIMIT.match(value)
    if match:
        return float(match.group(1)) / 2.0
    try:
        number = float(value)
    except ValueError:
        number = np.nan
    if not np.isfinite(number):  # text, or 'nan' / 'inf' spelt out
        raise DataError(f"{where}: cannot read '{value}' as an amount; use a number, a blank or '<limit'.")
    return number


def fractions_from_formulas(formulas: pd.Series, source: str, column: str) -> list[dict[str, float]]:
    return [parse_formula(f, f"{source}, {line_of(i)}, column '{column}'") for i, f in zip(formulas.index, formulas)]


def fractions_from_element_columns(table: pd.DataFrame, columns: list[str], basis: str, source: str) -> list[dict[str, float]]:
    """Rows of element amounts (``basis`` 'wt' or 'at' percent) -> atomic fractions."""
    if basis not in ("wt", "at"):
        raise DataError(f"{source}: composition basis '{basis}' is unknown; use 'wt' or 'at'.")
    for col in columns:
        check_element(col, f"{source}, column '{col}'")
    amounts = np.column_stack([parse_column(table[col], source, col) for col in columns]).reshape(len(table), len(columns))
    if basis == "wt":
        amounts = amounts / np.array([float(periodic_table()(col).atomic_mass) for col in columns])
    for i, row in zip(table.index, amounts):
        if (row < 0).any() or row.sum() <= 0:  # the error wording lives in one place
            _normalised(dict(zip(columns, row)), f"{source}, {line_of(i)}")
    fractions = amounts / amounts.sum(axis=1, keepdims=True)
    return [{col: float(v) for col, v in zip(columns, row) if v > 0} for row in fractions]


def parse_column(cells: pd.Series, source: str, column: str) -> np.ndarray:
    """:func:`parse_cell` for a whole column at once; the first bad cell is reported by row.
    Plain numbers take the fast path; only the other cells go through the text rules."""
    values = pd.to_numeric(cells, errors="coerce")
    rest = values.isna().to_numpy()
    if rest.any():
        text = cells[rest].astype(str).str.strip()
        blank = (text == "") | cells[rest].isna().to_numpy()
        parsed = pd.to_numeric(text, errors="coerce")
        below = pd.to_numeric(text.str.extract(_BELOW_LIMIT.pattern, expand=False), errors="coerce") / 2.0
        values[rest] = parsed.where(parsed.notna(), below).where(~blank, 0.0).to_numpy()
    bad = np.flatnonzero(values.isna().to_numpy())
    if bad.size:
        i = cells.index[bad[0]]
        parse_cell(cells.loc[i], f"{source}, {line_of(i)}, column '{column}'")  # raises with the standard message
    return values.to_numpy(dtype=float)


def composition_key(fractions: dict[str, float]) -> str:
    """Canonical text of a composition at 0.1 at.% resolution: equal keys mean the same alloy."""
    rounded = ((el, round(100 * v, 1)) for el, v in sorted(fractions.items()))
    return " ".join(f"{el}{v:g}" for el, v in rounded if v > 0)
