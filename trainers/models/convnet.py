"""A small conv+BatchNorm net: the demo's default model, quick on 8x8 digits on a CPU.

Three conv3x3-BN-ReLU blocks (max-pool after the first two), global average pooling and a
linear classifier. Global pooling makes the same net work on 8x8, 32x32 and 64x64 inputs.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from signscope.errors import SignscopeError

MIN_IMAGE_SIZE = 4  # two 2x2 max-pools


class ConvNet(nn.Module):
    def __init__(
        self,
        num_classes: int,
        input_shape: tuple[int, int, int],
        widths: tuple[int, int, int] = (32, 64, 128),
    ) -> None:
        super().__init__()
        in_channels, _, image_size = input_shape
        if image_size < MIN_IMAGE_SIZE:
            raise SignscopeError(
                f"convnet needs images of at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} "
                f"(got {image_size})"
            )
        w1, w2, w3 = widths
        self.conv1 = nn.Conv2d(in_channels, w1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(w1)
        self.conv2 = nn.Conv2d(w1, w2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(w2)
        self.conv3 = nn.Conv2d(w2, w3, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(w3)
        self.fc = nn.Linear(w3, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        x = F.relu(self.bn3(self.conv3(x)))
        return self.fc(x.mean(dim=(2, 3)))
