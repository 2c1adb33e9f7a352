"""Data order that can be resumed exactly, on one process or sharded over DDP ranks.

:class:`ResumableSampler` draws a permutation from ``(seed, epoch)`` — identical on every rank — and
gives rank r the indices ``r, r + world, ...`` (like ``DistributedSampler``), starting at any position
within the epoch. :class:`SeededItems` runs each item's random augmentation under a seed derived from
``(seed, epoch, index)``, so an image gets the same crop whether the run was interrupted or not and
whichever worker loads it.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset, Sampler


class ResumableSampler(Sampler[int]):
    def __init__(self, length: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, world_size: int = 1):
        if length <= 0:
            raise ValueError("the dataset is empty")
        self.length, self.batch_size, self.seed, self.shuffle = length, batch_size, seed, shuffle
        self.rank, self.world_size = rank, world_size
        self.epoch = 0
        self.start_batch = 0
        # drop_last over the global batch: every rank sees the same number of full batches
        self.batches_per_epoch = length // (batch_size * world_size)
        if self.batches_per_epoch == 0:
            raise ValueError(
                f"the dataset has {length} items, fewer than one global batch of "
                f"{batch_size * world_size}; lower train.batch_size"
            )

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __iter__(self):
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.length, generator=g)
        else:
            order = torch.arange(self.length)
        n = self.batches_per_epoch * self.batch_size * self.world_size
        mine = order[:n][self.rank :: self.world_size]
        return iter(mine[self.start_batch * self.batch_size :].tolist())

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


class SeededItems(Dataset):
    """Wrap a dataset so item ``i`` of epoch ``e`` is produced under RNG seed ``f(seed, e, i)``."""

    def __init__(self, dataset: Dataset, seed: int = 0):
        self.dataset, self.seed, self.epoch = dataset, seed, 0

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed((self.seed * 1_000_003 + self.epoch) * 10_000_019 + index)
            return self.dataset[index]


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: workers ignore SIGINT/SIGTERM, so the main process can finish its
    step and write a checkpoint (a worker still exits when its main process dies)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def one_line_worker_error(exc: BaseException) -> BaseException:
    """An error raised in a DataLoader worker, as it reads with ``num_workers: 0``: PyTorch re-raises it
    in the main process with the worker's whole traceback as its message; keep the original last line."""
    msg = str(exc)
    if not (msg.startswith("Caught ") and "Original Traceback" in msg):
        return exc
    last = [ln for ln in msg.splitlines() if ln.strip()][-1]
    name, _, text = last.partition(": ")
    text = text or last
    try:
        return type(exc)(text)
    except Exception:  # an exception type that takes other arguments
        return ValueError(text)
