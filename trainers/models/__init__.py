"""Models by name, their initialisation, and which of their parameters are prunable.

Every model is built through :func:`build_model`, which applies the initialisation of the
paper's Table 1 (Kaiming normal) so that all architectures start the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from signscope.errors import SignscopeError
from trainers.models.conv1d import Conv1dNet
from trainers.models.convnet import ConvNet
from trainers.models.mlp import MLP
from trainers.models.resnet import resnet18, resnet50
from trainers.models.vgg import vgg16_bn

MODELS = ("convnet", "resnet18", "resnet50", "vgg16_bn", "conv1d", "mlp")

# name -> (factory taking (num_classes, input_shape), the number of dimensions of one example
# it takes: 3 for images (C, H, W), 2 for signals (C, L), None for any).
_REGISTRY: dict[str, tuple[Callable[[int, tuple[int, ...]], nn.Module], int | None]] = {
    "convnet": (ConvNet, 3),
    "resnet18": (resnet18, 3),
    "resnet50": (resnet50, 3),
    "vgg16_bn": (vgg16_bn, 3),
    "conv1d": (Conv1dNet, 2),
    "mlp": (MLP, None),
}
PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Linear)
_KIND = {3: "images (C, H, W)", 2: "1-D signals (C, L)"}


def input_mismatch(name: str, example_dims: int) -> str | None:
    """Why model ``name`` cannot take examples of ``example_dims`` dimensions, or None."""
    _, dims = _REGISTRY[name]
    if dims is None or dims == example_dims:
        return None
    fits = [m for m, (_, d) in _REGISTRY.items() if d in (None, example_dims)]
    return (
        f"--model {name} takes {_KIND[dims]}, but the data set holds "
        f"{_KIND.get(example_dims, f'{example_dims}-D examples')}; choose one of {', '.join(fits)}"
    )


def build_model(
    name: str,
    num_classes: int,
    input_shape: tuple[int, ...],
    generator: torch.Generator | None = None,
) -> nn.Module:
    """A freshly initialised model for examples of ``input_shape`` ((C, H, W) or (C, L));
    ``generator`` (CPU) makes the weights independent of the global RNG, otherwise the global
    RNG is used as usual."""
    try:
        factory, _ = _REGISTRY[name]
    except KeyError:
        raise SignscopeError(
            f"unknown model {name!r}; choose one of: {', '.join(MODELS)}"
        ) from None
    input_shape = tuple(int(d) for d in input_shape)
    problem = input_mismatch(name, len(input_shape))
    if problem:
        raise SignscopeError(problem)
    model = factory(num_classes, input_shape)
    init_weights(model, generator)
    return model


def init_weights(model: nn.Module, generator: torch.Generator | None = None) -> None:
    """Kaiming normal weights (paper Table 1), zero biases, BatchNorm gamma 1 and beta 0.

    Convolutions use ``fan_out`` like torchvision's ResNet. Linear layers use ``fan_in``: with
    ``fan_out`` a 10-way classifier would start with std sqrt(2/10) and saturated logits.
    """
    for m in model.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
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
