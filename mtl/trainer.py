"""Alternating training of one multi-task network.

Each task has its own optimiser (so its own learning rate) over the shared trunk and its own head.
A whole epoch (the steps a schedule planned) runs inside one compiled ``tf.function``: a
``tf.switch_case`` per step picks the task's update, so Python is not in the inner loop.
Early stopping watches the mean validation loss over tasks and restores the best weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from mtl.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass
class TaskArrays:
    """One task's preprocessed rows: shared features, its own inputs, standardised target."""

    features: np.ndarray  # (n_t, d)
    inputs: np.ndarray  # (n_t, k_t)
    y: np.ndarray  # (n_t,)


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


def plan_to_arrays(steps, batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps -> (task ids, padded row indices, weights 0/1): fixed shapes for the compiled epoch."""
    task_ids = np.array([t for t, _ in steps], dtype=np.int32)
    index = np.zeros((len(steps), batch_size), dtype=np.int32)
    weight = np.zeros((len(steps), batch_size), dtype=np.float32)
    for s, (_, rows) in enumerate(steps):
        index[s, :len(rows)] = rows
        weight[s, :len(rows)] = 1.0
    return task_ids, index, weight


class AlternatingTrainer:
    def __init__(self, net, tasks: list[str], learning_rates: dict[str, float], loss: str):
        import keras

        self.net, self.tasks = net, tasks
        self.loss = per_sample_loss(loss)
        self.var_lists = [net.trunk_variables() + net.head_variables(t) for t in tasks]
        self.optimizers = [keras.optimizers.Adam(learning_rate=learning_rates[t]) for t in tasks]
        for opt, variables in zip(self.optimizers, self.var_lists):
            opt.build(variables)  # create slots now: variables cannot be created inside the compiled epoch

    def _task_step(self, i: int, data: TaskArrays):
        import tensorflow as tf

        task, net, variables, opt, loss_fn = self.tasks[i], self.net, self.var_lists[i], self.optimizers[i], self.loss
        x, c, y = (tf.constant(a, tf.float32) for a in (data.features, data.inputs, data.y))

        def step(index, weight):
            with tf.GradientTape() as tape:
                batch_x = tf.gather(x, index)
                pred = net.task_models[task](net.task_inputs(task, batch_x, tf.gather(c, index)), training=True)[:, 0]
                loss = tf.reduce_sum(weight * loss_fn(tf.gather(y, index), pred)) / tf.reduce_sum(weight)
            opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        return step

    def compile_epoch(self, train: dict[str, TaskArrays]):
        import tensorflow as tf

        steps = [self._task_step(i, train[t]) for i, t in enumerate(self.tasks)]
        spec = [tf.TensorSpec([None], tf.int32), tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.float32)]

        @tf.function(input_signature=spec)
        def run_epoch(task_ids, index, weight):
            n = tf.shape(task_ids)[0]
            losses = tf.TensorArray(tf.float32, size=n)
            for s in tf.range(n):
                branches = [lambda i=i: steps[i](index[s], weight[s]) for i in range(len(steps))]
                losses = losses.write(s, tf.switch_case(task_ids[s], branches))
            return losses.stack()

        return run_epoch

    def compile_validation(self, val: dict[str, TaskArrays]):
        import tensorflow as tf

        net, loss_fn = self.net, self.loss
        present = [t for t in self.tasks if len(val[t].y)]
        consts = {t: [tf.constant(a, tf.float32) for a in (val[t].features, val[t].inputs, val[t].y)] for t in present}

        @tf.function
        def validation_losses():
            out = []
            for t in present:
                x, c, y = consts[t]
                pred = net.task_models[t](net.task_inputs(t, x, c), training=False)[:, 0]
                out.append(tf.reduce_mean(loss_fn(y, pred)))
            return tf.stack(out)

        return lambda: dict(zip(present, validation_losses().numpy().tolist()))

    def fit(self, train: dict[str, TaskArrays], val: dict[str, TaskArrays], schedule, cfg, seed: int,
            on_epoch: Callable[[int, dict, dict | None], None] | None = None, label: str = "") -> History:
        """``cfg`` is a ``TrainerConfig``. Returns the history; the net keeps its best weights."""
        rng = np.random.default_rng(seed)
        run_epoch, validate = self.compile_epoch(train), self.compile_validation(val)
        sizes = [len(train[t].y) for t in self.tasks]
        history, best, best_weights, waited = History(), np.inf, None, 0
        for epoch in range(cfg.max_epochs):
            steps = schedule.plan(epoch, sizes, cfg.batch_size, rng)
            task_ids, index, weight = plan_to_arrays(steps, cfg.batch_size)
            losses = run_epoch(task_ids, index, weight).numpy()
            train_loss = {self.tasks[t]: float(losses[task_ids == t].mean()) for t in np.unique(task_ids)}
            history.train_loss.append(train_loss)
            history.epochs_run = epoch + 1
            val_loss = None
            if (epoch + 1) % schedule.eval_every == 0 or epoch + 1 == cfg.max_epochs:
                val_loss = history.val_loss[epoch] = validate()
                score = float(np.mean(list(val_loss.values()))) if val_loss else float(np.mean(list(train_loss.values())))
                if score < best - 1e-6:
                    best, best_weights, history.best_epoch, waited = score, self.net.model.get_weights(), epoch, 0
                else:
                    waited += schedule.eval_every
            if on_epoch:
                on_epoch(epoch, train_loss, val_loss)
            if cfg.log_every and (epoch + 1) % cfg.log_every == 0:
                log.info("%sepoch %d/%d  train %s  best val %.4f (epoch %d)", label, epoch + 1, cfg.max_epochs,
                         " ".join(f"{t}={v:.3f}" for t, v in train_loss.items()), best, history.best_epoch + 1)
            if waited >= cfg.patience:
                break
        if best_weights is not None:
            self.net.model.set_weights(best_weights)
        return history
