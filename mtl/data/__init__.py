"""Tables -> tasks -> one multi-task dataset (see :func:`mtl.data.dataset.load_dataset`)."""
