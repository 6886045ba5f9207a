import numpy as np
import pytest

from mtl.data.dataset import load_dataset
from mtl.ensemble import aggregate, member_splits, train_ensemble, validation_split
from mtl.tracking import Tracker

from conftest import compose_train


def test_aggregate_splits_the_variance_into_ensemble_and_mc_parts():
    means = np.array([[[1.0]], [[3.0]]])  # two members, one row, one task
    variances = np.array([[[0.5]], [[1.5]]])
    p = aggregate(means, variances)
    assert p.mean[0, 0] == 2.0
    assert p.std_ensemble[0, 0] == pytest.approx(1.0)  # population std of {1, 3}
    assert p.std_mc[0, 0] == pytest.approx(1.0)  # sqrt(mean of {0.5, 1.5})
    assert p.std[0, 0] == pytest.approx(np.sqrt(2.0))


def test_splits_are_grouped_and_cover_every_row_once_per_repeat(tiny_cfg):
    ds = load_dataset(tiny_cfg)
    splits = list(member_splits(ds, folds=3, repeats=2, seed=0))
    assert len(splits) == 6
    for repeat in range(2):
        tests = np.concatenate([te for r, _, _, te in splits if r == repeat])
        assert np.array_equal(np.sort(tests), np.arange(len(ds)))
    for _, _, train, test in splits:
        assert not set(ds.groups[train]) & set(ds.groups[test])
        assert all(len(ds.task_rows(t, test)) > 0 for t in ds.tasks)  # stratified: each task in each fold
    assert not np.array_equal(splits[0][3], splits[3][3])  # repeats reshuffle


def test_validation_split_is_grouped_inside_the_training_rows(tiny_cfg):
    ds = load_dataset(tiny_cfg)
    rows = np.arange(0, len(ds), 2)
    fit, val = validation_split(ds, rows, 0.2, seed=0)
    assert set(fit) | set(val) == set(rows) and not set(fit) & set(val)
    assert not set(ds.groups[fit]) & set(ds.groups[val])
    assert 0.1 < len(val) / len(rows) < 0.35


def test_ensemble_gives_out_of_fold_predictions_with_uncertainty(tiny_overrides):
    cfg = compose_train([*tiny_overrides, "trainer.max_epochs=80", "trainer.patience=40", "tasks.hardness.learning_rate=0.01",
                         "tasks.pitting.learning_rate=0.01"])
    ds = load_dataset(cfg)
    result = train_ensemble(ds, cfg, Tracker())
    assert len(result.members) == 3
    labelled = ds.mask
    assert not np.isnan(result.oof.mean[labelled]).any()
    assert (result.oof.std_mc[labelled] > 0).mean() > 0.9  # MC dropout on (3 passes; a row can draw 3 equal masks)
    assert np.allclose(result.oof.std_ensemble, 0)  # one repeat: one prediction per row
    assert {"r2_hardness", "r2_pitting", "rmse_pitting", "mae_hardness", "r2_mean"} <= set(result.scores)
    assert result.scores["r2_pitting"] > 0.3  # the synthetic signal is learnable
    new = result.model.predict(ds.features[:5], {t: ds.inputs[t][:5] for t in ds.tasks}, mc_samples=0)
    assert new.mean.shape == (5, 2) and (new.std_ensemble > 0).all() and np.allclose(new.std_mc, 0)
    # MC passes run as one tiled batch: each row's samples must stay that row's (no mixing across rows)
    rows = ds.task_rows("pitting")
    inputs = {t: ds.inputs[t][rows] for t in ds.tasks}
    plain = result.model.predict(ds.features[rows], inputs, mc_samples=0).mean[:, 1]
    sampled = result.model.predict(ds.features[rows], inputs, mc_samples=30)
    assert np.corrcoef(plain, sampled.mean[:, 1])[0, 1] > 0.95
    # a row's MC samples are its own: predicted alone, it gets the same numbers as in a batch
    alone = result.model.predict(ds.features[rows[3:4]], {t: v[3:4] for t, v in inputs.items()}, mc_samples=30)
    np.testing.assert_allclose(alone.mean[0], sampled.mean[3], rtol=1e-6)
    np.testing.assert_allclose(alone.std_mc[0], sampled.std_mc[3], rtol=1e-5)
