"""VGG16 with BatchNorm, CIFAR variant (paper Fig 17).

The 13 conv3x3-BN-ReLU layers and 5 max-pools of torchvision's ``vgg16_bn``, under the same
``features.N`` names, then global average pooling and a single linear ``classifier`` in place of
the three 4096-wide ImageNet layers, as CIFAR reimplementations (e.g. open_lth) do.
"""

from __future__ import annotations

from torch import Tensor, nn

from signscope.errors import SignscopeError

CFG16 = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
MIN_IMAGE_SIZE = 32  # five 2x2 max-pools


class VGG(nn.Module):
    def __init__(self, cfg: tuple, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                # The bias before BatchNorm is redundant but torchvision's vgg16_bn (and open_lth's
                # CIFAR VGG) have it; keeping it keeps checkpoints interchangeable.
                conv = nn.Conv2d(cin, v, 3, padding=1, bias=True)
                layers += [conv, nn.BatchNorm2d(v), nn.ReLU(inplace=True)]
                cin = v
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).mean(dim=(2, 3)))


def vgg16_bn(num_classes: int, input_shape: tuple[int, int, int]) -> VGG:
    in_channels, _, image_size = input_shape
    if image_size < MIN_IMAGE_SIZE:
        raise SignscopeError(
            f"vgg16_bn needs images of at least {MIN_IMAGE_SIZE}x{MIN_IMAGE_SIZE} "
            f"(got {image_size}x{image_size})"
        )
    return VGG(CFG16, num_classes, in_channels)
