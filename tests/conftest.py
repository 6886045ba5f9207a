"""Shared fixtures: small real tables in the shipped formats, real Hydra configs composed from
conf/, and a real MLflow SQLite store in a temporary directory."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pandas as pd
import pytest
from hydra import compose, initialize_config_dir

from mtl.config import CONF_DIR, validated

ELEMENTS = ["Fe", "Cr", "Ni", "Co", "Al"]
WT_ELEMENTS = ["Fe", "Cr", "Ni", "Mo"]


def hardness_table(n: int = 48, seed: int = 0) -> pd.DataFrame:
    """MPEA-format rows: molar formula, HV a smooth function of composition (+ a little noise)."""
    rng = np.random.default_rng(seed)
    amounts = rng.dirichlet(np.ones(len(ELEMENTS)), size=n // 2).round(2) + 0.01
    amounts = np.vstack([amounts, amounts])  # each alloy measured twice: groups matter
    formulas = [" ".join(f"{el}{a:g}" for el, a in zip(ELEMENTS, row)) for row in amounts]
    frac = amounts / amounts.sum(axis=1, keepdims=True)
    hv = 200 + 600 * frac[:, 4] + 300 * frac[:, 1] + rng.normal(0, 10, n)
    ys = 3.0 * hv + rng.normal(0, 20, n)
    return pd.DataFrame({"FORMULA": formulas, "PROPERTY: HV": hv.round(1), "PROPERTY: YS (MPa)": ys.round(1),
                         "PROPERTY: Test temperature ($^\\circ$C)": "25.0"})


def pitting_table(n: int = 60, seed: int = 1) -> pd.DataFrame:
    """Nyby-format rows: wt.% element columns, Epit depending on Cr/Mo and the test temperature."""
    rng = np.random.default_rng(seed)
    cr, mo, ni = rng.uniform(10, 25, n), rng.uniform(0, 6, n), rng.uniform(5, 20, n)
    temp, chloride = rng.uniform(20, 80, n), rng.uniform(0.01, 1.0, n)
    epit = -300 + 30 * cr + 80 * mo - 6 * temp + rng.normal(0, 15, n)
    return pd.DataFrame({"Fe": (100 - cr - mo - ni).round(3), "Cr": cr.round(3), "Ni": ni.round(3), "Mo": mo.round(3),
                         "Epit, mV (SCE)": epit.round(0), "Test Temp (C)": temp.round(1), "[Cl-] M": chloride.round(3),
                         "pH": 7.0, "Scan Rate mV/s": 0.2})


@pytest.fixture
def tables(tmp_path):
    paths = {"hardness": tmp_path / "hardness.csv", "pitting": tmp_path / "pitting.csv"}
    hardness_table().to_csv(paths["hardness"], index=False)
    pitting_table().to_csv(paths["pitting"], index=False)
    return paths


def compose_train(overrides: list[str], config: str = "train", raw: bool = False):
    """The real config from conf/, validated against the schema unless ``raw``."""
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        cfg = compose(config, overrides=overrides)
    return cfg if raw else validated(cfg)


def tiny_overrides_for(tables, tmp_path) -> list[str]:
    """Overrides that point the default study at the small tables and a temporary MLflow store;
    SHAP and the registry are off (their own tests switch them on)."""
    return [
        f"tasks.hardness.source={tables['hardness']}",
        f"tasks.pitting.source={tables['pitting']}",
        f"tasks.pitting.composition.columns=[{','.join(WT_ELEMENTS)}]",
        "data.descriptors=null",
        f"data.cache_dir={tmp_path / 'cache'}",
        "model.trunk.units=16", "model.head.units=8",
        "trainer.max_epochs=15", "trainer.patience=10", "trainer.batch_size=16", "trainer.mc_samples=3",
        "trainer.log_every=0", "trainer.jit_compile=false",  # XLA's compile time outweighs its gain on tiny runs
        "ensemble.folds=3",
        f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
        "study=test",
        "explain.enabled=false", "registry.enabled=false",
    ]


@pytest.fixture
def tiny_overrides(tables, tmp_path):
    return tiny_overrides_for(tables, tmp_path)


@pytest.fixture
def tiny_cfg(tiny_overrides):
    return compose_train(tiny_overrides)
