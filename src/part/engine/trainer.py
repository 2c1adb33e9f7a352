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
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader

from ..config import Config, save_config
from . import checkpoint as ck
from .builders import build_dataset, build_objective
from .distributed import DistInfo, all_reduce_mean, barrier, broadcast_flag, cleanup_distributed, init_distributed
from .loader import ResumableSampler, SeededItems


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the run stopped and kept its last good checkpoint."""


class RunFolderError(ValueError):
    """The run folder cannot be used as asked (finished run without --resume/--overwrite, ...)."""


@dataclass
class TrainResult:
    run_dir: Path
    step: int
    metrics: dict = field(default_factory=dict)  # last logged values
    history: list = field(default_factory=list)  # the JSONL records of this process


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


# --- run folder ------------------------------------------------------------------------------------
def prepare_run_dir(out_dir: str | Path, resume: bool, overwrite: bool) -> Path:
    """Refuse to clobber: a folder with a finished or started run needs ``resume`` or ``overwrite``."""
    run = Path(out_dir)
    if resume and overwrite:
        raise RunFolderError("choose one of --resume and --overwrite, not both")
    has_run = (run / "config.yaml").exists()
    if resume:
        if not has_run:
            raise RunFolderError(f"--resume: no run to resume in {run} (no config.yaml)")
        return run
    if has_run and not overwrite:
        state = "a finished run" if (run / "weights.safetensors").exists() else "a started run"
        raise RunFolderError(f"{run} already holds {state}; pass --resume to continue it or --overwrite to replace it")
    if has_run and overwrite:
        import shutil

        for sub in ("checkpoints", "export", "plots", "tb"):
            shutil.rmtree(run / sub, ignore_errors=True)
        for f in ("metrics.jsonl", "weights.safetensors", "config.yaml", "summary.json", "probe.json",
                  "results.json", "init.json"):
            (run / f).unlink(missing_ok=True)
    return run


# --- the loop --------------------------------------------------------------------------------------
def train(
    cfg: Config,
    out_dir: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    init: str | Path | None = None,
    progress: bool = True,
    objective: nn.Module | None = None,
    dataset=None,
) -> TrainResult:
    """Train ``cfg.objective`` on ``cfg.data``; write the run folder; return where it wrote.

    Args:
        cfg: resolved :class:`~part.config.Config` (for ``resume``, the run's saved config.yaml).
        out_dir: the run folder.
        resume: continue exactly from the newest checkpoint in ``out_dir``.
        overwrite: replace an existing run in ``out_dir``.
        init: a ``.safetensors`` file (or run folder) whose weights initialise the model of a NEW run.
        objective, dataset: ready objects instead of building them from ``cfg`` (Python API).
    """
    dist_info = init_distributed(cfg.train.device)
    try:
        return _train(cfg, Path(out_dir), resume, overwrite, init, progress, objective, dataset, dist_info)
    finally:
        cleanup_distributed()


def _train(cfg, run, resume, overwrite, init, progress, objective, dataset, di: DistInfo) -> TrainResult:
    t = cfg.train
    if t.threads:
        torch.set_num_threads(t.threads)
    if di.is_main:
        run = prepare_run_dir(run, resume, overwrite)
    barrier()
    torch.manual_seed(t.seed + di.rank)
    device = di.device
    if objective is None:
        objective = build_objective(cfg)
    objective.to(device)
    if init is not None and not resume:
        _init_from(objective, init)
    if dataset is None:
        dataset = build_dataset(cfg, train=True)
    if len(dataset) == 0:
        raise ValueError(f"the dataset {cfg.data.kind} at {cfg.data.root} is empty")
    if t.batch_size % di.world_size:
        raise ValueError(f"train.batch_size={t.batch_size} must be divisible by the {di.world_size} DDP processes")
    per_rank = t.batch_size // di.world_size
    items = SeededItems(dataset, seed=t.seed)
    sampler = ResumableSampler(len(dataset), per_rank, t.seed, True, di.rank, di.world_size)
    steps_per_epoch = sampler.batches_per_epoch // cfg.optim.accum_steps
    if steps_per_epoch == 0:
        raise ValueError("optim.accum_steps is larger than the number of batches in an epoch")
    total = t.max_steps or max(1, int(round(t.epochs * steps_per_epoch)))
    warmup = cfg.optim.warmup_steps if cfg.optim.warmup_steps is not None else int(cfg.optim.warmup_epochs * steps_per_epoch)

    # an objective may define its own groups (e.g. layer-wise lr decay: groups carry "lr_scale")
    groups = (objective.param_groups(cfg.optim.weight_decay) if hasattr(objective, "param_groups")
              else param_groups(objective, cfg.optim.weight_decay))
    opt = torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=tuple(cfg.optim.betas))
    dtype = amp_dtype(t.amp, device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    model = DDP(objective, device_ids=[device.index] if device.type == "cuda" else None) if di.enabled else objective
    fwd = torch.compile(model) if t.compile else model
    gen = torch.Generator(device=device).manual_seed(t.seed * 7919 + di.rank)  # PART's patch/pair sampling
    # the training stream of the global RNG (dropout, drop-path) starts from a known point, however
    # many draws building the model took
    torch.manual_seed(t.seed * 104_729 + di.rank + 1)

    step = 0
    ckpt_dir = run / "checkpoints"
    if resume:
        ckpts = ck.list_checkpoints(ckpt_dir)
        if ckpts:
            weights, state = ck.load_checkpoint(ckpts[-1])
            ck.load_state_dict_checked(objective, weights, what=f"checkpoint {ckpts[-1].with_suffix('.safetensors')}")
            opt.load_state_dict(state["optimizer"])
            scaler.load_state_dict(state["scaler"])
            ck.set_rng_state(state["rng"][min(di.rank, len(state["rng"]) - 1)], gen)
            step = int(state["step"])
    if di.is_main:
        run.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run / "config.yaml")
        _truncate_jsonl(run / "metrics.jsonl", step)
    barrier()

    logger = _Logger(run, di.is_main, total, step, progress and di.is_main)
    history: list[dict] = []
    last: dict = {}
    objective.train()
    uses_labels = getattr(objective, "uses_labels", False)
    t_last, n_last = time.perf_counter(), 0
    try:
        while step < total:
            epoch, in_epoch = divmod(step * cfg.optim.accum_steps, sampler.batches_per_epoch)
            sampler.set_epoch(epoch, in_epoch)
            items.epoch = epoch
            # own generator: building the iterator must not consume the global RNG (exact resume)
            loader = DataLoader(items, batch_size=per_rank, sampler=sampler, num_workers=cfg.data.num_workers,
                                drop_last=True, pin_memory=device.type == "cuda",
                                generator=torch.Generator().manual_seed(t.seed + epoch))
            it = iter(loader)
            while step < total and in_epoch + cfg.optim.accum_steps <= sampler.batches_per_epoch:
                lr = warmup_cosine(step, total, warmup, cfg.optim.lr, cfg.optim.min_lr)
                if hasattr(objective, "set_progress"):  # schedules inside an objective (DropPos sigma)
                    objective.set_progress(step / total)
                for g in opt.param_groups:
                    g["lr"] = lr * g.get("lr_scale", 1.0)
                loss_sum, metric_sum = torch.zeros((), device=device), {}
                for micro in range(cfg.optim.accum_steps):
                    x, y = next(it)
                    x = x.to(device, non_blocking=True)
                    sync = micro == cfg.optim.accum_steps - 1 or not di.enabled
                    ctx = contextlib.nullcontext() if sync else model.no_sync()
                    with ctx, torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                        out = fwd(x, y.to(device), generator=gen) if uses_labels else fwd(x, generator=gen)
                        loss = out.loss / cfg.optim.accum_steps
                    bad = broadcast_flag(not bool(torch.isfinite(out.loss)), device)
                    if bad:
                        raise TrainingDiverged(
                            f"loss is {out.loss.item()} at step {step} (lr {lr:.3g}); stopped. The last good "
                            f"checkpoint is kept in {ckpt_dir}. Lower optim.lr, raise optim.warmup_steps, or set "
                            "optim.clip_grad"
                        )
                    scaler.scale(loss).backward()
                    loss_sum += out.loss.detach().float()
                    for k, v in out.metrics.items():
                        metric_sum[k] = metric_sum.get(k, 0.0) + v.detach().float().to(device)
                if cfg.optim.clip_grad:
                    scaler.unscale_(opt)
                    torch.nn.utils.clip_grad_norm_(objective.parameters(), cfg.optim.clip_grad)
                scaler.step(opt)
                scaler.update()
                opt.zero_grad(set_to_none=True)
                step += 1
                in_epoch += cfg.optim.accum_steps
                n_last += x.shape[0] * cfg.optim.accum_steps * di.world_size
                if step % t.log_every == 0 or step == total:
                    now = time.perf_counter()
                    names = sorted(metric_sum)
                    vals = torch.stack([loss_sum] + [metric_sum[k] for k in names]) / cfg.optim.accum_steps
                    vals = all_reduce_mean(vals).tolist()  # the global batch's mean under DDP
                    rec = {"step": step, "epoch": round(step / steps_per_epoch, 4), "loss": vals[0], "lr": lr,
                           "img_per_s": n_last / max(now - t_last, 1e-9)}
                    rec.update(zip(names, vals[1:]))
                    t_last, n_last = now, 0
                    last = rec
                    history.append(rec)
                    logger.log(rec)
                logger.tick(last)
                if step % t.ckpt_every == 0 or step == total:
                    _save(run, objective, opt, scaler, gen, step, t.keep_last, di)
    finally:
        logger.close()

    if di.is_main:
        _finish(run, cfg, objective, last)
    barrier()
    return TrainResult(run, step, last, history)


def _init_from(objective: nn.Module, init) -> None:
    """Load weights into a new run: a run folder (its weights.safetensors) or a safetensors file.
    Keys present in both must match in shape; other keys are listed but allowed (e.g. a new head)."""
    path = Path(init)
    if path.is_dir():
        path = path / "weights.safetensors"
    missing, unexpected = ck.load_state_dict_checked(objective, ck.load_weights(path), strict=False, what=f"--init {path}")
    if missing or unexpected:
        print(f"--init {path}: {len(missing)} missing keys {missing[:6]}, {len(unexpected)} unexpected keys {unexpected[:6]}",
              file=sys.stderr)


def _save(run, objective, opt, scaler, gen, step, keep_last, di: DistInfo) -> None:
    rng = ck.rng_state(gen)
    if di.enabled:  # every rank's RNG, so a resumed DDP run continues each rank's streams
        gathered = [None] * di.world_size
        torch.distributed.all_gather_object(gathered, rng)
        rng_all = gathered
    else:
        rng_all = [rng]
    if di.is_main:
        state = {"step": step, "optimizer": opt.state_dict(), "scaler": scaler.state_dict(), "rng": rng_all}
        ck.save_checkpoint(run / "checkpoints", step, objective.state_dict(), state, keep_last)
    barrier()


def _finish(run: Path, cfg: Config, objective: nn.Module, last: dict) -> None:
    from .export import export_backbone

    ck.save_weights(objective.state_dict(), run / "weights.safetensors", {"format": "part-objective"})
    export_backbone(objective.backbone, run / "export")
    _plot_loss(run)
    ck.write_json(run / "summary.json", {"final": last, "finished": True})


def _truncate_jsonl(path: Path, step: int) -> None:
    """On resume, drop log lines written after the checkpoint we resume from."""
    if not path.exists():
        return
    keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
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
    """Rank-0 logging: tqdm bar, TensorBoard scalars, JSONL lines (appended, flushed every record)."""

    def __init__(self, run: Path, active: bool, total: int, start: int, bar: bool):
        self.active = active
        self.bar = self.tb = self.jsonl = None
        if not active:
            return
        self.jsonl = open(run / "metrics.jsonl", "a")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run / "tb"))
        except ImportError:  # tensorboard is a core dependency, but keep training if it is broken
            print("warning: tensorboard unavailable; logging to metrics.jsonl only", file=sys.stderr)
        if bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, desc="train", dynamic_ncols=True,
                            disable=not (sys.stderr.isatty() or os.environ.get("PART_PROGRESS") == "1"))

    def log(self, rec: dict) -> None:
        if not self.active:
            return
        self.jsonl.write(json.dumps(rec) + "\n")
        self.jsonl.flush()
        if self.tb is not None:
            for k, v in rec.items():
                if k != "step":
                    self.tb.add_scalar(f"train/{k}", v, rec["step"])
        if self.bar is None or self.bar.disable:
            print(f"step {rec['step']}: loss {rec['loss']:.4f} lr {rec['lr']:.2e} {rec['img_per_s']:.0f} img/s", flush=True)

    def tick(self, rec: dict) -> None:
        if self.bar is not None:
            self.bar.update(1)
            if rec:
                self.bar.set_postfix(loss=f"{rec['loss']:.4f}", lr=f"{rec['lr']:.1e}", img_s=f"{rec['img_per_s']:.0f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.close()
        if self.jsonl is not None:
            self.jsonl.close()
