import numpy as np
import pytest

from mtl.data.dataset import load_dataset
from mtl.ensemble import task_arrays, train_member
from mtl.model import build_network
from mtl.preprocessing import FoldPreprocessor
from mtl.schedules import Blocks, Proportional, RoundRobin
from mtl.trainer import AlternatingTrainer, plan_to_arrays

from conftest import compose_train


def snapshot(variables):
    return [np.array(v.numpy()) for v in variables]


def changed(before, variables):
    return [not np.allclose(b, v.numpy()) for b, v in zip(before, variables)]


@pytest.fixture
def setup(tiny_cfg):
    ds = load_dataset(tiny_cfg)
    prep = FoldPreprocessor.fit(ds, np.arange(len(ds)))
    net = build_network(ds.features.shape[1], {t: prep.input_width(t) for t in ds.tasks}, tiny_cfg.model)
    trainer = AlternatingTrainer(net, ds.tasks, {"hardness": 1e-2, "pitting": 1e-2}, "mse")
    return ds, net, trainer, task_arrays(ds, prep, np.arange(len(ds)))


def first_step_of_each_task(schedule, sizes, epochs=4):
    """The first step the schedule itself plans for each task over its first epochs."""
    first = {}
    for epoch in range(epochs):
        for task, rows in schedule.plan(epoch, sizes, 16, np.random.default_rng(epoch)):
            first.setdefault(task, (task, rows))
    return first


@pytest.mark.parametrize("schedule", [RoundRobin(), Blocks(epochs_per_block=2, n_tasks=2), Proportional()],
                         ids=["round_robin", "blocks", "proportional"])
def test_a_task_step_moves_the_trunk_and_its_own_head_only(setup, schedule):
    ds, net, trainer, train = setup
    run_epoch = trainer.compile_epoch(train)
    steps = first_step_of_each_task(schedule, [len(train[t].y) for t in ds.tasks])
    assert sorted(steps) == [0, 1]
    for task_index, task in enumerate(ds.tasks):
        other = ds.tasks[1 - task_index]
        before = {k: snapshot(v) for k, v in
                  {"trunk": net.trunk_variables(), task: net.head_variables(task), other: net.head_variables(other)}.items()}
        run_epoch(*plan_to_arrays([steps[task_index]], 16))
        assert all(changed(before["trunk"], net.trunk_variables()))
        assert all(changed(before[task], net.head_variables(task)))
        assert not any(changed(before[other], net.head_variables(other)))


def test_each_schedule_learns(tiny_cfg, tiny_overrides):
    ds = load_dataset(tiny_cfg)
    rows = np.arange(len(ds))
    for name, extra in [("round_robin", []), ("blocks", ["schedule.epochs_per_block=2"]), ("proportional", [])]:
        cfg = compose_train([*tiny_overrides, f"schedule={name}", *extra, "trainer.max_epochs=30",
                             "trainer.patience=100"])
        _, _, history = train_member(ds, cfg, rows, seed=1)
        first = {t: next(h[t] for h in history.train_loss if t in h) for t in ds.tasks}
        last = {t: next(h[t] for h in reversed(history.train_loss) if t in h) for t in ds.tasks}
        assert all(last[t] < 0.6 * first[t] for t in ds.tasks), (name, first, last)


def test_seeded_training_is_reproducible(tiny_cfg):
    ds = load_dataset(tiny_cfg)
    rows = np.arange(len(ds))
    weights = [train_member(ds, tiny_cfg, rows, seed=7)[0].model.get_weights() for _ in range(2)]
    other = train_member(ds, tiny_cfg, rows, seed=8)[0].model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(*weights))
    assert not all(np.allclose(a, b) for a, b in zip(weights[0], other))


def test_early_stopping_keeps_the_best_weights(tiny_cfg, tiny_overrides):
    ds = load_dataset(tiny_cfg)
    cfg = compose_train([*tiny_overrides, "trainer.max_epochs=200", "trainer.patience=3"])
    net, prep, history = train_member(ds, cfg, np.arange(len(ds)), seed=3)
    assert history.epochs_run < 200
    assert history.epochs_run - 1 - history.best_epoch >= 3
    best = min(np.mean(list(v.values())) for v in history.val_loss.values())
    assert np.mean(list(history.val_loss[history.best_epoch].values())) == best
