"""Stream prunable tensors chunk by chunk and turn raw bits into sign planes.

Every metric over weights (flips, sign agreement, mask overlap, alive counts) walks the same
way: split each prunable tensor into chunks of ``CHUNK`` elements and, for one chunk, read that
element range from every file it needs into reused buffers. Memory therefore stays at a few
buffers per worker thread however many levels and however large the tensors are.

Signs come straight from the bits (see :class:`signscope.tensordata.FloatBits`): fp16/bf16 are
viewed as int16 and never converted; fp32/fp64 are compared as the floats they are. NaN and
inf are caught on the way. Each chunk becomes packed bit planes (:class:`Packed`), so
everything after the first pass works on an eighth of the bytes.
"""

from __future__ import annotations

import itertools
import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from signscope.errors import RunFormatError
from signscope.reader import Checkpoint
from signscope.tensordata import FLOAT_BITS, Handles, read_buffer

# 512K elements: a chunk's temporaries (2 MB of fp32, 512 KB per boolean plane) mostly stay
# in the caches, and the packed-plane bookkeeping (64 KB per plane) still amortises the
# Python overhead of its ~300 small numpy calls per chunk.
CHUNK = 1 << 19
# Thread count override (None: one per core, see workers()); tests set 1 or 2.
WORKERS: int | None = None


def workers() -> int:
    """Threads for the numpy work: numpy releases the GIL, so one per core (at most 4).
    ``SIGNSCOPE_THREADS`` overrides it (e.g. 1 on a shared machine)."""
    env = os.environ.get("SIGNSCOPE_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


@dataclass(frozen=True, slots=True)
class Piece:
    """Elements ``[start, start+count)`` of prunable tensor ``layer`` (index into the list)."""

    layer: int
    start: int
    count: int


def pieces(numels: Iterable[int]) -> list[Piece]:
    """Cut tensors of the given sizes into chunks, largest first so threads finish together."""
    chunk = CHUNK
    out = [Piece(i, s, min(chunk, n - s)) for i, n in enumerate(numels) for s in range(0, n, chunk)]
    out.sort(key=lambda p: -p.count)
    return out


class Buffers:
    """Per-thread buffers that :func:`load` reads raw data into."""

    def __init__(self, chunk: int) -> None:
        self.raw = read_buffer(chunk * 8)
        self.mag = np.empty(chunk * 8, np.uint8)
        self.mask_raw = read_buffer(chunk)
        self.nonzero = np.empty(chunk, bool)
        self.neg = np.empty(chunk, bool)


def read_bits(handles: Handles, ckpt: Checkpoint, name: str, start: int, count: int) -> np.ndarray:
    """Elements of a float tensor as signed integers of the same width (the raw bits)."""
    info = ckpt.tensors[name]
    raw = handles.read(ckpt, info, start, count, scratch(Buffers).raw)
    return raw.view(FLOAT_BITS[info.dtype].int_dtype)


def nonfinite_error(ckpt: Checkpoint, name: str) -> RunFormatError:
    """The error for a tensor holding NaN or inf, whose signs and statistics mean nothing."""
    return RunFormatError(f"{ckpt.file_of(name)}: tensor {name!r} holds NaN or inf values")


def sign_planes(
    bits: np.ndarray, ckpt: Checkpoint, name: str, nonzero: np.ndarray, neg: np.ndarray
) -> None:
    """Fill ``nonzero`` and ``neg`` (sign bit) from raw float bits; NaN/inf is an error."""
    spec = FLOAT_BITS[ckpt.tensors[name].dtype]
    if spec.float_dtype is not None:
        # The largest and smallest values are finite unless some value is NaN or inf
        # (maximum and minimum propagate NaN). Two SIMD reductions cost 3x less than the
        # pairwise sum this used to take. != 0 treats -0.0 as zero.
        values = bits.view(spec.float_dtype)
        if bits.size and not (
            np.isfinite(np.maximum.reduce(values)) and np.isfinite(np.minimum.reduce(values))
        ):
            raise nonfinite_error(ckpt, name)
        np.not_equal(values, spec.float_dtype(0), out=nonzero)
    else:
        mag = np.bitwise_and(
            bits, spec.magnitude, out=scratch(Buffers).mag[: bits.nbytes].view(spec.int_dtype)
        )
        if bits.size and mag.max() >= spec.nonfinite:
            raise nonfinite_error(ckpt, name)
        np.not_equal(mag, spec.int_dtype(0), out=nonzero)
    np.less(bits, spec.int_dtype(0), out=neg)


def popcount(packed: np.ndarray) -> int:
    """Set bits in a packed plane."""
    return int(popcount_rows(packed[None])[0])


def popcount_rows(packed: np.ndarray) -> np.ndarray:
    """Set bits per row of a 2-D packed array (64 bits at a time where the width allows)."""
    if packed.shape[1] % 8 == 0 and packed.flags.c_contiguous:
        packed = packed.view(np.uint64)
    return _bitcount(packed).sum(axis=1, dtype=np.int64)


# numpy >= 2.0 has a vectorised popcount; older numpy looks bytes up in a table.
_bitcount = getattr(np, "bitwise_count", None)
if _bitcount is None:
    _TABLE = np.array([bin(i).count("1") for i in range(256)], np.uint8)

    def _bitcount(packed: np.ndarray) -> np.ndarray:
        return _TABLE.take(packed.view(np.uint8))


@dataclass(frozen=True)
class Packed:
    """Bit planes of one chunk of one file (8 weights per byte, ``np.packbits`` order).

    ``alive``: mask (nonzero for maskless runs); ``signed``: alive and nonzero, i.e. has a
    sign; ``neg``: sign bit (meaningful where ``signed``). Working on packed bits makes each
    comparison between two files touch an eighth of the bytes.
    """

    alive: np.ndarray
    signed: np.ndarray
    neg: np.ndarray

    @property
    def n_alive(self) -> int:
        return popcount(self.alive)


def read_mask(handles: Handles, ckpt: Checkpoint, mask: str, start: int, count: int) -> np.ndarray:
    """Mask bytes ``[start, start+count)``; a value other than 0 and 1 is an error, not a
    guess (every mask dtype signscope accepts stores 0/1 as the bytes 0/1)."""
    raw = handles.read(ckpt, ckpt.tensors[mask], start, count, scratch(Buffers).mask_raw)
    if raw.size and raw.max() > 1:
        raise RunFormatError(f"{ckpt.path}: mask {mask!r} holds values other than 0 and 1")
    return raw


def load(
    handles: Handles, ckpt: Checkpoint, name: str, mask: str | None, start: int, count: int
) -> Packed:
    """Read weights (and mask) ``[start, start+count)`` of ``name`` as bit planes."""
    buf: Buffers = scratch(Buffers)
    nonzero, neg = buf.nonzero[:count], buf.neg[:count]
    sign_planes(read_bits(handles, ckpt, name, start, count), ckpt, name, nonzero, neg)
    signed = np.packbits(nonzero)
    if mask is None:
        alive = signed
    else:
        alive = np.packbits(read_mask(handles, ckpt, mask, start, count))
        signed &= alive
    return Packed(alive, signed, np.packbits(neg))


def load_alive(
    handles: Handles, ckpt: Checkpoint, name: str, mask: str | None, start: int, count: int
) -> np.ndarray:
    """Only the packed alive plane; reads just the mask when there is one."""
    if mask is None:
        return load(handles, ckpt, name, None, start, count).alive
    return np.packbits(read_mask(handles, ckpt, mask, start, count))


def count_alive(
    handles: Handles, ckpt: Checkpoint, name: str, mask: str | None, start: int, count: int
) -> int:
    """Alive weights in one chunk; reads only the mask when there is one."""
    if mask is not None:
        return int(np.count_nonzero(read_mask(handles, ckpt, mask, start, count)))
    return load(handles, ckpt, name, None, start, count).n_alive


_local = threading.local()


def _cache() -> dict:
    cache = getattr(_local, "cache", None)
    if cache is None:
        cache = _local.cache = {}
    return cache


def scratch(kind: type):
    """One scratch object of ``kind`` per thread, reused across chunks (sized by CHUNK)."""
    cache = _cache()
    key = (kind, CHUNK)
    if key not in cache:
        cache[key] = kind(CHUNK)
    return cache[key]


def scratch_planes(tag: str, rows: int, width: int) -> np.ndarray:
    """A per-thread ``(rows, width)`` uint8 array for ``tag``, reused across chunks.

    Per-level plane stacks are about a megabyte; allocating them per chunk let malloc hand
    the memory back and fault it in again (~65,000 page faults on the benchmark run).
    Contents are left over from the previous use.
    """
    cache = _cache()
    key = ("planes", tag)
    buf = cache.get(key)
    if buf is None or buf.size < rows * width:
        buf = cache[key] = np.empty(rows * width, np.uint8)
    return buf[: rows * width].reshape(rows, width)


def run_pieces(
    work: list[Piece],
    fn: Callable[[Piece], object],
    progress: Callable[[int, int], None] | None = None,
) -> Iterator[tuple[Piece, object]]:
    """Apply ``fn`` to every piece on a thread pool; yield (piece, result) as they finish.

    ``progress(done, total)`` counts elements. The first error (a corrupt tensor) stops
    the remaining work and propagates.
    """
    total = sum(p.count for p in work)
    done = 0
    n = WORKERS or workers()
    if n == 1 or len(work) == 1:
        for piece in work:
            result = fn(piece)
            done += piece.count
            if progress:
                progress(done, total)
            yield piece, result
        return
    with ThreadPoolExecutor(max_workers=n, thread_name_prefix="signscope") as pool:
        # A few pieces per thread in flight, not all of them: a 70B model has 130,000
        # pieces, and a future each would make memory grow with the model.
        pending: deque = deque()
        todo = iter(work)
        try:
            for piece in itertools.islice(todo, 4 * n):
                pending.append((piece, pool.submit(fn, piece)))
            while pending:
                piece, fut = pending.popleft()
                result = fut.result()
                for nxt in itertools.islice(todo, 1):
                    pending.append((nxt, pool.submit(fn, nxt)))
                done += piece.count
                if progress:
                    progress(done, total)
                yield piece, result
        finally:
            for _, fut in pending:
                fut.cancel()
