"""The training loop's checkpoints: when a state is saved, what a checkpoint records, which one a resume or a
divergence goes back to (as timm's ``CheckpointSaver``, over :mod:`part.engine.checkpoint`'s durable files).

Every save is written to temporary files, renamed, fsynced and verified by its manifest before older ones
are pruned (``train.keep_last``); the newest *good* checkpoint (finite weights, a finite loss not after a
spike: :func:`is_good`) is never pruned, so a loss spike cannot rotate the last good state away. A run built
beside its final place (``--overwrite``) is swapped in at its first verified checkpoint.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn

from . import checkpoint as ck
from .distributed import DistInfo, all_reduce_mean, barrier, broadcast_flag, on_main
from .step import TrainState


class Checkpointer:
    """Saves and restores a :class:`~part.engine.step.TrainState` in ``<run>/checkpoints``.

    ``swap`` (``--overwrite``, rank 0): called once, after the first verified checkpoint, it puts the run
    being built in place and returns that place (``final``: where the other ranks find it)."""

    def __init__(self, run: Path, di: DistInfo, keep_last: int, spike_factor: float,
                 swap: Callable[[], Path] | None = None, final: Path | None = None):
        self.run, self.di, self.keep_last, self.spike_factor = run, di, keep_last, spike_factor
        self._swap, self._final = swap, final

    @property
    def folder(self) -> Path:
        return self.run / "checkpoints"

    def path(self, step: int) -> Path:
        """The checkpoint of ``step`` (without suffix), as messages name it."""
        return self.folder / f"step_{step:07d}"

    def checkpoint(self, s: TrainState, interim: bool = False) -> bool:
        """:meth:`save` ``s``; True when this put a run built beside its final place there (``self.run`` changed)."""
        self.save(s, interim)
        if self._swap is None:
            return False
        self.run = self._swap() if self.di.is_main else self._final  # the new run replaces the old one now
        self._swap = None
        return True

    def save(self, s: TrainState, interim: bool = False) -> None:
        """A verified checkpoint of ``s.step`` (every rank calls it; rank 0 writes). Its manifest records the
        mean loss since the previous checkpoint (over the steps applied in that interval) and whether it is
        *good*; the interval starts again. ``interim``: a stop's checkpoint between two ``ckpt_every`` steps,
        outside ``keep_last`` and pruned once a later checkpoint is verified
        (:func:`~part.engine.checkpoint.save_checkpoint`)."""
        di = self.di
        rng = ck.rng_state(s.generator)
        applied = int(s.interval_steps)  # the same on every rank: a skip is agreed over ranks (broadcast_flag)
        loss = all_reduce_mean(s.interval_loss / max(1, s.interval_steps)).item() if applied else None
        s.interval_loss, s.interval_steps = torch.zeros_like(s.interval_loss), 0
        rng_all = [rng]
        if di.enabled:  # every rank's RNG, so a resumed DDP run continues each rank's streams
            rng_all = [None] * di.world_size
            torch.distributed.all_gather_object(rng_all, rng)
        best = s.track.get("best_loss")
        finite_weights = weights_finite(s.objective)
        if di.enabled:
            finite_weights = not broadcast_flag(not finite_weights, s.interval_loss.device)
        good = is_good(loss, best, self.spike_factor, finite_weights)
        if good:
            s.track["best_loss"] = loss if best is None else min(best, loss)
        weights = s.strategy.model_state(s.objective)  # full, on rank 0
        optim = s.strategy.optim_state(s.objective, s.optimizer)
        if di.is_main:
            state = {"step": s.step, "optimizer": optim, "scaler": s.scaler.state_dict(), "rng": rng_all,
                     "last": s.last, "track": dict(s.track)}
            earlier_good = [p for p in ck.verified_checkpoints(self.folder) if ck.read_manifest(p).get("good", True)]
            protect = ck.checkpoint_step(earlier_good[-1]) if earlier_good and not good else None
            ck.save_checkpoint(self.folder, s.step, weights, state, self.keep_last,
                               info={"loss": loss, "good": good, "applied_steps": applied,
                                     "finite_weights": finite_weights, **({"interim": True} if interim else {})},
                               protect=protect)
        barrier()

    def restore(self, s: TrainState) -> bool:
        """Load the newest verified checkpoint into ``s`` (rank 0 picks it, setting corrupt ones aside; every
        rank loads it): weights, optimiser, scaler, this rank's RNG streams, step, last record, track. False
        when the run never wrote one (it restarts from step 0)."""
        path = on_main(self._pick, self.di.is_main)
        if path is None:
            return False
        weights, state = ck.load_checkpoint(path)
        s.strategy.load(s.objective, s.optimizer, weights, state["optimizer"],
                        f"checkpoint {path.with_suffix('.safetensors')}")
        s.scaler.load_state_dict(state["scaler"])
        ck.set_rng_state(state["rng"][min(self.di.rank, len(state["rng"]) - 1)], s.generator)
        s.step = int(state["step"])
        s.last = dict(state.get("last") or {})
        s.track.update(state.get("track") or {})
        return True

    def _pick(self) -> Path | None:
        """The newest usable checkpoint (corrupt ones set aside with a warning); None when the run never
        wrote one; :class:`~part.engine.checkpoint.CheckpointError` when all are bad."""
        if not ck.list_checkpoints(self.folder):
            print(f"note: {self.folder} holds no checkpoint yet; the run restarts from step 0", file=sys.stderr)
            return None
        return ck.load_latest(self.folder)[2]

    def divergence_message(self, value: float, step: int, lr: float) -> str:
        """Set aside checkpoints written after the loss spiked; name the last good one (or say none exists)."""
        good = on_main(self._keep_last_good, self.di.is_main)
        head = f"loss is {value} at step {step} (lr {lr:.3g}); stopped. "
        tail = "Lower optim.lr, raise optim.warmup_steps, set optim.clip_grad, or train.nan_policy=skip"
        if good is None:
            return head + "No good checkpoint exists (none written yet, or all after the loss spiked). " + tail
        return (head + f"Last good checkpoint: {good} (step {int(good.name[5:])}); continue from it with: part "
                f"pretrain --out {self.run} --resume --set optim.lr=<lower>. " + tail)

    def _keep_last_good(self) -> Path | None:
        verified = ck.verified_checkpoints(self.folder)
        good = [p for p in verified if ck.read_manifest(p).get("good", True)]
        if not good:
            return None
        for p in verified:
            if ck.checkpoint_step(p) > ck.checkpoint_step(good[-1]):
                ck.set_aside(p, f"written after the loss spiked (loss {ck.read_manifest(p).get('loss')}); "
                                f"the last good checkpoint is {good[-1].stem}")
        return good[-1].with_suffix("")


def is_good(loss: float | None, best: float | None, spike_factor: float, finite_weights: bool) -> bool:
    """A checkpoint is *good* (one the exit-3 message may send a user back to) when its weights are all
    finite and its interval applied at least one step (``loss`` is None when every step since the previous
    checkpoint was skipped by ``train.nan_policy: skip``) whose mean loss is finite and at most
    ``spike_factor`` x the best good interval's loss so far."""
    return (finite_weights and loss is not None and math.isfinite(loss)
            and (best is None or loss <= spike_factor * best))


def weights_finite(module: nn.Module) -> bool:
    """True when no floating-point parameter or buffer of ``module`` (this rank's shards under FSDP) holds a
    NaN or an infinity; :meth:`Checkpointer.save` agrees the answer over ranks."""
    tensors = [*module.parameters(), *module.buffers()]
    return all(bool(torch.isfinite(v).all()) for v in tensors if v.is_floating_point())


__all__ = ["Checkpointer", "is_good", "weights_finite"]
