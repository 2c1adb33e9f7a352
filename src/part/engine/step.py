"""One optimiser step of the training loop, and the state it reads and changes.

:class:`TrainState` holds what a step touches (the objective and its wrapped forward, optimiser, scaler, the
sampling generator, the step counter, the loss since the last checkpoint); :func:`train_step` runs one
optimiser step on ``optim.accum_steps`` micro-batches: forward under autocast, backward, gradient
accumulation (no gradient sync before the last micro-batch), clipping, the optimiser step and the
``train.nan_policy`` of a non-finite loss. The loop (:mod:`part.engine.trainer`) fetches, logs and saves around it.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from ..config import Config
from . import checkpoint as ck
from .distributed import DistInfo, broadcast_flag
from .loader import ResumableSampler, WorkerStopped, augment_seed, one_line_worker_error, worker_killed_by_signal
from .signals import StopRequests
from .strategy import Strategy


# --- optimiser and schedule ------------------------------------------------------------------------
def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on biases, norms (1-D tensors), position embeddings, CLS token."""
    skip = set()
    for mod_name, mod in model.named_modules():
        for n in getattr(mod, "no_weight_decay", lambda: set())():
            skip.add(f"{mod_name}.{n}" if mod_name else n)
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 or name in skip or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def warmup_cosine(step: int, total: int, warmup: int, base_lr: float, min_lr: float) -> float:
    """Linear warmup from 0 to ``base_lr`` over ``warmup`` steps, then cosine to ``min_lr`` at ``total``."""
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))


def amp_dtype(amp: str, device: torch.device) -> torch.dtype | None:
    """``auto``: bf16 on CUDA GPUs that support it, fp32 elsewhere (CPU bf16 autocast is slower on most
    CPUs and changes numerics); ``bf16``/``fp16`` force a dtype; ``none`` is fp32."""
    if amp == "none":
        return None
    if amp == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else None
    if amp == "fp16" and device.type != "cuda":
        raise ValueError("train.amp=fp16 needs a CUDA device; use bf16 or none on CPU")
    return torch.bfloat16 if amp == "bf16" else torch.float16


# --- the state -------------------------------------------------------------------------------------
@dataclass
class TrainState:
    """What a training step reads and changes; the checkpointer saves and restores it.

    ``objective`` is the module being trained (its parameters and state dicts), ``model`` the same wrapped by
    ``strategy`` (DDP / FSDP: gradient sync is switched off on it), ``forward`` that or ``torch.compile`` of it.
    ``schedule(step)`` is the base learning rate (warmup + cosine); the loader reads ``items`` in the order of
    ``sampler`` from :meth:`position`. ``track`` (``best_loss``, ``nan_skips``, ``data``) and ``last`` (the last logged
    record) travel with every checkpoint; ``interval_loss`` / ``interval_steps`` are the summed mean loss and the
    number of applied steps since the last checkpoint (its manifest's ``loss``)."""

    objective: nn.Module
    model: nn.Module
    forward: Callable
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    strategy: Strategy
    generator: torch.Generator  # PART's patch/pair sampling stream
    schedule: Callable[[int], float]
    items: object  # what the loader reads (part.engine.loader.training_items)
    sampler: ResumableSampler
    total: int  # optimiser steps of the run
    accum: int  # micro-batches a step
    dtype: torch.dtype | None = None  # autocast dtype; None: fp32
    augment: Callable | None = None  # a batch augmentation (signals), a pure function of (seed, step, micro, rank)
    step: int = 0
    last: dict = field(default_factory=dict)
    track: dict = field(default_factory=lambda: {"best_loss": None, "nan_skips": 0})
    interval_loss: torch.Tensor | None = None
    interval_steps: int = 0

    @property
    def steps_per_epoch(self) -> int:
        return self.sampler.batches_per_epoch // self.accum

    def position(self) -> tuple[int, int]:
        """``(epoch, batch in that epoch)`` where the data order continues from at ``step``."""
        return divmod(self.step * self.accum, self.sampler.batches_per_epoch)


@dataclass
class StepOutput:
    """One step's ``lr``, its micro-batches' summed ``loss`` (a 0-d tensor) and ``metrics`` (name -> 0-d tensor),
    whether it was ``skipped`` (a non-finite loss under ``train.nan_policy: skip``) and the ``batch`` size of its
    last micro-batch on this rank."""

    lr: float
    loss: torch.Tensor
    metrics: dict
    skipped: bool
    batch: int


class NonFiniteLoss(RuntimeError):
    """The loss of step ``step`` was ``value`` (NaN or infinite) on some rank and the run must stop."""

    def __init__(self, value: float, step: int, lr: float):
        super().__init__(f"loss is {value} at step {step}")
        self.value, self.step, self.lr = value, step, lr


def set_learning_rate(s: TrainState, lr: float) -> None:
    """``lr`` times each group's ``lr_scale`` (layer-wise decay); 0 in groups ``frozen_until`` a later step (LP-FT)."""
    for g in s.optimizer.param_groups:
        g["lr"] = 0.0 if s.step < g.get("frozen_until", 0) else lr * g.get("lr_scale", 1.0)


def train_step(s: TrainState, fetch: Callable[[], tuple], cfg: Config, di: DistInfo) -> StepOutput:
    """One optimiser step on ``s.accum`` micro-batches from ``fetch()`` (each ``(x (B, ...), y (B,))``); then
    ``s.step`` is one higher. A non-finite loss (on any rank) skips the step under ``train.nan_policy: skip``
    (its batches are still read: the data order stays) until ``train.max_nan_skips``, else raises
    :class:`NonFiniteLoss`. A :class:`~part.engine.loader.WorkerStopped` from ``fetch`` leaves no trace: no
    gradient, and the sampling generator as it was before the step."""
    t, device = cfg.train, di.device
    lr = s.schedule(s.step)
    if hasattr(s.objective, "set_progress"):  # schedules inside an objective (DropPos sigma)
        s.objective.set_progress(s.step / s.total)
    set_learning_rate(s, lr)
    loss_sum, metric_sum, skipped = torch.zeros((), device=device), {}, False
    uses_labels = getattr(s.objective, "uses_labels", False)
    # a worker ended by the group's stop signal may cut a step short: its RNG state is kept
    step_rng = ck.rng_state(s.generator) if s.accum > 1 and cfg.data.num_workers else None
    for micro in range(s.accum):
        try:
            x, y = fetch()
        except WorkerStopped:  # stop before this step, as the signal asked: nothing applied
            s.optimizer.zero_grad(set_to_none=True)
            if step_rng is not None:
                ck.set_rng_state(step_rng, s.generator)
            raise
        if skipped:  # a skipped step still consumes its batches (same data order)
            continue
        x = x.to(device, non_blocking=True)
        if s.augment is not None:  # signals: a pure function of (seed, step, micro, rank)
            x = s.augment(x, torch.Generator(device=device).manual_seed(augment_seed(t.seed, s.step, micro, di.rank)))
        sync = micro == s.accum - 1 or not di.enabled
        ctx = contextlib.nullcontext() if sync else s.strategy.no_sync(s.model)
        with ctx, torch.autocast(device.type, dtype=s.dtype or torch.float32, enabled=s.dtype is not None):
            out = s.forward(x, y.to(device), generator=s.generator) if uses_labels else s.forward(x, generator=s.generator)
            loss = out.loss / s.accum
        if broadcast_flag(not bool(torch.isfinite(out.loss)), device):
            skipped = _skip_or_stop(s, out.loss.item(), lr, t)
            continue
        s.scaler.scale(loss).backward()
        loss_sum += out.loss.detach().float()
        for k, v in out.metrics.items():
            metric_sum[k] = metric_sum.get(k, 0.0) + v.detach().float().to(device)
    _apply(s, loss_sum, skipped, cfg.optim.clip_grad)
    s.step += 1
    return StepOutput(lr, loss_sum, metric_sum, skipped, x.shape[0])


def _skip_or_stop(s: TrainState, value: float, lr: float, t) -> bool:
    """``train.nan_policy``: True (skip this step, with a warning) while skips are left, else
    :class:`NonFiniteLoss`."""
    if t.nan_policy == "skip" and s.track["nan_skips"] < t.max_nan_skips:
        s.track["nan_skips"] += 1
        print(f"warning: loss is {value} at step {s.step}; step skipped "
              f"({s.track['nan_skips']}/{t.max_nan_skips} skips, train.nan_policy=skip)", file=sys.stderr)
        return True
    raise NonFiniteLoss(value, s.step, lr)


def _apply(s: TrainState, loss_sum: torch.Tensor, skipped: bool, clip_grad: float | None) -> None:
    """The optimiser step of the accumulated gradients (clipped to ``clip_grad`` when set), counted into the
    interval since the last checkpoint; a skipped step only drops its gradients."""
    if skipped:
        s.optimizer.zero_grad(set_to_none=True)
        return
    if clip_grad:
        s.scaler.unscale_(s.optimizer)
        torch.nn.utils.clip_grad_norm_(s.objective.parameters(), clip_grad)
    s.scaler.step(s.optimizer)
    s.scaler.update()
    s.optimizer.zero_grad(set_to_none=True)
    s.interval_loss += loss_sum / s.accum
    s.interval_steps += 1


def next_batch(it, stops: StopRequests | None = None, grace: float = 2.0):
    """The next batch. A worker that a signal ended while this process has (or, within ``grace`` seconds,
    gets) a stop request raises :class:`WorkerStopped`: the group's SIGTERM reached it before its handlers
    were set. Other worker errors come back as they would read with ``num_workers: 0``."""
    try:
        if stops is None:
            return next(it)
        stops.fetching = True  # first: a worker's death from here on is raised, one before was stored
        try:
            if stops.worker_error is not None:
                raise stops.worker_error
            return next(it)
        finally:
            stops.fetching = False
    except Exception as exc:
        if stops is not None and worker_killed_by_signal(exc):
            deadline = time.monotonic() + grace
            while not stops.requested and time.monotonic() < deadline:
                time.sleep(0.01)  # the main process's own handler runs between these
            if stops.requested:
                raise WorkerStopped((str(exc).splitlines() or [type(exc).__name__])[0]) from None
        raise one_line_worker_error(exc) from None


__all__ = ["TrainState", "StepOutput", "NonFiniteLoss", "train_step", "next_batch", "set_learning_rate",
           "param_groups", "warmup_cosine", "amp_dtype"]
