"""Data sets, batching and augmentation of the trainers.

The CIFAR and Tiny ImageNet tests write a few images in the real on-disk formats and read them
back; nothing here needs a network.
"""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from signscope.errors import SignscopeError  # noqa: E402
from trainers.augment import CropFlip, crop_flip, draw_crop_flip  # noqa: E402
from trainers.datasets import DATASETS, load_dataset  # noqa: E402
from trainers.datasets.memory import Dataset  # noqa: E402

pytestmark = pytest.mark.torch


def _denormalise(ds: Dataset, x):
    mean = torch.tensor(ds.mean, dtype=torch.float64).view(1, -1, 1, 1)
    std = torch.tensor(ds.std, dtype=torch.float64).view(1, -1, 1, 1)
    return x.double() * std + mean


# --------------------------------------------------------------------------- digits


def test_digits_fixed_stratified_split_and_normalisation():
    ds = load_dataset("digits", seed=0)
    again = load_dataset("digits", seed=123)  # the run seed must not move the split
    assert torch.equal(ds.train_x, again.train_x) and torch.equal(ds.test_y, again.test_y)

    assert ds.train_x.shape[1:] == (1, 8, 8) and ds.train_x.dtype == torch.float32
    assert ds.train_y.dtype == torch.int64
    assert len(ds.train_y) + len(ds.test_y) == 1797
    assert abs(len(ds.test_y) / 1797 - 0.2) < 0.01
    assert (ds.num_classes, ds.in_channels, ds.image_size, ds.augment) == (10, 1, 8, False)
    # Stratified: every class keeps about a fifth of its images in the test set.
    train_counts = torch.bincount(ds.train_y, minlength=10).double()
    test_counts = torch.bincount(ds.test_y, minlength=10).double()
    assert torch.all((test_counts / (train_counts + test_counts) - 0.2).abs() < 0.01)
    # Normalised with train statistics: mean 0 and std 1 on train, raw values 0..16 recoverable.
    assert abs(float(ds.train_x.mean())) < 1e-5
    assert abs(float(ds.train_x.std(unbiased=False)) - 1) < 1e-5
    raw = _denormalise(ds, ds.test_x) * 16
    assert (
        torch.allclose(raw, raw.round(), atol=1e-4) and raw.min() > -1e-4 and raw.max() < 16 + 1e-4
    )


def test_digits_fast_reader_equals_load_digits():
    from sklearn.datasets import load_digits

    from trainers.datasets.digits import digits_arrays

    pixels, target = digits_arrays()
    bunch = load_digits()
    assert np.array_equal(pixels, bunch.data) and np.array_equal(target, bunch.target)


# --------------------------------------------------------------------------- CIFAR


def _write_pickle(path, obj, protocol=2):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _cifar_images(rng, n):
    return rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)


def make_cifar10(root, per_batch=3, seed=0):
    """data_batch_1..5, test_batch and batches.meta as torchvision's python version has them."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    batches_ = []
    for i in range(1, 6):
        data, labels = (
            _cifar_images(rng, per_batch),
            [int(v) for v in rng.integers(0, 10, per_batch)],
        )
        _write_pickle(
            folder / f"data_batch_{i}",
            {
                "batch_label": f"training batch {i} of 5",
                "labels": labels,
                "data": data,
                "filenames": [f"img_{i}_{j}.png" for j in range(per_batch)],
            },
        )
        batches_.append((data, labels))
    test = (_cifar_images(rng, 4), [1, 0, 9, 3])
    _write_pickle(
        folder / "test_batch",
        {"batch_label": "testing batch 1 of 1", "labels": test[1], "data": test[0]},
    )
    _write_pickle(
        folder / "batches.meta", {"label_names": [f"c{i}" for i in range(10)], "num_vis": 3072}
    )
    return batches_, test


def test_cifar10_reads_the_python_format(tmp_path):
    train, test = make_cifar10(tmp_path)
    ds = load_dataset("cifar10", root=tmp_path)
    assert (ds.name, ds.num_classes, ds.augment) == ("cifar10", 10, True)
    assert ds.train_x.shape == (15, 3, 32, 32) and ds.test_x.shape == (4, 3, 32, 32)
    assert ds.train_y.tolist() == sum((labels for _, labels in train), [])
    assert ds.test_y.tolist() == test[1]
    # Rows are (R plane, G plane, B plane), each 32x32 row-major, scaled to [0, 1].
    raw = np.concatenate([d for d, _ in train]).reshape(-1, 3, 32, 32) / 255.0
    assert np.allclose(_denormalise(ds, ds.train_x).numpy(), raw, atol=1e-5)
    assert np.allclose(ds.mean, raw.mean(axis=(0, 2, 3))) and np.allclose(
        ds.std, raw.std(axis=(0, 2, 3))
    )
    assert np.allclose(
        _denormalise(ds, ds.test_x).numpy(), test[0].reshape(-1, 3, 32, 32) / 255.0, atol=1e-5
    )


def test_cifar100_reads_fine_labels_and_bytes_keys(tmp_path):
    rng = np.random.default_rng(1)
    folder = tmp_path / "cifar-100-python"
    # Keys as Python 2 wrote them read back as bytes under some encodings; both must work.
    _write_pickle(
        folder / "train",
        {
            b"data": _cifar_images(rng, 5),
            b"fine_labels": [0, 99, 5, 5, 42],
            b"coarse_labels": [0, 19, 1, 1, 7],
        },
    )
    _write_pickle(
        folder / "test",
        {"data": _cifar_images(rng, 2), "fine_labels": [7, 8], "coarse_labels": [1, 2]},
    )
    _write_pickle(
        folder / "meta",
        {
            "fine_label_names": [f"f{i}" for i in range(100)],
            "coarse_label_names": [f"c{i}" for i in range(20)],
        },
    )
    ds = load_dataset("cifar100", root=tmp_path)
    assert ds.num_classes == 100
    assert ds.train_y.tolist() == [0, 99, 5, 5, 42] and ds.test_y.tolist() == [7, 8]


def test_missing_cifar_root_names_the_expected_file(tmp_path):
    with pytest.raises(SignscopeError) as err:
        load_dataset("cifar10", root=tmp_path / "nowhere")
    msg = str(err.value)
    assert f"no CIFAR-10 at {tmp_path / 'nowhere'}" in msg
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py" / "data_batch_1") in msg
    assert "--download" in msg


def test_corrupt_cifar_file_is_a_clean_error(tmp_path):
    make_cifar10(tmp_path)
    bad = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    bad.write_bytes(b"\x80\x02}q\x00(truncated")
    with pytest.raises(SignscopeError, match=f"{bad}: not a readable CIFAR-10 file"):
        load_dataset("cifar10", root=tmp_path)

    make_cifar10(tmp_path)
    _write_pickle(bad, {"data": np.zeros((2, 100), np.uint8), "labels": [0, 1]})
    with pytest.raises(SignscopeError, match="expected uint8 \\(N, 3072\\)"):
        load_dataset("cifar10", root=tmp_path)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_cifar_unpickler_refuses_arbitrary_objects(tmp_path):
    make_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    _write_pickle(
        tmp_path / "cifar-10-batches-py" / "test_batch", {"data": _Evil(marker), "labels": []}
    )
    with pytest.raises(SignscopeError, match="refusing to load"):
        load_dataset("cifar10", root=tmp_path)
    assert not marker.exists()


@pytest.mark.slow
def test_cli_reports_a_missing_data_root(tmp_path):
    from signscope.cli import COMMAND_MODULES

    if "train" not in COMMAND_MODULES:
        pytest.skip("the train command is not registered yet")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "signscope",
            "train",
            "--dataset",
            "cifar10",
            "--data-root",
            str(tmp_path / "none"),
            "--out",
            str(tmp_path / "run"),
            "--quiet",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: no CIFAR-10 at")
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- Tiny ImageNet

_COLOURS = {"n02": (250, 10, 10), "n01": (10, 250, 10), "n03": (10, 10, 250)}


def make_tiny_imagenet(root):
    """Two solid-colour train images per class, one val image per class; one greyscale image."""
    from PIL import Image

    base = root / "tiny-imagenet-200"
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("n02\nn01\nn03\n")  # not sorted, like the real file
    for wnid, colour in _COLOURS.items():
        images = base / "train" / wnid / "images"
        images.mkdir(parents=True)
        for j in range(2):
            Image.new("RGB", (64, 64), colour).save(images / f"{wnid}_{j}.JPEG")
    val = base / "val" / "images"
    val.mkdir(parents=True)
    lines = []
    for k, wnid in enumerate(["n03", "n01", "n02"]):
        Image.new("RGB", (64, 64), _COLOURS[wnid]).save(val / f"val_{k}.JPEG")
        lines.append(f"val_{k}.JPEG\t{wnid}\t0\t0\t63\t63")
    Image.new("L", (64, 64), 128).save(val / "val_3.JPEG")
    lines.append("val_3.JPEG\tn02\t1\t2\t30\t40")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return base


def test_tiny_imagenet_reads_the_folder_layout(tmp_path):
    make_tiny_imagenet(tmp_path)
    ds = load_dataset("tiny-imagenet", root=tmp_path)
    assert (ds.num_classes, ds.in_channels, ds.image_size, ds.augment) == (3, 3, 64, True)
    # Classes are the sorted wnids: n01 -> 0, n02 -> 1, n03 -> 2.
    assert ds.train_y.tolist() == [0, 0, 1, 1, 2, 2]
    assert ds.test_y.tolist() == [2, 0, 1, 1]
    pixels = (_denormalise(ds, ds.test_x) * 255).mean(dim=(2, 3))  # solid colours, JPEG-rounded
    expected = torch.tensor([_COLOURS["n03"], _COLOURS["n01"], _COLOURS["n02"], (128, 128, 128)])
    assert torch.allclose(pixels, expected.double(), atol=4)


def test_tiny_imagenet_errors_name_the_file(tmp_path):
    with pytest.raises(SignscopeError, match="no Tiny ImageNet at .*wnids.txt"):
        load_dataset("tiny-imagenet", root=tmp_path)
    base = make_tiny_imagenet(tmp_path)
    from PIL import Image

    small = base / "train" / "n01" / "images" / "n01_1.JPEG"
    Image.new("RGB", (32, 32)).save(small)
    with pytest.raises(SignscopeError, match=f"{small}: image is 32x32, expected 64x64"):
        load_dataset("tiny-imagenet", root=tmp_path)
    small.write_bytes(b"not a jpeg")
    with pytest.raises(SignscopeError, match=f"{small}: not a readable image"):
        load_dataset("tiny-imagenet", root=tmp_path)


# --------------------------------------------------------------------------- synthetic, names


def test_synthetic_is_seeded():
    def make(seed):
        return load_dataset(
            "synthetic",
            synthetic_shape=(3, 32, 32),
            synthetic_classes=7,
            synthetic_size=(40, 8),
            seed=seed,
        )

    a, b, c = make(1), make(1), make(2)
    assert a.train_x.shape == (40, 3, 32, 32) and a.test_x.shape == (8, 3, 32, 32)
    assert a.num_classes == 7 and int(a.train_y.max()) < 7 and a.augment
    assert torch.equal(a.train_x, b.train_x) and torch.equal(a.test_y, b.test_y)
    assert not torch.equal(a.train_x, c.train_x)
    assert not load_dataset("synthetic", synthetic_shape=(1, 16, 16), synthetic_size=(4, 4)).augment


def test_unknown_dataset_lists_the_valid_names():
    with pytest.raises(SignscopeError) as err:
        load_dataset("mnist")
    assert "'mnist'" in str(err.value) and all(name in str(err.value) for name in DATASETS)


# --------------------------------------------------------------------------- batches


def _indexed(n, augment=False, size=8):
    """A data set whose label is the example's index, so batches show which examples they hold."""
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, size, size).contiguous()
    y = torch.arange(n)
    return Dataset("idx", x, y, x[:5].clone(), y[:5].clone(), n, augment, (0.0,), (1.0,))


def test_one_epoch_is_a_permutation_and_drop_last():
    ds = _indexed(10)
    g = torch.Generator().manual_seed(0)
    epoch1 = [y for _, y in ds.batches(4, g, train=True)]
    epoch2 = [y for _, y in ds.batches(4, g, train=True)]
    assert [len(y) for y in epoch1] == [4, 4, 2]
    assert sorted(torch.cat(epoch1).tolist()) == list(range(10))
    assert not torch.equal(torch.cat(epoch1), torch.cat(epoch2))  # a new permutation each epoch
    assert [len(y) for _, y in ds.batches(4, g, train=True, drop_last=True)] == [4, 4]


@pytest.mark.parametrize("n", [12, 10])
def test_shards_are_disjoint_and_cover_the_epoch(n):
    ds, world = _indexed(n), 3
    shards = [
        torch.cat(
            [
                y
                for _, y in ds.batches(
                    2, torch.Generator().manual_seed(5), train=True, rank=r, world_size=world
                )
            ]
        )
        for r in range(world)
    ]
    seen = torch.cat(shards).tolist()
    assert all(len(s) == n // world for s in shards)  # equal step counts on every rank
    assert len(set(seen)) == len(seen)  # disjoint
    assert len(seen) == n - n % world  # a cover up to the n % world examples left over
    whole = torch.cat([y for _, y in ds.batches(n, torch.Generator().manual_seed(5), train=True)])
    assert torch.equal(whole[: n - n % world].view(-1, world).t().reshape(-1), torch.cat(shards))


def test_eval_batches_are_the_whole_test_set_in_order_on_every_rank():
    ds = _indexed(10)
    g = torch.Generator().manual_seed(0)
    for rank in range(2):
        got = [y.tolist() for _, y in ds.batches(2, g, train=False, rank=rank, world_size=2)]
        assert got == [[0, 1], [2, 3], [4]]


def test_train_batches_are_reproducible_and_augmented():
    ds = load_dataset("synthetic", synthetic_shape=(3, 32, 32), synthetic_size=(64, 8), seed=0)
    run = [list(ds.batches(16, torch.Generator().manual_seed(3), train=True)) for _ in range(2)]
    for (xa, ya), (xb, yb) in zip(*run, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    x, y = run[0][0]
    assert x.shape == (16, 3, 32, 32)
    changed = [not any(torch.equal(xi, p) for p in ds.train_x) for xi in x]
    assert sum(changed) > 8  # most examples are shifted and/or flipped


def test_to_device_keeps_channels_last_through_batches():
    ds = load_dataset("synthetic", synthetic_shape=(3, 32, 32), synthetic_size=(16, 4)).to(
        "cpu", channels_last=True
    )
    assert ds.train_x.is_contiguous(memory_format=torch.channels_last)
    x, _ = next(ds.batches(8, torch.Generator().manual_seed(0), train=True))
    assert x.is_contiguous(memory_format=torch.channels_last)


# --------------------------------------------------------------------------- augmentation


def test_crop_flip_matches_a_hand_computation():
    x = torch.arange(2 * 2 * 4 * 4, dtype=torch.float32).view(2, 2, 4, 4)
    params = CropFlip(
        dy=torch.tensor([0, 2]), dx=torch.tensor([1, 2]), flip=torch.tensor([False, True])
    )
    fill = torch.tensor([-1.0, -2.0])
    out = crop_flip(x, params, pad=1, fill=fill)

    expected = np.empty((2, 2, 4, 4), np.float32)
    for b in range(2):
        for c in range(2):
            padded = np.pad(x[b, c].numpy(), 1, constant_values=fill[c].item())
            crop = padded[params.dy[b] : params.dy[b] + 4, params.dx[b] : params.dx[b] + 4]
            expected[b, c] = crop[:, ::-1] if params.flip[b] else crop
    assert np.array_equal(out.numpy(), expected)
    # Spelled out for the first image, channel 0: shifted up one row of padding, left by 0.
    assert out[0, 0, 0].tolist() == [-1.0, -1.0, -1.0, -1.0]
    assert out[0, 0, 1].tolist() == [0.0, 1.0, 2.0, 3.0]
    # Zero padding when no fill is given.
    assert crop_flip(x, params, pad=1)[0, 0, 0].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_a_drawn_crop_flip_is_always_some_crop_and_flip():
    x = torch.randn(64, 3, 6, 6, generator=torch.Generator().manual_seed(0))
    out = crop_flip(x, draw_crop_flip(64, torch.Generator().manual_seed(1), pad=2), pad=2)
    assert out.shape == x.shape
    candidates = [
        crop_flip(
            x, CropFlip(torch.full((64,), dy), torch.full((64,), dx), torch.full((64,), f)), pad=2
        )
        for dy in range(5)
        for dx in range(5)
        for f in (False, True)
    ]
    matches = torch.stack([(c == out).flatten(1).all(1) for c in candidates])  # (50, 64)
    assert bool(matches.any(0).all())
    again = crop_flip(x, draw_crop_flip(64, torch.Generator().manual_seed(1), pad=2), pad=2)
    assert torch.equal(out, again)

    params = draw_crop_flip(4000, torch.Generator().manual_seed(2), pad=4)
    assert int(params.dy.min()) == 0 and int(params.dy.max()) == 8
    assert 0.45 < float(params.flip.double().mean()) < 0.55


def test_dataset_pad_fill_is_a_black_pixel():
    ds = load_dataset("synthetic", synthetic_shape=(3, 32, 32), synthetic_size=(16, 4))
    mean, std = torch.tensor(ds.mean), torch.tensor(ds.std)
    assert torch.allclose(ds.pad_fill() * std + mean, torch.zeros(3), atol=1e-6)
