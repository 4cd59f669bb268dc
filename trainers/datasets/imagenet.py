"""ImageNet (ILSVRC-2012) for the paper's Table 1 row "ImageNet, ResNet50" (Fig 15), streamed
from disk.

Every other data set fits on the device and is augmented there in batch
(:mod:`trainers.datasets.memory`). At
224x224, ImageNet's 1.28M training images would take ~190 GB as uint8, so this one is decoded
from the JPEG files by DataLoader worker processes, one epoch at a time, with the standard
ImageNet augmentation: RandomResizedCrop(224, scale 0.08-1, ratio 3/4-4/3) and a horizontal
flip for training; a resize of the short side to 256 and a 224 centre crop for evaluation.
Batches travel to the device as uint8 (a quarter of the bytes of float32) and are normalised
there with ImageNet's per-channel mean and std.

Layout: torchvision's ``ImageFolder`` layout, as the PyTorch ImageNet example uses it::

    DATA_ROOT/imagenet/train/n01440764/*.JPEG   (1,000 class folders)
    DATA_ROOT/imagenet/val/n01440764/*.JPEG     (the 50,000 validation images, by class)

Classes are the folder names sorted (ImageFolder's order). The validation set is the test
set, as in the paper.

Determinism: the epoch's order comes from the run's seeded generator, and each image's crop
and flip from a numpy generator seeded by (epoch seed, image index), so the batches do not
depend on how many workers decode them or in which order they finish.
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from signscope.errors import SignscopeError
from trainers.datasets.base import Batches, check_batching, shard
from trainers.datasets.images import open_rgb

FOLDER = "imagenet"
IMAGE_SIZE = 224
RESIZE = 256
SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)
MEAN = (0.485, 0.456, 0.406)  # ImageNet's, as torchvision's references use
STD = (0.229, 0.224, 0.225)
EXTENSIONS = (".jpeg", ".jpg", ".png")
# Evaluation batches are cut to this size whatever the trainer asks for: its large ones suit
# data already on the device, but here each batch in flight is pinned host memory (150 KB per
# image).
EVAL_BATCH_CAP = 256
PREFETCH = 2  # batches per worker in flight


@dataclasses.dataclass(eq=False)
class StreamedDataset:
    """An on-disk image data set read batch by batch
    (:class:`trainers.datasets.TrainingData`)."""

    name: str
    # Paths as numpy string arrays, not lists: forked workers that touch a list's 1.28M
    # string objects update their reference counts and so copy their pages, ~100 MB each.
    train_files: np.ndarray
    train_labels: np.ndarray
    test_files: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    image_size: int = IMAGE_SIZE
    resize: int = RESIZE
    workers: int = 0
    device: torch.device = dataclasses.field(default_factory=lambda: torch.device("cpu"))
    channels_last: bool = False
    mean: tuple[float, ...] = MEAN
    std: tuple[float, ...] = STD
    augment: bool = True

    in_channels = 3

    @property
    def n_train(self) -> int:
        return len(self.train_files)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.in_channels, self.image_size, self.image_size)

    def to(self, device: torch.device | str, channels_last: bool = False) -> StreamedDataset:
        return dataclasses.replace(self, device=torch.device(device), channels_last=channels_last)

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator,
        *,
        train: bool,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> Batches:
        """:meth:`trainers.datasets.TrainingData.batches`, decoded by DataLoader workers:
        ``train`` draws one permutation per call from ``generator`` and gives rank ``r``
        positions ``r, r+world_size, ...``; evaluation walks the whole validation set in order
        on every rank, in batches of at most :data:`EVAL_BATCH_CAP`."""
        check_batching(batch_size, rank, world_size)
        if train:
            n = self.n_train
            perm = torch.randperm(n, generator=generator, device=generator.device).cpu()
            # One draw per epoch seeds every image's crop and flip (see the module docstring).
            epoch_seed = int(
                torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item()
            )
            order = perm[shard(n, rank, world_size)].numpy()
            reader = _Reader(
                self.train_files[order],
                self.train_labels[order],
                self.image_size,
                self.resize,
                train=True,
                seed=epoch_seed,
                indices=order,
            )
        else:
            batch_size = min(batch_size, EVAL_BATCH_CAP)
            reader = _Reader(
                self.test_files,
                self.test_labels,
                self.image_size,
                self.resize,
                train=False,
                seed=0,
                indices=np.arange(len(self.test_files)),
            )
        loader = torch.utils.data.DataLoader(
            reader,
            batch_size=batch_size,
            shuffle=False,
            drop_last=drop_last,
            num_workers=self.workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=PREFETCH if self.workers else None,
        )
        mean = torch.tensor(self.mean, device=self.device).view(1, 3, 1, 1) * 255
        inv_std = 1 / (torch.tensor(self.std, device=self.device).view(1, 3, 1, 1) * 255)
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        try:
            for x, y in loader:
                x = x.to(self.device, non_blocking=True).contiguous(memory_format=fmt)
                x = (x.float() - mean) * inv_std
                yield x.contiguous(memory_format=fmt), y.to(self.device, non_blocking=True)
        except SignscopeError as exc:
            # A worker's error comes back with its traceback folded into the message; keep
            # the one line that names the file.
            last = str(exc).strip().splitlines()[-1]
            raise SignscopeError(last.split("SignscopeError: ", 1)[-1]) from None


class _Reader(torch.utils.data.Dataset):
    """Decodes and crops one image per item, in a DataLoader worker: (uint8 CHW, label)."""

    def __init__(
        self,
        files: np.ndarray,
        labels: np.ndarray,
        size: int,
        resize: int,
        *,
        train: bool,
        seed: int,
        indices: np.ndarray,
    ) -> None:
        self.files, self.labels, self.size, self.resize = files, labels, size, resize
        self.train, self.seed, self.indices = train, seed, indices

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        from PIL import Image

        im = open_rgb(str(self.files[i]))
        if self.train:
            rng = np.random.default_rng([self.seed, int(self.indices[i])])
            im = random_resized_crop(im, self.size, rng)
            if rng.random() < 0.5:
                im = im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        else:
            im = center_crop(im, self.size, self.resize)
        a = np.asarray(im, dtype=np.uint8)
        return torch.from_numpy(a.transpose(2, 0, 1).copy()), int(self.labels[i])


def crop_box(width: int, height: int, rng: np.random.Generator) -> tuple[int, int, int, int]:
    """RandomResizedCrop's box (left, top, crop width, crop height): up to ten tries at a
    random area share in SCALE and log-uniform aspect ratio in RATIO, else the largest centred
    box whose ratio lies in RATIO (torchvision's algorithm)."""
    area = width * height
    log_ratio = (math.log(RATIO[0]), math.log(RATIO[1]))
    for _ in range(10):
        target = area * rng.uniform(*SCALE)
        ratio = math.exp(rng.uniform(*log_ratio))
        w = round(math.sqrt(target * ratio))
        h = round(math.sqrt(target / ratio))
        if 0 < w <= width and 0 < h <= height:
            return int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1)), w, h
    in_ratio = width / height
    if in_ratio < RATIO[0]:
        w, h = width, round(width / RATIO[0])
    elif in_ratio > RATIO[1]:
        w, h = round(height * RATIO[1]), height
    else:
        w, h = width, height
    return (width - w) // 2, (height - h) // 2, w, h


def random_resized_crop(im, size: int, rng: np.random.Generator):
    from PIL import Image

    left, top, w, h = crop_box(im.width, im.height, rng)
    return im.resize((size, size), Image.Resampling.BILINEAR, box=(left, top, left + w, top + h))


def center_crop(im, size: int, resize: int):
    """Resize the short side to ``resize``, then cut the centred ``size`` x ``size`` square."""
    from PIL import Image

    scale = resize / min(im.width, im.height)
    w, h = max(size, round(im.width * scale)), max(size, round(im.height * scale))
    im = im.resize((w, h), Image.Resampling.BILINEAR)
    left, top = (w - size) // 2, (h - size) // 2
    return im.crop((left, top, left + size, top + size))


def load(root: Path, download: bool = False, workers: int = 8) -> StreamedDataset:
    """List ``root/imagenet/{train,val}/<class>/*``; nothing is decoded here. ``workers``
    DataLoader processes decode the batches, capped at the number of cores."""
    if download:
        raise SignscopeError(
            "imagenet cannot be downloaded by signscope: it needs an account "
            "at image-net.org; prepare DATA_ROOT/imagenet/{train,val}/<wnid>/"
        )
    base = root / FOLDER
    train_dir, val_dir = base / "train", base / "val"
    for d in (train_dir, val_dir):
        if not d.is_dir():
            raise SignscopeError(
                f"no ImageNet at {root}: expected the folder {d} (ImageFolder layout: "
                f"{FOLDER}/train/<wnid>/*.JPEG and {FOLDER}/val/<wnid>/*.JPEG, as the PyTorch "
                "ImageNet example prepares it)"
            )
    classes = sorted(e.name for e in os.scandir(train_dir) if e.is_dir())
    if not classes:
        raise SignscopeError(f"{train_dir}: no class folders")
    val_classes = sorted(e.name for e in os.scandir(val_dir) if e.is_dir())
    if not val_classes:
        raise SignscopeError(
            f"{val_dir}: no class folders; sort the validation images into "
            f"val/<wnid>/ first (the PyTorch ImageNet example's valprep.sh does it)"
        )
    if val_classes != classes:
        extra = sorted(set(val_classes) ^ set(classes))[:3]
        raise SignscopeError(
            f"{val_dir}: its class folders differ from {train_dir}'s (e.g. {', '.join(extra)})"
        )
    train_files, train_labels = _list(train_dir, classes)
    test_files, test_labels = _list(val_dir, classes)
    return StreamedDataset(
        "imagenet",
        train_files,
        train_labels,
        test_files,
        test_labels,
        num_classes=len(classes),
        workers=min(workers, os.cpu_count() or 1),
    )


def _list(folder: Path, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    files, labels = [], []
    for label, name in enumerate(classes):
        found = sorted(
            e.path
            for e in os.scandir(folder / name)
            if e.is_file() and e.name.lower().endswith(EXTENSIONS)
        )
        if not found:
            raise SignscopeError(f"{folder / name}: no images for class {name}")
        files += found
        labels += [label] * len(found)
    return np.asarray(files, dtype=str), np.asarray(labels, dtype=np.int64)
