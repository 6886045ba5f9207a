"""Alloy descriptors from matminer, cached on disk by a hash of the compositions asked for.

Descriptors depend on the composition alone (nothing is fitted), so computing them for all
rows before splitting leaks nothing; the scalers and imputers that use them are fitted in-fold.
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

# WenAlloys' first two outputs are strings (the weight/atomic formula), not descriptors.
_TEXT_LABELS = {"Weight Fraction", "Atomic Fraction"}


def _featurizer(name: str):
    from matminer.featurizers import composition as featurizers  # ~2 s import

    if not hasattr(featurizers, name):
        from mtl.errors import ConfigError

        raise ConfigError(f"descriptors: matminer has no composition featurizer '{name}'; try 'WenAlloys'.")
    return getattr(featurizers, name)()


def cache_key(keys: list[str], featurizer: str) -> str:
    import matminer

    payload = json.dumps({"featurizer": featurizer, "matminer": matminer.__version__, "compositions": sorted(keys)})
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def compute_descriptors(compositions: dict[str, dict[str, float]], featurizer: str, cache_dir: str | Path) -> pd.DataFrame:
    """One row of descriptors per composition key; NaN where the featurizer lacks element data."""
    path = Path(cache_dir) / f"{featurizer}-{cache_key(list(compositions), featurizer)}.csv"
    if path.exists():
        log.info("descriptors: %d compositions read from cache %s", len(compositions), path)
    else:
        log.info("descriptors: computing %s for %d compositions (cached afterwards in %s)", featurizer, len(compositions), path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        featurize(compositions, featurizer).to_csv(tmp)
        tmp.replace(path)  # atomic: a crash never leaves half a cache file
    # Always the values as read back, parsed exactly: a first run and a cached run agree bit for bit.
    return pd.read_csv(path, index_col=0, float_precision="round_trip")


def featurize(compositions: dict[str, dict[str, float]], featurizer: str) -> pd.DataFrame:
    from pymatgen.core import Composition

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # matminer's own pandas deprecation noise
        feat = _featurizer(featurizer)
        labels = feat.feature_labels()
        for fractions in compositions.values():
            try:
                values = feat.featurize(Composition(fractions))
            except Exception as exc:  # element data missing in matminer's tables
                log.debug("descriptors: %s failed for %s: %s", featurizer, fractions, exc)
                values = [np.nan] * len(labels)
            rows.append(values)
    table = pd.DataFrame(rows, index=list(compositions), columns=labels)
    table = table.drop(columns=[c for c in labels if c in _TEXT_LABELS])
    return table.apply(pd.to_numeric, errors="coerce").astype(float)
