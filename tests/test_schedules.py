import numpy as np
import pytest

from omegaconf import OmegaConf

from mtl.config import ScheduleConfig
from mtl.errors import ConfigError
from mtl.schedules import Blocks, Proportional, RoundRobin, make_schedule


def rows_seen(steps, n_tasks):
    return [np.sort(np.concatenate([r for t, r in steps if t == task])) for task in range(n_tasks)]


def test_round_robin_alternates_per_batch_and_sees_every_row_once():
    steps = RoundRobin().plan(0, [40, 100], 16, np.random.default_rng(0))
    assert [t for t, _ in steps[:6]] == [0, 1, 0, 1, 0, 1]
    seen = rows_seen(steps, 2)
    assert np.array_equal(seen[0], np.arange(40)) and np.array_equal(seen[1], np.arange(100))


def test_blocks_train_one_task_for_n_epochs_then_the_next():
    schedule = Blocks(epochs_per_block=3, n_tasks=2)
    tasks = [{t for t, _ in schedule.plan(e, [40, 100], 16, np.random.default_rng(e))} for e in range(8)]
    assert tasks == [{0}, {0}, {0}, {1}, {1}, {1}, {0}, {0}]
    assert schedule.eval_every == 6
    first_epoch = schedule.plan(0, [40, 100], 16, np.random.default_rng(0))
    assert np.array_equal(np.sort(np.concatenate([r for _, r in first_epoch])), np.arange(40))


def test_proportional_draws_tasks_by_size():
    steps = [t for e in range(400) for t, _ in Proportional().plan(e, [100, 300], 10, np.random.default_rng(e))]
    assert len(steps) == 400 * 40
    assert np.mean(np.array(steps) == 1) == pytest.approx(0.75, abs=0.02)


def test_unknown_schedule_is_a_config_error():
    with pytest.raises(ConfigError, match="schedule.name is 'zigzag'"):
        make_schedule(OmegaConf.structured(ScheduleConfig(name="zigzag")), 2)
    with pytest.raises(ConfigError, match="epochs_per_block"):
        make_schedule(OmegaConf.structured(ScheduleConfig(name="blocks", epochs_per_block=0)), 2)
