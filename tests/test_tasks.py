import pandas as pd
import pytest
from omegaconf import OmegaConf

from mtl.config import CONF_DIR, TaskConfig
from mtl.data.tasks import load_task, parse_targets
from mtl.errors import DataError

from conftest import compose_train


def task_cfg(**fields):
    return OmegaConf.merge(OmegaConf.structured(TaskConfig), fields)


def write(tmp_path, frame, name="t.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


def test_target_rules_count_what_they_drop():
    cells = pd.Series(["287", ">800", "Transpassive", "", "<-500", "12.5", "Transpassive"])
    values, dropped = parse_targets(cells, "drop", "pitting")
    assert values.notna().tolist() == [True, False, False, False, False, True, False]
    assert dropped == {"dropped_censored": 2, "dropped_text:Transpassive": 2, "dropped_blank": 1}
    bounded, counts = parse_targets(cells, "bound", "pitting")
    assert bounded.tolist()[:2] == [287.0, 800.0] and bounded[4] == -500.0
    assert counts["censored_as_bound"] == 2


def test_shipped_pitting_table_rules():
    cfg = compose_train([])
    task = load_task("pitting", cfg.tasks.pitting)
    assert len(task.y) == 607
    assert task.counts["dropped_text:Transpassive"] == 41
    assert task.counts["dropped_censored"] == 13
    assert task.counts["dropped_blank"] == 9
    assert task.counts["input_text_as_missing:Scan Rate mV/s"] == 24  # 'steady state', '20mV steps...'
    assert task.inputs.shape == (607, 4)
    assert all(abs(sum(f.values()) - 1) < 1e-9 for f in task.fractions)


def test_shipped_hardness_table():
    task = load_task("hardness", compose_train([]).tasks.hardness)
    assert len(task.y) == 437 and task.inputs.shape == (437, 0)


def test_missing_inputs_drop_rule(tmp_path):
    frame = pd.DataFrame({"Fe": [70, 60, 50], "Cr": [30, 40, 50], "E": [100, 200, 300], "T": [25, "", "steady"]})
    cfg = task_cfg(source=write(tmp_path, frame), target={"column": "E"},
                   composition={"format": "element_columns", "columns": ["Fe", "Cr"], "basis": "wt"}, inputs=["T"])
    assert len(load_task("p", cfg).y) == 3
    cfg.missing_inputs = "drop"
    task = load_task("p", cfg)
    assert task.y.tolist() == [100.0] and task.counts["dropped_missing_inputs"] == 2


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match=r"source file '.*nope.csv' not found"):
        load_task("hardness", task_cfg(source=str(tmp_path / "nope.csv"), target={"column": "HV"}))


def test_missing_target_column_suggests_the_close_one(tmp_path):
    path = write(tmp_path, pd.DataFrame({"FORMULA": ["Fe1"], "PROPERTY: HV": [100]}))
    with pytest.raises(DataError, match=r"no column 'PROPERTY: HB' \(did you mean 'PROPERTY: HV'\?\)"):
        load_task("hardness", task_cfg(source=path, target={"column": "PROPERTY: HB"}))


def test_bad_formula_names_file_and_row(tmp_path):
    path = write(tmp_path, pd.DataFrame({"FORMULA": ["Fe1 Ni1", "Fe1 Zz2"], "HV": [100, 200]}))
    with pytest.raises(DataError, match=r"t.csv, row 2 \(line 3\), column 'FORMULA'.*'Zz' is not a chemical element"):
        load_task("hardness", task_cfg(source=path, target={"column": "HV"}))


def test_no_labelled_rows_after_filters(tmp_path):
    path = write(tmp_path, pd.DataFrame({"FORMULA": ["Fe1 Ni1"], "HV": [100], "T": ["800"]}))
    cfg = task_cfg(source=path, target={"column": "HV"}, filters=[{"column": "T", "op": "in", "value": ["25.0"]}])
    with pytest.raises(DataError, match="no labelled rows left"):
        load_task("hardness", cfg)
