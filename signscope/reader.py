"""Lazy, validating access to safetensors checkpoints, without torch and without the
safetensors library (SPEC section 2).

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor name ->
dtype, shape, data offsets; plus ``__metadata__``) and the raw little-endian tensor data.
:func:`read_header` parses and checks the header once; :class:`Handles` then reads any element
range of any tensor into a caller's buffer, so the metrics can stream a 2 GB run through a few
megabytes of memory. Everything a user can get wrong (a truncated file, a header that lies
about sizes, an unknown dtype) becomes a :class:`RunFormatError` that names the file.
"""

from __future__ import annotations

import json
import math
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from signscope.errors import RunFormatError

# Bytes per element of every safetensors dtype code that signscope can size.
ITEMSIZE = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
FLOATING = frozenset({"F16", "BF16", "F32", "F64", "F8_E5M2", "F8_E4M3"})
MASK_DTYPES = frozenset({"U8", "BOOL", "I8"})


@dataclass(frozen=True)
class FloatBits:
    """How to read signs straight from the bits of a float dtype, with no conversion.

    Viewed as a signed integer of the same width, a float is negative exactly when the
    integer is; it is zero when the bits below the sign bit are zero (so -0.0 counts as
    zero); it is NaN or infinite when those bits reach the all-ones exponent.
    """

    int_dtype: type
    magnitude: np.integer  # mask of everything but the sign bit
    nonfinite: np.integer  # smallest magnitude with an all-ones exponent
    float_dtype: type | None  # numpy's own float of this layout (little-endian), if fast


FLOAT_BITS = {
    "F64": FloatBits(np.int64, np.int64(0x7FFF_FFFF_FFFF_FFFF), np.int64(0x7FF0_0000_0000_0000),
                     np.float64),
    "F32": FloatBits(np.int32, np.int32(0x7FFF_FFFF), np.int32(0x7F80_0000), np.float32),
    # numpy's float16 arithmetic goes through float32 conversions: the bits are faster.
    "F16": FloatBits(np.int16, np.int16(0x7FFF), np.int16(0x7C00), None),
    "BF16": FloatBits(np.int16, np.int16(0x7FFF), np.int16(0x7F80), None),
}

# safetensors itself refuses headers above 100 MB; a larger length means a damaged file.
_MAX_HEADER = 100 * 1024 * 1024


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
    """The parsed header of one safetensors file; no tensor data is read."""

    path: Path
    size: int
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str]

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def info(self, name: str) -> TensorInfo:
        try:
            return self.tensors[name]
        except KeyError:
            raise RunFormatError(f"{self.path}: has no tensor {name!r}") from None


def _corrupt(path: Path, problem: str) -> RunFormatError:
    return RunFormatError(f"{path}: {problem}")


def read_header(path: str | os.PathLike) -> Checkpoint:
    """Parse and check the header of ``path``: every tensor must fit inside the file."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(8)
            if len(head) < 8:
                raise _corrupt(path, f"truncated: {size} bytes, too short for a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > size - 8:
                raise _corrupt(path, f"truncated or not a safetensors file: the header claims {n} "
                                     f"bytes but the file has {size}")
            if n > _MAX_HEADER:
                raise _corrupt(path, f"not a safetensors file (header length {n})")
            raw = fh.read(n)
    except FileNotFoundError:
        raise RunFormatError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RunFormatError(f"{path}: is a folder, not a safetensors file") from None
    except PermissionError:
        raise RunFormatError(f"{path}: permission denied") from None
    except OSError as exc:
        raise RunFormatError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _corrupt(path, "corrupt safetensors header (not JSON)") from None
    if not isinstance(header, dict):
        raise _corrupt(path, "corrupt safetensors header (not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise _corrupt(path, "corrupt safetensors header (__metadata__ is not an object)")
    data_start = 8 + n
    tensors = {}
    for name, entry in header.items():
        tensors[name] = _tensor_info(path, name, entry, data_start, size)
    return Checkpoint(path=path, size=size, tensors=tensors,
                      metadata={str(k): str(v) for k, v in metadata.items()})


def _tensor_info(path: Path, name: str, entry, data_start: int, size: int) -> TensorInfo:
    try:
        dtype = entry["dtype"]
        shape = tuple(entry["shape"])
        begin, end = entry["data_offsets"]
    except (TypeError, KeyError, ValueError):
        raise _corrupt(path, f"corrupt header entry for tensor {name!r}") from None
    if not (type(begin) is int and type(end) is int and 0 <= begin <= end
            and all(type(d) is int and d >= 0 for d in shape)):
        raise _corrupt(path, f"corrupt header entry for tensor {name!r}")
    if not isinstance(dtype, str) or dtype not in ITEMSIZE:
        raise _corrupt(path, f"tensor {name!r} has dtype {dtype!r}, which signscope cannot read")
    info = TensorInfo(name, dtype, shape, data_start + begin, data_start + end)
    nbytes = math.prod(shape) * ITEMSIZE[dtype]
    if end - begin != nbytes:
        raise _corrupt(path, f"corrupt header: tensor {name!r} ({dtype}, shape {list(shape)}) "
                             f"should take {nbytes} bytes, the header gives {end - begin}")
    if info.end > size:
        raise _corrupt(path, f"truncated: tensor {name!r} needs bytes up to {info.end} "
                             f"but the file has only {size}")
    return info


class Handles:
    """Open file descriptors for reading element ranges of tensors into caller buffers.

    Reading into reused buffers (instead of mapping the files) keeps the resident set at
    the size of the buffers however large the run is; the copy from the page cache is
    cheap next to the arithmetic. Safe to share between threads: reads are positional.
    """

    def __init__(self) -> None:
        self._fds: dict[Path, int] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Handles:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            os.close(fd)

    def _fd(self, path: Path) -> int:
        fd = self._fds.get(path)
        if fd is None:
            with self._lock:
                fd = self._fds.get(path)
                if fd is None:
                    try:
                        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
                    except OSError as exc:
                        raise RunFormatError(f"{path}: cannot open ({exc.strerror})") from None
                    self._fds[path] = fd
        return fd

    def read(self, ckpt: Checkpoint, info: TensorInfo, start: int, count: int,
             out: np.ndarray) -> np.ndarray:
        """Elements ``[start, start+count)`` of tensor ``info`` as raw bytes in ``out``
        (a uint8 buffer of at least ``count * itemsize`` bytes); returns the filled prefix."""
        nbytes = count * info.itemsize
        offset = info.begin + start * info.itemsize
        # The kernel's copy out of the page cache runs 3-4x slower when the destination
        # sits 8-24 bytes past the source within a cache line (measured: 1.7 s against
        # 0.4 s of system time for a 2.5 GB run), so start the data at the same offset
        # modulo 64 as the file does, when the buffer has the room.
        shift = (offset - out.ctypes.data) % _LINE
        if shift + nbytes > out.nbytes:
            shift = 0
        out = out[shift:shift + nbytes]
        view = memoryview(out)
        done = 0
        fd = self._fd(ckpt.path)
        while done < nbytes:
            got = _pread_into(fd, view[done:], offset + done)
            if got <= 0:
                raise _corrupt(ckpt.path, f"truncated while reading tensor {info.name!r} "
                                          "(the file shrank after it was opened?)")
            done += got
        return out


_LINE = 64


def read_buffer(nbytes: int) -> np.ndarray:
    """A uint8 buffer for :meth:`Handles.read` of up to ``nbytes`` bytes, with the slack
    it uses to match the file's alignment."""
    return np.empty(nbytes + _LINE, np.uint8)


if hasattr(os, "preadv"):
    def _pread_into(fd: int, view: memoryview, offset: int) -> int:
        return os.preadv(fd, [view], offset)
else:  # Windows: no positional reads into buffers
    _seek_lock = threading.Lock()

    def _pread_into(fd: int, view: memoryview, offset: int) -> int:
        with _seek_lock:
            os.lseek(fd, offset, os.SEEK_SET)
            with open(fd, "rb", buffering=0, closefd=False) as fh:
                return fh.readinto(view) or 0


def as_float(raw: np.ndarray, dtype: str) -> np.ndarray:
    """Raw little-endian bytes of a float tensor as float32/float64 values.

    Used for the small tensors that need values (BatchNorm gamma); bf16 is widened by
    shifting its bits into the top half of a float32.
    """
    if dtype == "BF16":
        return (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
    if dtype in ("F16", "F32"):
        return raw.view("<f2" if dtype == "F16" else "<f4").astype(np.float32)
    if dtype == "F64":
        return raw.view("<f8")
    raise ValueError(f"not a readable float dtype: {dtype}")


def read_tensor(handles: Handles, ckpt: Checkpoint, name: str) -> np.ndarray:
    """A whole (small) tensor as raw bytes."""
    info = ckpt.info(name)
    return handles.read(ckpt, info, 0, info.numel, read_buffer(info.numel * info.itemsize))


# --------------------------------------------------------------------------- run layout


@dataclass(frozen=True)
class RunLayout:
    """Which files of a run folder are its levels and references (SPEC section 2)."""

    kind: str  # "signscope" | "plain"
    manifest: dict | None
    levels: tuple[Path, ...]  # index = level number
    init: Path | None
    rewind: Path | None


def locate_run(path: Path) -> RunLayout:
    """Find the level files and references of the run in folder ``path``.

    A folder with ``run.json`` is a signscope run whose levels are ``level_NNN.safetensors``
    (0..N without gaps). Any other folder of ``*.safetensors`` is a plain run: its files in
    natural name order are levels 0, 1, ...; a file whose name starts with ``init`` is the
    initial reference and ``rewind.safetensors`` the rewind point, neither of them a level.
    """
    from signscope.runformat import INIT_FILE, LEVEL_RE, REWIND_FILE, natural_key, read_manifest

    if not path.exists():
        raise RunFormatError(f"{path}: no such file or folder")
    if not path.is_dir():
        raise RunFormatError(f"{path}: not a run folder (give the folder that holds the checkpoints)")
    try:
        names = [n for n in os.listdir(path) if n.endswith(".safetensors") and not n.startswith(".")]
    except OSError as exc:
        raise RunFormatError(f"{path}: cannot list the folder ({exc.strerror})") from None
    manifest = read_manifest(path)
    if manifest is not None:
        numbered = sorted((int(m.group(1)), n) for n in names if (m := LEVEL_RE.match(n)))
        if not numbered:
            raise RunFormatError(f"{path}: run.json but no level_NNN.safetensors checkpoints")
        found = [lvl for lvl, _ in numbered]
        if found != list(range(len(found))):
            missing = sorted(set(range(found[-1] + 1)) - set(found))
            raise RunFormatError(f"{path}: level file(s) missing for level(s) "
                                 f"{', '.join(map(str, missing))}")
        return RunLayout(
            "signscope", manifest, tuple(path / n for _, n in numbered),
            path / INIT_FILE if INIT_FILE in names else None,
            path / REWIND_FILE if REWIND_FILE in names else None,
        )
    inits = sorted((n for n in names if n.startswith("init")), key=natural_key)
    if len(inits) > 1:
        raise RunFormatError(f"{path}: several initial references ({', '.join(inits)}); keep one "
                             "file whose name starts with 'init'")
    levels = sorted((n for n in names if not n.startswith("init") and n != REWIND_FILE),
                    key=natural_key)
    if not levels:
        raise RunFormatError(f"{path}: no checkpoints (no *.safetensors files besides references)"
                             if names else f"{path}: no checkpoints (*.safetensors) in this folder")
    return RunLayout(
        "plain", None, tuple(path / n for n in levels),
        path / inits[0] if inits else None,
        path / REWIND_FILE if REWIND_FILE in names else None,
    )


def _few(names) -> str:
    names = sorted(names)
    shown = ", ".join(names[:4])
    return shown + (f" and {len(names) - 4} more" if len(names) > 4 else "")


def check_same_tensors(first: Checkpoint, other: Checkpoint) -> None:
    """Every level must hold the same tensors with the same dtypes and shapes."""
    a, b = first.tensors, other.tensors
    if a.keys() != b.keys():
        missing, extra = a.keys() - b.keys(), b.keys() - a.keys()
        parts = ([f"lacks {_few(missing)}"] if missing else []) + (
            [f"has extra {_few(extra)}"] if extra else [])
        raise RunFormatError(f"{other.path}: tensor names differ from {first.path.name}: "
                             + "; ".join(parts))
    for name, info in a.items():
        o = b[name]
        if (o.shape, o.dtype) != (info.shape, info.dtype):
            raise RunFormatError(
                f"{other.path}: tensor {name!r} is {o.dtype} {o.shape_text} "
                f"but {info.dtype} {info.shape_text} in {first.path.name}")


def prunable_tensors(ckpt: Checkpoint) -> dict[str, str | None]:
    """Prunable tensor name -> its mask tensor name (None: alive means nonzero).

    With masks in the file, the masked tensors are the prunable ones (a trainer may leave
    some layer dense on purpose). Without any, SPEC section 2's rule for plain runs applies:
    floating tensors of 2+ dims whose name ends in ``weight``.
    """
    from signscope.runformat import MASK_PREFIX

    masked = {n[len(MASK_PREFIX):]: n for n in ckpt.tensors if n.startswith(MASK_PREFIX)}
    if masked:
        for name, mname in masked.items():
            if name not in ckpt.tensors:
                raise RunFormatError(f"{ckpt.path}: mask {mname!r} has no tensor {name!r}")
            info, minfo = ckpt.tensors[name], ckpt.tensors[mname]
            if minfo.dtype not in MASK_DTYPES:
                raise RunFormatError(f"{ckpt.path}: mask {mname!r} has dtype {minfo.dtype}; "
                                     "masks must be U8 or BOOL")
            if minfo.shape != info.shape:
                raise RunFormatError(f"{ckpt.path}: mask {mname!r} is {minfo.shape_text} "
                                     f"but {name!r} is {info.shape_text}")
        chosen = {n: masked[n] for n in ckpt.tensors if n in masked}
    else:
        chosen = {n: None for n, i in ckpt.tensors.items()
                  if i.dtype in FLOATING and len(i.shape) >= 2 and n.endswith("weight")}
    for name in chosen:
        dtype = ckpt.tensors[name].dtype
        if dtype not in FLOAT_BITS:
            raise RunFormatError(f"{ckpt.path}: prunable tensor {name!r} has dtype {dtype}; "
                                 "signscope reads F16, BF16, F32 and F64 weights")
    return chosen


def check_reference(ref: Checkpoint, level0: Checkpoint, prunable) -> None:
    """A reference (init/rewind) must hold every prunable tensor with the levels' shape."""
    for name in prunable:
        info = ref.tensors.get(name)
        if info is None:
            raise RunFormatError(f"{ref.path}: lacks prunable tensor {name!r} "
                                 f"that {level0.path.name} has")
        want = level0.tensors[name]
        if info.shape != want.shape:
            raise RunFormatError(f"{ref.path}: tensor {name!r} is {info.shape_text} "
                                 f"but {want.shape_text} in {level0.path.name}")
        if info.dtype not in FLOAT_BITS:
            raise RunFormatError(f"{ref.path}: tensor {name!r} has dtype {info.dtype}; "
                                 "signscope reads F16, BF16, F32 and F64 weights")


def batchnorm_layers(ckpt: Checkpoint) -> list[str]:
    """BN layer names: ``NAME`` where ``NAME.weight`` is 1-D floating and
    ``NAME.running_var`` exists (the gamma of paper Fig 10, 11)."""
    layers = []
    for name, info in ckpt.tensors.items():
        if name.endswith(".weight") and len(info.shape) == 1 and info.dtype in FLOAT_BITS:
            base = name[: -len(".weight")]
            if f"{base}.running_var" in ckpt.tensors:
                layers.append(base)
    return layers
