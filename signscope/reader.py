"""Lazy, validating access to safetensors checkpoints, without torch and without the
safetensors library (SPEC section 2).

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor name ->
dtype, shape, data offsets; plus ``__metadata__``) and the raw little-endian tensor data.
:func:`read_header` parses and checks the header once; :class:`signscope.tensordata.Handles`
then reads any element range of any tensor into a caller's buffer, so the metrics can stream a
2 GB run through a few megabytes of memory. This module does not import numpy, so listing runs
(the TUI's first screen, ``signscope show``) never pays for it. Everything a user can get
wrong (a truncated file, a header that lies about sizes, an unknown dtype) becomes a
:class:`RunFormatError` that names the file.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from signscope.errors import RunFormatError, listed
from signscope.files import open_regular

# Bytes per element of every safetensors dtype code that signscope can size.
ITEMSIZE = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
FLOATING = frozenset({"F16", "BF16", "F32", "F64", "F8_E5M2", "F8_E4M3"})
MASK_DTYPES = frozenset({"U8", "BOOL", "I8"})
# Float dtypes whose signs signscope reads (signscope.tensordata.FLOAT_BITS has their layouts).
WEIGHT_DTYPES = frozenset({"F16", "BF16", "F32", "F64"})


# safetensors itself refuses headers above 100 MB; a larger length means a damaged file.
_MAX_HEADER = 100 * 1024 * 1024
# Tensors one header may declare. Memory and time grow with every entry (a 100 MB header can
# list 1.5 million empty tensors: 2.9 GB and two minutes for `show`). Real files stay far
# below the cap: checkpoints are sharded into files of about a thousand tensors (a 70B shard),
# and signscope's level files hold twice their model's count (one mask per weight), a few
# hundred for ResNet50. See docs/decisions.md.
MAX_TENSORS = 100_000


class TensorInfo(NamedTuple):
    """Where one tensor lives in its file; ``begin``/``end`` are absolute byte offsets.

    A NamedTuple rather than a frozen dataclass: a ResNet50 run has ~8,000 header entries,
    and building them was half the time of opening the run.
    """

    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def itemsize(self) -> int:
        return ITEMSIZE[self.dtype]

    @property
    def shape_text(self) -> str:
        """``64x3x3x3``; ``scalar`` for a 0-d tensor."""
        return "x".join(str(d) for d in self.shape) if self.shape else "scalar"


@dataclass(frozen=True)
class Checkpoint:
    """The parsed header of one safetensors file, or of the shards of a sharded checkpoint
    (then ``path`` is its folder and ``files`` gives each tensor's shard); no tensor data is
    read."""

    path: Path
    size: int
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]
    files: Mapping[str, Path] | None = None

    def file_of(self, name: str) -> Path:
        """The file that holds tensor ``name`` (offsets in its TensorInfo are into it)."""
        return self.path if self.files is None else self.files[name]

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def info(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise RunFormatError(f"{self.path}: has no tensor {name!r}") from None


def corrupt(path: Path, problem: str) -> RunFormatError:
    return RunFormatError(f"{path}: {problem}")


def read_header(path: str | os.PathLike) -> Checkpoint:
    """Parse and check the header of ``path``: every tensor must fit inside the file."""
    path = Path(path)
    try:
        with open_regular(path) as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(8)
            if len(head) < 8:
                raise corrupt(path, f"truncated: {size} bytes, too short for a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                raise corrupt(
                    path,
                    f"truncated or not a safetensors file: the header claims {n} "
                    f"bytes but the file has {size}",
                )
            if n > _MAX_HEADER:
                raise corrupt(path, f"not a safetensors file (header length {n})")
            raw = fh.read(n)
    except FileNotFoundError:
        raise RunFormatError(f"{path}: no such file") from None
    except PermissionError:
        raise RunFormatError(f"{path}: permission denied") from None
    except OSError as exc:
        raise RunFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    # Every entry is a JSON object, so counting braces bounds the entries before the parser
    # builds them (braces inside names or metadata only make the bound looser).
    if raw.count(b"{") > MAX_TENSORS + 2:
        raise _too_many(path, f"more than {MAX_TENSORS:,}")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise corrupt(path, "corrupt safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise corrupt(path, "corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise corrupt(path, "corrupt safetensors header (__metadata__ is not an object)")
    if len(header) > MAX_TENSORS:
        raise _too_many(path, f"{len(header):,}")
    data_start = 8 + n
    tensors = {}
    for name, entry in header.items():
        tensors[name] = _tensor_info(path, name, entry, data_start, size)
    _check_no_overlap(path, tensors.values())
    return Checkpoint(
        path=path,
        size=size,
        tensors=tensors,
        metadata={str(k): str(v) for k, v in metadata.items()},
    )


def _too_many(path: Path, count: str) -> RunFormatError:
    return corrupt(
        path,
        f"the header declares {count} tensors; signscope reads at most {MAX_TENSORS:,} "
        "per file (far more than any real model has)",
    )


def _check_no_overlap(path: Path, infos) -> None:
    """Two tensors must not share bytes: a writer never does it, and a header that does makes
    one tensor's data count as another's. Empty tensors occupy nothing, wherever they point."""
    previous = None
    for info in sorted((i for i in infos if i.end > i.begin), key=lambda i: i.begin):
        if previous is not None and info.begin < previous.end:
            raise corrupt(
                path,
                f"corrupt header: tensors {previous.name!r} and {info.name!r} overlap "
                f"(bytes {previous.begin}-{previous.end} and {info.begin}-{info.end})",
            )
        previous = info


def _tensor_info(path: Path, name: str, entry, data_start: int, size: int) -> TensorInfo:
    try:
        dtype = entry["dtype"]
        shape = tuple(entry["shape"])
        begin, end = entry["data_offsets"]
    except (TypeError, KeyError, ValueError):
        raise corrupt(path, f"corrupt header entry for tensor {name!r}") from None
    if not (
        type(begin) is int
        and type(end) is int
        and 0 <= begin <= end
        and all(type(d) is int and d >= 0 for d in shape)
    ):
        raise corrupt(path, f"corrupt header entry for tensor {name!r}")
    if not isinstance(dtype, str) or dtype not in ITEMSIZE:
        raise corrupt(path, f"tensor {name!r} has dtype {dtype!r}, which signscope cannot read")
    info = TensorInfo(name, dtype, shape, data_start + begin, data_start + end)
    nbytes = math.prod(shape) * ITEMSIZE[dtype]
    if end - begin != nbytes:
        raise corrupt(
            path,
            f"corrupt header: tensor {name!r} ({dtype}, shape {list(shape)}) "
            f"should take {nbytes} bytes, the header gives {end - begin}",
        )
    if info.end > size:
        raise corrupt(
            path,
            f"truncated: tensor {name!r} needs bytes up to {info.end} but the file has only {size}",
        )
    return info


def check_same_tensors(first: Checkpoint, other: Checkpoint) -> None:
    """Every level must hold the same tensors with the same dtypes and shapes."""
    a, b = first.tensors, other.tensors
    # Checkpoint folders all hold a model.safetensors: name the first by its whole path there.
    where = first.path.name if first.path.parent == other.path.parent else first.path
    if a.keys() != b.keys():
        missing, extra = a.keys() - b.keys(), b.keys() - a.keys()
        parts = ([f"lacks {listed(missing)}"] if missing else []) + (
            [f"has extra {listed(extra)}"] if extra else []
        )
        raise RunFormatError(f"{other.path}: tensor names differ from {where}: " + "; ".join(parts))
    for name, info in a.items():
        o = b[name]
        if (o.shape, o.dtype) != (info.shape, info.dtype):
            raise RunFormatError(
                f"{other.path}: tensor {name!r} is {o.dtype} {o.shape_text} "
                f"but {info.dtype} {info.shape_text} in {where}"
            )


def prunable_tensors(ckpt: Checkpoint) -> dict[str, str | None]:
    """Prunable tensor name -> its mask tensor name (None: alive means nonzero).

    With masks in the file, the masked tensors are the prunable ones (a trainer may leave
    some layer dense on purpose). Without any, SPEC section 2's rule for plain runs applies:
    floating tensors of 2+ dims whose name ends in ``weight``.
    """
    from signscope.runformat import MASK_PREFIX

    masked = {n[len(MASK_PREFIX) :]: n for n in ckpt.tensors if n.startswith(MASK_PREFIX)}
    if masked:
        for name, mname in masked.items():
            if name not in ckpt.tensors:
                raise RunFormatError(f"{ckpt.path}: mask {mname!r} has no tensor {name!r}")
            info, minfo = ckpt.tensors[name], ckpt.tensors[mname]
            if minfo.dtype not in MASK_DTYPES:
                raise RunFormatError(
                    f"{ckpt.path}: mask {mname!r} has dtype {minfo.dtype}; "
                    "masks must be U8, I8 or BOOL"
                )
            if minfo.shape != info.shape:
                raise RunFormatError(
                    f"{ckpt.path}: mask {mname!r} is {minfo.shape_text} "
                    f"but {name!r} is {info.shape_text}"
                )
        chosen = {n: masked[n] for n in ckpt.tensors if n in masked}
    else:
        chosen = {
            n: None
            for n, i in ckpt.tensors.items()
            if i.dtype in FLOATING and len(i.shape) >= 2 and n.endswith("weight")
        }
    for name in chosen:
        dtype = ckpt.tensors[name].dtype
        if dtype not in WEIGHT_DTYPES:
            raise RunFormatError(
                f"{ckpt.path}: prunable tensor {name!r} has dtype {dtype}; "
                "signscope reads F16, BF16, F32 and F64 weights"
            )
    return chosen


def check_reference(ref: Checkpoint, level0: Checkpoint, prunable) -> None:
    """A reference (init/rewind) must hold every prunable tensor with the levels' shape."""
    for name in prunable:
        info = ref.tensors.get(name)
        if info is None:
            raise RunFormatError(
                f"{ref.path}: lacks prunable tensor {name!r} that {level0.path.name} has"
            )
        want = level0.tensors[name]
        if info.shape != want.shape:
            raise RunFormatError(
                f"{ref.path}: tensor {name!r} is {info.shape_text} "
                f"but {want.shape_text} in {level0.path.name}"
            )
        if info.dtype not in WEIGHT_DTYPES:
            raise RunFormatError(
                f"{ref.path}: tensor {name!r} has dtype {info.dtype}; "
                "signscope reads F16, BF16, F32 and F64 weights"
            )


def batchnorm_layers(ckpt: Checkpoint) -> list[str]:
    """BN layer names: ``NAME`` where ``NAME.weight`` is 1-D floating and
    ``NAME.running_var`` exists (the gamma of paper Fig 10, 11)."""
    layers = []
    for name, info in ckpt.tensors.items():
        if name.endswith(".weight") and len(info.shape) == 1 and info.dtype in WEIGHT_DTYPES:
            base = name[: -len(".weight")]
            if f"{base}.running_var" in ckpt.tensors:
                layers.append(base)
    return layers
