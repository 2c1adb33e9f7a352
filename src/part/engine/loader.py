"""Data order that can be resumed exactly, on one process or sharded over DDP ranks.

:class:`ResumableSampler` draws a permutation from ``(seed, epoch)`` — identical on every rank — and
gives rank r the indices ``r, r + world, ...`` (like ``DistributedSampler``), starting at any position
within the epoch. :class:`SeededItems` runs each item's random augmentation under a seed derived from
``(seed, epoch, index)``, so an image gets the same crop whether the run was interrupted or not and
whichever worker loads it. :class:`RepeatedAugmentation` turns that order into DeiT's repeated augmentation
(each drawn image ``repeats`` times, the copies side by side in the global order) without a sampler of its
own, so the trainer's sampler, resume and sharding stay as they are.
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler

from ..data.transforms import seeded_cpu_rng


def epoch_order(length: int, seed: int, epoch: int, shuffle: bool = True) -> torch.Tensor:
    """The global order of epoch ``epoch``: ``(length,)`` int64, a permutation drawn from ``(seed, epoch)``
    (identical on every rank), or ``arange`` when not shuffling. :class:`ResumableSampler` deals it out."""
    if not shuffle:
        return torch.arange(length)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(length, generator=g)


def augment_seed(seed: int, step: int, micro: int = 0, rank: int = 0) -> int:
    """The seed of the batch augmentation (:func:`part.engine.builders.build_batch_augment`) of optimiser
    step ``step``, micro-batch ``micro`` (gradient accumulation), DDP rank ``rank``: a pure function of them,
    so a resumed run augments its batches as the uninterrupted one did, with no state in the checkpoint."""
    return (((seed * 1_000_003 + step) * 1_009 + micro) * 65_537 + rank) % (1 << 63)


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
        order = epoch_order(self.length, self.seed, self.epoch, self.shuffle)
        n = self.batches_per_epoch * self.batch_size * self.world_size
        mine = order[:n][self.rank :: self.world_size]
        return iter(mine[self.start_batch * self.batch_size :].tolist())

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size


class SeededItems(Dataset):
    """Wrap a dataset so item ``i`` of epoch ``e`` is produced under RNG seed ``f(seed, e, i)``.

    Setting ``epoch`` also calls ``set_epoch`` of the wrapped dataset when it has one
    (:class:`RepeatedAugmentation`)."""

    def __init__(self, dataset: Dataset, seed: int = 0):
        self.dataset, self.seed = dataset, seed
        self.epoch = 0

    @property
    def epoch(self) -> int:
        return self._epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self._epoch = value
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(value)

    def __len__(self) -> int:
        return len(self.dataset)

    def item_seed(self, index: int) -> int:
        """The seed of item ``index`` in this epoch: a pure function of ``(seed, epoch, index)``."""
        return (self.seed * 1_000_003 + self.epoch) * 10_000_019 + index

    def __getitem__(self, index: int):
        with seeded_cpu_rng(self.item_seed(index)):
            return self.dataset[index]


class RepeatedAugmentation(Dataset):
    """DeiT's repeated augmentation (Hoffer et al. 2020, Berman et al. 2019; timm/DeiT ``RASampler``; paper
    App. 8.1 via DeiT) as a dataset wrapper beside :class:`ResumableSampler` and :class:`SeededItems`.

    DeiT's sampler takes a permutation of the images, repeats each ``repeats`` times in a row and deals the
    list round-robin to the ranks, keeping one epoch's worth of samples: per epoch about
    ``len / repeats`` distinct images, each seen ``repeats`` times under different augmentations, the copies in
    the same step (on one process: the same batch; under DDP: neighbouring ranks). Here the trainer's
    :class:`ResumableSampler` (same ``seed``, shuffling) deals the global order ``o = epoch_order(...)``:
    position ``p`` of it goes to rank ``p % world``. This wrapper answers index ``i`` at position
    ``p = o^-1[i]`` with image ``o[p // repeats]``, so the images met in order are
    ``o[0], o[0], o[0], o[1], ...`` -- DeiT's list, dealt the same way. Item ``i`` is a pure function of
    ``(seed, epoch, i)``: resuming mid-epoch and any sharding give the same images, and the copies, being
    different indices, get different augmentation seeds from :class:`SeededItems`.

    ``seed`` must be the sampler's (``train.seed``); ``set_epoch`` is called through
    :class:`SeededItems`. ``len`` is the wrapped dataset's. ``labels`` (when the wrapped dataset has them)
    are those of this epoch's items. ``repeats = 1`` is the identity.
    """

    def __init__(self, dataset: Dataset, repeats: int = 3, seed: int = 0):
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise ValueError(f"repeated augmentation needs repeats >= 1, got {repeats!r}")
        self.dataset, self.repeats, self.seed = dataset, repeats, seed
        self.epoch = 0
        self._cache: tuple[int, torch.Tensor] | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.dataset)

    def sources(self) -> torch.Tensor:
        """``(len,)`` int64: the wrapped dataset's index behind each index of this epoch."""
        if self._cache is None or self._cache[0] != self.epoch:
            order = epoch_order(len(self.dataset), self.seed, self.epoch)
            position = torch.empty_like(order)
            position[order] = torch.arange(len(order))
            self._cache = (self.epoch, order[position // self.repeats])
        return self._cache[1]

    @property
    def labels(self):
        inner = getattr(self.dataset, "labels", None)
        if inner is None:
            return None
        return torch.as_tensor(inner).reshape(-1)[self.sources()]

    def __getitem__(self, index: int):
        if self.repeats == 1:
            return self.dataset[index]
        return self.dataset[int(self.sources()[index])]


def training_items(dataset, seed: int):
    """What the trainer's loader reads: a map-style dataset wrapped in :class:`SeededItems`; a stream
    (an ``IterableDataset`` such as :class:`part.data.wds.WdsStream`, which seeds itself) as it is."""
    return dataset if isinstance(dataset, IterableDataset) else SeededItems(dataset, seed=seed)


def epoch_loader(items, sampler: ResumableSampler, epoch: int, start_batch: int, batch_size: int,
                 num_workers: int, pin_memory: bool, seed: int) -> DataLoader:
    """The ``DataLoader`` of epoch ``epoch`` from batch ``start_batch`` on: map-style items in the sampler's
    order; a stream positioned by its ``start`` (same epoch, batch, rank and world as the sampler's)."""
    sampler.set_epoch(epoch, start_batch)
    # own generator: building the iterator must not consume the global RNG (exact resume)
    common = dict(batch_size=batch_size, num_workers=num_workers, drop_last=True, pin_memory=pin_memory,
                  worker_init_fn=ignore_stop_signals if num_workers else None,
                  generator=torch.Generator().manual_seed(seed + epoch))
    if isinstance(items, IterableDataset):
        items.start(epoch, start_batch, batch_size, sampler.rank, sampler.world_size, num_workers)
        return DataLoader(items, **common)
    items.epoch = epoch
    return DataLoader(items, sampler=sampler, **common)


def ignore_stop_signals(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: workers ignore SIGINT (Ctrl-C reaches the whole process group), so the
    main process can finish its step and write a checkpoint. SIGTERM keeps its default: the DataLoader and
    the interpreter stop workers with it (a worker ignoring it could hang its process on the way out). A
    SIGTERM sent to the whole process group (``scancel``) ends the workers too; the main process answers that
    as the stop request it is (:class:`part.engine.signals.StopRequests` defers the workers' failure to the
    next batch, where the trainer raises :class:`WorkerStopped`)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


class WorkerStopped(RuntimeError):
    """A DataLoader worker ended while the main process had a stop request (SIGTERM/SIGINT to the whole
    process group reached a worker before its handlers were set): the trainer stops as for the signal."""


def worker_killed_by_signal(exc: BaseException) -> bool:
    """Whether ``exc`` is how a batch fetch fails when a worker died: PyTorch's report of a worker that a
    signal ended (or that exited unexpectedly), or the broken connection of a batch it was sending."""
    msg = str(exc)
    return (isinstance(exc, RuntimeError) and "DataLoader worker" in msg and (
        "killed by signal" in msg or "exited unexpectedly" in msg)) or isinstance(exc, (ConnectionError, EOFError))


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
