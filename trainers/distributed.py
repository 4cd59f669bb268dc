"""Data-parallel training under ``torchrun``: detecting the launch, the process group, the
DistributedDataParallel wrapper and the few collectives the level loop needs.

``torchrun --nproc_per_node N -m signscope train ...`` starts N copies of the command with
``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` in their environment; :func:`launch_env` reads them
and :func:`process_group` joins the group (NCCL on CUDA, gloo on CPU), one GPU per process.

How the level loop uses this (trainers/train.py):

- ``--batch-size`` stays the global batch of the paper's Table 1: each rank trains on
  ``batch_size / world_size`` examples of its own disjoint shard of every epoch
  (trainers.datasets.base.shard), and DDP averages the gradients, so one step sees the same number
  of examples and the LR schedule the same number of steps as a single-process run.
- BatchNorm is plain per-rank BatchNorm, not SyncBatchNorm: each rank normalises with the
  statistics of its own share of the batch (as torchvision's reference trainer does unless
  asked otherwise), which costs no communication inside the forward pass. The running
  statistics are not broadcast every step (``forward_sync_buffers=False``): rank 0's are the
  ones the checkpoints hold either way, because a broadcast from rank 0 never changes rank
  0's. They are copied to the other ranks before every evaluation
  (:func:`broadcast_buffers`) and at the start of every level (:func:`broadcast_state`).
- Pruning is computed on every rank from identical weights, then rank 0's masks and level
  start state are broadcast, so every rank trains exactly the network that rank 0 records.
- Only rank 0 writes the run; every rank reads it on ``--resume``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from signscope.errors import SignscopeError, UsageError


@dataclass(frozen=True)
class LaunchEnv:
    """Where this process sits in a torchrun launch (a single process is rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launch_env(environ: Mapping[str, str] | None = None) -> LaunchEnv:
    """The torchrun position from ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; rank 0 of 1 when
    ``WORLD_SIZE`` is unset (a plain ``signscope train``)."""
    env = os.environ if environ is None else environ
    if "WORLD_SIZE" not in env:
        return LaunchEnv()
    try:
        world = int(env["WORLD_SIZE"])
        rank = int(env.get("RANK", "0"))
        local = int(env.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise SignscopeError(
            f"torchrun environment is malformed: RANK={env.get('RANK')!r} "
            f"WORLD_SIZE={env.get('WORLD_SIZE')!r} LOCAL_RANK={env.get('LOCAL_RANK')!r}"
        ) from None
    if world < 1 or not 0 <= rank < world or local < 0:
        raise SignscopeError(
            f"torchrun environment is inconsistent: RANK={rank} WORLD_SIZE={world} "
            f"LOCAL_RANK={local}"
        )
    return LaunchEnv(rank, world, local)


def per_rank_batch(batch_size: int, world_size: int) -> int:
    """Each rank's share of the global ``--batch-size``; it must divide evenly, or the ranks'
    gradients would average over unequal batches."""
    if batch_size % world_size:
        raise UsageError(
            f"--batch-size {batch_size} cannot be split evenly over {world_size} processes; "
            f"use a multiple of {world_size}"
        )
    return batch_size // world_size


def check_group(world_size: int) -> None:
    """Refuse ``world_size > 1`` without a process group of that size: the ranks would train
    their shards apart and never exchange a gradient."""
    if world_size == 1:
        return
    size = dist.get_world_size() if dist.is_available() and dist.is_initialized() else None
    if size != world_size:
        raise UsageError(
            f"world_size {world_size} needs an initialised process group of that size "
            f"(found {size or 'none'}); launch with torchrun, or call "
            "torch.distributed.init_process_group first"
        )


@contextlib.contextmanager
def process_group(env: LaunchEnv, device_type: str) -> Iterator[LaunchEnv]:
    """Join the torchrun process group for the duration of the block (nothing to do for a
    single process). On CUDA every process takes GPU ``LOCAL_RANK``."""
    if not env.distributed:
        yield env
        return
    if not dist.is_available():
        raise SignscopeError(
            "this PyTorch build has no torch.distributed; cannot run under torchrun"
        )
    kwargs = {}
    if device_type == "cuda":
        if env.local_rank >= torch.cuda.device_count():
            raise SignscopeError(
                f"LOCAL_RANK {env.local_rank} but only {torch.cuda.device_count()} CUDA "
                "devices are visible; use --nproc_per_node <= the GPU count"
            )
        torch.cuda.set_device(env.local_rank)
        kwargs["device_id"] = torch.device("cuda", env.local_rank)
    dist.init_process_group(
        backend="nccl" if device_type == "cuda" else "gloo",
        rank=env.rank,
        world_size=env.world_size,
        **kwargs,
    )
    try:
        yield env
    finally:
        dist.destroy_process_group()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when a process group is running, else unchanged.

    Wrap once per run: the wrapper (and a compiled graph over it) is reused by every level;
    :func:`broadcast_state` re-synchronises the ranks when a level loads new weights."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(
        model,
        device_ids=ids,
        output_device=device.index if ids else None,
        forward_sync_buffers=False,
    )


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def broadcast_tensors(tensors: Iterable[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` in place with rank ``src``'s values (bool tensors included, which
    gloo cannot send as such)."""
    if not _active():
        return
    with torch.no_grad():
        for t in tensors:
            if t.dtype == torch.bool:
                buf = t.to(torch.uint8)
                dist.broadcast(buf, src)
                t.copy_(buf.bool())
            else:
                dist.broadcast(t, src)


def broadcast_state(model: nn.Module, src: int = 0) -> None:
    """Parameters and buffers (BatchNorm running statistics) of rank ``src`` on every rank."""
    broadcast_tensors(model.state_dict().values(), src)


def broadcast_buffers(model: nn.Module, src: int = 0) -> None:
    """Only the buffers (BatchNorm running statistics): after an epoch each rank holds the
    statistics of its own last batches, while the parameters are already identical."""
    broadcast_tensors(model.buffers(), src)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed over all ranks (in place); unchanged for a single process."""
    if _active():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if _active():
        dist.barrier()
