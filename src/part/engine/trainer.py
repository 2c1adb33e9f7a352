"""The training loop shared by every objective: AdamW + warmup/cosine, AMP, DDP, exact resume,
checkpoints, JSONL + TensorBoard logs, tqdm progress.

``train(cfg, out_dir, ...)`` is what ``part.pretrain(...)`` and ``part pretrain`` call. The objective is
any module from :func:`part.engine.builders.build_objective`: ``objective(x, generator=g)`` (or
``objective(x, labels, generator=g)`` when ``objective.uses_labels``) returns ``.loss`` and ``.metrics``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from ..config import Config, DataConfig, read_yaml_mapping, save_config
from . import checkpoint as ck
from .builders import build_batch_augment, build_dataset, build_objective
from .datainfo import IDENTITY_KEYS, data_changes, data_fingerprint
from .distributed import (DistInfo, all_reduce_mean, barrier, broadcast_flag, cleanup_distributed, init_distributed,
                          on_main)
from .folders import write_marker
from .loader import (ResumableSampler, WorkerStopped, augment_seed, epoch_loader, one_line_worker_error,
                     training_items, worker_killed_by_signal)
from .runfolder import (RunFolderError, RunLock, RunReplacement, check_recorded_init, check_resume_init, plan_run,
                        settle_run)
from .signals import StopRequests, TrainingStopped
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
            result = _train_locked(cfg, plan.work or run, plan.mode, init, progress, objective, dataset, provenance,
                                   di, validate, final=run, swap=rep.swap if rep is not None else None,
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


def _train_locked(cfg, run, mode, init, progress, objective, dataset, provenance, di: DistInfo,
                  validate=None, final: Path | None = None, swap=None, allow_data_change=False) -> TrainResult:
    """Train into ``run``. ``mode == "replace"``: ``run`` is where the new run is built; at its first verified
    checkpoint ``swap()`` (rank 0) puts it in place at ``final``, and the loop goes on there."""
    t = cfg.train
    resuming = mode == "resume"
    torch.manual_seed(t.seed + di.rank)
    device = di.device
    if resuming and init is not None:  # --resume auto of a run: --init must be the one it started from
        check_recorded_init(run, init)
    # --- build and validate everything; nothing in the run folder is touched yet --------------------
    if objective is None:
        objective = build_objective(cfg)
    objective.to(device)
    if init is not None and not resuming:
        loaded = _init_from(objective, init)
        provenance = provenance or {"source": str(init), "loaded": loaded}
    if dataset is None:
        dataset = build_dataset(cfg, train=True)
    if len(dataset) == 0:
        raise ValueError(f"the dataset {cfg.data.kind} at {cfg.data.root} is empty")
    if t.batch_size % di.world_size:
        raise ValueError(f"train.batch_size={t.batch_size} must be divisible by the {di.world_size} DDP processes")
    per_rank = t.batch_size // di.world_size
    items = training_items(dataset, t.seed)  # map-style: SeededItems; a stream (data.kind wds) as it is
    batch_aug = build_batch_augment(cfg)  # data.options.augment of signal_npz; None otherwise
    sampler = ResumableSampler(len(dataset), per_rank, t.seed, True, di.rank, di.world_size)
    steps_per_epoch = sampler.batches_per_epoch // cfg.optim.accum_steps
    if steps_per_epoch == 0:
        raise ValueError("optim.accum_steps is larger than the number of batches in an epoch")
    total = t.max_steps or max(1, int(round(t.epochs * steps_per_epoch)))
    val_steps = max(1, int(round(t.val_every * steps_per_epoch))) if validate is not None and t.val_every else None
    if val_steps and t.strategy == "fsdp" and di.enabled:
        raise ValueError("train.val_every validates on rank 0, which an fsdp-sharded model cannot do alone; "
                         "fine-tune with train.strategy ddp")
    warmup = cfg.optim.warmup_steps if cfg.optim.warmup_steps is not None else int(cfg.optim.warmup_epochs * steps_per_epoch)

    dtype = amp_dtype(t.amp, device)
    strategy = build_strategy(t.strategy, di, t.fsdp_reshard)  # ddp | fsdp (engine/strategy.py)
    model = strategy.wrap(objective, dtype)  # FSDP2 shards the parameters in place: the optimiser comes after
    checkpointed_blocks(objective, int(t.activation_checkpointing))  # recompute those blocks' activations
    # an objective may define its own groups (e.g. layer-wise lr decay: groups carry "lr_scale")
    groups = (objective.param_groups(cfg.optim.weight_decay) if hasattr(objective, "param_groups")
              else param_groups(objective, cfg.optim.weight_decay))
    opt = torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    fwd = torch.compile(model) if t.compile else model
    gen = torch.Generator(device=device).manual_seed(t.seed * 7919 + di.rank)  # PART's patch/pair sampling
    # the training stream of the global RNG (dropout, drop-path) starts from a known point, however
    # many draws building the model took
    torch.manual_seed(t.seed * 104_729 + di.rank + 1)

    step, last, track = 0, {}, {"best_loss": None, "nan_skips": 0}
    fingerprint, data_note = data_fingerprint(cfg, dataset), None
    ckpt_dir = run / "checkpoints"
    if resuming:
        # rank 0 picks the newest verified checkpoint (setting corrupt ones aside); every rank loads it
        path = on_main(lambda: _pick_checkpoint(ckpt_dir), di.is_main)
        if path is not None:
            weights, state = ck.load_checkpoint(path)
            strategy.load(objective, opt, weights, state["optimizer"], f"checkpoint {path.with_suffix('.safetensors')}")
            scaler.load_state_dict(state["scaler"])
            ck.set_rng_state(state["rng"][min(di.rank, len(state["rng"]) - 1)], gen)
            step = int(state["step"])
            last = dict(state.get("last") or {})
            track.update(state.get("track") or {})
            data_note = _check_data(run, cfg, track.get("data"), fingerprint, step, allow_data_change)
    track["data"] = fingerprint  # saved with every checkpoint: what the run trains on from here

    # --- everything is valid: now the run folder changes ------------------------------------------------
    def _prepare():
        write_marker(run, "run")  # part made this folder (part.engine.folders); kept on resume
        ck.atomic_write(run / "config.yaml", lambda tmp: save_config(cfg, tmp))
        if not resuming:
            ck.write_json(run / "init.json", provenance or {"source": None, "from_scratch": True})
        if data_note is not None:
            _record_data_change(run, data_note)
        _truncate_jsonl(run / "metrics.jsonl", step)

    on_main(_prepare, di.is_main)

    swapping = mode == "replace"  # the new run is swapped in at its first checkpoint
    logger = _Logger(run, di.is_main, total, step, progress and di.is_main, cfg, resuming, defer=swapping)
    history: list[dict] = []
    objective.train()
    uses_labels = getattr(objective, "uses_labels", False)
    accum = cfg.optim.accum_steps
    t_last, n_last, waited = time.perf_counter(), 0, 0.0  # waited: seconds blocked on the loader since t_last
    interval = [torch.zeros((), device=device), 0]  # loss sum and count since the last checkpoint
    saved_at = step
    try:
        with StopRequests() as stops:
            if cfg.data.num_workers and not di.enabled:
                stops.defer_worker_failures()  # a worker ended by the group's SIGTERM: answered at the next batch
            while step < total:
                epoch, in_epoch = divmod(step * accum, sampler.batches_per_epoch)
                loader = epoch_loader(items, sampler, epoch, in_epoch, per_rank, cfg.data.num_workers,
                                      device.type == "cuda", t.seed)
                t_wait = time.perf_counter()
                it = iter(loader)  # starting the workers is loader time too
                waited += time.perf_counter() - t_wait
                while step < total and in_epoch + accum <= sampler.batches_per_epoch:
                    lr = warmup_cosine(step, total, warmup, cfg.optim.lr, cfg.optim.min_lr)
                    if hasattr(objective, "set_progress"):  # schedules inside an objective (DropPos sigma)
                        objective.set_progress(step / total)
                    for g in opt.param_groups:  # "frozen_until": lr 0 before that step (LP-FT)
                        g["lr"] = 0.0 if step < g.get("frozen_until", 0) else lr * g.get("lr_scale", 1.0)
                    loss_sum, metric_sum, skipped = torch.zeros((), device=device), {}, False
                    # a worker ended by the group's stop signal may cut a step short: its RNG state is kept
                    step_rng = ck.rng_state(gen) if accum > 1 and cfg.data.num_workers else None
                    for micro in range(accum):
                        t_wait = time.perf_counter()
                        try:
                            x, y = _next_batch(it, None if di.enabled else stops)
                        except WorkerStopped:  # stop before this step, as the signal asked: nothing applied
                            opt.zero_grad(set_to_none=True)
                            if step_rng is not None:
                                ck.set_rng_state(step_rng, gen)
                            _save(run, objective, opt, scaler, gen, step, t, di, interval, track, last,
                                  strategy=strategy)
                            if swapping:  # the new run has a verified checkpoint: it replaces the old one now
                                run = swap() if di.is_main else final
                                ckpt_dir = run / "checkpoints"
                                logger.moved(run)
                                swapping = False
                            raise TrainingStopped(
                                f"stopped at step {step} of {total} by {_signal_name(stops.signum)}; checkpoint "
                                f"{ckpt_dir / f'step_{step:07d}'}; continue with: part pretrain --out {run} "
                                "--resume", step, stops.signum or 15) from None
                        waited += time.perf_counter() - t_wait
                        if skipped:  # a skipped step still consumes its batches (same data order)
                            continue
                        x = x.to(device, non_blocking=True)
                        if batch_aug is not None:  # signals: a pure function of (seed, step, micro, rank)
                            x = batch_aug(x, torch.Generator(device=device).manual_seed(
                                augment_seed(t.seed, step, micro, di.rank)))
                        sync = micro == accum - 1 or not di.enabled
                        ctx = contextlib.nullcontext() if sync else strategy.no_sync(model)
                        with ctx, torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                            out = fwd(x, y.to(device), generator=gen) if uses_labels else fwd(x, generator=gen)
                            loss = out.loss / accum
                        if broadcast_flag(not bool(torch.isfinite(out.loss)), device):
                            if t.nan_policy == "skip" and track["nan_skips"] < t.max_nan_skips:
                                track["nan_skips"] += 1
                                print(f"warning: loss is {out.loss.item()} at step {step}; step skipped "
                                      f"({track['nan_skips']}/{t.max_nan_skips} skips, train.nan_policy=skip)",
                                      file=sys.stderr)
                                skipped = True
                                continue
                            raise TrainingDiverged(_divergence_message(out.loss.item(), step, lr, run, di))
                        scaler.scale(loss).backward()
                        loss_sum += out.loss.detach().float()
                        for k, v in out.metrics.items():
                            metric_sum[k] = metric_sum.get(k, 0.0) + v.detach().float().to(device)
                    if skipped:
                        opt.zero_grad(set_to_none=True)
                    else:
                        if cfg.optim.clip_grad:
                            scaler.unscale_(opt)
                            torch.nn.utils.clip_grad_norm_(objective.parameters(), cfg.optim.clip_grad)
                        scaler.step(opt)
                        scaler.update()
                        opt.zero_grad(set_to_none=True)
                        interval[0] += loss_sum / accum
                        interval[1] += 1
                    step += 1
                    in_epoch += accum
                    n_last += x.shape[0] * accum * di.world_size
                    val_due = val_steps is not None and (step % val_steps == 0 or step == total)
                    if not skipped and (step % t.log_every == 0 or step == total or val_due):
                        now = time.perf_counter()
                        names = sorted(metric_sum)
                        vals = torch.stack([loss_sum] + [metric_sum[k] for k in names]) / accum
                        wait = torch.tensor([waited / max(now - t_last, 1e-9)], device=device)
                        vals = all_reduce_mean(torch.cat([vals, wait])).tolist()  # means over DDP ranks
                        rec = {"step": step, "epoch": round(step / steps_per_epoch, 4), "loss": vals[0], "lr": lr,
                               "img_per_s": n_last / max(now - t_last, 1e-9), "data_wait": vals[-1]}
                        rec.update(zip(names, vals[1:-1]))
                        if val_due and di.is_main:
                            rec.update(_validation(objective, validate))
                        t_last, n_last, waited = now, 0, 0.0
                        last = rec
                        history.append(rec)
                        logger.log(rec)
                    logger.tick(last)
                    stop = broadcast_flag(stops.requested, device) if di.enabled else stops.requested
                    if step % t.ckpt_every == 0 or step == total or stop:
                        _save(run, objective, opt, scaler, gen, step, t, di, interval, track, last, strategy=strategy)
                        saved_at = step
                        if swapping:  # the new run has a verified checkpoint: it replaces the old one now
                            run = swap() if di.is_main else final
                            ckpt_dir = run / "checkpoints"
                            logger.moved(run)
                            swapping = False
                    if stop:
                        raise TrainingStopped(
                            f"stopped at step {step} of {total} by {_signal_name(stops.signum)}; checkpoint "
                            f"{ckpt_dir / f'step_{saved_at:07d}'}; continue with: part pretrain --out {run} --resume",
                            step, stops.signum or 15)
        final = strategy.full_module(objective)  # FSDP: gathered by every rank, unsharded on rank 0
        if di.is_main:
            _finish(run, cfg, final, last, step)
            logger.artifacts(run / "export")  # mlflow / wandb keep the export
    except BaseException:
        logger.close(ok=False)
        raise
    logger.close()
    barrier()
    return TrainResult(run, step, last, history)


def _validation(objective: nn.Module, validate) -> dict:
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


def _check_data(run: Path, cfg: Config, recorded: dict | None, now: dict, step: int, allowed: bool) -> dict | None:
    """``--resume`` at ``step``: compare the data the run trained on (the fingerprint ``recorded`` with its
    checkpoint, and the ``data`` section of its ``config.yaml``) with the data it would continue on (``cfg``,
    fingerprint ``now``). Other data raises :class:`RunFolderError` naming the first difference unless
    ``allowed``; returns the record of a change or of a move (the same data at another root), else None."""
    import dataclasses

    saved = read_yaml_mapping(run / "config.yaml", "run config").get("data") or {}
    before = {**dataclasses.asdict(DataConfig()), **(saved if isinstance(saved, dict) else {})}
    after = cfg.to_dict()["data"]
    changes = data_changes(before, after, recorded, now)
    if changes and not allowed:
        more = f" and {len(changes) - 1} more" if len(changes) > 1 else ""
        raise RunFolderError(f"--resume: the data differs from what {run} trained on up to step {step} "
                             f"({changes[0]}{more}); resume with the run's own data, or pass --allow-data-change "
                             "to continue on this data (the change is recorded in data_changes.jsonl)")
    if not changes and before.get("root") == after.get("root"):
        return None
    return {"step": step, "changes": changes or [f"data.root: {before.get('root')!r} -> {after.get('root')!r} "
                                                 "(the same data, moved)"],
            "before": recorded or {k: before.get(k) for k in IDENTITY_KEYS}, "after": now,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S")}


def _record_data_change(run: Path, note: dict) -> None:
    """Append ``note`` to ``<run>/data_changes.jsonl`` (atomic: the earlier lines are kept as they are)."""
    path = run / "data_changes.jsonl"
    earlier = path.read_text() if path.is_file() else ""
    ck.atomic_write(path, lambda tmp: Path(tmp).write_text(earlier + json.dumps(note, default=str) + "\n"))
    print(f"note: {run}: from step {note['step']} the run continues on other data ({note['changes'][0]}); "
          f"recorded in {path}", file=sys.stderr)


def _signal_name(signum) -> str:
    import signal

    try:
        return signal.Signals(signum).name
    except (ValueError, TypeError):
        return "a signal on another rank"


def _next_batch(it, stops: StopRequests | None = None, grace: float = 2.0):
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


def _pick_checkpoint(ckpt_dir: Path) -> Path | None:
    """The newest usable checkpoint (corrupt ones set aside with a warning); None when the run never
    wrote one (it restarts from step 0); :class:`~part.engine.checkpoint.CheckpointError` when all are bad."""
    if not ck.list_checkpoints(ckpt_dir):
        print(f"note: {ckpt_dir} holds no checkpoint yet; the run restarts from step 0", file=sys.stderr)
        return None
    return ck.load_latest(ckpt_dir)[2]


def _finished_result(run: Path) -> TrainResult:
    summary = json.loads((run / "summary.json").read_text())
    last = summary.get("final") or {}
    step = int(summary.get("step") or last.get("step") or 0)
    print(f"{run} finished at step {step}; --resume leaves a finished run unchanged (start a new run with "
          f"--init {run} to train further)", file=sys.stderr)
    return TrainResult(run, step, last, [], finished_before=True)


def _divergence_message(value: float, step: int, lr: float, run: Path, di: DistInfo) -> str:
    """Set aside checkpoints written after the loss spiked; name the last good one (or say none exists)."""
    good = on_main(lambda: _keep_last_good(run / "checkpoints"), di.is_main)
    head = f"loss is {value} at step {step} (lr {lr:.3g}); stopped. "
    tail = "Lower optim.lr, raise optim.warmup_steps, set optim.clip_grad, or train.nan_policy=skip"
    if good is None:
        return head + "No good checkpoint exists (none written yet, or all after the loss spiked). " + tail
    return (head + f"Last good checkpoint: {good} (step {int(good.name[5:])}); continue from it with: part pretrain "
            f"--out {run} --resume --set optim.lr=<lower>. " + tail)


def _keep_last_good(ckpt_dir: Path) -> Path | None:
    verified = ck.verified_checkpoints(ckpt_dir)
    good = [p for p in verified if ck.read_manifest(p).get("good", True)]
    if not good:
        return None
    for p in verified:
        if ck.checkpoint_step(p) > ck.checkpoint_step(good[-1]):
            ck.set_aside(p, f"written after the loss spiked (loss {ck.read_manifest(p).get('loss')}); "
                            f"the last good checkpoint is {good[-1].stem}")
    return good[-1].with_suffix("")


def _init_from(objective: nn.Module, init) -> int:
    """Load weights into a new run: a run folder (its weights.safetensors) or a safetensors file.
    Keys present in both must match in shape; other keys are listed but allowed (e.g. a new head). A file
    that shares no key with the model is an error. Returns the number of tensors loaded."""
    path = Path(init)
    if path.is_dir():
        path = path / "weights.safetensors"
    state = ck.load_weights(path)
    missing, unexpected = ck.load_state_dict_checked(objective, state, strict=False, what=f"--init {path}")
    loaded = len(state) - len(unexpected)
    if loaded == 0:
        raise ValueError(f"--init {path}: none of its {len(state)} tensors matches a parameter of this model "
                         f"(e.g. {sorted(state)[:3]}); is it the weights of another kind of model?")
    if missing or unexpected:
        print(f"--init {path}: {len(missing)} missing keys {missing[:6]}, {len(unexpected)} unexpected keys {unexpected[:6]}",
              file=sys.stderr)
    return loaded


def _save(run, objective, opt, scaler, gen, step, t, di: DistInfo, interval, track, last, strategy) -> None:
    """A verified checkpoint of ``step``. Its manifest records the mean loss since the previous checkpoint
    (over the steps applied in that interval) and whether it is *good* (:func:`_is_good`). The newest good
    checkpoint is never pruned, so a loss spike cannot rotate the last good state away."""
    rng = ck.rng_state(gen)
    applied = int(interval[1])  # the same on every rank: a skip is agreed over ranks (broadcast_flag)
    loss = all_reduce_mean(interval[0] / max(1, interval[1])).item() if applied else None
    interval[0], interval[1] = torch.zeros_like(interval[0]), 0
    if di.enabled:  # every rank's RNG, so a resumed DDP run continues each rank's streams
        gathered = [None] * di.world_size
        torch.distributed.all_gather_object(gathered, rng)
        rng_all = gathered
    else:
        rng_all = [rng]
    best = track.get("best_loss")
    finite_weights = _weights_finite(objective)
    if di.enabled:
        finite_weights = not broadcast_flag(not finite_weights, interval[0].device)
    good = _is_good(loss, best, t.spike_factor, finite_weights)
    if good:
        track["best_loss"] = loss if best is None else min(best, loss)
    weights, optim = strategy.model_state(objective), strategy.optim_state(objective, opt)  # full, on rank 0
    if di.is_main:
        state = {"step": step, "optimizer": optim, "scaler": scaler.state_dict(), "rng": rng_all,
                 "last": last, "track": dict(track)}
        ckpt_dir = run / "checkpoints"
        earlier_good = [p for p in ck.verified_checkpoints(ckpt_dir) if ck.read_manifest(p).get("good", True)]
        protect = ck.checkpoint_step(earlier_good[-1]) if earlier_good and not good else None
        ck.save_checkpoint(ckpt_dir, step, weights, state, t.keep_last,
                           info={"loss": loss, "good": good, "applied_steps": applied,
                                 "finite_weights": finite_weights}, protect=protect)
    barrier()


def _is_good(loss: float | None, best: float | None, spike_factor: float, finite_weights: bool) -> bool:
    """A checkpoint is *good* (one the exit-3 message may send a user back to) when its weights are all
    finite and its interval applied at least one step (``loss`` is None when every step since the previous
    checkpoint was skipped by ``train.nan_policy: skip``) whose mean loss is finite and at most
    ``spike_factor`` x the best good interval's loss so far."""
    return (finite_weights and loss is not None and math.isfinite(loss)
            and (best is None or loss <= spike_factor * best))


def _weights_finite(module: nn.Module) -> bool:
    """True when no floating-point parameter or buffer of ``module`` (this rank's shards under FSDP) holds a
    NaN or an infinity; :func:`_save` agrees the answer over ranks."""
    tensors = [*module.parameters(), *module.buffers()]
    return all(bool(torch.isfinite(v).all()) for v in tensors if v.is_floating_point())


def _finish(run: Path, cfg: Config, objective: nn.Module, last: dict, step: int) -> None:
    """Final weights, export, plot, then ``summary.json`` (atomic, last: its presence marks the run finished).
    A run killed during these writes is finished by ``--resume`` from its final checkpoint, whose state
    carries the final metrics."""
    from .export import write_run_export

    ck.save_weights(objective.state_dict(), run / "weights.safetensors", {"format": "part-objective"})
    write_run_export(run, cfg, objective, metrics=last)  # the same folder as `part export`
    _plot_loss(run)
    ck.write_json(run / "summary.json", {"final": last, "finished": True, "step": step})


def _truncate_jsonl(path: Path, step: int) -> None:
    """On resume, drop log lines written after the checkpoint we resume from. A torn last line (a kill in
    the middle of a write) is dropped with a warning naming the file; a bad line elsewhere is an error."""
    if not path.exists():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    keep = []
    for i, ln in enumerate(lines):
        try:
            rec = json.loads(ln)
            rec_step = rec["step"]
        except (ValueError, KeyError, TypeError):
            if i == len(lines) - 1:
                print(f"warning: {path}: dropped a torn last line (an interrupted write)", file=sys.stderr)
                continue
            raise ValueError(f"{path}:{i + 1}: not a metrics record; fix or remove that line") from None
        if rec_step <= step:
            keep.append(ln)
    ck.atomic_write(path, lambda tmp: Path(tmp).write_text("".join(k + "\n" for k in keep)))


def _plot_loss(run: Path) -> None:
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


class _Logger:
    """Rank-0 logging: tqdm bar and the trackers of ``logging.backends`` (:mod:`part.engine.trackers`:
    JSONL lines flushed every record, TensorBoard, MLflow, W&B)."""

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

    def tick(self, rec: dict) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if rec:
                self.bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{rec['lr']:.1e}", img_s=f"{rec['img_per_s']:.0f}",
                                     wait=f"{rec.get('data_wait', 0.0):.0%}")  # older checkpoints lack it

    def moved(self, run: Path) -> None:
        """The run is in its final place now: start the deferred trackers there and give them the records so far."""
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

    def artifacts(self, folder: Path) -> None:
        for t in self.trackers:
            t.artifacts(folder)

    def close(self, ok: bool = True) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        for t in self.trackers:
            t.close(ok)
        self.trackers = []
