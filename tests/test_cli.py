"""The real ``mtl`` command, as a user runs it."""

import os
import subprocess
import sys

import pytest
from mlflow import MlflowClient

from mtl.config import validated
from mtl.errors import ConfigError

from conftest import compose_train


def mtl(*args, cwd=None):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run([sys.executable, "-m", "mtl", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


def test_help_does_not_import_the_heavy_libraries():
    out = mtl("--help")
    assert out.returncode == 0 and "train" in out.stdout
    code = ("import sys; from mtl.cli import main; main(['--help']); "
            "heavy = [m for m in ('tensorflow', 'keras', 'mlflow', 'matminer') if m in sys.modules]; "
            "sys.exit(f'imported {heavy}' if heavy else 0)")
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert probe.returncode == 0, probe.stderr


def test_unknown_command():
    out = mtl("trian")
    assert out.returncode == 2 and "unknown command 'trian'" in out.stderr


def test_misspelt_override_key_fails_before_training(tiny_overrides):
    out = mtl("train", *tiny_overrides, "trainer.epochz=3")
    assert out.returncode != 0 and "epochz" in out.stderr


def test_misspelt_key_inside_a_config_file_is_named(tiny_overrides):
    cfg = compose_train([*tiny_overrides, "+tasks.hardness.tagret=HV"], raw=True)
    with pytest.raises(ConfigError, match="tagret"):
        validated(cfg)


@pytest.mark.parametrize("override, message", [
    ("tasks.hardness.source=/nonexistent/hv.csv", "source file '/nonexistent/hv.csv' not found"),
    ("tasks.pitting.target.column=Epit", "has no column 'Epit'"),
])
def test_bad_data_exits_nonzero_with_the_cause_and_opens_no_run(tiny_overrides, tmp_path, override, message):
    out = mtl("train", *tiny_overrides, override)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("test")
    assert experiment is None or not client.search_runs([experiment.experiment_id])
