"""Typed configuration: dataclasses, YAML files, dotted ``--set key=value`` overrides.

A config file is a nested mapping whose top-level sections are the fields of :class:`Config`
(``model``, ``objective``, ``data``, ``optim``, ``train``). Unknown keys are rejected with the full dotted
key named, so a typo never silently falls back to a default. The resolved config is written to the run
folder as ``config.yaml`` and is enough to rebuild the model (:func:`part.engine.load_run`).
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class ModelConfig:
    """Backbone. ``arch``: ``vit_tiny``/``vit_small``/``vit_base`` (paper sizes), ``custom`` (give
    ``embed_dim``, ``depth``, ``num_heads``), or a 1D preset (``vit1d_tiny``, ``vit1d_paper``)."""

    arch: str = "vit_tiny"
    img_size: Any = 32  # int or [H, W]; for 1D: signal length T in samples
    patch_size: int = 4  # P; for 1D: window length L in samples
    in_chans: int = 3
    embed_dim: int | None = None
    depth: int | None = None
    num_heads: int | None = None
    mlp_ratio: float = 4.0
    class_token: bool = True
    drop_path_rate: float = 0.0
    pos_embed_mask_ratio: float = 0.2  # 1D fine-tuning: share of position embeddings masked (App. 8.1)


@dataclass
class ObjectiveConfig:
    """Pretext objective. ``name``: ``part`` (off-grid), ``part_grid``, ``part_scale``, or a baseline
    (``mp3``, ``droppos``, ``mae``, ``supervised``). PART options follow paper §4/§5.3."""

    name: str = "part"
    head: str = "cross_attention"
    num_pairs: Any = 2048  # int or "all"
    num_patches: int | None = None  # default H*W/P^2
    box_size: float | None = None  # default P
    scale_range: list = field(default_factory=lambda: [0.5, 2.0])
    head_heads: int | None = None
    head_hidden: int | None = None
    options: dict = field(default_factory=dict)  # extra keyword arguments for baseline objectives


@dataclass
class DataConfig:
    """Dataset and augmentation. ``kind``: ``fashion_mnist``, ``idx``, ``cifar``, ``imagefolder``, ``npz``
    (images), or a sleep source (``sleep_synthetic``, ``physionet2018``, ``sleep_edf``, ``sleep_npz``)."""

    kind: str = "fashion_mnist"
    root: str | None = None
    split: str = "train"
    image_size: Any = None  # default: model.img_size
    channels: int | None = None  # default: model.in_chans
    mean: list | None = None  # default: the dataset's published statistics
    std: list | None = None
    augment: bool = True
    rrc_scale: list = field(default_factory=lambda: [0.2, 1.0])
    hflip: float = 0.5
    max_samples: int | None = None
    skip_corrupt: bool = False
    num_workers: int = 0
    options: dict = field(default_factory=dict)  # extra keyword arguments for the dataset reader


@dataclass
class OptimConfig:
    """AdamW with linear warmup then cosine decay (per step)."""

    lr: float = 5e-4
    min_lr: float = 1e-6
    weight_decay: float = 0.05
    betas: list = field(default_factory=lambda: [0.9, 0.95])
    warmup_steps: int | None = None
    warmup_epochs: float = 0.0
    clip_grad: float | None = 1.0
    accum_steps: int = 1


@dataclass
class TrainConfig:
    """Loop, precision, checkpoints and logging."""

    epochs: float = 1.0
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 128  # global batch (split over DDP ranks)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: str = "auto"  # auto (bf16 on GPUs that support it, else fp32) | bf16 | fp16 | none
    compile: bool = False
    log_every: int = 10
    ckpt_every: int = 200
    keep_last: int = 2
    threads: int | None = None  # torch.set_num_threads on CPU


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _from_dict(cls, data: dict, prefix: str = ""):
    if not isinstance(data, dict):
        raise ValueError(f"config section {prefix.rstrip('.') or '<root>'} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(
            f"unknown config key {prefix}{unknown[0]!s}; valid keys under {prefix.rstrip('.') or 'the top level'}: {sorted(names)}"
        )
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _from_dict(hint, value or {}, f"{prefix}{key}.")
        else:
            kwargs[key] = value
    return cls(**kwargs)


def config_from_dict(data: dict | None) -> Config:
    """Build a :class:`Config` from a nested mapping; unknown keys raise ``ValueError`` naming them."""
    return _from_dict(Config, data or {})


def parse_override(item: str) -> tuple[str, Any]:
    """``"optim.lr=1e-3"`` -> ``("optim.lr", 0.001)``; values are parsed as YAML scalars/lists."""
    if "=" not in item:
        raise ValueError(f"override {item!r} must look like key=value (e.g. optim.lr=1e-3)")
    key, raw = item.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else None
    # YAML reads "5e-4" as a string; accept scientific notation for numbers
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return key.strip(), value


def apply_overrides(data: dict, overrides: typing.Iterable[str]) -> dict:
    """Apply dotted overrides to a nested mapping (a copy); unknown keys are caught by validation."""
    out = _deep_copy(data)
    for item in overrides or ():
        key, value = parse_override(item)
        parts = key.split(".")
        node = out
        for p in parts[:-1]:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {key!r}: {p!r} is not a section")
        node[parts[-1]] = value
    return out


def _deep_copy(d):
    return {k: _deep_copy(v) for k, v in d.items()} if isinstance(d, dict) else d


def load_config(path: str | Path | None = None, overrides: typing.Iterable[str] = (), base: dict | None = None) -> Config:
    """Read a YAML config (or start from ``base``/defaults), apply overrides, validate."""
    data: dict = _deep_copy(base or {})
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"config file not found: {p}")
        with open(p) as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"config file {p} must contain a mapping at the top level")
        data = _merge(data, loaded)
    cfg = config_from_dict(apply_overrides(data, overrides))
    validate_config(cfg)
    return cfg


def _merge(a: dict, b: dict) -> dict:
    out = _deep_copy(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def validate_config(cfg: Config) -> None:
    """Value checks that a typo in a YAML file would otherwise turn into a confusing stack trace."""
    t, o = cfg.train, cfg.optim
    if t.amp not in ("auto", "bf16", "fp16", "none"):
        raise ValueError(f"train.amp must be one of auto, bf16, fp16, none; got {t.amp!r}")
    if t.device not in ("auto", "cpu", "cuda") and not str(t.device).startswith("cuda:"):
        raise ValueError(f"train.device must be auto, cpu or cuda[:i]; got {t.device!r}")
    if t.batch_size <= 0:
        raise ValueError(f"train.batch_size must be positive, got {t.batch_size}")
    if t.max_steps is None and not t.epochs > 0:
        raise ValueError(f"train.epochs must be positive (or set train.max_steps), got {t.epochs}")
    if t.max_steps is not None and t.max_steps <= 0:
        raise ValueError(f"train.max_steps must be positive, got {t.max_steps}")
    if t.keep_last < 1:
        raise ValueError(f"train.keep_last must be >= 1, got {t.keep_last}")
    if o.lr <= 0:
        raise ValueError(f"optim.lr must be positive, got {o.lr}")
    if o.accum_steps < 1:
        raise ValueError(f"optim.accum_steps must be >= 1, got {o.accum_steps}")
    if cfg.model.patch_size <= 0:
        raise ValueError(f"model.patch_size must be positive, got {cfg.model.patch_size}")


def save_config(cfg: Config, path: str | Path) -> None:
    with open(path, "w") as f:
        yaml.safe_dump(cfg.to_dict(), f, sort_keys=False)


__all__ = [
    "Config", "ModelConfig", "ObjectiveConfig", "DataConfig", "OptimConfig", "TrainConfig",
    "config_from_dict", "load_config", "apply_overrides", "parse_override", "save_config", "validate_config",
]
