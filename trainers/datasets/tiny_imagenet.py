"""Tiny ImageNet in its ``tiny-imagenet-200`` folder layout, the JPEGs decoded with PIL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from signscope.errors import SignscopeError
from trainers.datasets.images import open_rgb
from trainers.datasets.memory import Dataset, build

TINY_FOLDER = "tiny-imagenet-200"
TINY_SIZE = 64


def _read_jpeg(path: Path) -> np.ndarray:
    a = np.asarray(open_rgb(path), dtype=np.uint8)
    if a.shape != (TINY_SIZE, TINY_SIZE, 3):
        raise SignscopeError(f"{path}: image is {a.shape[1]}x{a.shape[0]}, expected 64x64")
    return a


def _read_images(paths: list[Path]) -> np.ndarray:
    out = np.empty((len(paths), 3, TINY_SIZE, TINY_SIZE), dtype=np.uint8)
    # PIL decodes outside the GIL, so threads give a real speedup on 100k small JPEGs.
    with ThreadPoolExecutor(max_workers=8) as pool:
        for i, a in enumerate(pool.map(_read_jpeg, paths)):
            out[i] = a.transpose(2, 0, 1)
    return out


def load(root: Path, download: bool = False) -> Dataset:
    """Classes are the wnids sorted by name (ImageFolder's order); val/ serves as the test set."""
    if download:
        raise SignscopeError(
            "tiny-imagenet cannot be downloaded by signscope: unpack "
            "http://cs231n.stanford.edu/tiny-imagenet-200.zip under the data root"
        )
    base = root / TINY_FOLDER
    wnids_file = base / "wnids.txt"
    annotations = base / "val" / "val_annotations.txt"
    for f in (wnids_file, annotations):
        if not f.is_file():
            raise SignscopeError(
                f"no Tiny ImageNet at {root}: expected {f} (unpack tiny-imagenet-200.zip there)"
            )
    wnids = sorted({w.strip() for w in wnids_file.read_text().split() if w.strip()})
    if not wnids:
        raise SignscopeError(f"{wnids_file}: lists no classes")
    index = {w: i for i, w in enumerate(wnids)}

    train_paths, train_y = [], []
    for w in wnids:
        files = sorted((base / "train" / w / "images").glob("*.JPEG"))
        if not files:
            raise SignscopeError(f"{base / 'train' / w / 'images'}: no .JPEG images for class {w}")
        train_paths += files
        train_y += [index[w]] * len(files)

    test_paths, test_y = [], []
    for lineno, line in enumerate(annotations.read_text().splitlines(), 1):
        fields = line.split("\t")
        if not line.strip():
            continue
        if len(fields) < 2 or fields[1] not in index:
            raise SignscopeError(
                f"{annotations}:{lineno}: expected 'FILE<TAB>WNID...' "
                f"with a wnid from {wnids_file.name}"
            )
        test_paths.append(base / "val" / "images" / fields[0])
        test_y.append(index[fields[1]])
    if not test_paths:
        raise SignscopeError(f"{annotations}: lists no validation images")

    return build(
        "tiny-imagenet",
        _read_images(train_paths),
        np.array(train_y),
        _read_images(test_paths),
        np.array(test_y),
        len(wnids),
        scale=255.0,
    )
