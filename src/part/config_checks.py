"""The range checks of the config's sections, at load: one line naming the dotted field and its value.

:func:`part.config.validate_config` runs them on a config whose types :func:`part.config.config_from_dict`
checked; each takes one section (``model``, ``data``, ``optim``, ``train``) and returns nothing. Kept apart
from :mod:`part.config` (the typed sections, YAML and overrides), which re-exports :class:`ConfigError`.
"""

from __future__ import annotations

from .data.kinds import check_data_kind
from .data.randaugment import parse_randaugment
from .data.subsets import check_subset_options

TRAIN_STRATEGIES = ("ddp", "fsdp")


class ConfigError(ValueError):
    """A config value of the wrong type or out of range; the message names the dotted field and value."""


def need(ok: bool, key: str, value, rule: str) -> None:
    if not ok:
        raise ConfigError(f"{key} must be {rule}, got {value!r}")


def size_ok(v) -> bool:
    """An image size: a positive int or a list of two positive ints."""
    if isinstance(v, bool):
        return False
    if isinstance(v, int):
        return v > 0
    return isinstance(v, (list, tuple)) and len(v) == 2 and all(
        isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in v)


def numbers(v, n: int | None = None) -> bool:
    return isinstance(v, (list, tuple)) and (n is None or len(v) == n) and all(
        isinstance(x, (int, float)) and not isinstance(x, bool) for x in v)


POSITIVE = "a positive integer"


def check_model(m) -> None:
    need(size_ok(m.img_size), "model.img_size", m.img_size, "a positive integer or [H, W]")
    need(m.patch_size >= 1, "model.patch_size", m.patch_size, POSITIVE)
    need(m.in_chans >= 1, "model.in_chans", m.in_chans, POSITIVE)
    for k in ("embed_dim", "depth", "num_heads"):
        v = getattr(m, k)
        need(v is None or v >= 1, f"model.{k}", v, f"{POSITIVE} or null")
    need(m.mlp_ratio > 0, "model.mlp_ratio", m.mlp_ratio, "positive")
    need(0 <= m.drop_path_rate < 1, "model.drop_path_rate", m.drop_path_rate, "in [0, 1)")
    need(0 <= m.pos_embed_mask_ratio < 1, "model.pos_embed_mask_ratio", m.pos_embed_mask_ratio, "in [0, 1)")


def reader_check(check, *args, prefix: str = "") -> None:
    """A check of the module that defines a value (a data reader's options, :mod:`part.targets`' rule for
    ``num_pairs``), its ``ValueError`` as a :class:`ConfigError` (``prefix`` + its message: the dotted section)."""
    try:
        check(*args)
    except ValueError as exc:
        raise ConfigError(f"{prefix}{exc}") from None


def check_data(d) -> None:
    need(d.image_size is None or size_ok(d.image_size), "data.image_size", d.image_size,
         "a positive integer, [H, W] or null")
    need(d.channels is None or d.channels >= 1, "data.channels", d.channels, f"{POSITIVE} or null")
    for k in ("mean", "std"):
        v = getattr(d, k)
        need(v is None or (numbers(v) and len(v) >= 1), f"data.{k}", v, "a list of numbers or null")
    need(d.std is None or all(x > 0 for x in d.std), "data.std", d.std, "positive")
    need(not d.rrc_scale or (numbers(d.rrc_scale, 2) and 0 < d.rrc_scale[0] <= d.rrc_scale[1] <= 1),
         "data.rrc_scale", d.rrc_scale, "[low, high] with 0 < low <= high <= 1")
    need(0 <= d.hflip <= 1, "data.hflip", d.hflip, "in [0, 1]")
    if d.randaugment is not None:
        try:
            parse_randaugment(d.randaugment)
        except ValueError as exc:
            raise ConfigError(f"data.randaugment: {exc}") from None
    need(0 <= d.reprob <= 1, "data.reprob", d.reprob, "in [0, 1]")
    need(d.repeated_aug >= 1, "data.repeated_aug", d.repeated_aug, f"{POSITIVE} (1: off; DeiT: 3)")
    # the kind's rules: a known kind, its typed options, what its data cannot take (part.data.kinds)
    reader_check(check_data_kind, d)
    need(d.max_samples is None or d.max_samples >= 1, "data.max_samples", d.max_samples, f"{POSITIVE} or null")
    reader_check(check_subset_options, d.val_carve, d.carve_seed, d.label_fraction, d.label_seed)
    need(d.num_workers >= 0, "data.num_workers", d.num_workers, ">= 0")


def check_optim(op) -> None:
    need(op.lr > 0, "optim.lr", op.lr, "positive")
    need(0 <= op.min_lr <= op.lr, "optim.min_lr", op.min_lr, f"in [0, optim.lr={op.lr}]")
    need(op.weight_decay >= 0, "optim.weight_decay", op.weight_decay, ">= 0")
    need(numbers(op.betas, 2) and all(0 <= b < 1 for b in op.betas), "optim.betas", op.betas,
         "[beta1, beta2], each in [0, 1)")
    need(op.warmup_steps is None or op.warmup_steps >= 0, "optim.warmup_steps", op.warmup_steps, ">= 0 or null")
    need(op.warmup_epochs >= 0, "optim.warmup_epochs", op.warmup_epochs, ">= 0")
    need(op.clip_grad is None or op.clip_grad >= 0, "optim.clip_grad", op.clip_grad, ">= 0 or null (0: no clipping)")
    need(op.accum_steps >= 1, "optim.accum_steps", op.accum_steps, POSITIVE)


def check_train(t) -> None:
    need(t.val_every is None or t.val_every > 0, "train.val_every", t.val_every, "positive (epochs) or null")
    need(t.max_steps is not None or t.epochs > 0, "train.epochs", t.epochs, "positive (or set train.max_steps)")
    need(t.max_steps is None or t.max_steps >= 1, "train.max_steps", t.max_steps, f"{POSITIVE} or null")
    need(t.batch_size >= 1, "train.batch_size", t.batch_size, POSITIVE)
    need(t.seed >= 0, "train.seed", t.seed, ">= 0")
    need(t.device in ("auto", "cpu", "cuda") or (t.device.startswith("cuda:") and t.device[5:].isdigit()),
         "train.device", t.device, "auto, cpu, cuda or cuda:<index>")
    need(t.amp in ("auto", "bf16", "fp16", "none"), "train.amp", t.amp, "one of auto, bf16, fp16, none")
    need(t.strategy in TRAIN_STRATEGIES, "train.strategy", t.strategy, f"one of {', '.join(TRAIN_STRATEGIES)}")
    need(t.strategy != "fsdp" or t.amp != "fp16", "train.amp", t.amp, "auto, bf16 or none with train.strategy fsdp")
    ac = t.activation_checkpointing
    need(isinstance(ac, bool) or (isinstance(ac, int) and ac >= 0), "train.activation_checkpointing", ac,
         "true (every block), false, or k >= 0 (every k-th block; 0: none)")
    for k in ("log_every", "ckpt_every", "keep_last"):
        need(getattr(t, k) >= 1, f"train.{k}", getattr(t, k), POSITIVE)
    need(t.threads is None or t.threads >= 1, "train.threads", t.threads, f"{POSITIVE} or null")
    need(t.nan_policy in ("stop", "skip"), "train.nan_policy", t.nan_policy, "stop or skip")
    need(t.max_nan_skips >= 0, "train.max_nan_skips", t.max_nan_skips, ">= 0")
    need(t.spike_factor > 1, "train.spike_factor", t.spike_factor, "> 1")


__all__ = ["ConfigError", "TRAIN_STRATEGIES", "POSITIVE", "need", "size_ok", "numbers", "reader_check", "check_model",
           "check_data", "check_optim", "check_train"]
