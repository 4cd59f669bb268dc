"""Data sets as whole tensors resident on the training device, and the batches drawn from them.

There is no ``DataLoader``: a data set is loaded once into four tensors, moved to the device with
:meth:`Dataset.to`, and :func:`batches` indexes and augments it there (as airbench does), so an
epoch costs one permutation and one gather per batch.

Readers, all without torchvision's dataset classes:

- ``digits``: scikit-learn's bundled 8x8 digits, with a fixed stratified 80/20 split that does
  not depend on the run seed, so every run sees the same train and test set.
- ``mnist1d``: MNIST-1D's 1-D signals (N, 1, 40), made offline by the ``mnist1d`` package's
  generator and cached under the data root (:mod:`trainers.mnist1d`).
- ``cifar10`` / ``cifar100``: torchvision's on-disk python format, read with a restricted
  unpickler that builds only dicts, lists, strings, bytes and numpy arrays.
- ``tiny-imagenet``: the ``tiny-imagenet-200`` folder layout, JPEGs decoded with PIL.
- ``synthetic``: seeded Gaussian images with uniform labels, for benchmarks.
- ``imagenet``: the one exception. It does not fit on a device, so :mod:`trainers.imagenet`
  streams it from disk through DataLoader workers; :func:`batches` hands over to it.

Images are scaled to [0, 1] and normalised per channel with train-set statistics; ``mean`` and
``std`` keep those statistics (in [0, 1] units) so the crop padding can be black pixels, as in
torchvision's ``RandomCrop(padding=4)`` applied before ``Normalize``.
"""

from __future__ import annotations

import dataclasses
import gzip
import importlib.util
import io
import pickle
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from signscope.errors import SignscopeError
from trainers.augment import crop_flip, draw_crop_flip

if TYPE_CHECKING:
    from trainers.imagenet import StreamedDataset

DATASETS = ("digits", "mnist1d", "cifar10", "cifar100", "tiny-imagenet", "imagenet", "synthetic")
# Data sets whose examples are 1-D signals (C, L) rather than images (C, H, W).
SIGNAL_DATASETS = frozenset({"mnist1d"})
DEFAULT_ROOT = Path("data")
DIGITS_SPLIT_SEED = 0  # fixed on purpose: the split must not move with the run seed
DIGITS_TEST_FRACTION = 0.2
CROP_PAD = 4
AUGMENTED_SIZES = (32, 64)


@dataclass(eq=False)  # tensors have no single truth value to compare by
class Dataset:
    """A whole data set as tensors: images (N, C, H, W) float32 normalised, labels (N,) int64."""

    name: str
    train_x: Tensor
    train_y: Tensor
    test_x: Tensor
    test_y: Tensor
    num_classes: int
    augment: bool
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    @property
    def in_channels(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def n_train(self) -> int:
        return int(self.train_y.shape[0])

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One example's shape: (C, H, W) for images, (C, L) for 1-D signals."""
        return tuple(int(d) for d in self.train_x.shape[1:])

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def pad_fill(self) -> Tensor:
        """Per-channel value of a black (raw 0) pixel after normalisation."""
        if not self.mean:
            return torch.zeros(self.in_channels, device=self.device)
        mean = torch.tensor(self.mean, dtype=torch.float64)
        std = torch.tensor(self.std, dtype=torch.float64)
        return (-mean / std).to(self.train_x.dtype).to(self.device)

    def to(self, device: torch.device | str, channels_last: bool = False) -> Dataset:
        """A copy with all four tensors on ``device``; images in channels_last when asked
        (1-D signals have no such layout and stay as they are)."""
        images = self.train_x.dim() == 4
        fmt = torch.channels_last if channels_last and images else torch.contiguous_format

        def move(x: Tensor) -> Tensor:
            return x.to(device).contiguous(memory_format=fmt)

        return dataclasses.replace(
            self,
            train_x=move(self.train_x),
            train_y=self.train_y.to(device),
            test_x=move(self.test_x),
            test_y=self.test_y.to(device),
        )


# --------------------------------------------------------------------------- batches


def _shard(n: int, rank: int, world_size: int) -> slice:
    # Every rank gets exactly n // world_size positions so all ranks run the same number of
    # steps (an uneven count would hang a collective); the <= world_size-1 leftover positions
    # of the permutation differ every epoch, so no example is dropped for good.
    usable = n - n % world_size
    return slice(rank, usable, world_size)


def batches(
    ds: Dataset,
    batch_size: int,
    generator: torch.Generator,
    *,
    train: bool,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
) -> Iterator[tuple[Tensor, Tensor]]:
    """Batches of ``(images, labels)`` on the data set's device.

    ``train=True``: one permutation of the training set per call, drawn from ``generator``
    (which must live on the data's device), followed by the crop/flip parameters of the whole
    epoch when ``ds.augment``. All ranks must pass identically seeded generators: they then
    draw the same permutation, and rank ``r`` takes positions ``r, r+world_size, ...`` of it,
    a disjoint ``1/world_size`` share of the epoch. ``train=False``: the whole test set in
    order, no augmentation, ``generator``, ``rank`` and ``world_size`` unused: every rank then
    computes the same accuracy, with or without a collective to combine them.
    """
    if batch_size < 1:
        raise SignscopeError(f"batch size must be at least 1 (got {batch_size})")
    if not 0 <= rank < world_size:
        raise SignscopeError(f"rank {rank} is outside world size {world_size}")
    if not isinstance(ds, Dataset):  # streamed from disk (trainers.imagenet)
        yield from ds.batches(
            batch_size,
            generator,
            train=train,
            rank=rank,
            world_size=world_size,
            drop_last=drop_last,
        )
        return
    if not train:
        yield from _eval_batches(ds, batch_size)
        return
    n = ds.train_y.shape[0]
    device = ds.device
    perm = torch.randperm(n, generator=generator, device=device)
    params = draw_crop_flip(n, generator, CROP_PAD, device) if ds.augment else None
    shard = _shard(n, rank, world_size)
    positions = torch.arange(n, device=device)[shard]
    fill = ds.pad_fill() if ds.augment else None
    stop = len(positions) - len(positions) % batch_size if drop_last else len(positions)
    for start in range(0, stop, batch_size):
        pos = positions[start : start + batch_size]
        idx = perm[pos]
        x = ds.train_x[idx]
        if params is not None:
            x = crop_flip(x, params[pos], CROP_PAD, fill)
        yield _like(x, ds.train_x), ds.train_y[idx]


def _eval_batches(ds: Dataset, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
    for start in range(0, ds.test_y.shape[0], batch_size):
        yield ds.test_x[start : start + batch_size], ds.test_y[start : start + batch_size]


def _like(x: Tensor, ref: Tensor) -> Tensor:
    # Indexing does not promise to keep channels_last; the model's convolutions want it kept.
    if ref.is_contiguous(memory_format=torch.channels_last) and not ref.is_contiguous():
        return x.contiguous(memory_format=torch.channels_last)
    return x


# --------------------------------------------------------------------------- loading


def load_dataset(
    name: str,
    root: str | Path | None = None,
    download: bool = False,
    synthetic_shape: tuple[int, int, int] = (3, 32, 32),
    synthetic_classes: int = 10,
    synthetic_size: tuple[int, int] = (2048, 512),
    seed: int = 0,
    workers: int = 8,
) -> Dataset | StreamedDataset:
    """Load a data set by name onto the CPU (move it with :meth:`Dataset.to`).

    ``root`` (default ``./data``) holds the on-disk data sets; ``download`` fetches CIFAR
    through torchvision when it is missing. ``seed`` only affects ``synthetic``.
    """
    root = DEFAULT_ROOT if root is None else Path(root)
    if name == "digits":
        return _load_digits()
    if name == "cifar10":
        return _load_cifar(root, download, _CIFAR10)
    if name == "cifar100":
        return _load_cifar(root, download, _CIFAR100)
    if name == "tiny-imagenet":
        if download:
            raise SignscopeError(
                "tiny-imagenet cannot be downloaded by signscope: unpack "
                "http://cs231n.stanford.edu/tiny-imagenet-200.zip under the data root"
            )
        return _load_tiny_imagenet(root)
    if name == "imagenet":
        if download:
            raise SignscopeError(
                "imagenet cannot be downloaded by signscope: it needs an account "
                "at image-net.org; prepare DATA_ROOT/imagenet/{train,val}/<wnid>/"
            )
        from trainers.imagenet import load_imagenet

        return load_imagenet(root, workers)
    if name == "mnist1d":
        return _load_mnist1d(root)
    if name == "synthetic":
        return _load_synthetic(synthetic_shape, synthetic_classes, synthetic_size, seed)
    raise SignscopeError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")


def _build(
    name: str,
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    num_classes: int,
    scale: float,
) -> Dataset:
    """Normalise raw images (values in ``[0, scale]``) with per-channel train statistics."""
    mean, std = _channel_stats(train_x, scale)
    height, width = train_x.shape[-2:]
    return Dataset(
        name=name,
        train_x=_normalise(train_x, mean, std, scale),
        train_y=torch.as_tensor(np.asarray(train_y, dtype=np.int64)),
        test_x=_normalise(test_x, mean, std, scale),
        test_y=torch.as_tensor(np.asarray(test_y, dtype=np.int64)),
        num_classes=num_classes,
        # Crop and flip are for square images; signals (N, C, L) are not augmented.
        augment=train_x.ndim == 4 and height == width and width in AUGMENTED_SIZES,
        mean=tuple(float(m) for m in mean),
        std=tuple(float(s) for s in std),
    )


def _channel_stats(x: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (population) std of ``x / scale`` in float64."""
    c = x.shape[1]
    mean, std = np.empty(c), np.empty(c)
    for ch in range(c):
        v = x[:, ch]
        if v.dtype == np.uint8:
            # A histogram gives exact moments without a float64 copy of the whole channel
            # (Tiny ImageNet's train set would need 3.3 GB per channel otherwise).
            counts = np.bincount(v.ravel(), minlength=256).astype(np.float64)
            values = np.arange(256, dtype=np.float64) / scale
            total = counts.sum()
            m = (counts * values).sum() / total
            var = (counts * (values - m) ** 2).sum() / total
        else:
            vf = v.astype(np.float64) / scale
            m, var = vf.mean(), vf.var()
        mean[ch], std[ch] = m, np.sqrt(var) if var > 0 else 1.0
    return mean, std


def _normalise(x: np.ndarray, mean: np.ndarray, std: np.ndarray, scale: float) -> Tensor:
    out = torch.from_numpy(np.ascontiguousarray(x)).to(torch.float32)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    out.sub_(torch.tensor(mean * scale, dtype=torch.float32).view(shape))
    out.div_(torch.tensor(std * scale, dtype=torch.float32).view(shape))
    return out


# digits ---------------------------------------------------------------------


def _stratified_split(
    y: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Per class, a seeded shuffle and the first ``round(fraction * count)`` to the test set."""
    rng = np.random.Generator(np.random.PCG64(seed))
    train, test = [], []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        rng.shuffle(idx)
        k = int(round(test_fraction * len(idx)))
        test.append(idx[:k])
        train.append(idx[k:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled digits as (1797, 64) pixels 0..16 and (1797,) labels.

    Read straight from the ``digits.csv.gz`` that ships inside scikit-learn (exactly what
    ``load_digits`` parses): importing ``sklearn.datasets`` pulls in SciPy and costs seconds
    per training run, a large share of the demo. ``load_digits`` remains the fallback should a
    release move the file.
    """
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.origin is not None:
        csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz"
        if csv.is_file():
            with gzip.open(csv, "rt") as f:
                table = np.loadtxt(f, delimiter=",", dtype=np.float64)
            if table.shape == (1797, 65):
                return table[:, :-1], table[:, -1]
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data, bunch.target


def _load_digits() -> Dataset:
    pixels, target = _digits_arrays()
    x = pixels.astype(np.float32).reshape(-1, 1, 8, 8)  # values 0..16
    y = target.astype(np.int64)
    train, test = _stratified_split(y, DIGITS_TEST_FRACTION, DIGITS_SPLIT_SEED)
    return _build("digits", x[train], y[train], x[test], y[test], 10, scale=16.0)


# MNIST-1D -------------------------------------------------------------------


def _load_mnist1d(root: Path) -> Dataset:
    """MNIST-1D's default 4,000/1,000 split as (N, 1, 40) signals (trainers.mnist1d). The
    generator already standardises the signals; the train-set normalisation of :func:`_build`
    is then nearly the identity and kept only so every data set goes the same way."""
    from trainers.mnist1d import CLASSES, load_arrays

    a = load_arrays(root)
    return _build(
        "mnist1d", a["x"][:, None, :], a["y"], a["x_test"][:, None, :], a["y_test"], CLASSES, 1.0
    )


# synthetic ------------------------------------------------------------------


def _load_synthetic(
    shape: tuple[int, int, int], classes: int, size: tuple[int, int], seed: int
) -> Dataset:
    if classes < 2 or len(shape) != 3 or min(shape) < 1 or min(size) < 1:
        raise SignscopeError(
            f"synthetic data needs a (C, H, W) shape, at least 2 classes and nonempty splits "
            f"(got shape {tuple(shape)}, {classes} classes, sizes {tuple(size)})"
        )
    g = torch.Generator().manual_seed(seed)
    n_train, n_test = size
    x = torch.randn((n_train + n_test, *shape), generator=g)
    y = torch.randint(0, classes, (n_train + n_test,), generator=g)
    xn, yn = x.numpy(), y.numpy()
    return _build("synthetic", xn[:n_train], yn[:n_train], xn[n_train:], yn[n_train:], classes, 1.0)


# CIFAR ----------------------------------------------------------------------


@dataclass(frozen=True)
class _CifarLayout:
    title: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    torchvision_class: str


_CIFAR10 = _CifarLayout(
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
_CIFAR100 = _CifarLayout(
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


def _read_cifar_batch(path: Path, layout: _CifarLayout) -> tuple[np.ndarray, np.ndarray]:
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


def _check_cifar_meta(path: Path, layout: _CifarLayout) -> None:
    try:
        names = _unpickle(path)[layout.names_key]
        if len(names) != layout.num_classes:
            raise ValueError(f"{len(names)} class names, expected {layout.num_classes}")
    except Exception as exc:
        raise SignscopeError(f"{path}: not a readable {layout.title} meta file ({exc})") from None


def _download_cifar(root: Path, layout: _CifarLayout) -> None:
    import torchvision.datasets

    try:
        getattr(torchvision.datasets, layout.torchvision_class)(
            str(root), train=True, download=True
        )
    except Exception as exc:
        raise SignscopeError(f"could not download {layout.title} to {root} ({exc})") from None


def _load_cifar(root: Path, download: bool, layout: _CifarLayout) -> Dataset:
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
    name = "cifar10" if layout is _CIFAR10 else "cifar100"
    return _build(name, train_x, train_y, test_x, test_y, layout.num_classes, scale=255.0)


# Tiny ImageNet --------------------------------------------------------------

TINY_FOLDER = "tiny-imagenet-200"
TINY_SIZE = 64


def open_rgb(path: str | Path):
    """The image at ``path`` decoded as 3-channel RGB (Tiny ImageNet and ImageNet hold a few
    greyscale and CMYK JPEGs); a file PIL cannot decode is one error naming it."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except Exception as exc:
        raise SignscopeError(f"{path}: not a readable image ({exc})") from None


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


def _load_tiny_imagenet(root: Path) -> Dataset:
    """Classes are the wnids sorted by name (ImageFolder's order); val/ serves as the test set."""
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

    return _build(
        "tiny-imagenet",
        _read_images(train_paths),
        np.array(train_y),
        _read_images(test_paths),
        np.array(test_y),
        len(wnids),
        scale=255.0,
    )
