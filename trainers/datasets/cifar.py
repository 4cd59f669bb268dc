"""CIFAR-10 and CIFAR-100 in torchvision's on-disk python format, read with a restricted
unpickler that builds only dicts, lists, strings, bytes and numpy arrays."""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signscope.errors import SignscopeError
from trainers.datasets.memory import Dataset, build


@dataclass(frozen=True)
class CifarLayout:
    title: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    torchvision_class: str


CIFAR10 = CifarLayout(
    "CIFAR-10",
    "cifar-10-batches-py",
    tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test_batch",
    "batches.meta",
    "labels",
    "label_names",
    10,
    "CIFAR10",
)
CIFAR100 = CifarLayout(
    "CIFAR-100",
    "cifar-100-python",
    ("train",),
    "test",
    "meta",
    "fine_labels",
    "fine_label_names",
    100,
    "CIFAR100",
)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only what the CIFAR files contain: builtins plus numpy arrays and dtypes.

    ``find_class`` is the only way a pickle reaches a callable, so refusing everything outside
    this list keeps a malicious file from running code.
    """

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("builtins", "bytearray"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) == ("_codecs", "encode"):
            # Python 3 writes bytes at protocol <= 2 as encode(str, "latin1"); allow just that.
            return _latin1_encode
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _latin1_encode(text: str, encoding: str = "utf-8") -> bytes:
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing to encode with {encoding!r}")
    return text.encode("latin1")


def _unpickle(path: Path) -> dict:
    # latin1 maps Python 2 byte strings (the original files) one-to-one onto str, as torchvision
    # does.
    obj = _RestrictedUnpickler(io.BytesIO(path.read_bytes()), encoding="latin1").load()
    if not isinstance(obj, dict):
        raise ValueError(f"expected a dict, found {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_cifar_batch(path: Path, layout: CifarLayout) -> tuple[np.ndarray, np.ndarray]:
    try:
        batch = _unpickle(path)
        data = np.asarray(batch["data"])
        labels = np.asarray(batch[layout.label_key], dtype=np.int64)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise ValueError(f"'data' is {data.dtype} {data.shape}, expected uint8 (N, 3072)")
        if labels.shape != (data.shape[0],):
            raise ValueError(f"{labels.shape[0]} labels for {data.shape[0]} images")
        if labels.size and (labels.min() < 0 or labels.max() >= layout.num_classes):
            raise ValueError(f"labels outside 0..{layout.num_classes - 1}")
    except Exception as exc:
        raise SignscopeError(f"{path}: not a readable {layout.title} file ({exc})") from None
    return data.reshape(-1, 3, 32, 32), labels


def _check_cifar_meta(path: Path, layout: CifarLayout) -> None:
    try:
        names = _unpickle(path)[layout.names_key]
        if len(names) != layout.num_classes:
            raise ValueError(f"{len(names)} class names, expected {layout.num_classes}")
    except Exception as exc:
        raise SignscopeError(f"{path}: not a readable {layout.title} meta file ({exc})") from None


def _download_cifar(root: Path, layout: CifarLayout) -> None:
    import torchvision.datasets

    try:
        getattr(torchvision.datasets, layout.torchvision_class)(
            str(root), train=True, download=True
        )
    except Exception as exc:
        raise SignscopeError(f"could not download {layout.title} to {root} ({exc})") from None


def load(root: Path, download: bool, layout: CifarLayout) -> Dataset:
    folder = root / layout.folder
    needed = [*layout.train_files, layout.test_file, layout.meta_file]
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing and download:
        _download_cifar(root, layout)
        missing = [f for f in needed if not (folder / f).is_file()]
    if missing:
        hint = "" if download else " (use --download to fetch it)"
        raise SignscopeError(f"no {layout.title} at {root}: expected {folder / missing[0]}{hint}")
    _check_cifar_meta(folder / layout.meta_file, layout)
    parts = [_read_cifar_batch(folder / f, layout) for f in layout.train_files]
    train_x = np.concatenate([p[0] for p in parts])
    train_y = np.concatenate([p[1] for p in parts])
    test_x, test_y = _read_cifar_batch(folder / layout.test_file, layout)
    name = "cifar10" if layout is CIFAR10 else "cifar100"
    return build(name, train_x, train_y, test_x, test_y, layout.num_classes, scale=255.0)
