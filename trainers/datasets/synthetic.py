"""Seeded Gaussian images with uniform labels, for benchmarks and tests."""

from __future__ import annotations

import torch

from signscope.errors import SignscopeError
from trainers.datasets.memory import Dataset, build


def load(shape: tuple[int, int, int], classes: int, size: tuple[int, int], seed: int) -> Dataset:
    if classes < 2 or len(shape) != 3 or min(shape) < 1 or min(size) < 1:
        raise SignscopeError(
            f"synthetic data needs a (C, H, W) shape, at least 2 classes and nonempty splits "
            f"(got shape {tuple(shape)}, {classes} classes, sizes {tuple(size)})"
        )
    g = torch.Generator().manual_seed(seed)
    n_train, n_test = size
    x = torch.randn((n_train + n_test, *shape), generator=g)
    y = torch.randint(0, classes, (n_train + n_test,), generator=g)
    xn, yn = x.numpy(), y.numpy()
    return build("synthetic", xn[:n_train], yn[:n_train], xn[n_train:], yn[n_train:], classes, 1.0)
