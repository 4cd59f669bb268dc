"""Data sets as whole tensors resident on the training device, and the batches drawn from them.

There is no ``DataLoader``: a data set is loaded once into four tensors, moved to the device with
:meth:`Dataset.to`, and :meth:`Dataset.batches` indexes and augments it there (as airbench
does), so an epoch costs one permutation and one gather per batch.

Images are scaled to [0, 1] and normalised per channel with train-set statistics; ``mean`` and
``std`` keep those statistics (in [0, 1] units) so the crop padding can be black pixels, as in
torchvision's ``RandomCrop(padding=4)`` applied before ``Normalize``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from trainers.augment import crop_flip, draw_crop_flip
from trainers.datasets.base import Batches, check_batching, shard

CROP_PAD = 4
AUGMENTED_SIZES = (32, 64)


@dataclass(eq=False)  # tensors have no single truth value to compare by
class Dataset:
    """A whole data set as tensors: images (N, C, H, W) float32 normalised, labels (N,) int64."""

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    augment: bool
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def n_train(self) -> int:
        return int(self.train_y.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape: (C, H, W) for images, (C, L) for 1-D signals."""
        return tuple(int(d) for d in self.train_x.shape[1:])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def pad_fill(self) -> Tensor:
        """Per-channel value of a black (raw 0) pixel after normalisation."""
        if not self.mean:
            return torch.zeros(self.in_channels, device=self.device)
        mean = torch.tensor(self.mean, dtype=torch.float64)
        std = torch.tensor(self.std, dtype=torch.float64)
        return (-mean / std).to(self.train_x.dtype).to(self.device)

    def to(self, device: torch.device | str, channels_last: bool = False) -> Dataset:
        """A copy with all four tensors on ``device``; images in channels_last when asked
        (1-D signals have no such layout and stay as they are)."""
        images = self.train_x.dim() == 4
        fmt = torch.channels_last if channels_last and images else torch.contiguous_format

        def move(x: Tensor) -> Tensor:
            return x.to(device).contiguous(memory_format=fmt)

        return dataclasses.replace(
            self,
            train_x=move(self.train_x),
            train_y=self.train_y.to(device),
            test_x=move(self.test_x),
            test_y=self.test_y.to(device),
        )

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
        """:meth:`trainers.datasets.TrainingData.batches`, indexed on the data's device.

        ``train=True``: ``generator`` must live on the data's device; after the permutation it
        draws the crop/flip parameters of the whole epoch when ``augment``, one per position,
        so an example's augmentation does not depend on the number of ranks.
        """
        check_batching(batch_size, rank, world_size)
        if not train:
            yield from self._eval_batches(batch_size)
            return
        n = self.n_train
        device = self.device
        perm = torch.randperm(n, generator=generator, device=device)
        params = draw_crop_flip(n, generator, CROP_PAD, device) if self.augment else None
        positions = torch.arange(n, device=device)[shard(n, rank, world_size)]
        fill = self.pad_fill() if self.augment else None
        stop = len(positions) - len(positions) % batch_size if drop_last else len(positions)
        for start in range(0, stop, batch_size):
            pos = positions[start : start + batch_size]
            idx = perm[pos]
            x = self.train_x[idx]
            if params is not None:
                x = crop_flip(x, params[pos], CROP_PAD, fill)
            yield _like(x, self.train_x), self.train_y[idx]

    def _eval_batches(self, batch_size: int) -> Batches:
        for start in range(0, self.test_y.shape[0], batch_size):
            stop = start + batch_size
            yield self.test_x[start:stop], self.test_y[start:stop]


def _like(x: Tensor, ref: Tensor) -> Tensor:
    # Indexing does not promise to keep channels_last; the model's convolutions want it kept.
    if ref.is_contiguous(memory_format=torch.channels_last) and not ref.is_contiguous():
        return x.contiguous(memory_format=torch.channels_last)
    return x


def build(
    name: str,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
    scale: float,
) -> Dataset:
    """Normalise raw images (values in ``[0, scale]``) with per-channel train statistics."""
    mean, std = _channel_stats(train_x, scale)
    height, width = train_x.shape[-2:]
    return Dataset(
        name=name,
        train_x=_normalise(train_x, mean, std, scale),
        train_y=torch.as_tensor(np.asarray(train_y, dtype=np.int64)),
        test_x=_normalise(test_x, mean, std, scale),
        test_y=torch.as_tensor(np.asarray(test_y, dtype=np.int64)),
        num_classes=num_classes,
        # Crop and flip are for square images; signals (N, C, L) are not augmented.
        augment=train_x.ndim == 4 and height == width and width in AUGMENTED_SIZES,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
    )


def _channel_stats(x: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of ``x / scale`` in float64."""
    c = x.shape[1]
    mean, std = np.empty(c), np.empty(c)
    for ch in range(c):
        v = x[:, ch]
        if v.dtype == np.uint8:
            # A histogram gives exact moments without a float64 copy of the whole channel
            # (Tiny ImageNet's train set would need 3.3 GB per channel otherwise).
            counts = np.bincount(v.ravel(), minlength=256).astype(np.float64)
            values = np.arange(256, dtype=np.float64) / scale
            total = counts.sum()
            m = (counts * values).sum() / total
            var = (counts * (values - m) ** 2).sum() / total
        else:
            vf = v.astype(np.float64) / scale
            m, var = vf.mean(), vf.var()
        mean[ch], std[ch] = m, np.sqrt(var) if var > 0 else 1.0
    return mean, std


def _normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray, scale: float) -> Tensor:
    out = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out.sub_(torch.tensor(mean * scale, dtype=torch.float32).view(shape))
    out.div_(torch.tensor(std * scale, dtype=torch.float32).view(shape))
    return out
