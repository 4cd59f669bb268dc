"""The data sets training reads, by name, all without torchvision's dataset classes.

- ``digits``: scikit-learn's bundled 8x8 digits, a fixed stratified 80/20 split.
- ``mnist1d``: MNIST-1D's 1-D signals (N, 1, 40), generated offline and cached under the data
  root.
- ``cifar10`` / ``cifar100``: torchvision's on-disk python format, read with a restricted
  unpickler.
- ``tiny-imagenet``: the ``tiny-imagenet-200`` folder layout, JPEGs decoded with PIL.
- ``imagenet``: the ImageFolder layout, streamed from disk by DataLoader workers.
- ``synthetic``: seeded Gaussian images with uniform labels, for benchmarks.

All but ImageNet are held whole on the training device (:mod:`trainers.datasets.memory`);
ImageNet does not fit there (:mod:`trainers.datasets.imagenet`). Both kinds offer what
training needs through one small protocol, :class:`TrainingData`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from signscope.errors import SignscopeError
from trainers.datasets import cifar, digits, imagenet, mnist1d, synthetic, tiny_imagenet
from trainers.datasets.base import TrainingData

DEFAULT_ROOT = Path("data")
# Data sets whose examples are 1-D signals (C, L) rather than images (C, H, W).
SIGNAL_DATASETS = frozenset({"mnist1d"})


@dataclass(frozen=True)
class DataRequest:
    """Everything a loader may need; each reads its own part."""

    root: Path
    download: bool
    synthetic_shape: tuple[int, int, int]
    synthetic_classes: int
    synthetic_size: tuple[int, int]
    seed: int
    workers: int


LOADERS: dict[str, Callable[[DataRequest], TrainingData]] = {
    "digits": lambda r: digits.load(),
    "mnist1d": lambda r: mnist1d.load(r.root),
    "cifar10": lambda r: cifar.load(r.root, r.download, cifar.CIFAR10),
    "cifar100": lambda r: cifar.load(r.root, r.download, cifar.CIFAR100),
    "tiny-imagenet": lambda r: tiny_imagenet.load(r.root, r.download),
    "imagenet": lambda r: imagenet.load(r.root, r.download, r.workers),
    "synthetic": lambda r: synthetic.load(
        r.synthetic_shape, r.synthetic_classes, r.synthetic_size, r.seed
    ),
}
DATASETS = tuple(LOADERS)


def load_dataset(
    name: str,
    root: str | Path | None = None,
    download: bool = False,
    synthetic_shape: tuple[int, int, int] = (3, 32, 32),
    synthetic_classes: int = 10,
    synthetic_size: tuple[int, int] = (2048, 512),
    seed: int = 0,
    workers: int = 8,
) -> TrainingData:
    """Load a data set by name onto the CPU (move it with its ``to``).

    ``root`` (default ``./data``) holds the on-disk data sets; ``download`` fetches CIFAR
    through torchvision when it is missing. ``seed`` only affects ``synthetic``, ``workers``
    only ``imagenet``.
    """
    if name not in LOADERS:
        raise SignscopeError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    request = DataRequest(
        root=DEFAULT_ROOT if root is None else Path(root),
        download=download,
        synthetic_shape=synthetic_shape,
        synthetic_classes=synthetic_classes,
        synthetic_size=synthetic_size,
        seed=seed,
        workers=workers,
    )
    return LOADERS[name](request)


__all__ = ["DATASETS", "DEFAULT_ROOT", "LOADERS", "SIGNAL_DATASETS", "TrainingData", "load_dataset"]
