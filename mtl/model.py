"""Hard parameter sharing for a whole ensemble at once: every weight has a leading member axis
(K members), so one batched matmul (einsum) runs all members' layers together. A shared trunk,
then one head per task; a task's own inputs (test conditions) join at the entry of its head.

Shapes: features (K, n, d), task inputs (K, n, c_t), outputs (K, n). Member k only ever reads
its own slice of every weight, so its gradients are its own: training K members together gives
the same members as training each alone.

Dropout is applied here, not by Keras layers, with masks drawn per member from
``(member seed, counter)``: a member's masks do not depend on which other members share its
batch. With ``dropout_seeds=None`` the network is deterministic (plain prediction).

Layer names carry the task between double underscores (``head__pitting__dense0``), so task names
must not contain ``__``: that keeps one task's head from matching another's by prefix.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def _member_dense_class():
    import keras

    @keras.saving.register_keras_serializable(package="mtl")
    class MemberDense(keras.layers.Layer):
        """A Dense layer per member: kernel (K, in, out), bias (K, out)."""

        def __init__(self, members: int, units: int, **kwargs):
            super().__init__(**kwargs)
            self.members, self.units = members, units

        def build(self, input_shape):
            self.kernel = self.add_weight(shape=(self.members, input_shape[-1], self.units), initializer="zeros", name="kernel")
            self.bias = self.add_weight(shape=(self.members, self.units), initializer="zeros", name="bias")

        def call(self, x):
            return keras.ops.einsum("kbi,kio->kbo", x, self.kernel) + self.bias[:, None, :]

        def get_config(self):
            return {**super().get_config(), "members": self.members, "units": self.units}

    return MemberDense


def _numbered(layers: dict, prefix: str) -> list:
    """Layers named ``<prefix>0``, ``<prefix>1``, ... in order (``dense10`` after ``dense9``)."""
    found = {int(name[len(prefix):]): layer for name, layer in layers.items()
             if name.startswith(prefix) and name[len(prefix):].isdigit()}
    return [found[i] for i in sorted(found)]


def glorot_uniform(rng: np.random.Generator, fan_in: int, fan_out: int) -> np.ndarray:
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)


def uniform_hash(key):
    """Counter-based uniform numbers in [0, 1) from uint32 keys (the lowbias32 integer hash):
    a handful of 32-bit integer ops per number, which XLA fuses into the layer."""
    import tensorflow as tf

    x = tf.bitwise.bitwise_xor(key, tf.bitwise.right_shift(key, 16)) * tf.constant(0x7FEB352D, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15)) * tf.constant(0x846CA68B, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    return tf.cast(tf.bitwise.right_shift(x, 8), tf.float32) / float(1 << 24)


def _as_uint32(x):
    """int64 -> its low 32 bits as uint32 (wrapping)."""
    import tensorflow as tf

    return tf.cast(tf.bitwise.bitwise_and(x, 0xFFFFFFFF), tf.uint32)


class EnsembleNet:
    """K multi-task networks stacked along a member axis, held in one Keras model (saved as ``.keras``)."""

    def __init__(self, model, tasks: list[str], input_widths: dict[str, int], activation: str,
                 trunk_dropout: float, head_dropout: float):
        import keras

        self.model, self.tasks, self.input_widths = model, list(tasks), dict(input_widths)
        self.activation = keras.activations.get(activation)
        self.activation_name = activation
        self.trunk_dropout, self.head_dropout = trunk_dropout, head_dropout
        layers = {layer.name: layer for layer in model.layers}
        self.trunk = _numbered(layers, "trunk_dense")
        self.heads = {t: _numbered(layers, f"head__{t}__dense") for t in tasks}
        self.outputs = {t: layers[f"out__{t}"] for t in tasks}
        self.members = self.trunk[0].members if self.trunk else self.outputs[tasks[0]].members

    @classmethod
    def build(cls, n_features: int, input_widths: dict[str, int], cfg, member_seeds: list[int]) -> EnsembleNet:
        """``cfg`` is a ``ModelConfig``; member k's initial weights come from ``member_seeds[k]`` alone."""
        import keras

        MemberDense = _member_dense_class()
        k = len(member_seeds)
        features = keras.Input(shape=(None, n_features), name="features")
        h = features
        for i in range(cfg.trunk.layers):
            h = MemberDense(k, cfg.trunk.units, name=f"trunk_dense{i}")(h)
        inputs, outputs = [features], []
        for task, width in input_widths.items():
            head = h
            if width:
                task_in = keras.Input(shape=(None, width), name=f"inputs_{task}")
                inputs.append(task_in)
                head = keras.layers.Concatenate(name=f"head__{task}__concat")([head, task_in])
            for i in range(cfg.head.layers):
                head = MemberDense(k, cfg.head.units, name=f"head__{task}__dense{i}")(head)
            outputs.append(MemberDense(k, 1, name=f"out__{task}")(head))
        model = keras.Model(inputs, outputs, name="multitask_ensemble")
        net = cls(model, list(input_widths), input_widths, cfg.activation, cfg.trunk.dropout, cfg.head.dropout)
        net.initialise(member_seeds)
        return net

    def dense_layers(self) -> list:
        return self.trunk + [layer for t in self.tasks for layer in (*self.heads[t], self.outputs[t])]

    def initialise(self, member_seeds: list[int]) -> None:
        """Glorot-uniform kernels and zero biases, drawn per member from its own seed."""
        rngs = [np.random.default_rng(s) for s in member_seeds]
        for layer in self.dense_layers():
            fan_in, fan_out = layer.kernel.shape[1:]
            layer.kernel.assign(np.stack([glorot_uniform(rng, fan_in, fan_out) for rng in rngs]))

    def widest_layer(self) -> int:
        return max(layer.units for layer in self.dense_layers())

    def trunk_variables(self) -> list:
        return [v for layer in self.trunk for v in (layer.kernel, layer.bias)]

    def head_variables(self, task: str) -> list:
        return [v for layer in (*self.heads[task], self.outputs[task]) for v in (layer.kernel, layer.bias)]

    def _dropout(self, h, rate: float, seeds, salt: int, row_keys=None):
        """Inverted dropout; member k's mask is a hash of (its seed, its counter, salt, row, unit),
        so it does not depend on the other members, and costs a few fused integer ops. Rows are
        keyed by their position in the batch, or by ``row_keys`` (n,) when given."""
        import tensorflow as tf

        if seeds is None or rate <= 0:
            return h
        shape = tf.shape(h)
        rows = tf.range(shape[1], dtype=tf.int64) if row_keys is None else row_keys
        # small int64 terms mixed first; the full (K, n, units) key is built and hashed in uint32
        member = _as_uint32(seeds[:, 0] * 0x9E3779B9 + (seeds[:, 1] + salt) * 0x85EBCA6B)[:, None, None]
        row = _as_uint32(rows * 0x27D4EB2F + tf.bitwise.right_shift(rows, 32))[None, :, None]
        units = tf.cast(tf.range(shape[2]), tf.uint32)[None, None, :]
        key = member + row + units * tf.constant(0x165667B1, tf.uint32)
        keep = uniform_hash(key) >= rate
        return tf.where(keep, h / (1.0 - rate), 0.0)

    def trunk_output(self, x, dropout_seeds=None, row_keys=None):
        h = x
        for i, layer in enumerate(self.trunk):
            h = self._dropout(self.activation(layer(h)), self.trunk_dropout, dropout_seeds, i, row_keys)
        return h

    def head_output(self, task: str, h, c, dropout_seeds=None, row_keys=None):
        """Standardised prediction (K, n) of ``task`` from the trunk's output ``h``."""
        import tensorflow as tf

        if self.input_widths[task]:
            h = tf.concat([h, c], axis=-1)
        for i, layer in enumerate(self.heads[task]):
            h = self._dropout(self.activation(layer(h)), self.head_dropout, dropout_seeds, 100 + i, row_keys)
        return self.outputs[task](h)[..., 0]

    def forward(self, task: str, x, c, dropout_seeds=None, row_keys=None):
        """Standardised prediction (K, n) of ``task``; ``dropout_seeds`` (K, 2) int64 turns dropout on."""
        return self.head_output(task, self.trunk_output(x, dropout_seeds, row_keys), c, dropout_seeds, row_keys)

    def forward_all(self, x, inputs: dict, dropout_seeds=None, row_keys=None):
        """Every task's standardised prediction, (K, n, T), from one pass through the trunk."""
        import tensorflow as tf

        h = self.trunk_output(x, dropout_seeds, row_keys)
        return tf.stack([self.head_output(t, h, inputs[t], dropout_seeds, row_keys) for t in self.tasks], axis=-1)

    def get_weights(self) -> list[np.ndarray]:
        return [v.numpy() for layer in self.dense_layers() for v in (layer.kernel, layer.bias)]

    def set_weights(self, weights: list[np.ndarray]) -> None:
        variables = [v for layer in self.dense_layers() for v in (layer.kernel, layer.bias)]
        for v, w in zip(variables, weights):
            v.assign(w)

    def spec(self) -> dict:
        return {"tasks": self.tasks, "input_widths": self.input_widths, "activation": self.activation_name,
                "trunk_dropout": self.trunk_dropout, "head_dropout": self.head_dropout}

    def save(self, directory: Path) -> None:
        """``network.keras`` (weights and layers) and ``network.json`` (what the forward pass needs)."""
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save(directory / "network.keras")
        (directory / "network.json").write_text(json.dumps(self.spec(), indent=1))

    @classmethod
    def load(cls, directory: Path) -> EnsembleNet:
        import keras

        _member_dense_class()  # registers the layer for deserialisation
        spec = json.loads((directory / "network.json").read_text())
        model = keras.saving.load_model(directory / "network.keras", safe_mode=True, compile=False)
        return cls(model, spec["tasks"], spec["input_widths"], spec["activation"], spec["trunk_dropout"], spec["head_dropout"])
