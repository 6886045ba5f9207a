"""Hyperparameter search (GPyOpt) and what it needs."""
