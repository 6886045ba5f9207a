"""``mtl predict --input FILE.csv --output OUT.csv [--model URI]``: a registered model on a raw table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mtl.errors import DataError, MTLError


def read_input(path: str) -> pd.DataFrame:
    """The table as text, like the training loader reads it: the model applies the data rules."""
    if not Path(path).is_file():
        raise DataError(f"input '{path}' not found.")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise DataError(f"input '{path}' is empty; give a CSV with a header row and at least one row.") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"input '{path}' cannot be read as CSV: {exc}") from None
    if frame.empty:
        raise DataError(f"input '{path}' has a header but no rows to predict.")
    return frame


def load_model(uri: str, tracking: str | None):
    """The pyfunc model at ``uri`` (``models:/name@alias``, ``runs:/...`` or a path)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from mtl.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(tracking))
    try:
        return mlflow.pyfunc.load_model(uri)
    except MlflowException as exc:
        raise MTLError(f"cannot load model '{uri}': {exc.message}\nTrain and register one first (`mtl train`), "
                       "or pass --model / --tracking-uri.") from None


def run(args) -> None:
    frame = read_input(args.input)
    model = load_model(args.model, args.tracking_uri)
    params = {"explain": args.explain, "mc_samples": args.mc_samples, "tasks": args.tasks}
    predictions = model.predict(frame, params=params)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    predictions.to_csv(partial, index=False)
    partial.replace(output)  # atomic: a crash never leaves half a file under the output name
    print(f"{len(predictions)} rows predicted with {args.model} -> {output}")
