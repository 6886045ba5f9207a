import numpy as np
import pytest
from omegaconf import OmegaConf

from mtl.config import ScheduleConfig
from mtl.errors import ConfigError
from mtl.schedules import Blocks, Proportional, RoundRobin, make_schedule, plan_epoch


def member_rows(sizes):
    """member k's rows of task t: distinct ranges, so a batch shows whose rows it holds."""
    return [[np.arange(1000 * t + 100 * k, 1000 * t + 100 * k + n) for t, n in enumerate(per_task)]
            for k, per_task in enumerate(sizes)]


def plan(schedule, epoch, sizes, batch_size=16, seed=0):
    rngs = [np.random.default_rng([seed, k]) for k in range(len(sizes))]
    return plan_epoch(schedule, epoch, member_rows(sizes), batch_size, rngs, np.random.default_rng(seed))


def seen(p, member, task):
    mine = (p.task_ids == task)
    return np.sort(p.index[mine, member][p.weight[mine, member] > 0])


def test_round_robin_alternates_per_batch_and_each_member_sees_its_rows_once():
    p = plan(RoundRobin(), 0, [[40, 90], [30, 100]])
    assert p.task_ids[:6].tolist() == [0, 1, 0, 1, 0, 1]
    for k, sizes in enumerate([[40, 90], [30, 100]]):
        for t, n in enumerate(sizes):
            assert np.array_equal(seen(p, k, t), member_rows([[0, 0]] * k + [sizes])[k][t])
    # member 1 has 2 batches of task 0 where member 0 has 3: it sits the third out
    third_task0_step = np.flatnonzero(p.task_ids == 0)[2]
    assert p.weight[third_task0_step, 1].sum() == 0 and p.weight[third_task0_step, 0].sum() == 8


def test_a_member_gets_the_same_steps_alone_as_in_an_ensemble():
    together = plan(RoundRobin(), 3, [[40, 90], [30, 100]], seed=5)
    alone = plan_epoch(RoundRobin(), 3, member_rows([[0, 0], [30, 100]])[1:], 16,
                       [np.random.default_rng([5, 1])], np.random.default_rng(5))
    active = together.weight[:, 1].sum(axis=1) > 0
    assert np.array_equal(together.task_ids[active], alone.task_ids)
    assert np.array_equal(together.index[active, 1], alone.index[:, 0])


def test_blocks_train_one_task_for_n_epochs_then_the_next():
    schedule = Blocks(epochs_per_block=3, n_tasks=2)
    tasks = [set(plan(schedule, e, [[40, 100]], seed=e).task_ids.tolist()) for e in range(8)]
    assert tasks == [{0}, {0}, {0}, {1}, {1}, {1}, {0}, {0}]
    assert schedule.eval_every == 6
    assert np.array_equal(seen(plan(schedule, 0, [[40, 100]]), 0, 0), np.arange(40))


def test_proportional_draws_tasks_by_size_and_never_idles_a_member():
    steps = np.concatenate([plan(Proportional(), e, [[100, 300], [90, 310]], batch_size=10, seed=e).task_ids
                            for e in range(200)])
    assert len(steps) == 200 * 41
    assert np.mean(steps == 1) == pytest.approx(0.75, abs=0.02)
    p = plan(Proportional(), 0, [[100, 300], [90, 310]], batch_size=10)
    assert (p.weight.sum(axis=2) > 0).all()


def test_unknown_schedule_is_a_config_error():
    with pytest.raises(ConfigError, match="schedule.name is 'zigzag'"):
        make_schedule(OmegaConf.structured(ScheduleConfig(name="zigzag")), 2)
    with pytest.raises(ConfigError, match="epochs_per_block"):
        make_schedule(OmegaConf.structured(ScheduleConfig(name="blocks", epochs_per_block=0)), 2)
