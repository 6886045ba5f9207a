import pandas as pd
import pytest

from mtl.data.composition import composition_key, fractions_from_element_columns, parse_cell, parse_formula
from mtl.errors import DataError


def test_formula_becomes_atomic_fractions():
    fractions = parse_formula("Al0.25 Co1 Fe1 Ni1", "f.csv")
    assert fractions == pytest.approx({"Al": 0.25 / 3.25, "Co": 1 / 3.25, "Fe": 1 / 3.25, "Ni": 1 / 3.25})


def test_formula_without_amount_counts_one():
    assert parse_formula("CoCrFeNi", "f.csv") == pytest.approx({el: 0.25 for el in ["Co", "Cr", "Fe", "Ni"]})


@pytest.mark.parametrize("formula, message", [("Al0.5 Xx1", "'Xx' is not a chemical element"),
                                              ("Al0.5 + Co", "does not parse"),
                                              ("", "does not parse"),
                                              ("Al0 Co0", "all zero")])
def test_bad_formula_is_named(formula, message):
    with pytest.raises(DataError, match=message) as err:
        parse_formula(formula, "alloys.csv, row 3 (line 4), column 'FORMULA'")
    assert "alloys.csv, row 3" in str(err.value)


def test_weight_percent_becomes_atomic_fraction():
    table = pd.DataFrame({"Fe": [50.0], "Ni": [50.0]})
    fractions = fractions_from_element_columns(table, ["Fe", "Ni"], "wt", "p.csv")[0]
    fe, ni = 50 / 55.845, 50 / 58.6934  # wt.% / atomic mass
    assert fractions["Fe"] == pytest.approx(fe / (fe + ni), rel=1e-4)
    assert fractions["Ni"] == pytest.approx(ni / (fe + ni), rel=1e-4)


def test_cell_rules_blank_and_below_detection_limit():
    assert parse_cell("", "x") == 0.0
    assert parse_cell(float("nan"), "x") == 0.0
    assert parse_cell("<0.003", "x") == pytest.approx(0.0015)
    assert parse_cell("12.5", "x") == 12.5
    with pytest.raises(DataError, match="cannot read 'trace'"):
        parse_cell("trace", "p.csv, row 1 (line 2), column 'S'")


def test_negative_and_all_zero_rows_name_the_row():
    table = pd.DataFrame({"Fe": [70.0, "", 80.0], "Cr": [30.0, "", -1.0]})
    with pytest.raises(DataError, match=r"row 2 \(line 3\).*all zero"):
        fractions_from_element_columns(table.iloc[:2], ["Fe", "Cr"], "wt", "p.csv")
    with pytest.raises(DataError, match=r"row 3 \(line 4\).*negative amount for Cr"):
        fractions_from_element_columns(table.iloc[[0, 2]], ["Fe", "Cr"], "wt", "p.csv")


def test_unknown_element_column_is_named():
    with pytest.raises(DataError, match="column 'Qq'.*not a chemical element"):
        fractions_from_element_columns(pd.DataFrame({"Qq": [1.0]}), ["Qq"], "at", "p.csv")


def test_composition_key_ignores_scale_and_tiny_noise():
    a = parse_formula("Co1 Cr1 Fe1 Ni1", "x")
    b = parse_formula("Co2 Cr2 Fe2 Ni2.00001", "x")
    assert composition_key(a) == composition_key(b) == "Co25 Cr25 Fe25 Ni25"
