"""One module per ``mtl`` subcommand; each exposes ``run(cfg)`` taking the composed Hydra config."""
