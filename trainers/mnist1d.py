"""MNIST-1D (Greydanus, 2020, arXiv:2011.14439): 10 classes of 40-sample 1-D signals, made
offline from the ``mnist1d`` package's digit templates by its own generator.

Only the generator is called (``mnist1d.data.make_dataset`` with the package's default
arguments: 5,000 signals, an 80/20 split into 4,000 train and 1,000 test, seed 42). The
package's ``get_dataset`` is never called, because it downloads a pickle from the internet and
unpickles it. Generating takes a few seconds plus the import of matplotlib, which
``mnist1d`` pulls in, so the arrays are cached under the data root as a plain ``.npz`` (no
pickle) named by a hash of the generator's arguments and the package version; the cache is
written to a temporary name and renamed into place.

This module does not import torch: it returns numpy arrays, and :mod:`trainers.datasets.mnist1d`
turns them into a data set.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from signscope.errors import SignscopeError

CLASSES = 10
LENGTH = 40  # final_seq_length of the default arguments
_ARRAYS = ("x", "y", "x_test", "y_test")


def _default_args() -> dict:
    """The generator's default arguments, without the download URL (never used here)."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)
    return args


def _version() -> str:
    try:
        return metadata.version("mnist1d")
    except metadata.PackageNotFoundError:
        raise SignscopeError(
            "the mnist1d data set needs the mnist1d package: pip install 'signscope[train]'"
        ) from None


def cache_path(root: Path, args: dict, version: str) -> Path:
    key = json.dumps({"args": args, "mnist1d": version}, sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return root / "mnist1d" / f"mnist1d-{digest}.npz"


def generate(args: dict) -> dict[str, np.ndarray]:
    """Run the package's generator with ``args``; the global numpy RNG it reseeds is restored."""
    from mnist1d.data import make_dataset
    from mnist1d.utils import ObjectView

    state = np.random.get_state()
    try:
        data = make_dataset(ObjectView(dict(args)))
    finally:
        np.random.set_state(state)
    return {k: np.asarray(data[k]) for k in _ARRAYS}


def _check(arrays: dict[str, np.ndarray], where: object) -> dict[str, np.ndarray]:
    x, y, xt, yt = (arrays.get(k) for k in _ARRAYS)
    ok = (
        x is not None
        and xt is not None
        and x.ndim == 2
        and xt.ndim == 2
        and x.shape[1] == xt.shape[1] == LENGTH
        and y is not None
        and yt is not None
        and y.shape == (x.shape[0],)
        and yt.shape == (xt.shape[0],)
        and y.size > 0
        and yt.size > 0
        and 0 <= min(y.min(), yt.min())
        and max(y.max(), yt.max()) < CLASSES
        and np.isfinite(x).all()
        and np.isfinite(xt).all()
    )
    if not ok:
        raise SignscopeError(
            f"{where}: not an MNIST-1D array file; delete it and it will be generated again"
        )
    return arrays


def load_arrays(root: Path) -> dict[str, np.ndarray]:
    """``x`` (N, 40) float32, ``y`` (N,) int64, ``x_test``, ``y_test``: from the cache under
    ``root``, or generated (and cached) when it is not there."""
    version = _version()
    args = _default_args()
    path = cache_path(root, args, version)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in _ARRAYS if k in npz.files}
        except (OSError, ValueError) as exc:
            raise SignscopeError(
                f"{path}: unreadable MNIST-1D cache ({exc}); delete it to generate it again"
            ) from None
        return _check(arrays, path)
    arrays = _check(generate(args), "the mnist1d generator")
    arrays = {
        "x": arrays["x"].astype(np.float32),
        "y": arrays["y"].astype(np.int64),
        "x_test": arrays["x_test"].astype(np.float32),
        "y_test": arrays["y_test"].astype(np.int64),
    }
    _write_cache(path, arrays)
    return arrays


def _write_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    # A cache that cannot be written (read-only data root) only costs the next run a few
    # seconds, so it is not an error.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
            os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared data root's cache
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError:
        pass
