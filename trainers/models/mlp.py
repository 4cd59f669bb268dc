"""A fully connected net (LeNet-300-100 shape, with BatchNorm1d): flatten, 300, 100, classes.

It flattens whatever one example is, so it serves images (C, H, W) and signals (C, L) alike."""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn


class MLP(nn.Module):
    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, ...],
        hidden: tuple[int, int] = (300, 100),
    ) -> None:
        super().__init__()
        h1, h2 = hidden
        self.fc1 = nn.Linear(math.prod(input_shape), h1)
        self.bn1 = nn.BatchNorm1d(h1)
        self.fc2 = nn.Linear(h1, h2)
        self.bn2 = nn.BatchNorm1d(h2)
        self.fc = nn.Linear(h2, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.fc1(x.flatten(1))))
        x = F.relu(self.bn2(self.fc2(x)))
        return self.fc(x)
