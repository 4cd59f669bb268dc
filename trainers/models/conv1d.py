"""A small 1-D CNN with BatchNorm for MNIST-1D signals (N, C, L).

Three Conv1d(kernel 3, stride 2)-BN-ReLU blocks of 64 channels halve the length each time
(40 -> 20 -> 10 -> 5), then the flattened features feed one linear classifier: 28k prunable
weights on MNIST-1D, of which the last layer holds 3.2k. It is the shape of the CNN baseline of
the MNIST-1D paper (Greydanus, 2020: three stride-2 convolutions, then a linear layer), with
BatchNorm added so that BN rewinding and the BatchNorm figures (paper Figs 10, 11) apply.
Flattening rather than pooling keeps where in the signal a feature sits, which MNIST-1D's
translated templates make informative.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from signscope.errors import SignscopeError

WIDTH = 64
BLOCKS = 3
MIN_LENGTH = 2**BLOCKS


def _out_length(length: int) -> int:
    for _ in range(BLOCKS):
        length = (length - 1) // 2 + 1  # kernel 3, stride 2, padding 1
    return length


class Conv1dNet(nn.Module):
    def __init__(self, num_classes: int, input_shape: tuple[int, int], width: int = WIDTH) -> None:
        super().__init__()
        channels, length = input_shape
        if length < MIN_LENGTH:
            raise SignscopeError(
                f"conv1d needs signals of at least {MIN_LENGTH} samples (got {length})"
            )
        self.conv1 = nn.Conv1d(channels, width, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(width)
        self.conv2 = nn.Conv1d(width, width, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(width)
        self.conv3 = nn.Conv1d(width, width, 3, stride=2, padding=1, bias=False)
        self.bn3 = nn.BatchNorm1d(width)
        self.fc = nn.Linear(width * _out_length(length), num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(x.flatten(1))
