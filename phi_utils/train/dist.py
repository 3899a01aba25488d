"""Distributed setup for runs launched by `torchrun` (single node or multi-node).

`torchrun` sets RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR; without them this is a plain
single process. NCCL on CUDA, gloo on CPU. Wrapping is DDP or FSDP2 (`fully_shard`, one unit per
transformer block plus the root), chosen by `parallel`.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Iterator

import torch
import torch.distributed as dist


@dataclass
class DistEnv:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    if device == "cuda" or (device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise RuntimeError("device 'cuda' requested but CUDA is not available")
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def init_distributed(device: str = "auto") -> DistEnv:
    """Join the process group torchrun prepared (no-op for a single process)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if dev.type == "cuda" else "gloo"
        # Generous timeout: rank 0 packs the dataset (and writes checkpoints) while the others wait.
        dist.init_process_group(backend=backend, device_id=dev if dev.type == "cuda" else None,
                                timeout=timedelta(minutes=float(os.environ.get("PHI_DIST_TIMEOUT_MIN", "180"))))
    return DistEnv(rank=rank, world_size=world, local_rank=local_rank, device=dev)


def barrier(env: DistEnv) -> None:
    if env.distributed:
        dist.barrier()


def all_reduce_sum(t: torch.Tensor, env: DistEnv) -> torch.Tensor:
    if env.distributed:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def broadcast_object(obj: Any, env: DistEnv) -> Any:
    if not env.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather_objects(obj: Any, env: DistEnv) -> list[Any]:
    if not env.distributed:
        return [obj]
    out: list[Any] = [None] * env.world_size
    dist.all_gather_object(out, obj)
    return out


def _blocks(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks (the largest ModuleList), sharded one FSDP unit each."""
    lists = [m for m in model.modules() if isinstance(m, torch.nn.ModuleList)]
    return list(max(lists, key=len)) if lists else []


def wrap_model(model: torch.nn.Module, env: DistEnv, parallel: str, mixed_dtype: torch.dtype | None = None) -> torch.nn.Module:
    """`none`, `ddp` or `fsdp` (FSDP2 `fully_shard`); `none` with world size 1 returns the model.
    `mixed_dtype`: the autocast dtype of the run, FSDP2's parameter dtype in forward and backward
    (gradients are reduced in fp32); DDP and a single process autocast instead."""
    if not env.distributed or parallel == "none":
        if env.distributed:
            raise ValueError("several ranks need parallel='ddp' or 'fsdp'")
        return model
    if parallel == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        return DDP(model, device_ids=[env.device.index] if env.device.type == "cuda" else None)
    if parallel == "fsdp":
        try:
            from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        except ImportError:  # torch < 2.6 has FSDP2 under its older name
            from torch.distributed._composable.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(param_dtype=mixed_dtype, reduce_dtype=torch.float32) if mixed_dtype else MixedPrecisionPolicy()
        for block in _blocks(model):
            fully_shard(block, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
        return model
    raise ValueError(f"parallel must be 'none', 'ddp' or 'fsdp', got {parallel!r}")


@contextmanager
def no_grad_sync(model: torch.nn.Module, active: bool) -> Iterator[None]:
    """Skip the gradient all-reduce (DDP) or reduce-scatter (FSDP2) on accumulation micro-steps (all but the last)."""
    if not active:
        yield
        return
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        with model.no_sync():
            yield
        return
    if hasattr(model, "set_requires_gradient_sync"):  # a module FSDP2's fully_shard wrapped
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)
        return
    yield


def destroy(env: DistEnv) -> None:
    if env.distributed and dist.is_initialized():
        dist.destroy_process_group()
