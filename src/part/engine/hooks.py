"""What the training loop tells about its run, apart from the step itself: the logged records (trackers, the
progress bar), the run's move into place (``--overwrite``), and its end (export, loss plot, tracker artifacts).

A :class:`Hook` answers the events it cares about; :class:`Hooks` calls a list of them in order. The loop
(:mod:`part.engine.trainer`) builds them with :func:`training_hooks`; :class:`Meter` makes the records'
throughput and data-wait numbers, :func:`validation_metrics` their ``val_*`` entries.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

from ..config import Config
from .distributed import all_reduce_mean


class Hook:
    """One listener of the loop; every event is a no-op unless overridden."""

    def log(self, rec: dict) -> None:
        """A logged step record (``step``, ``epoch``, ``loss``, ``lr``, ``img_per_s``, ``data_wait``, metrics)."""

    def tick(self, last: dict) -> None:
        """A step is done; ``last`` is the newest logged record (empty before the first)."""

    def moved(self, run: Path) -> None:
        """The run (built beside its final place by ``--overwrite``) is in its final place ``run`` now."""

    def finish(self, run: Path, objective: nn.Module, last: dict) -> None:
        """Rank 0, training done: ``run/weights.safetensors`` is written, ``summary.json`` not yet."""

    def finished(self, run: Path) -> None:
        """Rank 0: ``summary.json`` is written (the run is finished)."""

    def close(self, ok: bool = True) -> None:
        """The loop ends (``ok``: without an error)."""


class Hooks(Hook):
    """Calls each event of its hooks, in their order."""

    def __init__(self, hooks: list[Hook]):
        self.hooks = hooks

    def log(self, rec: dict) -> None:
        for h in self.hooks:
            h.log(rec)

    def tick(self, last: dict) -> None:
        for h in self.hooks:
            h.tick(last)

    def moved(self, run: Path) -> None:
        for h in self.hooks:
            h.moved(run)

    def finish(self, run: Path, objective: nn.Module, last: dict) -> None:
        for h in self.hooks:
            h.finish(run, objective, last)

    def finished(self, run: Path) -> None:
        for h in self.hooks:
            h.finished(run)

    def close(self, ok: bool = True) -> None:
        for h in self.hooks:
            h.close(ok)


def training_hooks(run: Path, cfg: Config, is_main: bool, total: int, start: int, progress: bool, resume: bool,
                   defer: bool = False) -> Hooks:
    """The loop's hooks: logging (rank 0), then at the end the export and the loss plot, in that order."""
    return Hooks([Logger(run, is_main, total, start, progress and is_main, cfg, resume, defer=defer),
                  ExportHook(cfg), LossPlot()])


class Logger(Hook):
    """Rank-0 logging: tqdm bar and the trackers of ``logging.backends`` (:mod:`part.engine.trackers`:
    JSONL lines flushed every record, TensorBoard, MLflow, W&B); at the end the trackers keep the export."""

    def __init__(self, run: Path, active: bool, total: int, start: int, bar: bool, cfg: Config, resume: bool,
                 defer: bool = False):
        from .trackers import build_trackers

        self.active, self.cfg = active, cfg
        self.bar = None
        # defer: the run is built beside its final place (--overwrite); only the JSONL log (written through its
        # open file, which moves with the folder) starts now, the others at moved() with the records so far
        self.pending = [] if defer and active else None
        backends = ["jsonl"] if defer else None
        self.trackers = build_trackers(cfg, run, resume, backends=backends) if active else []
        if active and bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, desc="train", dynamic_ncols=True,
                            disable=not (sys.stderr.isatty() or os.environ.get("PART_PROGRESS") == "1"))

    def log(self, rec: dict) -> None:
        if not self.active:
            return
        for t in self.trackers:
            t.log(rec)
        if self.pending is not None:
            self.pending.append(rec)
        if self.bar is None or self.bar.disable:
            print(f"step {rec['step']}: loss {rec['loss']:.4f} lr {rec['lr']:.2e} {rec['img_per_s']:.0f} img/s "
                  f"data wait {rec['data_wait']:.0%}", flush=True)

    def tick(self, last: dict) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if last:
                self.bar.set_postfix(loss=f"{last['loss']:.4f}", lr=f"{last['lr']:.1e}",
                                     img_s=f"{last['img_per_s']:.0f}",
                                     wait=f"{last.get('data_wait', 0.0):.0%}")  # older checkpoints lack it

    def moved(self, run: Path) -> None:
        """Start the deferred trackers in the final place and give them the records so far."""
        if self.pending is None:
            return
        from .trackers import build_trackers

        rest = [b for b in self.cfg.logging.backends if b != "jsonl"]
        started = build_trackers(self.cfg, run, False, backends=rest) if rest else []
        for t in started:
            for rec in self.pending:
                t.log(rec)
        self.trackers += started
        self.pending = None

    def finished(self, run: Path) -> None:
        for t in self.trackers:  # mlflow / wandb keep the export
            t.artifacts(run / "export")

    def close(self, ok: bool = True) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        for t in self.trackers:
            t.close(ok)
        self.trackers = []


class ExportHook(Hook):
    """At the end: ``<run>/export``, the same folder as ``part export`` (:func:`part.engine.export.write_run_export`)."""

    def __init__(self, cfg: Config):
        self.cfg = cfg

    def finish(self, run: Path, objective: nn.Module, last: dict) -> None:
        from .export import write_run_export

        write_run_export(run, self.cfg, objective, metrics=last)


class LossPlot(Hook):
    """At the end: ``<run>/plots/loss.png`` from ``metrics.jsonl`` (the loss; PART's pretext errors beside it)."""

    def finish(self, run: Path, objective: nn.Module, last: dict) -> None:
        plot_loss(run)


def plot_loss(run: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    if not recs:
        return
    keys = [k for k in ("err_x", "err_y", "err_euclid", "err_t") if k in recs[0]]
    fig, axes = plt.subplots(1, 2 if keys else 1, figsize=(10 if keys else 5, 3.6), constrained_layout=True, squeeze=False)
    steps = [r["step"] for r in recs]
    axes[0, 0].plot(steps, [r["loss"] for r in recs])
    axes[0, 0].set(title="training loss", xlabel="step", ylabel="loss", yscale="log")
    if keys:
        for k in keys:
            axes[0, 1].plot(steps, [r[k] for r in recs], label=k)
        axes[0, 1].set(title="pretext errors", xlabel="step", yscale="log")
        axes[0, 1].legend()
    (run / "plots").mkdir(exist_ok=True)
    fig.savefig(run / "plots" / "loss.png", dpi=110)
    plt.close(fig)


class Meter:
    """Images/s and the share of time spent waiting for the loader, since the last logged record (this rank)."""

    def __init__(self):
        self.since, self.images, self.waited = time.perf_counter(), 0, 0.0

    @contextlib.contextmanager
    def waiting(self):
        """Time inside this block counts as waiting for data."""
        t = time.perf_counter()
        yield
        self.waited += time.perf_counter() - t

    def record(self, step: int, epoch: float, out, accum: int, device: torch.device) -> dict:
        """The record of ``step`` from its :class:`~part.engine.step.StepOutput` ``out``: the loss and metrics
        (sums over ``accum`` micro-batches) as means over the micro-batches and over DDP ranks, the learning
        rate, ``img_per_s`` and ``data_wait``; the meter starts again."""
        now = time.perf_counter()
        names = sorted(out.metrics)
        vals = torch.stack([out.loss] + [out.metrics[k] for k in names]) / accum
        wait = torch.tensor([self.waited / max(now - self.since, 1e-9)], device=device)
        vals = all_reduce_mean(torch.cat([vals, wait])).tolist()  # means over DDP ranks
        rec = {"step": step, "epoch": epoch, "loss": vals[0], "lr": out.lr,
               "img_per_s": self.images / max(now - self.since, 1e-9), "data_wait": vals[-1]}
        rec.update(zip(names, vals[1:-1]))
        self.since, self.images, self.waited = now, 0, 0.0
        return rec


def validation_metrics(objective: nn.Module, validate) -> dict:
    """``validate(objective)`` in eval mode without gradients, the global RNG state kept (exact resume), as
    ``{"val_<name>": value}``."""
    state = torch.random.get_rng_state()
    was_training = objective.training
    objective.eval()
    try:
        with torch.no_grad():
            res = validate(objective)
    finally:
        objective.train(was_training)
        torch.random.set_rng_state(state)
    return {f"val_{k}": float(v) for k, v in res.items()}


__all__ = ["Hook", "Hooks", "training_hooks", "Logger", "ExportHook", "LossPlot", "plot_loss", "Meter",
           "validation_metrics"]
