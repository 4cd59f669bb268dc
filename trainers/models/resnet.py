"""ResNets (He et al. 2016) as used in the paper's Table 1 (SPEC section 1).

torchvision's ResNet code and state-dict names (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``, ``fc``), with the CIFAR stem: one 3x3 stride-1 convolution and no
max-pool, so 32x32 inputs reach the last stage at 4x4. Bottleneck blocks stride in the 3x3
convolution (torchvision's "v1.5"). ImageNet-sized inputs (above 64x64) get torchvision's
ImageNet stem instead: a 7x7 stride-2 convolution and a 3x3 stride-2 max-pool.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


def _downsample(cin: int, cout: int, stride: int) -> nn.Sequential | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, width, stride)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width)
        self.bn2 = nn.BatchNorm2d(width)
        self.downsample = _downsample(cin, width, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = _conv3x3(width, width, stride)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = _downsample(cin, cout, stride)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet(nn.Module):
    def __init__(
        self,
        block: type[BasicBlock] | type[Bottleneck],
        depths: tuple[int, int, int, int],
        num_classes: int,
        in_channels: int = 3,
        imagenet_stem: bool = False,
    ) -> None:
        super().__init__()
        # ImageNet-sized inputs get torchvision's stem (7x7 stride-2 convolution, 3x3 stride-2
        # max-pool: 224 -> 56); CIFAR and Tiny ImageNet keep the 3x3 stride-1 stem.
        self.imagenet_stem = imagenet_stem
        self.conv1 = (
            nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
            if imagenet_stem
            else _conv3x3(in_channels, 64)
        )
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (width, depth) in enumerate(zip((64, 128, 256, 512), depths, strict=True)):
            blocks = []
            for j in range(depth):
                stride = 2 if i > 0 and j == 0 else 1
                blocks.append(block(cin, width, stride))
                cin = width * block.expansion
            self.add_module(f"layer{i + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        if self.imagenet_stem:
            x = F.max_pool2d(x, 3, stride=2, padding=1)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(x.mean(dim=(2, 3)))


# Inputs larger than Tiny ImageNet's 64x64 are ImageNet-sized: they get the ImageNet stem.
IMAGENET_STEM_ABOVE = 64


def resnet18(num_classes: int, input_shape: tuple[int, int, int]) -> ResNet:
    channels, _, width = input_shape
    return ResNet(
        BasicBlock,
        (2, 2, 2, 2),
        num_classes,
        channels,
        imagenet_stem=width > IMAGENET_STEM_ABOVE,
    )


def resnet50(num_classes: int, input_shape: tuple[int, int, int]) -> ResNet:
    channels, _, width = input_shape
    return ResNet(
        Bottleneck,
        (3, 4, 6, 3),
        num_classes,
        channels,
        imagenet_stem=width > IMAGENET_STEM_ABOVE,
    )
