"""How training alternates between tasks.

A schedule decides, for one epoch, which tasks train and in what order of steps; every member of
the ensemble then fills each step with a mini-batch of its own rows of that task (its own fold,
its own shuffle). :func:`plan_epoch` turns that into fixed-shape arrays for the compiled epoch.
A member with fewer batches of a task than the largest member sits the extra steps out, so it
sees exactly the steps it would see training alone. Adding a schedule means adding one class here
and one file in ``conf/schedule/``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtl.errors import ConfigError


def shuffled_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


class RoundRobin:
    """Alternate per mini-batch: one batch of task 0, one of task 1, ...; a task whose rows are
    used up drops out until the next epoch, so every labelled row is seen once per epoch."""

    eval_every = 1
    cycles = False

    def tasks_in_epoch(self, epoch: int, n_tasks: int) -> list[int]:
        return list(range(n_tasks))

    def order(self, epoch: int, n_batches: np.ndarray, rng: np.random.Generator) -> list[int]:
        return [t for i in range(max(n_batches)) for t in range(len(n_batches)) if i < n_batches[t]]


class Blocks:
    """Alternate per block of epochs (the original algorithm): task 0 trains ``epochs_per_block``
    epochs on its own rows, then task 1, and so on. Validation (early stopping) happens once all
    tasks have had their block, so no task is judged halfway through another's."""

    cycles = False

    def __init__(self, epochs_per_block: int, n_tasks: int):
        if epochs_per_block < 1:
            raise ConfigError(f"schedule.epochs_per_block is {epochs_per_block}; it must be at least 1.")
        self.epochs_per_block = epochs_per_block
        self.eval_every = epochs_per_block * n_tasks

    def tasks_in_epoch(self, epoch: int, n_tasks: int) -> list[int]:
        return [(epoch // self.epochs_per_block) % n_tasks]

    def order(self, epoch: int, n_batches: np.ndarray, rng: np.random.Generator) -> list[int]:
        task = int(np.argmax(n_batches > 0))
        return [task] * int(n_batches[task])


class Proportional:
    """Each step draws its task with probability proportional to the task's batches; an epoch has
    as many steps as all tasks' batches together, and a task drawn more often than it has batches
    starts its batches again. Draws are shared by the ensemble, so unlike the other schedules a
    member's steps depend on the ensemble it trains in."""

    eval_every = 1
    cycles = True

    def tasks_in_epoch(self, epoch: int, n_tasks: int) -> list[int]:
        return list(range(n_tasks))

    def order(self, epoch: int, n_batches: np.ndarray, rng: np.random.Generator) -> list[int]:
        return rng.choice(len(n_batches), size=int(n_batches.sum()), p=n_batches / n_batches.sum()).tolist()


def make_schedule(cfg, n_tasks: int):
    """``cfg`` is a ``ScheduleConfig``."""
    if cfg.name == "round_robin":
        return RoundRobin()
    if cfg.name == "blocks":
        return Blocks(cfg.epochs_per_block, n_tasks)
    if cfg.name == "proportional":
        return Proportional()
    raise ConfigError(f"schedule.name is '{cfg.name}'; use round_robin, blocks or proportional (conf/schedule/).")


@dataclass
class EpochPlan:
    """Fixed-shape arrays for one compiled epoch of S steps over K members and batches of B."""

    task_ids: np.ndarray  # (S,) the task every member trains at each step
    index: np.ndarray  # (S, K, B) dataset rows of each member's batch (padding: row 0)
    weight: np.ndarray  # (S, K, B) 1 for a real row, 0 for padding; a member with no rows sits the step out


def plan_epoch(schedule, epoch: int, member_rows: list[list[np.ndarray]], batch_size: int,
               member_rngs: list[np.random.Generator], rng: np.random.Generator) -> EpochPlan:
    """``member_rows[k][t]``: the dataset rows member k trains task t on. Each member shuffles with
    its own ``member_rngs[k]``; ``rng`` is the ensemble's (for schedules that draw)."""
    n_members, n_tasks = len(member_rows), len(member_rows[0])
    active = schedule.tasks_in_epoch(epoch, n_tasks)
    batches = [[shuffled_batches(len(rows[t]), batch_size, member_rngs[k]) if t in active else []
                for t in range(n_tasks)] for k, rows in enumerate(member_rows)]
    n_batches = np.array([max(len(batches[k][t]) for k in range(n_members)) for t in range(n_tasks)])
    order = schedule.order(epoch, n_batches, rng)
    index = np.zeros((len(order), n_members, batch_size), dtype=np.int32)
    weight = np.zeros((len(order), n_members, batch_size), dtype=np.float32)
    used = np.zeros((n_members, n_tasks), dtype=int)
    for s, t in enumerate(order):
        for k in range(n_members):
            own, j = batches[k][t], used[k, t]
            used[k, t] += 1
            if j >= len(own) and not (schedule.cycles and own):
                continue
            rows = member_rows[k][t][own[j % len(own)]]
            index[s, k, :len(rows)], weight[s, k, :len(rows)] = rows, 1.0
    return EpochPlan(np.asarray(order, dtype=np.int32), index, weight)
