"""scikit-learn's bundled 8x8 digits, with a fixed stratified 80/20 split that does not depend on
the run seed, so every run sees the same train and test set."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from trainers.datasets.memory import Dataset, build

SPLIT_SEED = 0  # fixed on purpose: the split must not move with the run seed
TEST_FRACTION = 0.2


def stratified_split(
    y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded shuffle and the first ``round(fraction * count)`` to the test set."""
    rng = np.random.Generator(np.random.PCG64(seed))
    train, test = [], []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        k = int(round(test_fraction * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as (1797, 64) pixels 0..16 and (1797,) labels.

    Read straight from the ``digits.csv.gz`` that ships inside scikit-learn (exactly what
    ``load_digits`` parses): importing ``sklearn.datasets`` pulls in SciPy and costs seconds
    per training run, a large share of the demo. ``load_digits`` remains the fallback should a
    release move the file.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin is not None:
        csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            with gzip.open(csv, "rt") as f:
                table = np.loadtxt(f, delimiter=",", dtype=np.float64)
            if table.shape == (1797, 65):
                return table[:, :-1], table[:, -1]
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data, bunch.target


def load() -> Dataset:
    pixels, target = digits_arrays()
    x = pixels.astype(np.float32).reshape(-1, 1, 8, 8)  # values 0..16
    y = target.astype(np.int64)
    train, test = stratified_split(y, TEST_FRACTION, SPLIT_SEED)
    return build("digits", x[train], y[train], x[test], y[test], 10, scale=16.0)
