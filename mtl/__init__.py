"""sparse-mtl: multi-task neural networks for sparsely labelled tabular data."""

__version__ = "0.1.0"
