"""What two runs have in common: the checks and the walk shared by mask overlap and sign
agreement (SPEC section 3)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from signscope.errors import RunFormatError
from signscope.metrics.stream import Piece, pieces, run_pieces
from signscope.tensordata import Handles


def common_levels(a, b) -> list[int]:
    """Levels present in both runs, after checking that they share one architecture."""
    arch_a, arch_b = a.architecture(), b.architecture()
    if arch_a != arch_b:
        only_a = [n for n in arch_a if n not in arch_b]
        only_b = [n for n in arch_b if n not in arch_a]
        differ = [n for n in arch_a if n in arch_b and arch_a[n] != arch_b[n]]
        if differ:
            n = differ[0]
            detail = f"{n!r} is {'x'.join(map(str, arch_a[n]))} vs {'x'.join(map(str, arch_b[n]))}"
        else:
            detail = (
                f"{only_a[0]!r} only in {a.label}" if only_a else f"{only_b[0]!r} only in {b.label}"
            )
        raise RunFormatError(
            f"{a.label} and {b.label} have different architectures "
            f"(prunable tensors differ: {detail}); they cannot be compared"
        )
    return [lvl for lvl in a.levels if lvl in set(b.levels)]


def step_mismatch(a, b, levels: list[int]) -> str | None:
    """Why pairing ``a`` and ``b`` by level number may surprise: the checkpoints of two runs of
    checkpoint folders are paired by position, which need not be the same training step."""
    pairs = [(lvl, a.steps[lvl], b.steps[lvl]) for lvl in levels]
    differ = [(lvl, sa, sb) for lvl, sa, sb in pairs if None not in (sa, sb) and sa != sb]
    if not differ:
        return None
    lvl, sa, sb = differ[0]
    return (
        f"levels are paired by position, not by step: level {lvl} is step {sa} of {a.label} "
        f"and step {sb} of {b.label}"
        + (f", and so on at {len(differ) - 1} more levels" if len(differ) > 1 else "")
    )


def walk_pairs(
    a,
    b,
    levels: list[int],
    n_out: int,
    chunk_fn: Callable[[Handles, object, object, str, str | None, str | None, Piece], np.ndarray],
) -> np.ndarray:
    """Sum ``chunk_fn`` over all chunks of all prunable tensors, for every common level.

    ``chunk_fn(handles, ckpt_a, ckpt_b, name, mask_a, mask_b, piece)`` returns ``n_out``
    counts for one chunk at one level; the result has shape (levels, tensors, n_out).
    """
    names = list(a.prunable)
    out = np.zeros((len(levels), len(names), n_out), np.int64)
    pairs = [(a.checkpoint(lvl), b.checkpoint(lvl)) for lvl in levels]
    with Handles() as handles:

        def work(piece: Piece) -> np.ndarray:
            name = names[piece.layer]
            return (
                np.stack(
                    [
                        chunk_fn(handles, ca, cb, name, a.prunable[name], b.prunable[name], piece)
                        for ca, cb in pairs
                    ]
                )
                if pairs
                else np.zeros((0, n_out), np.int64)
            )

        for piece, res in run_pieces(pieces(a.numel(n) for n in names), work):
            out[:, piece.layer, :] += res
    return out


def layer_groups(names: list[str], per_layer: bool) -> list[tuple[str, slice]]:
    """("*", all tensors) and, with ``per_layer``, one group per prunable tensor."""
    groups = [("*", slice(None))]
    if per_layer:
        groups += [(name, slice(i, i + 1)) for i, name in enumerate(names)]
    return groups
