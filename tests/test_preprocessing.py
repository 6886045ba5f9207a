import numpy as np

from mtl.data.dataset import load_dataset
from sklearn.preprocessing import QuantileTransformer

from mtl.preprocessing import FoldPreprocessor, quantile_normal


def test_fitted_on_training_rows_only(tiny_cfg):
    ds = load_dataset(tiny_cfg)
    train = np.arange(0, len(ds), 2)
    prep = FoldPreprocessor.fit(ds, train)
    assert np.allclose(prep.target_mean, np.nanmean(ds.y[train], axis=0))
    assert not np.allclose(prep.target_mean, np.nanmean(ds.y, axis=0))
    own = train[ds.task_rows("pitting", train)]
    assert np.allclose(prep.input_scalers["pitting"].mean_[:2], ds.inputs["pitting"][own][:, :2].mean(axis=0))


def test_missing_inputs_are_imputed_with_an_indicator(tiny_cfg):
    ds = load_dataset(tiny_cfg)
    prep = FoldPreprocessor.fit(ds, np.arange(len(ds)))
    rows = np.array([[np.nan, 0.5, 7.0, np.nan]])
    out = prep.task_inputs("pitting", rows)
    assert out.shape == (1, 8) and prep.input_width("pitting") == 8
    assert out[0, 4:].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert not np.isnan(out).any()
    assert prep.task_inputs("hardness", ds.inputs["hardness"][:3]).shape == (3, 0)


def test_scaled_targets_round_trip(tiny_cfg):
    ds = load_dataset(tiny_cfg)
    prep = FoldPreprocessor.fit(ds, np.arange(len(ds)))
    assert np.allclose(prep.unscale_targets(prep.scale_targets(ds.y)), ds.y, equal_nan=True, rtol=1e-5)


def test_fast_quantile_transform_equals_sklearns():
    rng = np.random.default_rng(0)
    train = np.column_stack([rng.lognormal(size=300), rng.integers(0, 3, 300), np.zeros(300)])  # heavy tail, ties, constant
    scaler = QuantileTransformer(n_quantiles=100, output_distribution="normal").fit(train)
    new = np.vstack([train[:50], [[1e9, -1, 0.0], [-1e9, 7, 1.0]]])  # outside the fitted range too
    np.testing.assert_array_equal(quantile_normal(new, scaler.quantiles_, scaler.references_), scaler.transform(new))


def test_json_round_trip_transforms_identically(tiny_cfg):
    import json

    ds = load_dataset(tiny_cfg)
    rows = np.arange(0, len(ds), 2)
    prep = FoldPreprocessor.fit(ds, rows)
    again = FoldPreprocessor.from_dict(json.loads(json.dumps(prep.to_dict())))
    other = np.arange(1, len(ds), 2)
    assert np.array_equal(prep.features(ds.features[other]), again.features(ds.features[other]))
    with_gaps = ds.inputs["pitting"][other].copy()
    with_gaps[::3, 0] = np.nan
    assert np.array_equal(prep.task_inputs("pitting", with_gaps), again.task_inputs("pitting", with_gaps))
    assert np.array_equal(prep.unscale_targets(np.ones((2, 2))), again.unscale_targets(np.ones((2, 2))))
