"""ImageNet, streamed from an ImageFolder tree (trainers/datasets/imagenet.py; paper Table 1,
Fig 15).

The tests write a tiny tree of real JPEG files in the same layout, with images of several sizes
and aspect ratios, and check the listing, the crops, determinism across worker counts, the
per-rank shards, the errors and one `signscope train` run end to end."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

from PIL import Image  # noqa: E402

from signscope.cli import main  # noqa: E402
from signscope.errors import SignscopeError  # noqa: E402
from trainers.datasets import load_dataset  # noqa: E402
from trainers.datasets.imagenet import RATIO, SCALE, crop_box  # noqa: E402
from trainers.models import build_model  # noqa: E402

CLASSES = ("n01440764", "n01443537", "n01484850")
SIZES = ((40, 30), (30, 52), (64, 64), (90, 45))


def write_tree(root, train_per_class=4, val_per_class=2):
    rng = np.random.default_rng(0)
    for split, n in (("train", train_per_class), ("val", val_per_class)):
        for c, wnid in enumerate(CLASSES):
            folder = root / "imagenet" / split / wnid
            folder.mkdir(parents=True)
            for i in range(n):
                w, h = SIZES[(c + i) % len(SIZES)]
                pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
                pixels[..., c] = 200  # a class-coloured channel: the classes are learnable
                mode_img = Image.fromarray(pixels)
                if i == 1:
                    mode_img = mode_img.convert("L")  # ImageNet has greyscale JPEGs too
                mode_img.save(folder / f"{wnid}_{i}.JPEG", quality=90)
    (root / "imagenet" / "train" / CLASSES[0] / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_tree(tmp_path_factory.mktemp("data"))


def small(ds, workers=0):
    # 224x224 works too, but 32x32 keeps the tests quick; the code path is the same.
    return dataclasses.replace(ds, image_size=32, resize=36, workers=workers)


def collect(ds, seed, **kw):
    gen = torch.Generator().manual_seed(seed)
    return [(x.clone(), y.clone()) for x, y in ds.batches(5, gen, **kw)]


def test_listing_follows_imagefolder(tree):
    ds = load_dataset("imagenet", root=tree)
    assert ds.num_classes == 3 and ds.n_train == 12 and len(ds.test_files) == 6
    assert ds.train_labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert all(f.endswith(".JPEG") for f in ds.train_files)  # notes.txt is not an image
    assert ds.input_shape == (3, 224, 224)


@pytest.mark.slow
def test_train_batches_are_normalised_crops(tree):
    ds = load_dataset("imagenet", root=tree)
    (x, y), *rest = collect(ds, 0, train=True)
    assert x.shape == (5, 3, 224, 224) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert sum(len(b[1]) for b in rest) + 5 == 12
    # Normalised with ImageNet's statistics: raw 0..255 maps into about [-2.2, 2.7].
    assert -2.2 <= float(x.min()) and float(x.max()) <= 2.7


def test_eval_batches_are_centre_crops_in_order(tree):
    ds = small(load_dataset("imagenet", root=tree))
    out = collect(ds, 0, train=False)
    assert [int(v) for _, y in out for v in y] == ds.test_labels.tolist()
    again = collect(ds, 1, train=False)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(out, again, strict=True))


@pytest.mark.slow
def test_epochs_are_deterministic_whatever_the_workers(tree):
    ds = load_dataset("imagenet", root=tree)
    one = collect(small(ds, workers=0), 7, train=True)
    two = collect(small(ds, workers=2), 7, train=True)
    for (xa, ya), (xb, yb) in zip(one, two, strict=True):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    other = collect(small(ds, workers=0), 8, train=True)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(one, other, strict=True))


def test_ranks_get_disjoint_shares_of_one_permutation(tree):
    ds = small(load_dataset("imagenet", root=tree))
    seen = []
    for rank in (0, 1):
        gen = torch.Generator().manual_seed(3)
        reader_files = []
        for x, _ in ds.batches(4, gen, train=True, rank=rank, world_size=2):
            reader_files.append(x)
        seen.append(torch.cat(reader_files))
    assert seen[0].shape[0] == seen[1].shape[0] == 6
    flat = [tuple(img.flatten()[:64].tolist()) for part in seen for img in part]
    assert len(set(flat)) == 12  # no image twice


def test_crop_box_follows_random_resized_crop():
    rng = np.random.default_rng(0)
    for width, height in ((500, 375), (64, 640), (1000, 50), (224, 224), (3, 2)):
        for _ in range(200):
            left, top, w, h = crop_box(width, height, rng)
            assert (
                0 <= left
                and left + w <= width
                and 0 <= top
                and top + h <= height
                and w > 0
                and h > 0
            )
            share, ratio = w * h / (width * height), w / h
            fallback = (left, top) == ((width - w) // 2, (height - h) // 2) and (
                w == width or h == height
            )
            if not fallback and min(w, h) >= 20:  # rounding dominates tiny crops, as in torchvision
                assert (
                    SCALE[0] * 0.9 <= share <= SCALE[1]
                    and RATIO[0] * 0.9 <= ratio <= RATIO[1] * 1.1
                )


def test_resnet50_gets_the_imagenet_stem_only_for_imagenet_sizes():
    big = build_model("resnet50", 1000, (3, 224, 224))
    assert tuple(big.conv1.weight.shape) == (64, 3, 7, 7)
    assert big(torch.zeros(1, 3, 224, 224)).shape == (1, 1000)
    for size in (32, 64):
        assert tuple(build_model("resnet50", 200, (3, size, size)).conv1.weight.shape) == (
            64,
            3,
            3,
            3,
        )
    # The same state-dict names either way (torchvision's), so runs of both read alike.
    assert list(big.state_dict()) == list(build_model("resnet50", 1000, (3, 32, 32)).state_dict())


def test_errors_name_the_problem(tmp_path, tree):
    with pytest.raises(SignscopeError, match="no ImageNet at .*imagenet/train"):
        load_dataset("imagenet", root=tmp_path)
    with pytest.raises(SignscopeError, match="cannot be downloaded"):
        load_dataset("imagenet", root=tmp_path, download=True)
    bad = write_tree(tmp_path / "bad")
    (bad / "imagenet" / "val" / CLASSES[2]).rename(bad / "imagenet" / "val" / "n99999999")
    with pytest.raises(SignscopeError, match="class folders differ"):
        load_dataset("imagenet", root=bad)
    flat = write_tree(tmp_path / "flat")
    for folder in (flat / "imagenet" / "val").iterdir():  # the validation set as downloaded
        for f in folder.iterdir():
            f.rename(flat / "imagenet" / "val" / f.name)
        folder.rmdir()
    with pytest.raises(SignscopeError, match="valprep"):
        load_dataset("imagenet", root=flat)


@pytest.mark.parametrize("workers", [0, pytest.param(2, marks=pytest.mark.slow)])
def test_a_corrupt_jpeg_is_one_line_naming_it(tmp_path, workers):
    root = write_tree(tmp_path)
    broken = root / "imagenet" / "train" / CLASSES[1] / f"{CLASSES[1]}_0.JPEG"
    broken.write_bytes(broken.read_bytes()[:100])
    ds = small(load_dataset("imagenet", root=root), workers=workers)
    with pytest.raises(SignscopeError) as info:
        collect(ds, 0, train=True)
    message = str(info.value)
    assert "\n" not in message and str(broken) in message and "not a readable image" in message


@pytest.mark.slow
def test_signscope_train_on_imagenet(tree, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "train",
            "--dataset",
            "imagenet",
            "--data-root",
            str(tree),
            "--model",
            "convnet",
            "--levels",
            "2",
            "--epochs",
            "1",
            "--lr-warmup-epochs",
            "0",
            "--rewind-epoch",
            "0",
            "--batch-size",
            "6",
            "--data-workers",
            "2",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            str(out),
        ]
    )
    assert rc == 0, capsys.readouterr().err
    manifest = json.loads((out / "run.json").read_text())
    assert manifest["config"]["dataset"] == "imagenet"
    assert [round(lv["density"], 3) for lv in manifest["levels"]] == [1.0, 0.8]
    assert 0.0 <= manifest["levels"][1]["test_acc"] <= 1.0
