"""Models by name, their initialisation, and which of their parameters are prunable.

Every model is built through :func:`build_model`, which applies the initialisation of the
paper's Table 1 (Kaiming normal) so that all architectures start the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from signscope.errors import SignscopeError
from trainers.models.convnet import ConvNet
from trainers.models.mlp import MLP
from trainers.models.resnet import resnet18, resnet50
from trainers.models.vgg import vgg16_bn

MODELS = ("convnet", "resnet18", "resnet50", "vgg16_bn", "mlp")

_REGISTRY: dict[str, Callable[[int, int, int], nn.Module]] = {
    "convnet": ConvNet,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "vgg16_bn": vgg16_bn,
    "mlp": MLP,
}
PRUNABLE_TYPES = (nn.Conv2d, nn.Linear)


def build_model(
    name: str,
    num_classes: int,
    in_channels: int,
    image_size: int,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """A freshly initialised model; ``generator`` (CPU) makes the weights independent of the
    global RNG, otherwise the global RNG is used as usual."""
    try:
        factory = _REGISTRY[name]
    except KeyError:
        raise SignscopeError(
            f"unknown model {name!r}; choose one of: {', '.join(MODELS)}"
        ) from None
    model = factory(num_classes, in_channels, image_size)
    init_weights(model, generator)
    return model


def init_weights(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """Kaiming normal weights (paper Table 1), zero biases, BatchNorm gamma 1 and beta 0.

    Convolutions use ``fan_out`` like torchvision's ResNet. Linear layers use ``fan_in``: with
    ``fan_out`` a 10-way classifier would start with std sqrt(2/10) and saturated logits.
    """
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(
                m.weight, mode="fan_out", nonlinearity="relu", generator=generator
            )
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_normal_(
                m.weight, mode="fan_in", nonlinearity="relu", generator=generator
            )
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        else:
            continue
        if getattr(m, "bias", None) is not None and not isinstance(
            m, nn.modules.batchnorm._BatchNorm
        ):
            nn.init.zeros_(m.bias)


def prunable_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Weights of conv and linear layers (SPEC section 1), never BatchNorm parameters or
    biases, keyed by their state-dict name, in module order."""
    return {
        f"{name}.weight" if name else "weight": m.weight
        for name, m in model.named_modules()
        if isinstance(m, PRUNABLE_TYPES)
    }
