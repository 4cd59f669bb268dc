"""Model registry, forward passes, initialisation and prunable parameters (SPEC section 1)."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from signscope.errors import SignscopeError  # noqa: E402
from trainers.models import MODELS, build_model, prunable_parameters  # noqa: E402

pytestmark = pytest.mark.torch

# (model, one example's shape) kept small; every model at least once.
CASES = [
    ("convnet", (1, 8, 8)),
    ("convnet", (3, 32, 32)),
    ("convnet", (3, 64, 64)),
    ("mlp", (1, 8, 8)),
    ("mlp", (1, 40)),
    ("conv1d", (1, 40)),
    ("resnet18", (3, 32, 32)),
    ("resnet50", (3, 32, 32)),
    ("vgg16_bn", (3, 32, 32)),
]


@pytest.mark.parametrize(("name", "shape"), CASES)
def test_forward_shape_and_prunable_parameters(name, shape):
    model = build_model(name, 7, shape, generator=torch.Generator().manual_seed(0))
    out = model(torch.randn(2, *shape))
    assert out.shape == (2, 7)

    prunable = prunable_parameters(model)
    # The SPEC's rule for plain runs (floating, >= 2 dims, name ends in "weight") picks exactly
    # the conv and linear weights here, so both readings of "prunable" agree.
    by_rule = [
        k
        for k, v in model.state_dict().items()
        if v.is_floating_point() and v.dim() >= 2 and k.endswith("weight")
    ]
    assert list(prunable) == by_rule
    params = dict(model.named_parameters())
    assert all(prunable[k] is params[k] for k in prunable)
    layers = {n: m for n, m in model.named_modules()}
    assert all(
        isinstance(layers[k.rsplit(".", 1)[0]], nn.Conv1d | nn.Conv2d | nn.Linear) for k in prunable
    )


@pytest.mark.slow  # builds every torchvision model it compares with
def test_state_dict_names_match_torchvision():
    tv = pytest.importorskip("torchvision.models")

    def reference(factory):
        with torch.device("meta"):  # names and shapes only: skip allocating ImageNet-sized layers
            return factory(num_classes=10).state_dict()

    for ours, theirs in [("resnet18", tv.resnet18), ("resnet50", tv.resnet50)]:
        a = build_model(ours, 10, (3, 32, 32)).state_dict()
        b = reference(theirs)
        assert list(a) == list(b)
        # Same shapes except the CIFAR stem (3x3 instead of 7x7).
        assert [k for k in a if a[k].shape != b[k].shape] == ["conv1.weight"]
    a = build_model("vgg16_bn", 10, (3, 32, 32)).state_dict()
    b = reference(tv.vgg16_bn)
    features = [k for k in b if k.startswith("features.")]
    assert [k for k in a if k.startswith("features.")] == features
    assert all(a[k].shape == b[k].shape for k in features)


def test_resnet_cifar_stem_keeps_resolution():
    model = build_model("resnet18", 10, (3, 32, 32))
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    x = torch.randn(1, 3, 32, 32)
    assert model.layer1(torch.relu(model.bn1(model.conv1(x)))).shape[-2:] == (32, 32)


def test_init_is_kaiming_normal_and_seeded():
    model = build_model("resnet18", 10, (3, 32, 32), generator=torch.Generator().manual_seed(0))
    w = model.layer4[0].conv2.weight.detach()  # 512x512x3x3: plenty of samples for the std
    fan_out = w.shape[0] * w.shape[2] * w.shape[3]
    assert abs(float(w.std()) / math.sqrt(2 / fan_out) - 1) < 0.01
    assert abs(float(w.mean())) < 1e-3
    fc = model.fc.weight.detach()
    assert abs(float(fc.std()) / math.sqrt(2 / fc.shape[1]) - 1) < 0.05
    assert torch.all(model.fc.bias == 0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)

    def state(seed):
        return build_model(
            "convnet", 10, (1, 8, 8), generator=torch.Generator().manual_seed(seed)
        ).state_dict()

    a, b, c = state(3), state(3), state(4)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


def test_unknown_model_and_too_small_images_are_clean_errors():
    with pytest.raises(SignscopeError) as err:
        build_model("resnet34", 10, (3, 32, 32))
    assert "'resnet34'" in str(err.value) and all(name in str(err.value) for name in MODELS)
    with pytest.raises(SignscopeError, match="vgg16_bn needs images of at least 32x32"):
        build_model("vgg16_bn", 10, (1, 8, 8))


def test_convnet_reaches_95_percent_on_digits():
    """The demo's default: a few CPU epochs of plain SGD must clear 95% dense test accuracy."""
    from trainers.datasets import load_dataset

    ds = load_dataset("digits")
    model = build_model(
        "convnet",
        ds.num_classes,
        ds.input_shape,
        generator=torch.Generator().manual_seed(0),
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        model.train()
        for x, y in ds.batches(64, g, train=True):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        correct = sum(
            int((model(x).argmax(1) == y).sum()) for x, y in ds.batches(512, g, train=False)
        )
    assert correct / len(ds.test_y) >= 0.95
