"""``mtl <command> [hydra overrides]``: each command is a Hydra app over ``conf/<command>.yaml``.

Heavy libraries (TensorFlow, MLflow, matminer) are imported inside the commands, so ``mtl --help``
and configuration errors answer at once.
"""

from __future__ import annotations

import importlib
import sys

from mtl.errors import MTLError

COMMANDS = {
    "train": "train a multi-task ensemble on the configured tasks and track it in MLflow",
}

USAGE = """usage: mtl <command> [key=value ...] [hydra options]

commands:
{commands}

Each command composes conf/<command>.yaml with Hydra: override any key (trainer.max_epochs=50),
swap a config group (schedule=blocks), or sweep with -m. `mtl <command> --help` shows its config.
"""


def _usage() -> str:
    return USAGE.format(commands="\n".join(f"  {name:<10}{text}" for name, text in COMMANDS.items()))


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


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return
    command = argv[0]
    if command not in COMMANDS:
        print(f"error: unknown command '{command}'\n\n{_usage()}", file=sys.stderr)
        sys.exit(2)
    sys.argv = [f"mtl {command}", *argv[1:]]
    hydra_app(command)()
