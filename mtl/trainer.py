"""Alternating training of a whole ensemble in one compiled graph.

All K members train together on an :class:`mtl.model.EnsembleNet` (weights with a member axis).
At each step every member takes a mini-batch of its own rows of the step's task; each task has its
own Adam (so its own learning rate) over the shared trunk and its own head. A whole epoch runs in
one ``tf.function``: a ``tf.switch_case`` per step picks the task's update, so Python is not in the
inner loop.

Each member keeps its own optimiser state and early stopping: a member with no batch in a step,
or one that has stopped, is masked out of the update (weights and Adam moments untouched), so a
member trained in an ensemble is the member trained alone. Early stopping watches the member's
mean validation loss over tasks and restores its best weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from mtl.errors import ConfigError
from mtl.schedules import EpochPlan, plan_epoch

log = logging.getLogger(__name__)


@dataclass
class MemberArrays:
    """Every dataset row, preprocessed by each member's own (in-fold) preprocessor."""

    features: np.ndarray  # (K, N, d)
    inputs: dict[str, np.ndarray]  # task -> (K, N, c_t)
    y: np.ndarray  # (K, N, T) standardised per member; 0 where unlabelled (never a batch row)


@dataclass
class History:
    train_loss: list[dict[str, float]] = field(default_factory=list)  # per epoch, tasks trained that epoch
    val_loss: dict[int, dict[str, float]] = field(default_factory=dict)  # epoch -> per-task validation loss
    best_epoch: int = -1
    epochs_run: int = 0


def per_sample_loss(name: str) -> Callable:
    import tensorflow as tf

    def mse(y, p):
        return tf.square(y - p)

    def mae(y, p):
        return tf.abs(y - p)

    def huber(y, p):  # delta = 1 on standardised targets
        err = tf.abs(y - p)
        return tf.where(err <= 1.0, 0.5 * tf.square(err), err - 0.5)

    losses = {"mse": mse, "mae": mae, "huber": huber}
    if name not in losses:
        raise ConfigError(f"trainer.loss is '{name}'; use one of {', '.join(losses)}.")
    return losses[name]


class MaskedAdam:
    """Keras' Adam update for member-stacked variables, with a 0/1 ``active`` flag per member:
    an inactive member's weights, moments and step count stay exactly as they were."""

    def __init__(self, variables: list, members: int, learning_rate: float,
                 beta_1: float = 0.9, beta_2: float = 0.999, epsilon: float = 1e-7):
        import tensorflow as tf

        self.variables, self.lr, self.b1, self.b2, self.eps = variables, learning_rate, beta_1, beta_2, epsilon
        self.m = [tf.Variable(tf.zeros_like(v)) for v in variables]
        self.v = [tf.Variable(tf.zeros_like(v)) for v in variables]
        self.steps = tf.Variable(tf.zeros([members]))

    def apply(self, grads: list, active):
        import tensorflow as tf

        steps = self.steps.assign_add(active)
        alpha = self.lr * tf.sqrt(1 - self.b2 ** steps) / (1 - self.b1 ** tf.maximum(steps, 1.0))
        for var, g, m, v in zip(self.variables, grads, self.m, self.v):
            shape = [-1] + [1] * (len(var.shape) - 1)
            a = tf.reshape(active, shape)
            m.assign_add(a * (g - m) * (1 - self.b1))
            v.assign_add(a * (tf.square(g) - v) * (1 - self.b2))
            var.assign_sub(a * tf.reshape(alpha, shape) * m / (tf.sqrt(v) + self.eps))


class EnsembleTrainer:
    def __init__(self, net, data: MemberArrays, learning_rates: dict[str, float], loss: str, member_seeds: list[int]):
        import tensorflow as tf

        self.net, self.tasks = net, net.tasks
        self.loss = per_sample_loss(loss)
        k = net.members
        self.x = tf.constant(data.features, tf.float32)
        self.c = {t: tf.constant(data.inputs[t], tf.float32) for t in self.tasks}
        self.y = tf.constant(np.nan_to_num(data.y), tf.float32)
        self.optimizers = [MaskedAdam(net.trunk_variables() + net.head_variables(t), k, learning_rates[t]) for t in self.tasks]
        self.seeds = tf.constant([[s, 0] for s in member_seeds], tf.int64)
        self.dropout_step = tf.Variable(tf.zeros([k], tf.int64))  # per member: its own steps so far

    def _batch(self, t: int, index):
        import tensorflow as tf

        task = self.tasks[t]
        return (tf.gather(self.x, index, batch_dims=1), tf.gather(self.c[task], index, batch_dims=1),
                tf.gather(self.y[..., t], index, batch_dims=1))

    def _masked_loss(self, t: int, index, weight, dropout_seeds):
        """Per-member mean loss over the real rows of the batch, (K,)."""
        import tensorflow as tf

        x, c, y = self._batch(t, index)
        pred = self.net.forward(self.tasks[t], x, c, dropout_seeds)
        return tf.reduce_sum(weight * self.loss(y, pred), axis=1) / tf.maximum(tf.reduce_sum(weight, axis=1), 1.0)

    def _task_step(self, t: int):
        import tensorflow as tf

        opt = self.optimizers[t]

        def step(index, weight):
            active = tf.cast(tf.reduce_sum(weight, axis=1) > 0, tf.float32)
            step_seeds = self.seeds + tf.stack([tf.zeros_like(self.dropout_step), self.dropout_step * 1024], axis=1)
            with tf.GradientTape() as tape:
                losses = self._masked_loss(t, index, weight, step_seeds)
                total = tf.reduce_sum(losses)  # member k's weights see only member k's loss
            opt.apply(tape.gradient(total, opt.variables), active)
            self.dropout_step.assign_add(tf.cast(active, tf.int64))
            return losses

        return step

    def compile_epoch(self, jit_compile: bool = True):
        import tensorflow as tf

        steps = [self._task_step(t) for t in range(len(self.tasks))]
        spec = [tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, None, None], tf.int32),
                tf.TensorSpec([None, None, None], tf.float32)]

        @tf.function(input_signature=spec, jit_compile=jit_compile)
        def run_epoch(task_ids, index, weight):
            n = tf.shape(task_ids)[0]
            losses = tf.TensorArray(tf.float32, size=n)
            for s in tf.range(n):
                branches = [lambda t=t: steps[t](index[s], weight[s]) for t in range(len(steps))]
                losses = losses.write(s, tf.switch_case(task_ids[s], branches))
            return losses.stack()

        return run_epoch

    def compile_validation(self, val_rows: list[list[np.ndarray]]):
        """Per-member, per-task mean validation loss, (K, T); NaN where a member has no rows of a task."""
        import tensorflow as tf

        padded = []
        for t in range(len(self.tasks)):
            width = max(1, max(len(rows[t]) for rows in val_rows))
            index = np.zeros((len(val_rows), width), np.int32)
            weight = np.zeros((len(val_rows), width), np.float32)
            for k, rows in enumerate(val_rows):
                index[k, :len(rows[t])], weight[k, :len(rows[t])] = rows[t], 1.0
            padded.append((tf.constant(index), tf.constant(weight)))
        has_rows = np.array([[len(rows[t]) > 0 for t in range(len(self.tasks))] for rows in val_rows])

        @tf.function
        def validation_losses():
            return tf.stack([self._masked_loss(t, index, weight, None) for t, (index, weight) in enumerate(padded)], axis=1)

        return lambda: np.where(has_rows, validation_losses().numpy(), np.nan)

    def fit(self, fit_rows: list[list[np.ndarray]], val_rows: list[list[np.ndarray]], schedule, cfg,
            member_seeds: list[int], label: str = "") -> list[History]:
        """``fit_rows[k][t]`` / ``val_rows[k][t]``: member k's rows of task t. ``cfg`` is a
        ``TrainerConfig``. Returns one history per member; the net keeps each member's best weights."""
        k_members, n_tasks = self.net.members, len(self.tasks)
        member_rngs = [np.random.default_rng(s) for s in member_seeds]
        rng = np.random.default_rng(member_seeds[0])
        run_epoch, validate = self.compile_epoch(cfg.jit_compile), self.compile_validation(val_rows)
        histories = [History() for _ in range(k_members)]
        best, waited = np.full(k_members, np.inf), np.zeros(k_members, int)
        stopped = np.zeros(k_members, bool)
        best_weights = self.net.get_weights()
        for epoch in range(cfg.max_epochs):
            plan = plan_epoch(schedule, epoch, fit_rows, cfg.batch_size, member_rngs, rng)
            plan.weight[:, stopped] = 0.0
            losses = run_epoch(plan.task_ids, plan.index, plan.weight).numpy()  # (S, K)
            self._record_train_loss(histories, plan, losses, stopped)
            if (epoch + 1) % schedule.eval_every == 0 or epoch + 1 == cfg.max_epochs:
                val = validate()
                scores = self._stopping_scores(val, histories, epoch)
                for k in np.flatnonzero(~stopped):
                    histories[k].val_loss[epoch] = {t: float(v) for t, v in zip(self.tasks, val[k]) if np.isfinite(v)}
                improved = ~stopped & (scores < best - 1e-6)
                if improved.any():
                    current = self.net.get_weights()
                    for b, c in zip(best_weights, current):
                        b[improved] = c[improved]
                best[improved], waited[improved] = scores[improved], 0
                waited[~improved & ~stopped] += schedule.eval_every
                for k in np.flatnonzero(improved):
                    histories[k].best_epoch = epoch
                stopped |= waited >= cfg.patience
            if cfg.log_every and (epoch + 1) % cfg.log_every == 0:
                self._log_progress(label, epoch, cfg.max_epochs, histories, stopped, best)
            if stopped.all():
                break
        self.net.set_weights(best_weights)
        return histories

    def _record_train_loss(self, histories: list[History], plan: EpochPlan, losses: np.ndarray, stopped: np.ndarray) -> None:
        active = plan.weight.sum(axis=2) > 0  # (S, K)
        for k in np.flatnonzero(~stopped):
            per_task = {}
            for t in np.unique(plan.task_ids):
                mine = (plan.task_ids == t) & active[:, k]
                if mine.any():
                    per_task[self.tasks[t]] = float(losses[mine, k].mean())
            histories[k].train_loss.append(per_task)
            histories[k].epochs_run += 1

    @staticmethod
    def _stopping_scores(val: np.ndarray, histories: list[History], epoch: int) -> np.ndarray:
        """Mean validation loss over tasks per member; the training loss when it has no validation rows."""
        scores = np.full(len(histories), np.inf)
        for k, h in enumerate(histories):
            finite = val[k][np.isfinite(val[k])]
            if finite.size:
                scores[k] = finite.mean()
            elif h.train_loss:
                scores[k] = np.mean(list(h.train_loss[-1].values()))
        return scores

    def _log_progress(self, label: str, epoch: int, max_epochs: int, histories: list[History], stopped: np.ndarray,
                      best: np.ndarray) -> None:
        recent = [h.train_loss[-1] for k, h in enumerate(histories) if not stopped[k] and h.train_loss]
        train = {t: np.mean([r[t] for r in recent if t in r]) for t in self.tasks if any(t in r for r in recent)}
        log.info("%sepoch %d/%d  %d/%d members training  train %s  best val (member mean) %.4f", label, epoch + 1,
                 max_epochs, (~stopped).sum(), len(stopped), " ".join(f"{t}={v:.3f}" for t, v in train.items()),
                 float(np.mean(best[np.isfinite(best)])) if np.isfinite(best).any() else float("nan"))
