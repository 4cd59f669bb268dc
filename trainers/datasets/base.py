"""What training asks of a data set, whether it lives on the device or streams from disk."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

import torch
from torch import Tensor

from signscope.errors import SignscopeError

Batches = Iterator[tuple[Tensor, Tensor]]


class TrainingData(Protocol):
    """A data set as the trainer, the benchmark and the pruning criteria use it."""

    name: str
    num_classes: int

    @property
    def n_train(self) -> int: ...

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape: (C, H, W) for images, (C, L) for 1-D signals."""
        ...

    @property
    def device(self) -> torch.device:
        """Where the batches arrive (and where a training ``generator`` must live)."""
        ...

    def to(self, device: torch.device | str, channels_last: bool = False) -> TrainingData: ...

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator,
        *,
        train: bool,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> Batches:
        """Batches of ``(inputs, labels)`` on :attr:`device`.

        ``train=True``: one permutation of the training set per call, drawn from
        ``generator``, and the augmentation of the epoch. All ranks must pass identically
        seeded generators: they then draw the same permutation, and rank ``r`` takes positions
        ``r, r+world_size, ...`` of it (:func:`shard`), a disjoint ``1/world_size`` share of
        the epoch. ``train=False``: the whole test set in order, no augmentation, on every
        rank, which then computes the same accuracy with or without a collective.
        """
        ...


def check_batching(batch_size: int, rank: int, world_size: int) -> None:
    if batch_size < 1:
        raise SignscopeError(f"batch size must be at least 1 (got {batch_size})")
    if not 0 <= rank < world_size:
        raise SignscopeError(f"rank {rank} is outside world size {world_size}")


def shard(n: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s positions of an epoch's permutation of ``n`` examples."""
    # Every rank gets exactly n // world_size positions so all ranks run the same number of
    # steps (an uneven count would hang a collective); the <= world_size-1 leftover positions
    # of the permutation differ every epoch, so no example is dropped for good.
    usable = n - n % world_size
    return slice(rank, usable, world_size)
