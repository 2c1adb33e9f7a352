"""Typed configuration: dataclasses, YAML files, dotted ``--set key=value`` overrides.

A config file is a nested mapping whose top-level sections are the fields of :class:`Config`
(``model``, ``objective``, ``data``, ``optim``, ``train``, ``logging``). Unknown keys are rejected with the full dotted
key named, so a typo never silently falls back to a default. The resolved config is written to the run
folder as ``config.yaml`` and is enough to rebuild the model (:func:`part.engine.load_run`).
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .config_checks import (POSITIVE, TRAIN_STRATEGIES, ConfigError, check_data, check_model, check_optim,
                            check_train, need, numbers, reader_check)
from .io import safe_yaml
from .objectives.registry import options_fields, resolve_objective_config
from .sampling.boxes import POSITIONS
from .targets import validate_num_pairs


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
    (``mp3``, ``droppos``, ``mae``, ``supervised``); the table is :data:`part.objectives.registry.OBJECTIVES`.

    The typed fields below are PART's own (paper §4/§5.3), the keyword arguments of
    :class:`part.objectives.PARTModel` of the same names, where their defaults live: unset (null) means
    that default, and a PART field set for another objective is an error
    (:func:`part.objectives.registry.resolve_objective_config`). Other objectives take ``options``: a
    mapping (as written, no defaults filled in) checked at load against the objective's typed options
    (:func:`part.objectives.registry.options_type`, its constructor's keywords, types and defaults)."""

    name: str = "part"
    head: str | None = None  # relative encoder (part.models.registry.HEADS); default cross_attention_paper
    num_pairs: Any = None  # int or "all" (the whole pair universe); default 2048
    num_patches: int | None = None  # default: the grid's count, H*W/P^2 (2D), T//L (1D)
    box_size: float | None = None  # off-grid box side D (1D: window length); default P
    scale_range: list | None = None  # part_scale box sizes in units of P; default [0.5, 2.0] (§5.1)
    head_heads: int | None = None  # cross_attention heads; default: the backbone's
    head_hidden: int | None = None  # pairwise_mlp / mlp hidden width (0: one linear map)
    self_pairs: bool | None = None  # pairs from all N^2, (i, i) included; default false (N(N-1))
    positions: str | None = None  # continuous | integer; default: the sampler's (off-grid: integer; scale: continuous)
    options: dict = field(default_factory=dict)  # keyword arguments of the other objectives


@dataclass
class DataConfig:
    """Dataset and augmentation. ``kind``: a row of :data:`part.data.kinds.DATA_KINDS` (image readers, ``signal_npz``,
    the sleep sources, ``wds`` shards); ``options``: that kind's typed options, checked at load."""

    kind: str = "fashion_mnist"
    root: str | None = None
    split: str = "train"
    image_size: Any = None  # default: model.img_size
    channels: int | None = None  # default: model.in_chans
    mean: list | None = None  # default: the dataset's published statistics
    std: list | None = None
    augment: bool = True
    rrc_scale: list | None = field(default_factory=lambda: [0.2, 1.0])  # null: no random resized crop
    hflip: float = 0.5
    # fine-tuning pieces of DeiT's recipe (paper App. 8.1), training only; defaults off
    randaugment: str | None = None  # timm RandAugment string, e.g. "rand-m9-mstd0.5-inc1" (DeiT); null: none
    reprob: float = 0.0  # random erasing probability (DeiT: 0.25, per-pixel normal fill after normalisation)
    repeated_aug: int = 1  # repeated augmentation: each drawn image this many times per step (DeiT: 3; 1: off)
    max_samples: int | None = None
    skip_corrupt: bool = False
    num_workers: int = 0
    # seeded, stratified subsets of the train split (part.data.subsets): a validation carve read as split "val"
    # (a fraction in (0, 1) or a count; fixed seed carve_seed), and the labelled fraction a fine-tune trains on
    # (>= 2 per class; seed label_seed, default train.seed: the same subset for every method at a seed)
    val_carve: Any = None
    carve_seed: int = 0
    label_fraction: float | None = None
    label_seed: int | None = None
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
    strategy: str = "ddp"  # ddp | fsdp: FSDP2, blocks and root sharded over the torchrun ranks (docs/scaling.md)
    fsdp_reshard: bool = True  # fsdp: reshard each block after its forward (least memory); false: keep it for backward
    activation_checkpointing: Any = False  # false | true (every block) | k (every k-th block): recompute in backward
    log_every: int = 10
    val_every: float | None = None  # epochs between validation evaluations (fine-tune with a val split); null: off
    ckpt_every: int = 200
    keep_last: int = 2  # verified checkpoints kept (the last good one before a loss spike is kept too)
    threads: int | None = None  # torch.set_num_threads on CPU
    nan_policy: str = "stop"  # stop | skip: skip a step whose loss is NaN/inf (at most max_nan_skips times)
    max_nan_skips: int = 10
    spike_factor: float = 10.0  # a checkpoint is "good" if its loss <= spike_factor x the best so far


LOGGING_BACKENDS = ("jsonl", "tensorboard", "mlflow", "wandb")
WANDB_MODES = ("offline", "online", "disabled")


@dataclass
class LoggingConfig:
    """Where training scalars go (:mod:`part.engine.trackers`). ``backends``: ``jsonl`` (``metrics.jsonl``,
    always on: resume, plots and ``part info`` read it), ``tensorboard`` (``tb/``), ``mlflow`` (a local file
    store, ``pip install mlflow``) and ``wandb`` (offline by default, ``pip install wandb``). Every backend
    gets the same scalars; mlflow and wandb also get the resolved config as parameters and the export."""

    backends: list = field(default_factory=lambda: ["jsonl", "tensorboard"])
    project: str = "part"  # mlflow experiment / wandb project
    run_name: str | None = None  # default: the run folder's name
    mlflow_uri: str | None = None  # default: file store <parent of the run folder>/mlruns
    wandb_mode: str = "offline"  # offline | online | disabled
    wandb_dir: str | None = None  # default: the run folder (wandb writes <dir>/wandb/)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _type_name(hint) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list",
            dict: "a mapping"}.get(hint, getattr(hint, "__name__", str(hint)))


def _check_type(key: str, value, hint):
    """``value`` checked against a field's type hint (``int``, ``float``, ``int | None``, ``Any`` ...).

    Ints must be ints (``1.5`` or ``"abc"`` for an int field is an error; ``true`` is not an int); a number
    field accepts ints and numeric strings such as ``"5e-4"`` (YAML 1.1 reads those as strings) and returns
    a float. Raises :class:`ConfigError` naming ``key`` and the value."""
    if hint is Any:
        return value
    args = typing.get_args(hint)
    if args and type(None) in args:  # X | None
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
    if hint is bool:
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif isinstance(hint, type) and isinstance(value, hint):
        return value
    raise ConfigError(f"{key} must be {_type_name(hint)}, got {value!r}")


def _from_dict(cls, data: dict, prefix: str = ""):
    if not isinstance(data, dict):
        raise ConfigError(f"config section {prefix.rstrip('.') or '<root>'} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names, key=str)
    if unknown:
        raise ConfigError(
            f"unknown config key {prefix}{unknown[0]!s}; valid keys under {prefix.rstrip('.') or 'the top level'}: {sorted(names)}"
        )
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            kwargs[key] = _from_dict(hint, value or {}, f"{prefix}{key}.")
        else:
            kwargs[key] = _check_type(f"{prefix}{key}", value, hint)
    return cls(**kwargs)


def config_from_dict(data: dict | None) -> Config:
    """Build a :class:`Config` from a nested mapping; unknown keys raise ``ValueError`` naming them."""
    return _from_dict(Config, data or {})


def parse_override(item: str) -> tuple[str, Any]:
    """``"optim.lr=1e-3"`` -> ``("optim.lr", 0.001)``; values are parsed as YAML scalars/lists.

    The key is a dotted path; in :func:`apply_overrides` a part that is a whole number indexes a list
    (``data.rrc_scale.0=0.3``, ``grid.0.seeds=[0]`` of an ablation config)."""
    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value (e.g. optim.lr=1e-3)")
    key, raw = item.split("=", 1)
    key = key.strip()
    if not key or any(not p for p in key.split(".")):
        raise ConfigError(f"override {item!r}: key {key!r} has an empty part (write section.key=value)")
    value = safe_yaml(raw, f"override {key}") if raw.strip() else None
    # YAML reads "5e-4" as a string; accept scientific notation for numbers
    if isinstance(value, str):
        try:
            value = float(value) if any(c in value for c in ".eE") else value
        except ValueError:
            pass
    return key, value


def apply_overrides(data: dict, overrides: typing.Iterable[str]) -> dict:
    """Apply dotted overrides, in order, to a copy of a nested mapping; unknown keys are caught by validation.

    A missing section is created; a whole-number part indexes a list that is there (``data.rrc_scale.0=0.3``
    sets the first entry; an index past the end raises :class:`ConfigError` naming it)."""
    out = _deep_copy(data)
    for item in overrides or ():
        key, value = parse_override(item)
        _set_dotted(out, key, value)
    return out


def _set_dotted(data: dict, key: str, value: Any) -> None:
    parts = key.split(".")
    node: Any = data
    for i, p in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[_list_index(node, p, key)]
        else:
            if p not in node and parts[i + 1].isdigit():
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"override {key!r}: {where} is not set, so there is no list to index; "
                                  f"give the whole list ({where}=[...])")
            node = node.setdefault(p, {})
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"override {key!r}: {p!r} is not a section")
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, key)] = value
    else:
        node[last] = value


def _list_index(node: list, part: str, key: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"override {key!r}: no list entry {part} (the list has {len(node)})")
    return int(part)


def _deep_copy(d):
    if isinstance(d, dict):
        return {k: _deep_copy(v) for k, v in d.items()}
    return [_deep_copy(v) for v in d] if isinstance(d, list) else d


def read_yaml_mapping(path: str | Path, what: str = "config file") -> dict:
    """The mapping at the top level of a YAML file (empty file: ``{}``). A missing or unreadable file, a
    YAML syntax error (named as ``file:line:col``) or another top-level value raises :class:`ConfigError`
    naming ``what`` and the path."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} not found: {p}")
    try:
        with open(p) as f:
            loaded = safe_yaml(f, str(p)) or {}
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {p}: {getattr(exc, 'strerror', None) or exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{what} {p} must contain a mapping at the top level")
    return loaded


def merge_dicts(base: dict, update: dict | None) -> dict:
    """``update`` merged onto a copy of ``base``: mappings merge key by key (recursively), any other value
    (lists included) replaces; the result shares no mapping or list with either input."""
    out = _deep_copy(base)
    for k, v in (update or {}).items():
        out[k] = merge_dicts(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else _deep_copy(v)
    return out


def load_config(path: str | Path | None = None, overrides: typing.Iterable[str] = (), base: dict | None = None) -> Config:
    """Read a YAML config (or start from ``base``/defaults), apply overrides, validate.

    Overrides see the defaults, so ``data.rrc_scale.0=0.3`` indexes the default list when the file has none."""
    data = merge_dicts(Config().to_dict(), base)
    if path is not None:
        data = merge_dicts(data, read_yaml_mapping(path))
    return validate_config(config_from_dict(apply_overrides(data, overrides)))


def validate_config(cfg: Config) -> Config:
    """The resolved config: ``cfg`` checked field by field and its objective section resolved (PART defaults
    filled, :func:`part.objectives.registry.resolve_objective_config`), as a new :class:`Config`; ``cfg``
    itself is never changed. Types are checked by :func:`config_from_dict`; ranges here, at load, so that a
    typo fails in one line before anything runs. Raises :class:`ConfigError` naming field and value."""
    check_model(cfg.model)
    objective = _check_objective(cfg.objective)
    check_data(cfg.data)
    check_optim(cfg.optim)
    check_train(cfg.train)
    validate_logging(cfg.logging)
    out = copy.deepcopy(cfg)
    out.objective = objective
    return out


def _check_objective(o: ObjectiveConfig) -> ObjectiveConfig:
    """The resolved objective section: fields vs the objective table (PART fields only for PART objectives,
    PART defaults filled), ``num_pairs`` by its one rule (:func:`part.targets.validate_num_pairs`), the
    other PART fields' ranges, and the types of ``options`` against the objective's typed options
    (:func:`part.objectives.registry.options_type`)."""
    try:
        resolved = resolve_objective_config(o)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if o.num_pairs is not None:
        reader_check(validate_num_pairs, o.num_pairs, prefix="objective.")
    hints = options_fields(o.name)
    for key, value in resolved.options.items():
        typed = _check_type(f"objective.options.{key}", value, hints[key])
        if isinstance(value, str) and not isinstance(typed, str):  # YAML 1.1 reads "5e-1" as a string
            resolved.options[key] = typed
    need(o.num_patches is None or o.num_patches >= 1, "objective.num_patches", o.num_patches, f"{POSITIVE} or null")
    need(o.box_size is None or o.box_size > 0, "objective.box_size", o.box_size, "positive or null")
    need(o.scale_range is None or (numbers(o.scale_range, 2) and 0 < o.scale_range[0] <= o.scale_range[1]),
         "objective.scale_range", o.scale_range, "[low, high] with 0 < low <= high, or null")
    need(o.head_heads is None or o.head_heads >= 1, "objective.head_heads", o.head_heads, f"{POSITIVE} or null")
    need(o.head_hidden is None or o.head_hidden >= 0, "objective.head_hidden", o.head_hidden,
         ">= 0 (0: one linear map) or null")
    need(o.positions in (None, *POSITIONS), "objective.positions", o.positions, f"one of {list(POSITIONS)} or null")
    return resolved


def validate_logging(lg: "LoggingConfig") -> None:
    """``logging.backends`` names known backends and includes jsonl; ``logging.wandb_mode`` is known."""
    need(isinstance(lg.backends, (list, tuple)) and all(isinstance(b, str) for b in lg.backends),
         "logging.backends", lg.backends, f"a list of names from {list(LOGGING_BACKENDS)}")
    unknown = [b for b in lg.backends if b not in LOGGING_BACKENDS]
    need(not unknown, "logging.backends", unknown[0] if unknown else None,
         f"names from {list(LOGGING_BACKENDS)} (unknown backend)")
    need("jsonl" in lg.backends, "logging.backends", lg.backends,
         "a list that includes jsonl (metrics.jsonl is what resume, the loss plot and part info read)")
    need(lg.wandb_mode in WANDB_MODES, "logging.wandb_mode", lg.wandb_mode, f"one of {list(WANDB_MODES)}")


def save_config(cfg: Config, path: str | Path) -> None:
    """Write ``cfg`` as YAML, its objective section resolved (the PART defaults it runs with recorded, as
    :func:`validate_config` resolves them), so that a run folder's ``config.yaml`` never depends on a later
    default, also when ``cfg`` was built without validation (``config_from_dict``); ``cfg`` is unchanged."""
    d = cfg.to_dict()
    d["objective"] = dataclasses.asdict(resolve_objective_config(cfg.objective))
    with open(path, "w") as f:
        yaml.safe_dump(d, f, sort_keys=False)


__all__ = [
    "ConfigError", "Config", "ModelConfig", "ObjectiveConfig", "DataConfig", "OptimConfig", "TrainConfig",
    "LoggingConfig", "TRAIN_STRATEGIES", "LOGGING_BACKENDS", "WANDB_MODES", "validate_logging",
    "config_from_dict", "load_config", "apply_overrides", "parse_override", "merge_dicts", "read_yaml_mapping",
    "safe_yaml",
    "save_config", "validate_config",
]
