import numpy as np
from omegaconf import OmegaConf

from mtl.config import ModelConfig
from mtl.model import build_network


def net(dropout=0.0, widths=None):
    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), {"trunk": {"layers": 2, "units": 12, "dropout": dropout},
                                                              "head": {"layers": 1, "units": 6, "dropout": dropout}})
    return build_network(5, widths or {"hardness": 0, "pitting": 3}, cfg)


def test_shapes_and_task_inputs_enter_only_their_head():
    n = net()
    out = n.model({"features": np.zeros((4, 5), "float32"), "inputs_pitting": np.zeros((4, 3), "float32")})
    assert set(out) == {"hardness", "pitting"} and out["pitting"].shape == (4, 1)
    assert len(n.task_models["hardness"].inputs) == 1 and len(n.task_models["pitting"].inputs) == 2
    # the pitting head's first layer sees 12 trunk units + 3 inputs; the hardness head only the trunk
    first_kernel = {t: [v for v in n.head_variables(t) if "kernel" in v.path][0] for t in ("hardness", "pitting")}
    assert tuple(first_kernel["pitting"].shape) == (15, 6)
    assert tuple(first_kernel["hardness"].shape) == (12, 6)


def test_trunk_and_heads_own_disjoint_variables():
    n = net()
    trunk = {id(v) for v in n.trunk_variables()}
    heads = [{id(v) for v in n.head_variables(t)} for t in ("hardness", "pitting")]
    assert len(trunk) == 4 and all(len(h) == 4 for h in heads)  # 2 dense layers each: kernel + bias
    assert not (trunk & heads[0]) and not (trunk & heads[1]) and not (heads[0] & heads[1])
    assert len(trunk | heads[0] | heads[1]) == len(n.model.trainable_weights)


def test_task_names_sharing_a_prefix_keep_their_own_heads():
    n = net(widths={"a": 0, "a_b": 0})
    assert {id(v) for v in n.head_variables("a")}.isdisjoint({id(v) for v in n.head_variables("a_b")})


def test_mc_dropout_is_a_switch_at_call_time():
    n = net(dropout=0.3)
    x = np.random.default_rng(0).normal(size=(8, 5)).astype("float32")
    plain = [n.task_models["hardness"]([x], training=False).numpy() for _ in range(2)]
    sampled = [n.task_models["hardness"]([x], training=True).numpy() for _ in range(2)]
    assert np.array_equal(plain[0], plain[1])
    assert not np.allclose(sampled[0], sampled[1])
