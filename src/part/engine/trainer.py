"""The training loop shared by every objective: AdamW + warmup/cosine, AMP, DDP, exact resume,
checkpoints, JSONL + TensorBoard logs, tqdm progress.

``train(cfg, out_dir, ...)`` is what ``part.pretrain(...)`` and ``part pretrain`` call. The objective is
any module from :func:`part.engine.builders.build_objective`: ``objective(x, generator=g)`` (or
``objective(x, labels, generator=g)`` when ``objective.uses_labels``) returns ``.loss`` and ``.metrics``.

``train`` plans and locks the run folder; ``_train_locked`` builds and checks everything (a
:class:`~part.engine.step.TrainState`), restores the newest checkpoint on resume and writes the run's first files
(:mod:`part.engine.runstart`); ``_loop`` then runs :func:`~part.engine.step.train_step` to the last step, logging
through the hooks (:mod:`part.engine.hooks`) and saving through the
:class:`~part.engine.checkpointer.Checkpointer`; ``_finish`` writes the final weights, the hooks' export and plot,
and ``summary.json``.
"""

from __future__ import annotations

import functools
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from ..config import Config
from . import checkpoint as ck
from .builders import build_batch_augment, build_dataset, build_objective
from .checkpointer import Checkpointer
from .datainfo import data_fingerprint
from .distributed import DistInfo, barrier, broadcast_flag, cleanup_distributed, init_distributed, on_main
from .hooks import Hooks, Meter, training_hooks, validation_metrics
from .loader import ResumableSampler, WorkerStopped, epoch_loader, training_items
from .runfolder import RunLock, RunReplacement, check_recorded_init, check_resume_init, plan_run, settle_run
from .runstart import check_data, init_weights, prepare_run
from .signals import StopRequests, TrainingStopped
from .step import NonFiniteLoss, TrainState, amp_dtype, next_batch, param_groups, train_step, warmup_cosine
from .strategy import build_strategy, checkpointed_blocks


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped. The message names the last good checkpoint (finite
    loss, not after a spike) or says that none exists."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    metrics: dict = field(default_factory=dict)  # last logged values
    history: list = field(default_factory=list)  # the JSONL records of this process
    finished_before: bool = False  # --resume of a run that had already finished: nothing was done


# --- the loop --------------------------------------------------------------------------------------
def train(
    cfg: Config,
    out_dir: str | Path,
    resume: bool | str = False,
    overwrite: bool = False,
    init: str | Path | None = None,
    progress: bool = True,
    objective: nn.Module | None = None,
    dataset=None,
    provenance: dict | None = None,
    validate=None,
    allow_data_change: bool = False,
) -> TrainResult:
    """Train ``cfg.objective`` on ``cfg.data``; write the run folder; return where it wrote.

    Everything that can fail (run folder, config, model, ``init``, dataset, checkpoint) is built and
    checked before an old run is replaced or anything is written. The run folder is locked for the whole
    call (one writer per folder). SIGTERM/SIGINT finish the current step, write a verified checkpoint and
    raise :class:`~part.engine.signals.TrainingStopped`.

    Args:
        cfg: resolved :class:`~part.config.Config` (for ``resume``, the run's saved config.yaml).
        out_dir: the run folder.
        resume: ``True``: continue exactly from the newest verified checkpoint in ``out_dir``;
            ``"auto"``: continue when ``out_dir`` holds a run, else start fresh. A finished run is
            read-only: nothing is written and its summary is returned.
        overwrite: replace an existing run in ``out_dir`` (only after everything above was validated).
        init: a ``.safetensors`` file (or run folder) whose weights initialise the model of a NEW run.
        objective, dataset: ready objects instead of building them from ``cfg`` (Python API).
        provenance: what initialised the model, written atomically to ``init.json`` of a new run (kept on
            resume); default: ``init``'s source.
        validate: ``objective -> {name: number}``, called on rank 0 (eval mode, no gradients, the RNG state
            kept) every ``train.val_every`` epochs and at the last step; the numbers join that step's record
            as ``val_<name>`` (``metrics.jsonl``, trackers). Fine-tuning passes the validation carve's accuracy.
        allow_data_change: ``resume`` on data other than the run trained on (kind, samples, labels, content:
            :func:`part.engine.datainfo.data_changes`) is refused unless this is true; then the change is
            appended to ``<run>/data_changes.jsonl`` with its step.
    """
    dist_info = init_distributed(cfg.train.device)
    try:
        return _train(cfg, Path(out_dir), resume, overwrite, init, progress, objective, dataset, provenance,
                      dist_info, validate, allow_data_change)
    finally:
        cleanup_distributed()


def _train(cfg, run, resume, overwrite, init, progress, objective, dataset, provenance, di: DistInfo,
           validate=None, allow_data_change=False) -> TrainResult:
    t = cfg.train
    check_resume_init(resume, init)
    if t.threads:
        torch.set_num_threads(t.threads)

    held: dict = {}  # the locks live on rank 0 only; the plan reaches every rank

    def _plan_and_lock():
        settle_run(run)  # an interrupted replace of the run or its export is finished or undone first
        p = plan_run(run, resume, overwrite)
        held["lock"] = RunLock(run).acquire()
        if p.mode == "replace":  # the new run is built beside the old one (part.engine.folders)
            try:
                held["replace"] = RunReplacement(run, held["lock"])
            except BaseException:
                held["lock"].release()
                raise
            p.work = held["replace"].work
        return p

    plan = on_main(_plan_and_lock, di.is_main)
    lock, rep = held.get("lock"), held.get("replace")
    failed = True
    try:
        if plan.mode == "finished":
            failed = False
            return _finished_result(run)
        try:
            result = _train_locked(cfg, plan.work or run, plan.mode, di, init=init, progress=progress,
                                   objective=objective, dataset=dataset, provenance=provenance, validate=validate,
                                   final=run, swap=rep.swap if rep is not None else None,
                                   allow_data_change=allow_data_change)
        except BaseException:
            if rep is not None and not rep.done and rep.fail():
                print(f"note: --overwrite stopped before the new run's first checkpoint; {run} still holds the run "
                      "it was replacing, unchanged", file=sys.stderr)
            raise
        failed = False
        return result
    finally:
        if rep is not None and rep.done:
            rep.lock.release()  # the new run's lock, now the run folder's
        elif lock is not None:
            lock.release(failed=failed and plan.mode == "fresh")


def _train_locked(cfg: Config, run: Path, mode: str, di: DistInfo, *, init, progress, objective, dataset,
                  provenance, validate, final: Path, swap, allow_data_change) -> TrainResult:
    """Train into ``run``. ``mode == "replace"``: ``run`` is where the new run is built; at its first verified
    checkpoint ``swap()`` (rank 0) puts it in place at ``final``, and the loop goes on there."""
    resuming = mode == "resume"
    torch.manual_seed(cfg.train.seed + di.rank)
    if resuming and init is not None:  # --resume auto of a run: --init must be the one it started from
        check_recorded_init(run, init)
    # --- build and validate everything; nothing in the run folder is touched yet --------------------
    if objective is None:
        objective = build_objective(cfg)
    objective.to(di.device)
    if init is not None and not resuming:
        loaded = init_weights(objective, init)
        provenance = provenance or {"source": str(init), "loaded": loaded}
    if dataset is None:
        dataset = build_dataset(cfg, train=True)
    s, val_steps = _build_state(cfg, di, objective, dataset, validate is not None)
    ckpt = Checkpointer(run, di, cfg.train.keep_last, cfg.train.spike_factor, swap=swap, final=final)
    fingerprint, data_note = data_fingerprint(cfg, dataset), None
    if resuming and ckpt.restore(s):
        data_note = check_data(run, cfg, s.track.get("data"), fingerprint, s.step, allow_data_change)
    s.track["data"] = fingerprint  # saved with every checkpoint: what the run trains on from here
    # --- everything is valid: now the run folder changes ------------------------------------------------
    on_main(lambda: prepare_run(run, cfg, resuming, provenance, data_note, s.step), di.is_main)
    hooks = training_hooks(run, cfg, di.is_main, s.total, s.step, progress, resuming, defer=mode == "replace")
    s.objective.train()
    try:
        history = _loop(s, cfg, di, ckpt, hooks, validate, val_steps)
        full = s.strategy.full_module(s.objective)  # FSDP: gathered by every rank, unsharded on rank 0
        if di.is_main:
            _finish(ckpt.run, full, s, hooks)
    except BaseException:
        hooks.close(ok=False)
        raise
    hooks.close()
    barrier()
    return TrainResult(ckpt.run, s.step, s.last, history)


def _loop(s: TrainState, cfg: Config, di: DistInfo, ckpt: Checkpointer, hooks: Hooks, validate, val_steps) -> list:
    """Steps from ``s.step`` to ``s.total``: step, log, checkpoint, stop on a signal. Returns the logged records."""
    t, history, meter = cfg.train, [], Meter()
    with StopRequests() as stops:
        if cfg.data.num_workers and not di.enabled:
            stops.defer_worker_failures()  # a worker ended by the group's SIGTERM: answered at the next batch
        for it in _epoch_batches(s, cfg, di, meter):
            def fetch():
                with meter.waiting():
                    return next_batch(it, None if di.enabled else stops)
            try:
                out = train_step(s, fetch, cfg, di)
            except WorkerStopped:  # stop before this step, as the signal asked: nothing applied
                if ckpt.checkpoint(s, interim=_interim(s, t)):
                    hooks.moved(ckpt.run)
                raise _stopped(s, cfg, ckpt, stops) from None
            except NonFiniteLoss as bad:
                raise TrainingDiverged(ckpt.divergence_message(bad.value, bad.step, bad.lr)) from None
            meter.images += out.batch * s.accum * di.world_size
            val_due = val_steps is not None and (s.step % val_steps == 0 or s.step == s.total)
            if not out.skipped and (s.step % t.log_every == 0 or s.step == s.total or val_due):
                rec = meter.record(s.step, round(s.step / s.steps_per_epoch, 4), out, s.accum, di.device)
                if val_due and di.is_main:
                    rec.update(validation_metrics(s.objective, validate))
                s.last = rec
                history.append(rec)
                hooks.log(rec)
            hooks.tick(s.last)
            stop = broadcast_flag(stops.requested, di.device) if di.enabled else stops.requested
            if (s.step % t.ckpt_every == 0 or s.step == s.total or stop) and ckpt.checkpoint(s, _interim(s, t)):
                hooks.moved(ckpt.run)
            if stop:
                raise _stopped(s, cfg, ckpt, stops)
    return history


def _interim(s: TrainState, t) -> bool:
    """A checkpoint at ``s.step`` is interim (a stop's, off the ``ckpt_every`` cadence and before the end)."""
    return s.step % t.ckpt_every != 0 and s.step != s.total


def _epoch_batches(s: TrainState, cfg: Config, di: DistInfo, meter: Meter):
    """For each step from ``s.step`` on, the batch iterator it reads from: one loader an epoch, started where
    ``s.step`` is in the data order (the caller advances ``s.step`` between steps)."""
    while s.step < s.total:
        epoch, in_epoch = s.position()
        loader = epoch_loader(s.items, s.sampler, epoch, in_epoch, s.sampler.batch_size, cfg.data.num_workers,
                              di.device.type == "cuda", cfg.train.seed)
        with meter.waiting():
            it = iter(loader)  # starting the workers is loader time too
        while s.step < s.total and in_epoch + s.accum <= s.sampler.batches_per_epoch:
            yield it
            in_epoch += s.accum


def _build_state(cfg: Config, di: DistInfo, objective: nn.Module, dataset, validates: bool) -> tuple[TrainState, int | None]:
    """The data order, optimiser, scaler, wrapped model and RNG streams of a run at step 0, checked; and the
    steps between validations (``train.val_every`` epochs; None: the run does not validate)."""
    t, device = cfg.train, di.device
    if len(dataset) == 0:
        raise ValueError(f"the dataset {cfg.data.kind} at {cfg.data.root} is empty")
    if t.batch_size % di.world_size:
        raise ValueError(f"train.batch_size={t.batch_size} must be divisible by the {di.world_size} DDP processes")
    items = training_items(dataset, t.seed)  # map-style: SeededItems; a stream (data.kind wds) as it is
    augment = build_batch_augment(cfg)  # data.options.augment of signal_npz; None otherwise
    sampler = ResumableSampler(len(dataset), t.batch_size // di.world_size, t.seed, True, di.rank, di.world_size)
    steps_per_epoch = sampler.batches_per_epoch // cfg.optim.accum_steps
    if steps_per_epoch == 0:
        raise ValueError("optim.accum_steps is larger than the number of batches in an epoch")
    total = t.max_steps or max(1, int(round(t.epochs * steps_per_epoch)))
    val_steps = max(1, int(round(t.val_every * steps_per_epoch))) if validates and t.val_every else None
    if val_steps and t.strategy == "fsdp" and di.enabled:
        raise ValueError("train.val_every validates on rank 0, which an fsdp-sharded model cannot do alone; "
                         "fine-tune with train.strategy ddp")
    o = cfg.optim
    warmup = o.warmup_steps if o.warmup_steps is not None else int(o.warmup_epochs * steps_per_epoch)
    dtype = amp_dtype(t.amp, device)
    strategy = build_strategy(t.strategy, di, t.fsdp_reshard)  # ddp | fsdp (engine/strategy.py)
    model = strategy.wrap(objective, dtype)  # FSDP2 shards the parameters in place: the optimiser comes after
    checkpointed_blocks(objective, int(t.activation_checkpointing))  # recompute those blocks' activations
    # an objective may define its own groups (e.g. layer-wise lr decay: groups carry "lr_scale")
    groups = (objective.param_groups(o.weight_decay) if hasattr(objective, "param_groups")
              else param_groups(objective, o.weight_decay))
    opt = torch.optim.AdamW(groups, lr=o.lr, betas=tuple(o.betas))
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    gen = torch.Generator(device=device).manual_seed(t.seed * 7919 + di.rank)  # PART's patch/pair sampling
    s = TrainState(objective=objective, model=model, forward=torch.compile(model) if t.compile else model,
                   optimizer=opt, scaler=scaler, strategy=strategy, generator=gen,
                   schedule=functools.partial(warmup_cosine, total=total, warmup=warmup, base_lr=o.lr, min_lr=o.min_lr),
                   items=items, sampler=sampler, total=total, accum=o.accum_steps, dtype=dtype, augment=augment,
                   interval_loss=torch.zeros((), device=device))
    # the training stream of the global RNG (dropout, drop-path) starts from a known point, however
    # many draws building the model took
    torch.manual_seed(t.seed * 104_729 + di.rank + 1)
    return s, val_steps


def _finish(run: Path, objective: nn.Module, s: TrainState, hooks: Hooks) -> None:
    """Final weights, the hooks' end (export, plot), then ``summary.json`` (atomic, last: its presence marks the
    run finished). A run killed during these writes is finished by ``--resume`` from its final checkpoint,
    whose state carries the final metrics."""
    ck.save_weights(objective.state_dict(), run / "weights.safetensors", {"format": "part-objective"})
    hooks.finish(run, objective, s.last)
    ck.write_json(run / "summary.json", {"final": s.last, "finished": True, "step": s.step})
    hooks.finished(run)


def _stopped(s: TrainState, cfg: Config, ckpt: Checkpointer, stops: StopRequests) -> TrainingStopped:
    """The one-line stop on a signal, after the checkpoint of ``s.step``."""
    command = "finetune" if cfg.objective.name == "supervised" else "pretrain"
    return TrainingStopped(f"stopped at step {s.step} of {s.total} by {_signal_name(stops.signum)}; checkpoint "
                           f"{ckpt.path(s.step)}", s.step, stops.signum or 15,
                           f"part {command} --out {ckpt.run} --resume")


def _signal_name(signum) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except (ValueError, TypeError):
        return "a signal on another rank"


def _finished_result(run: Path) -> TrainResult:
    summary = json.loads((run / "summary.json").read_text())
    last = summary.get("final") or {}
    step = int(summary.get("step") or last.get("step") or 0)
    print(f"{run} finished at step {step}; --resume leaves a finished run unchanged (start a new run with "
          f"--init {run} to train further)", file=sys.stderr)
    return TrainResult(run, step, last, [], finished_before=True)
