"""MNIST-1D's 1-D signals (N, 1, 40), made offline by the ``mnist1d`` package's generator and
cached under the data root (:mod:`trainers.mnist1d`)."""

from __future__ import annotations

from pathlib import Path

from trainers.datasets.memory import Dataset, build
from trainers.mnist1d import CLASSES, load_arrays


def load(root: Path) -> Dataset:
    """MNIST-1D's default 4,000/1,000 split. The generator already standardises the signals;
    the train-set normalisation of :func:`build` is then nearly the identity and kept only so
    every data set goes the same way."""
    a = load_arrays(root)
    return build(
        "mnist1d", a["x"][:, None, :], a["y"], a["x_test"][:, None, :], a["y_test"], CLASSES, 1.0
    )
