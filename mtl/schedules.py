"""How training alternates between tasks.

A schedule turns one epoch into an ordered list of steps ``(task index, row indices)``; the
trainer runs them and never needs to know which schedule it was. Adding a schedule means adding
one class here and one file in ``conf/schedule/``.
"""

from __future__ import annotations

import numpy as np

from mtl.errors import ConfigError

Step = tuple[int, np.ndarray]


def shuffled_batches(n: int, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    order = rng.permutation(n)
    return [order[i:i + batch_size] for i in range(0, n, batch_size)]


class RoundRobin:
    """Alternate per mini-batch: one batch of task 0, one of task 1, ...; a task whose rows are
    used up drops out until the next epoch, so every labelled row is seen once per epoch."""

    eval_every = 1

    def plan(self, epoch: int, task_sizes: list[int], batch_size: int, rng: np.random.Generator) -> list[Step]:
        batches = [shuffled_batches(n, batch_size, rng) for n in task_sizes]
        steps = []
        for i in range(max(len(b) for b in batches)):
            steps += [(t, b[i]) for t, b in enumerate(batches) if i < len(b)]
        return steps


class Blocks:
    """Alternate per block of epochs (the original algorithm): task 0 trains ``epochs_per_block``
    epochs on its own rows, then task 1, and so on. Validation (early stopping) happens once all
    tasks have had their block, so no task is judged halfway through another's."""

    def __init__(self, epochs_per_block: int, n_tasks: int):
        if epochs_per_block < 1:
            raise ConfigError(f"schedule.epochs_per_block is {epochs_per_block}; it must be at least 1.")
        self.epochs_per_block = epochs_per_block
        self.eval_every = epochs_per_block * n_tasks

    def plan(self, epoch: int, task_sizes: list[int], batch_size: int, rng: np.random.Generator) -> list[Step]:
        task = (epoch // self.epochs_per_block) % len(task_sizes)
        return [(task, b) for b in shuffled_batches(task_sizes[task], batch_size, rng)]


class Proportional:
    """Each step draws its task with probability proportional to the task's labelled rows; an
    epoch has as many steps as all tasks' batches together."""

    eval_every = 1

    def plan(self, epoch: int, task_sizes: list[int], batch_size: int, rng: np.random.Generator) -> list[Step]:
        batches = [shuffled_batches(n, batch_size, rng) for n in task_sizes]
        n_steps = sum(len(b) for b in batches)
        draws = rng.choice(len(task_sizes), size=n_steps, p=np.asarray(task_sizes) / sum(task_sizes))
        used = [0] * len(task_sizes)
        steps = []
        for t in draws:
            if used[t] == len(batches[t]):  # this task's rows are used up: reshuffle them
                batches[t], used[t] = shuffled_batches(task_sizes[t], batch_size, rng), 0
            steps.append((int(t), batches[t][used[t]]))
            used[t] += 1
        return steps


def make_schedule(cfg, n_tasks: int):
    """``cfg`` is a ``ScheduleConfig``."""
    if cfg.name == "round_robin":
        return RoundRobin()
    if cfg.name == "blocks":
        return Blocks(cfg.epochs_per_block, n_tasks)
    if cfg.name == "proportional":
        return Proportional()
    raise ConfigError(f"schedule.name is '{cfg.name}'; use round_robin, blocks or proportional (conf/schedule/).")
