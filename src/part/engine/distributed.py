"""torchrun + DistributedDataParallel plumbing (no home-made launcher).

``torchrun --nproc_per_node=K -m part pretrain ...`` sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK`` and the
rendezvous variables; :func:`init_distributed` reads them and joins the process group (NCCL on GPUs,
gloo on CPU). Without those variables everything runs in one process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def resolve_device(device: str | torch.device | None = "auto", local_rank: int = 0,
                   field: str = "train.device") -> torch.device:
    """The torch device for ``device``: ``"auto"``/None -> CUDA when available, else CPU; a bare ``"cuda"``
    -> this process's GPU ``cuda:<local_rank>``; anything else as given. Asking for CUDA where there is none
    raises ``ValueError`` naming ``field`` (the config key or flag the value came from)."""
    if device is None or device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"{field}={device} but no CUDA device is available; use {field}=cpu or auto")
        if dev.index is None:
            dev = torch.device("cuda", local_rank)
    return dev


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the torchrun process group if launched by torchrun; otherwise a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local)
    if world > 1 and not dist.is_initialized():
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, dev)


def cleanup_distributed() -> None:
    """Leave the process group; all ranks meet first so none tears down while another still talks."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def all_reduce_mean(t: torch.Tensor) -> torch.Tensor:
    if dist.is_available() and dist.is_initialized():
        t = t.clone()
        dist.all_reduce(t)
        t /= dist.get_world_size()
    return t


def broadcast_flag(flag: bool, device: torch.device) -> bool:
    """True on every rank if it is true on any rank (used to stop all ranks on a NaN loss)."""
    if dist.is_available() and dist.is_initialized():
        t = torch.tensor([1.0 if flag else 0.0], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item() > 0)
    return flag


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def on_main(fn, is_main: bool):
    """Run ``fn()`` on rank 0 only; its result, or its error as the same one-line message, reaches every
    rank (so a refused run folder stops all ranks instead of leaving them waiting in a barrier)."""
    result, err = None, None
    if is_main:
        try:
            result = fn()
        except Exception as exc:  # re-raised below, on every rank
            err = exc
    if dist.is_available() and dist.is_initialized():
        box = [(result, None if err is None else str(err))]
        dist.broadcast_object_list(box, src=0)
        result, msg = box[0]
        if err is None and msg is not None:
            raise ValueError(msg)
    if err is not None:
        raise err
    return result
