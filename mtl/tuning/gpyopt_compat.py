"""GPyOpt 1.2.6 is archived; its two known breakages are mended here, and only here.

1. ``import GPyOpt`` imports ``pkg_resources`` (for its version string), which setuptools 82
   removed: a minimal stand-in built on ``importlib.metadata`` is installed when it is missing.
2. Batch local penalisation estimates a Lipschitz constant with ``res.fun[0][0]``; current
   SciPy returns ``res.fun`` as a float, so every batch run crashes. ``estimate_L`` is replaced by
   the same computation reading ``res.fun`` either way.

Always import GPyOpt through :func:`import_gpyopt`.
"""

from __future__ import annotations

import importlib.metadata
import sys
import types

import numpy as np


def _install_pkg_resources_stand_in() -> None:
    try:
        import pkg_resources  # noqa: F401
        return
    except ImportError:
        pass
    module = types.ModuleType("pkg_resources")
    module.DistributionNotFound = importlib.metadata.PackageNotFoundError
    module.get_distribution = lambda name: types.SimpleNamespace(version=importlib.metadata.version(name))
    sys.modules["pkg_resources"] = module


def estimate_lipschitz(model, bounds, storehistory=True) -> float:
    """GPyOpt's ``estimate_L`` (norm of the expected gradient, maximised) with a SciPy-proof result."""
    import scipy.optimize
    from GPyOpt.util.general import samples_multidimensional_uniform

    def negative_gradient_norm(x, model, x0):
        dmdx, _ = model.predictive_gradients(np.atleast_2d(x))
        return -np.sqrt((dmdx * dmdx).sum(1))

    samples = np.vstack([samples_multidimensional_uniform(bounds, 500), model.X])
    x0 = samples[np.argmin(negative_gradient_norm(samples, model, 0))]
    res = scipy.optimize.minimize(lambda x, *a: float(negative_gradient_norm(x, *a).ravel()[0]), x0, method="L-BFGS-B",
                                  bounds=bounds, args=(model, x0), options={"maxiter": 200})
    lipschitz = -float(np.asarray(res.fun).ravel()[0])
    return lipschitz if lipschitz >= 1e-7 else 10.0  # GPyOpt's guard against a flat model


def import_gpyopt():
    """``GPyOpt``, importable and with batch local penalisation working on current SciPy."""
    _install_pkg_resources_stand_in()
    import GPyOpt
    from GPyOpt.core.evaluators import batch_local_penalization

    batch_local_penalization.estimate_L = estimate_lipschitz
    return GPyOpt
