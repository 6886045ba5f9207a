import numpy as np
from omegaconf import OmegaConf

from mtl.config import ModelConfig
from mtl.model import EnsembleNet


def net(dropout=0.0, widths=None, seeds=(1, 2, 3)):
    cfg = OmegaConf.merge(OmegaConf.structured(ModelConfig), {"trunk": {"layers": 2, "units": 12, "dropout": dropout},
                                                              "head": {"layers": 1, "units": 6, "dropout": dropout}})
    return EnsembleNet.build(5, widths or {"hardness": 0, "pitting": 3}, cfg, list(seeds))


def inputs(k=3, n=4, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(k, n, 5)).astype("float32"), rng.normal(size=(k, n, 3)).astype("float32")


def test_shapes_and_task_inputs_enter_only_their_head():
    n = net()
    x, c = inputs()
    assert tuple(n.forward("pitting", x, c).shape) == (3, 4)
    assert tuple(n.forward("hardness", x, c[..., :0]).shape) == (3, 4)
    # the pitting head's first layer sees 12 trunk units + 3 inputs; the hardness head only the trunk
    assert tuple(n.heads["pitting"][0].kernel.shape) == (3, 15, 6)
    assert tuple(n.heads["hardness"][0].kernel.shape) == (3, 12, 6)


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


def test_a_member_depends_only_on_its_own_seed():
    together, alone = net(seeds=(1, 2, 3)), net(seeds=(2,))
    for a, b in zip(together.get_weights(), alone.get_weights()):
        assert np.array_equal(a[1], b[0])
    x, c = inputs()
    seeds = np.array([[7, 0], [8, 0], [9, 0]], np.int64)
    together, alone = net(dropout=0.3, seeds=(1, 2, 3)), net(dropout=0.3, seeds=(2,))
    out = together.forward("pitting", x, c, seeds).numpy()
    assert np.allclose(out[1], alone.forward("pitting", x[1:2], c[1:2], seeds[1:2]).numpy()[0], atol=1e-6)


def test_mc_dropout_is_a_switch_at_call_time():
    n = net(dropout=0.3)
    x, c = inputs(n=64)
    plain = [n.forward("hardness", x, c[..., :0]).numpy() for _ in range(2)]
    seeded = [n.forward("hardness", x, c[..., :0], np.array([[s, 0]] * 3, np.int64)).numpy() for s in (1, 1, 2)]
    assert np.array_equal(plain[0], plain[1])
    assert np.array_equal(seeded[0], seeded[1]) and not np.allclose(seeded[0], seeded[2])
    assert not np.allclose(seeded[0], plain[0])


def test_dropout_drops_about_its_rate():
    n = net(dropout=0.25)
    h = np.ones((3, 500, 40), "float32")
    kept = n._dropout(h, 0.25, np.array([[1, 0], [2, 0], [3, 0]], np.int64), salt=0).numpy()
    assert abs((kept == 0).mean() - 0.25) < 0.01 and np.allclose(kept[kept > 0], 1 / 0.75)
    assert not np.array_equal(kept[0], kept[1])  # members draw different masks


def test_save_and_load_give_the_same_network(tmp_path):
    n = net(dropout=0.2)
    n.save(tmp_path / "net")
    loaded = EnsembleNet.load(tmp_path / "net")
    x, c = inputs()
    seeds = np.array([[1, 0], [2, 0], [3, 0]], np.int64)
    assert np.array_equal(n.forward("pitting", x, c, seeds).numpy(), loaded.forward("pitting", x, c, seeds).numpy())
    assert loaded.tasks == ["hardness", "pitting"] and loaded.members == 3
