import numpy as np
import pandas as pd
import pytest

from mtl.data.dataset import load_dataset
from mtl.data.descriptors import compute_descriptors

from conftest import compose_train


def test_two_tables_become_one_input_space(tiny_cfg):
    ds = load_dataset(tiny_cfg)
    assert ds.tasks == ["hardness", "pitting"]
    assert ds.features.shape == (48 + 60, len(ds.feature_names))
    elements = [n.removeprefix("frac_") for n in ds.feature_names]
    assert elements == ["Al", "Cr", "Fe", "Co", "Ni", "Mo"]  # ordered by atomic number (no descriptors here)
    # every row is labelled for exactly one of the two tasks here, and has inputs only for its own task
    assert (ds.mask.sum(axis=1) == 1).all()
    pitting_rows = ds.task_rows("pitting")
    assert np.isnan(ds.inputs["pitting"][ds.task_rows("hardness")]).all()
    assert not np.isnan(ds.inputs["pitting"][pitting_rows][:, :2]).any()
    assert np.allclose(ds.features[:, :6].sum(axis=1), 1.0)


def test_each_alloy_measured_twice_shares_a_group(tiny_cfg):
    ds = load_dataset(tiny_cfg)
    hardness = ds.task_rows("hardness")
    assert len(np.unique(ds.groups[hardness])) == 24  # 48 rows, each composition twice


def test_two_targets_of_one_source_row_are_merged(tiny_overrides, tables):
    cfg = compose_train([*tiny_overrides, "+task@tasks.yield_strength=yield_strength",
                         f"tasks.yield_strength.source={tables['hardness']}"])
    ds = load_dataset(cfg)
    assert ds.tasks == ["hardness", "pitting", "yield_strength"]
    assert len(ds) == 48 + 60  # HV and YS of one row share that row
    both = ds.mask[:, 0] & ds.mask[:, 2]
    assert both.sum() == 48
    assert np.allclose(ds.y[both, 2] / ds.y[both, 0], 3.0, atol=0.5)


def test_descriptors_are_cached_by_content(tmp_path):
    comps = {"Fe50 Ni50": {"Fe": 0.5, "Ni": 0.5}, "Co25 Cr25 Fe25 Ni25": {"Co": 0.25, "Cr": 0.25, "Fe": 0.25, "Ni": 0.25}}
    first = compute_descriptors(comps, "WenAlloys", tmp_path)
    files = list(tmp_path.glob("WenAlloys-*.csv"))
    assert len(files) == 1 and first.shape[0] == 2 and "Yang delta" in first.columns
    files[0].write_text(files[0].read_text().replace("Yang delta", "Yang delta (from cache)"))
    again = compute_descriptors(comps, "WenAlloys", tmp_path)
    assert "Yang delta (from cache)" in again.columns  # read back, not recomputed
    fewer = compute_descriptors({"Fe50 Ni50": comps["Fe50 Ni50"]}, "WenAlloys", tmp_path)
    assert len(list(tmp_path.glob("WenAlloys-*.csv"))) == 2 and "Yang delta" in fewer.columns
    assert fewer.loc["Fe50 Ni50", "Yang delta"] == pytest.approx(first.loc["Fe50 Ni50", "Yang delta"])


def test_first_and_cached_descriptor_reads_agree_exactly(tmp_path):
    comps = {"Al10 Co30 Fe30 Ni30": {"Al": 0.1, "Co": 0.3, "Fe": 0.3, "Ni": 0.3}}
    first = compute_descriptors(comps, "WenAlloys", tmp_path)
    cached = compute_descriptors(comps, "WenAlloys", tmp_path)
    assert np.array_equal(first.to_numpy(), cached.to_numpy(), equal_nan=True)


def test_subset_and_select_tasks_keep_rows_and_features_aligned(tiny_cfg):
    ds = load_dataset(tiny_cfg)
    rows = np.arange(0, len(ds), 3)
    part = ds.subset(rows)
    assert np.array_equal(part.features, ds.features[rows]) and part.compositions == [ds.compositions[r] for r in rows]
    pitting = ds.select_tasks(["pitting"])
    assert pitting.tasks == ["pitting"] and len(pitting) == len(ds.task_rows("pitting"))
    assert pitting.features.shape[1] == ds.features.shape[1] and not np.isnan(pitting.y).any()
    assert np.array_equal(pitting.inputs["pitting"], ds.inputs["pitting"][ds.task_rows("pitting")], equal_nan=True)
