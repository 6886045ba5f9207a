import numpy as np
import pytest

from mtl.data.dataset import load_dataset
from mtl.ensemble import EnsembleModel, fit_ensemble, member_splits, rows_by_task
from mtl.model import EnsembleNet
from mtl.preprocessing import FoldPreprocessor
from mtl.schedules import EpochPlan
from mtl.trainer import EnsembleTrainer

from conftest import compose_train


def snapshot(variables):
    return [np.array(v.numpy()) for v in variables]


@pytest.fixture
def setup(tiny_cfg):
    """Two members on the same rows, members seeded 0 and 1."""
    ds = load_dataset(tiny_cfg)
    preps = [FoldPreprocessor.fit(ds, np.arange(len(ds)))] * 2
    net = EnsembleNet.build(ds.features.shape[1], {t: preps[0].input_width(t) for t in ds.tasks}, tiny_cfg.model, [0, 1])
    data = EnsembleModel(net, preps).member_arrays(ds.features, ds.inputs, ds.y)
    trainer = EnsembleTrainer(net, data, {"hardness": 1e-2, "pitting": 1e-2}, "mse", [0, 1])
    return ds, net, trainer


def one_step(ds, task_index, member_weights):
    """A one-step plan of ``task_index`` where member k's batch rows carry weight ``member_weights[k]``."""
    rows = ds.task_rows(ds.tasks[task_index])[:16]
    index = np.stack([rows, rows]).astype(np.int32)[None]
    weight = np.stack([np.full(16, w, np.float32) for w in member_weights])[None]
    return EpochPlan(np.array([task_index], np.int32), index, weight)


def test_a_task_step_moves_the_trunk_and_its_own_head_only(setup):
    ds, net, trainer = setup
    run_epoch = trainer.compile_epoch()
    for task_index, task in enumerate(ds.tasks):
        other = ds.tasks[1 - task_index]
        groups = {"trunk": net.trunk_variables(), task: net.head_variables(task), other: net.head_variables(other)}
        before = {k: snapshot(v) for k, v in groups.items()}
        p = one_step(ds, task_index, [1, 1])
        run_epoch(p.task_ids, p.index, p.weight)
        moved = {k: [not np.allclose(b, v.numpy()) for b, v in zip(before[k], groups[k])] for k in groups}
        assert all(moved["trunk"]) and all(moved[task]) and not any(moved[other])


def test_a_member_without_rows_in_a_step_is_left_exactly_as_it_was(setup):
    ds, net, trainer = setup
    run_epoch = trainer.compile_epoch()
    p = one_step(ds, 1, [1, 1])
    run_epoch(p.task_ids, p.index, p.weight)  # both members have Adam state now
    opt = trainer.optimizers[1]
    before = snapshot(net.trunk_variables() + net.head_variables("pitting") + opt.m + opt.v + [opt.steps])
    p = one_step(ds, 1, [1, 0])
    run_epoch(p.task_ids, p.index, p.weight)
    after = snapshot(net.trunk_variables() + net.head_variables("pitting") + opt.m + opt.v + [opt.steps])
    assert all(np.array_equal(b[1], a[1]) for b, a in zip(before, after))  # member 1 sat out: untouched
    assert all(not np.array_equal(b[0], a[0]) for b, a in zip(before, after))  # member 0 trained


@pytest.mark.parametrize("schedule", ["round_robin", "blocks", "proportional"])
def test_each_schedule_learns(tiny_overrides, schedule):
    extra = ["schedule.epochs_per_block=2"] if schedule == "blocks" else []
    cfg = compose_train([*tiny_overrides, f"schedule={schedule}", *extra, "trainer.max_epochs=30", "trainer.patience=100",
                         "tasks.hardness.learning_rate=0.01", "tasks.pitting.learning_rate=0.01"])
    ds = load_dataset(cfg)
    _, histories = fit_ensemble(ds, cfg, list(member_splits(ds, 3, 1, 0)))
    for h in histories:
        first = {t: next(e[t] for e in h.train_loss if t in e) for t in ds.tasks}
        last = {t: next(e[t] for e in reversed(h.train_loss) if t in e) for t in ds.tasks}
        assert all(last[t] < 0.6 * first[t] for t in ds.tasks), (schedule, first, last)


def test_members_trained_together_equal_members_trained_alone(tiny_overrides):
    """The vectorised trainer against the per-member case: same seed, same rows, same member."""
    shared = ["trainer.max_epochs=40", "trainer.patience=6", "model.trunk.dropout=0.2", "trainer.jit_compile=true"]
    cfg = compose_train([*tiny_overrides, *shared])
    ds = load_dataset(cfg)
    splits = list(member_splits(ds, 3, 1, 0))
    together, histories = fit_ensemble(ds, cfg, splits)
    assert len({h.epochs_run for h in histories}) > 1  # members stopped early at different epochs
    for k in range(3):
        alone, alone_history = fit_ensemble(ds, compose_train([*tiny_overrides, *shared, f"seed={k}"]), splits[k:k + 1])
        assert alone_history[0].epochs_run == histories[k].epochs_run
        assert alone_history[0].best_epoch == histories[k].best_epoch
        for a, b in zip(together.net.get_weights(), alone.net.get_weights()):
            np.testing.assert_allclose(a[k], b[0], rtol=1e-4, atol=1e-5)


def test_seeded_training_is_reproducible(tiny_overrides):
    def weights(seed):
        cfg = compose_train([*tiny_overrides, f"seed={seed}"])
        ds = load_dataset(cfg)
        return fit_ensemble(ds, cfg, list(member_splits(ds, 3, 1, 0)))[0].net.get_weights()

    first, again, other = weights(7), weights(7), weights(8)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not all(np.allclose(a, b) for a, b in zip(first, other))


def test_early_stopping_keeps_each_members_best_weights(tiny_overrides):
    cfg = compose_train([*tiny_overrides, "trainer.max_epochs=200", "trainer.patience=3"])
    ds = load_dataset(cfg)
    splits = list(member_splits(ds, 3, 1, 0))
    model, histories = fit_ensemble(ds, cfg, splits)
    for h in histories:
        assert h.epochs_run < 200 and h.epochs_run - 1 - h.best_epoch >= 3
        best = min(np.mean(list(v.values())) for v in h.val_loss.values())
        assert np.mean(list(h.val_loss[h.best_epoch].values())) == best
    # the kept weights are the best ones: validation loss now equals the best recorded
    trainer = EnsembleTrainer(model.net, model.member_arrays(ds.features, ds.inputs, ds.y), {t: 1e-3 for t in ds.tasks},
                              "mse", [0, 1, 2])
    from mtl.ensemble import validation_split
    val_rows = [rows_by_task(ds, validation_split(ds, train, cfg.trainer.validation_fraction, k)[1])
                for k, (_, _, train, _) in enumerate(splits)]
    now = trainer.compile_validation(val_rows)()
    for k, h in enumerate(histories):
        assert np.nanmean(now[k]) == pytest.approx(np.mean(list(h.val_loss[h.best_epoch].values())), rel=1e-5)
