import numpy as np

from mtl.explain import permutation_shap


def coalitions_of(f, x, background):
    """``coalition_values`` for a plain function of raw rows."""
    def values(rows, inside):
        mixed = np.where(inside[:, :, None, :], x[rows][:, None, None, :], background[None, None, :, :])
        return f(mixed.reshape(-1, x.shape[1])).reshape(*inside.shape[:2], len(background), -1).mean(axis=2)
    return values


def test_permutation_shap_is_exact_for_an_additive_model_and_always_additive():
    rng = np.random.default_rng(0)
    x, background = rng.normal(size=(7, 5)), rng.normal(size=(9, 5))
    w = np.array([1.0, -2.0, 0.5, 0.0, 3.0])
    linear = lambda m: (m @ w)[:, None]  # noqa: E731
    values, base = permutation_shap(coalitions_of(linear, x, background), 7, 5, 1, rng)
    np.testing.assert_allclose(values[:, :, 0], w * (x - background.mean(axis=0)), atol=1e-12)
    np.testing.assert_allclose(base, linear(background).mean(axis=0))

    def interacting(m):  # two outputs, one with an interaction between columns 0 and 1
        return np.column_stack([m[:, 0] * m[:, 1] + np.sin(m[:, 2]), m[:, 3] ** 2])

    values, base = permutation_shap(coalitions_of(interacting, x, background), 7, 5, 3, rng)
    np.testing.assert_allclose(base + values.sum(axis=1), interacting(x), atol=1e-12)
    assert np.all(values[:, 4, :] == 0) and np.all(values[:, :3, 1] == 0)  # unused columns get nothing
