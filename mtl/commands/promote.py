"""``mtl promote VERSION [--name sparse-mtl]``: point @champion at a version by hand."""

from __future__ import annotations


def run(args) -> None:
    import mlflow

    from mtl.registry import CHAMPION, promote
    from mtl.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(args.tracking_uri))
    promote(args.name, args.version)
    print(f"models:/{args.name}@{CHAMPION} -> version {args.version}")
