"""``mtl <command> ...``.

Study commands (``train``, ``tune``) are Hydra apps over ``conf/<command>.yaml``: override any key,
swap a config group, or sweep with ``-m``. Model commands (``predict``, ``explain``, ``promote``)
take plain options and work on a registered model.

Heavy libraries (TensorFlow, MLflow, matminer) are imported inside the commands, so ``mtl --help``
and configuration errors answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from mtl.errors import MTLError

HYDRA_COMMANDS = {
    "train": "train a multi-task ensemble on the configured tasks, track it in MLflow, register it",
    "tune": "Bayesian optimisation (GPyOpt) of architecture, schedule and learning rates; registers the best",
}
MODEL_COMMANDS = {
    "predict": "predict a raw-format table with a registered model (mean and uncertainty per task)",
    "explain": "SHAP values per task of a registered model for a raw-format table, logged to MLflow",
    "promote": "point the registered model's @champion alias at a version",
}
DEFAULT_MODEL = "models:/sparse-mtl@champion"

USAGE = """usage: mtl <command> [options]

study commands (Hydra: key=value overrides, group=option swaps, -m sweeps; --help shows the config):
{hydra}

model commands (--help for their options):
{model}
"""


def _usage() -> str:
    def rows(commands):
        return "\n".join(f"  {name:<10}{text}" for name, text in commands.items())

    return USAGE.format(hydra=rows(HYDRA_COMMANDS), model=rows(MODEL_COMMANDS))


def hydra_app(command: str):
    import hydra

    from mtl.config import CONF_DIR

    module = importlib.import_module(f"mtl.commands.{command}")

    @hydra.main(config_path=str(CONF_DIR), config_name=command, version_base="1.3")
    def app(cfg):
        try:
            return module.run(cfg)
        except MTLError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)

    return app


def model_parser(command: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"mtl {command}", description=MODEL_COMMANDS[command])
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else ./mlruns/mlflow.db)")
    if command == "promote":
        parser.add_argument("version", help="the model version to make champion")
        parser.add_argument("--name", default="sparse-mtl", help="registered model name (default: sparse-mtl)")
        return parser
    parser.add_argument("--input", required=True, help="CSV in the format of a task's raw table")
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model URI (default: {DEFAULT_MODEL})")
    parser.add_argument("--tasks", default="", help="comma-separated tasks to predict (default: all)")
    if command == "predict":
        parser.add_argument("--output", required=True, help="CSV to write: one row per input row")
        parser.add_argument("--explain", action="store_true", help="add SHAP columns per task")
        parser.add_argument("--mc-samples", type=int, default=-1, help="MC-dropout passes (default: the model's)")
    else:
        parser.add_argument("--experiment", default="sparse-mtl-explain", help="MLflow experiment for the explain run")
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's start-up chatter, not the user's business
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return
    command = argv[0]
    if command in MODEL_COMMANDS:
        args = model_parser(command).parse_args(argv[1:])
        try:
            importlib.import_module(f"mtl.commands.{command}").run(args)
        except MTLError as exc:
            print(f"error: {exc}", file=sys.stderr)
            sys.exit(2)
        return
    if command not in HYDRA_COMMANDS:
        print(f"error: unknown command '{command}'\n\n{_usage()}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"mtl {command}", *argv[1:]]
    hydra_app(command)()
