"""MNIST-1D: the offline generator, its cache, the ``conv1d`` model and the ``mnist1d`` preset."""

from __future__ import annotations

import importlib.util
import socket

import numpy as np
import pytest

torch = pytest.importorskip("torch")
# Looked up, not imported: importing the package takes seconds, which every pytest worker
# would pay while collecting even when the tests that generate data are deselected.
if importlib.util.find_spec("mnist1d") is None:
    pytest.skip("mnist1d is not installed", allow_module_level=True)

from signscope.errors import SignscopeError, UsageError  # noqa: E402
from trainers import mnist1d as signals  # noqa: E402
from trainers.config import resolve_config  # noqa: E402
from trainers.datasets import load_dataset  # noqa: E402
from trainers.models import build_model, prunable_parameters  # noqa: E402

pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def generated(tmp_path_factory, monkeypatch_module):
    """One generation per test module, with every network connection and the package's
    download path made to fail: the data must come from the templates alone. It takes
    seconds, so the tests that use it are marked slow."""

    def no_network(*args, **kwargs):
        raise AssertionError("MNIST-1D generation tried to open a network connection")

    monkeypatch_module.setattr(socket, "socket", no_network)
    monkeypatch_module.setattr(socket, "create_connection", no_network)
    import mnist1d.data as package

    monkeypatch_module.setattr(package, "get_dataset", no_network)
    root = tmp_path_factory.mktemp("data")
    return root, signals.load_arrays(root)


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


@pytest.mark.slow
def test_default_split_shapes_and_classes(generated):
    root, a = generated
    assert a["x"].shape == (4000, 40) and a["x_test"].shape == (1000, 40)
    assert a["x"].dtype == np.float32 and a["y"].dtype == np.int64
    for y in (a["y"], a["y_test"]):
        counts = np.bincount(y, minlength=10)
        assert len(counts) == 10 and counts.min() > 0.08 * len(y)

    ds = load_dataset("mnist1d", root=root)
    assert ds.input_shape == (1, 40) and ds.num_classes == 10 and not ds.augment
    assert ds.train_x.shape == (4000, 1, 40) and ds.test_x.shape == (1000, 1, 40)
    assert torch.equal(ds.train_y, torch.from_numpy(a["y"]))


@pytest.mark.slow
def test_same_data_from_cache_and_from_a_new_generation(generated):
    root, a = generated
    [cache] = (root / "mnist1d").glob("mnist1d-*.npz")
    assert not list((root / "mnist1d").glob(".*.tmp"))
    again = signals.load_arrays(root)  # from the cache
    fresh = signals.generate(signals._default_args())  # the generator's own seed, once more
    for k in ("x", "y", "x_test", "y_test"):
        assert np.array_equal(a[k], again[k])
        assert np.array_equal(a[k], fresh[k].astype(a[k].dtype))
    assert cache.stat().st_mode & 0o044  # readable by others sharing the data root


def test_generation_leaves_the_global_numpy_rng_alone():
    np.random.seed(7)
    expected = np.random.random_sample(3)
    np.random.seed(7)
    signals.generate(dict(signals._default_args(), num_samples=20))
    assert np.array_equal(np.random.random_sample(3), expected)


@pytest.mark.slow
def test_logistic_regression_anchor(generated):
    """The MNIST-1D paper reports about 32% for logistic regression on its default split; a
    different generator or a broken split would move this far."""
    from sklearn.linear_model import LogisticRegression

    _, a = generated
    score = LogisticRegression(max_iter=2000).fit(a["x"], a["y"]).score(a["x_test"], a["y_test"])
    assert 0.27 < score < 0.38


@pytest.mark.slow
def test_corrupt_cache_is_one_clear_error(generated, tmp_path):
    root, _ = generated
    [cache] = (root / "mnist1d").glob("mnist1d-*.npz")
    bad = tmp_path / "mnist1d" / cache.name
    bad.parent.mkdir()
    bad.write_bytes(b"not a zip file")
    with pytest.raises(SignscopeError, match="delete it"):
        signals.load_arrays(tmp_path)


def test_conv1d_names_shapes_and_prunable_tensors():
    model = build_model("conv1d", 10, (1, 40), generator=torch.Generator().manual_seed(0))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes["conv1.weight"] == (64, 1, 3)
    assert shapes["conv2.weight"] == shapes["conv3.weight"] == (64, 64, 3)
    assert shapes["fc.weight"] == (10, 320) and shapes["fc.bias"] == (10,)
    assert shapes["bn3.running_var"] == (64,)
    prunable = prunable_parameters(model)
    assert list(prunable) == ["conv1.weight", "conv2.weight", "conv3.weight", "fc.weight"]
    assert sum(p.numel() for p in prunable.values()) == 27_968
    # Kaiming normal, fan_out for convolutions: std sqrt(2 / (64 * 3)).
    w = model.conv2.weight.detach()
    assert abs(float(w.std()) / (2 / (64 * 3)) ** 0.5 - 1) < 0.05
    assert model(torch.randn(5, 1, 40)).shape == (5, 10)


def test_models_and_data_sets_must_agree_on_the_example_shape():
    with pytest.raises(UsageError, match="conv1d, mlp"):
        resolve_config("mnist1d", {"model": "convnet"})
    with pytest.raises(UsageError, match="1-D signals"):
        resolve_config("demo", {"model": "conv1d"})
    assert resolve_config("mnist1d", {"model": "mlp"}).model == "mlp"
    with pytest.raises(SignscopeError, match="images"):
        build_model("resnet18", 10, (1, 40))


def test_preset_validates_and_reaches_90_percent_sparsity():
    cfg = resolve_config("mnist1d")
    assert (cfg.model, cfg.dataset, cfg.preset) == ("conv1d", "mnist1d", "mnist1d")
    assert (1 - cfg.prune_fraction) ** (cfg.levels - 1) < 0.10


@pytest.mark.slow
def test_signals_stay_contiguous_when_channels_last_is_asked(generated):
    """On CUDA the trainer asks for channels_last, which exists for 4-D images only."""
    root, _ = generated
    ds = load_dataset("mnist1d", root=root).to("cpu", channels_last=True)
    assert ds.train_x.is_contiguous() and ds.train_x.shape == (4000, 1, 40)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["conv1d", "mlp"])
def test_a_short_run_on_mnist1d_reads_back(generated, tmp_path, model):
    """Both models train on the signals and write a run the inspection layer reads: the
    Conv1d masks are 3-D and BatchNorm1d layers are found."""
    import io

    from rich.console import Console

    import signscope
    from trainers.progress import Reporter
    from trainers.train import train

    root, _ = generated
    overrides = dict(model=model, levels=2, epochs=1, lr_warmup_epochs=0, rewind_epoch=0)
    cfg = resolve_config("mnist1d", {**overrides, "data_root": str(root), "device": "cpu"})
    out = train(cfg, tmp_path / model, reporter=Reporter(Console(file=io.StringIO())))
    run = signscope.open_run(out)
    levels = run.flips()["levels"]
    assert levels["density"].to_list() == pytest.approx([1.0, 0.8], abs=1e-3)
    assert run.summary()["test_acc"][0] > 0.2  # one epoch is far above chance (0.1)
    expected = ["bn1", "bn2", "bn3"] if model == "conv1d" else ["bn1", "bn2"]
    assert run.bn()["bn"]["layer"].to_list() == expected
