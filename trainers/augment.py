"""Batched random crop (zero padding) plus horizontal flip, on whatever device the batch lives.

The standard CIFAR recipe (``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip``), done for a
whole batch with one gather instead of a per-sample loop, in the spirit of airbench's
``batch_crop``/``batch_flip_lr``. Randomness comes only from the ``generator`` passed in, so
equal generator states give bit-identical batches.

Drawing the parameters (:func:`draw_crop_flip`) is separate from applying them
(:func:`crop_flip`) so a caller can draw them once for a whole epoch and slice them per batch
or per rank, which keeps the augmentation of an example independent of how the epoch is split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class CropFlip:
    """Per-example parameters: crop offsets into the padded image and a flip flag."""

    dy: Tensor  # (B,) int64 in [0, 2*pad]
    dx: Tensor  # (B,) int64 in [0, 2*pad]
    flip: Tensor  # (B,) bool

    def __getitem__(self, index) -> CropFlip:
        return CropFlip(self.dy[index], self.dx[index], self.flip[index])


def draw_crop_flip(
    n: int, generator: torch.Generator, pad: int = 4, device: torch.device | str | None = None
) -> CropFlip:
    """Uniform offsets over the ``(2*pad+1)**2`` crops and a fair coin for the flip."""
    device = generator.device if device is None else device
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator, device=device)
    flip = torch.randint(0, 2, (n,), generator=generator, device=device).bool()
    return CropFlip(dy, dx, flip)


def _pad(x: Tensor, pad: int, fill: Tensor | None) -> Tensor:
    b, c, h, w = x.shape
    padded = x.new_zeros((b, c, h + 2 * pad, w + 2 * pad))
    if fill is not None:
        # Filling the border with the per-channel value and copying the image in keeps the
        # interior bit-exact (``pad(x - f) + f`` would round).
        padded.copy_(fill.to(x).view(1, c, 1, 1).expand_as(padded))
    padded[:, :, pad : pad + h, pad : pad + w] = x
    return padded


def crop_flip(x: Tensor, params: CropFlip, pad: int = 4, fill: Tensor | None = None) -> Tensor:
    """Crop every image of ``x`` (B, C, H, W) at its own offset after padding by ``pad`` pixels,
    then mirror the images whose flip flag is set.

    ``fill`` is the per-channel border value (C,); ``None`` pads with 0. The output keeps the
    input's memory format (channels_last stays channels_last).
    """
    b, c, h, w = x.shape
    padded = _pad(x, pad, fill).permute(0, 2, 3, 1)  # (B, H+2p, W+2p, C): gather whole pixels
    ar_h = torch.arange(h, device=x.device)
    ar_w = torch.arange(w, device=x.device)
    rows = params.dy.to(x.device)[:, None] + ar_h
    dx = params.dx.to(x.device)[:, None]
    # A flipped crop reads its columns right to left: out[..., j] = crop[..., W-1-j].
    cols = torch.where(params.flip.to(x.device)[:, None], dx + (w - 1) - ar_w, dx + ar_w)
    batch = torch.arange(b, device=x.device)[:, None, None]
    out = padded[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return out.contiguous(
        memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
