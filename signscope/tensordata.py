"""Reading tensor data: element ranges of safetensors tensors as raw bits in numpy buffers.

The headers come from :mod:`signscope.reader`; this module holds what needs numpy: the
positional reader behind every metric, the bit layouts that give signs without converting
floats, and the widening of small tensors (BatchNorm gamma) to float values.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from signscope.errors import RunFormatError
from signscope.reader import WEIGHT_DTYPES, Checkpoint, TensorInfo, corrupt


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
    "F64": FloatBits(
        np.int64, np.int64(0x7FFF_FFFF_FFFF_FFFF), np.int64(0x7FF0_0000_0000_0000), np.float64
    ),
    "F32": FloatBits(np.int32, np.int32(0x7FFF_FFFF), np.int32(0x7F80_0000), np.float32),
    # numpy's float16 arithmetic goes through float32 conversions: the bits are faster.
    "F16": FloatBits(np.int16, np.int16(0x7FFF), np.int16(0x7C00), None),
    "BF16": FloatBits(np.int16, np.int16(0x7FFF), np.int16(0x7F80), None),
}
assert set(FLOAT_BITS) == WEIGHT_DTYPES


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

    def read(
        self, ckpt: Checkpoint, info: TensorInfo, start: int, count: int, out: np.ndarray
    ) -> np.ndarray:
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
        out = out[shift : shift + nbytes]
        view = memoryview(out)
        done = 0
        path = ckpt.file_of(info.name)
        fd = self._fd(path)
        while done < nbytes:
            got = _pread_into(fd, view[done:], offset + done)
            if got <= 0:
                raise corrupt(
                    path,
                    f"truncated while reading tensor {info.name!r} "
                    "(the file shrank after it was opened?)",
                )
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
