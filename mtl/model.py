"""Hard parameter sharing in Keras 3: a shared trunk, one head per task; a task's own inputs
(test conditions) join at the entry of its head. MC dropout is chosen at call time
(``training=True``), not built into the graph.

Layer names carry the task between double underscores (``head__pitting__dense0``), so task names
must not contain ``__``: that keeps one task's head from matching another's by prefix."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MultiTaskNet:
    model: object  # keras.Model: inputs {"features", "inputs_<task>"...}, outputs {task: (n, 1)}
    task_models: dict  # task -> keras.Model(inputs of that task) -> (n, 1), sharing the trunk
    input_widths: dict[str, int]

    def trunk_variables(self) -> list:
        return [v for layer in self.model.layers if layer.name.startswith("trunk_") for v in layer.trainable_weights]

    def head_variables(self, task: str) -> list:
        mine = [layer for layer in self.model.layers
                if layer.name.startswith(f"head__{task}__") or layer.name == f"out__{task}"]
        return [v for layer in mine for v in layer.trainable_weights]

    def task_inputs(self, task: str, features, inputs):
        """The input list ``task_models[task]`` expects."""
        return [features, inputs] if self.input_widths[task] else [features]


def _dense_block(x, cfg, activation: str, prefix: str):
    import keras

    for i in range(cfg.layers):
        x = keras.layers.Dense(cfg.units, activation=activation, name=f"{prefix}dense{i}")(x)
        if cfg.dropout > 0:
            x = keras.layers.Dropout(cfg.dropout, name=f"{prefix}dropout{i}")(x)
    return x


def build_network(n_features: int, input_widths: dict[str, int], cfg) -> MultiTaskNet:
    """``cfg`` is a ``ModelConfig``; ``input_widths[task]`` is the width of its task-only inputs."""
    import keras

    features = keras.Input(shape=(n_features,), name="features")
    shared = _dense_block(features, cfg.trunk, cfg.activation, "trunk_")
    inputs, outputs, task_models = {"features": features}, {}, {}
    for task, width in input_widths.items():
        head_in, task_inputs = shared, [features]
        if width:
            inputs[f"inputs_{task}"] = keras.Input(shape=(width,), name=f"inputs_{task}")
            head_in = keras.layers.Concatenate(name=f"head__{task}__concat")([shared, inputs[f"inputs_{task}"]])
            task_inputs.append(inputs[f"inputs_{task}"])
        head = _dense_block(head_in, cfg.head, cfg.activation, f"head__{task}__")
        outputs[task] = keras.layers.Dense(1, name=f"out__{task}")(head)
        task_models[task] = keras.Model(task_inputs, outputs[task], name=f"task_{task}")
    model = keras.Model(inputs, outputs, name="multitask")
    return MultiTaskNet(model=model, task_models=task_models, input_widths=dict(input_widths))
