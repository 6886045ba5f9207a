"""Where to look next: GPyOpt Bayesian optimisation (GP surrogate, EI by default; batches of q
points by local penalisation) or plain random search, over a :class:`SearchSpace`.

Objectives are maximised (cross-validated R²); GPyOpt minimises, so it is given their negation.
A failed trial (NaN) counts as slightly worse than the worst finished one, so the surrogate
learns to avoid its region instead of forgetting it.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mtl.tuning.gpyopt_compat import import_gpyopt
from mtl.tuning.space import SearchSpace

ACQUISITIONS = ("EI", "MPI", "LCB")
logging.getLogger("GP").setLevel(logging.WARNING)  # GPy logs every model initialisation at INFO


def initial_points(space: SearchSpace, n: int, seed: int) -> np.ndarray:
    """A seeded random design over the space (GPyOpt's sampler, so integers and categories are valid)."""
    gpyopt = import_gpyopt()
    np.random.seed(seed)
    return gpyopt.experiment_design.initial_design("random", gpyopt.Design_space(space.domain()), n)


def fill_failures(y: np.ndarray) -> np.ndarray:
    finished = y[np.isfinite(y)]
    floor = finished.min() - max(0.1, 0.1 * np.ptp(finished)) if finished.size else -1.0
    return np.where(np.isfinite(y), y, floor)


def propose(space: SearchSpace, x: np.ndarray, y: np.ndarray, batch_size: int, acquisition: str, seed: int) -> np.ndarray:
    """The next ``batch_size`` points given the evaluated points ``x`` and objectives ``y``."""
    gpyopt = import_gpyopt()
    np.random.seed(seed)
    optimizer = gpyopt.methods.BayesianOptimization(
        f=None, domain=space.domain(), X=np.asarray(x, float), Y=-fill_failures(np.asarray(y, float))[:, None],
        acquisition_type=acquisition, normalize_Y=True, exact_feval=False, de_duplication=True, batch_size=batch_size,
        evaluator_type="local_penalization" if batch_size > 1 else "sequential")
    return np.atleast_2d(optimizer.suggest_next_locations())


def next_points(space: SearchSpace, tuner, assignments: list[dict[str, Any]], objectives: list[float]) -> list[dict[str, Any]]:
    """The next round of points for ``tuner`` (strategy, n_trials, initial_design, batch_size,
    acquisition, seed) after the evaluated ``assignments``: used by ``mtl tune`` and the sweeper.

    Random points come from one seeded sequence, so random search and the BO's initial design share
    its start and a resumed study continues it where it stopped."""
    done = len(assignments)
    count = min(tuner.batch_size, tuner.n_trials - done)
    if tuner.strategy == "random" or done < tuner.initial_design:
        stop = done + count if tuner.strategy == "random" else min(done + count, tuner.initial_design)
        return [space.decode(x) for x in initial_points(space, tuner.n_trials, tuner.seed)[done:stop]]
    x = np.array([space.encode(a) for a in assignments])
    points = [space.decode(p) for p in propose(space, x, np.asarray(objectives, float), count, tuner.acquisition,
                                               tuner.seed + done)]
    return without_repeats(space, points, assignments, seed=tuner.seed + done)


def without_repeats(space: SearchSpace, points: list[dict[str, Any]], evaluated: list[dict[str, Any]],
                    seed: int) -> list[dict[str, Any]]:
    """A proposal equal to an evaluated point (or to another in its batch) would only repeat a
    seeded, deterministic trial: it is replaced by a random point."""
    seen = {tuple(sorted(a.items())) for a in evaluated}
    fresh, spare = [], iter(initial_points(space, 10 * len(points) + 10, seed))
    for point in points:
        while tuple(sorted(point.items())) in seen:
            point = space.decode(next(spare))
        seen.add(tuple(sorted(point.items())))
        fresh.append(point)
    return fresh
