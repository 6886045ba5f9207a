import subprocess
import sys

import numpy as np

from mtl.tuning.gpyopt_compat import import_gpyopt


def test_gpyopt_imports_without_pkg_resources():
    code = ("import sys; sys.modules['pkg_resources'] = None\n"  # as if setuptools >= 82
            "from mtl.tuning.gpyopt_compat import import_gpyopt\n"
            "import_gpyopt()")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_batch_local_penalisation_runs_on_current_scipy():
    GPyOpt = import_gpyopt()
    np.random.seed(0)
    domain = [{"name": "x", "type": "continuous", "domain": (-2.0, 2.0)}]
    bo = GPyOpt.methods.BayesianOptimization(f=lambda x: (x - 0.7) ** 2, domain=domain, initial_design_numdata=4,
                                             batch_size=2, num_cores=1, evaluator_type="local_penalization",
                                             acquisition_type="EI")
    bo.run_optimization(max_iter=3)
    assert len(bo.Y) == 4 + 3 * 2  # every round proposed a batch of two
    assert abs(bo.x_opt[0] - 0.7) < 0.5
