"""Ablation grids: the paper's comparisons, apples to apples, at any scale (issue 7; paper Tab. 2-7, Fig. 8).

An *ablation config* (YAML; ``configs/ablate_*.yaml``) is a base experiment plus a grid:

* ``pretrain``: a pretraining config (the schema of ``configs/*.yaml``), optionally on top of a ``base``
  file; every cell pretrains with it, changing only the objective, its head / #pairs and the seed;
* ``pretext`` / ``probe`` / ``finetune``: how each pretrained backbone is evaluated: pretext errors on a
  held-out split (:func:`part.evaluation.evaluate`), linear probe + kNN on frozen features
  (:func:`part.evaluation.probe`), short end-to-end fine-tune (:func:`part.evaluation.finetune`, paper §4
  "Supervised finetuning": the relative encoder is replaced by a linear head on [CLS], random learnable
  position embeddings);
* ``grid``: one block (or a list of blocks, whose cells are united) of ``objectives`` x ``heads`` x
  ``num_pairs`` x ``seeds``. Heads and #pairs only vary for the PART objectives (``part``, ``part_grid``,
  ``part_scale``: the relative-encoder heads of Tab. 5 and the #pairs of Fig. 8); every other objective
  gets one cell per seed. ``supervised`` has no pretraining: its cell is the from-scratch fine-tune row
  ("Supervised (w/ Pos Embed)" of Tab. 3/6/7);
* ``objectives``: per-objective settings under a label: ``objective`` (the registry name, default the
  label, so ``supervised_nopos: {objective: supervised, options: {pos_embed: false}}`` adds a variant),
  ``options`` (constructor options), ``pretrain`` / ``finetune`` (sections merged onto the base ones,
  e.g. MAE's own learning rate), ``heads`` / ``num_pairs`` (restrict the block's lists; PART only).

Each cell runs ``pretrain -> pretext errors -> probe -> fine-tune`` into ``<out>/cells/<cell>/``:
``pretrain/`` (a run folder), ``pretext.json``, ``probe.json``, ``finetune/`` (a run folder with
``results.json``), ``stages.json`` (per finished stage: its settings, metrics, seconds) and, when all
stages are done, ``result.json`` (the cell's row). Re-running continues where it stopped: a cell whose
``result.json`` holds the same settings is skipped; a finished stage is not redone; a training run
with checkpoints is resumed exactly (``resume=True`` of the engine). A pretraining whose stored settings
differ from the config raises ``ValueError`` (choose another ``out`` or ``resume=False``); the stages
after it (pretext, probe, fine-tune) are redone when their own settings change.

Outputs: ``<out>/results.csv`` (one row per cell), ``<out>/table.md`` (mean ± std over seeds per
(objective, head, #pairs)), ``<out>/plots/accuracy_vs_pairs.png`` (Fig. 8 style) and
``<out>/plots/accuracy_by_objective.png`` (+ ``pretext_errors.png`` for PART rows, Tab. 5 style),
``<out>/ablation.yaml`` (the resolved ablation config).

    import part
    res = part.ablate("configs/ablate_fmnist_cpu.yaml", out="runs/ablate_fmnist")
    print(res.table)
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import shutil
import sys
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import yaml

from .config import Config, ObjectiveConfig, apply_overrides, load_config

PART_OBJECTIVES = ("part", "part_grid", "part_scale")
SUPERVISED = "supervised"


# --------------------------------------------------------------------------------------------------
# the ablation config
# --------------------------------------------------------------------------------------------------
@dataclass
class PretextSettings:
    """Pretext metrics of each pretrained model on a held-out split (:func:`part.evaluation.evaluate`):
    PART ``err_x``/``err_y``/``err_euclid`` (paper App. "Image classification": "ℓ2 error, and the mean
    squared error in x and y"), MP3/DropPos position accuracy, MAE reconstruction loss."""

    enabled: bool = True
    split: str = "test"
    max_samples: int | None = 1000
    batch_size: int = 256


@dataclass
class ProbeSettings:
    """Linear probe + weighted kNN on frozen features (:func:`part.evaluation.probe`)."""

    enabled: bool = True
    pool: str = "avg"
    classifier: str = "lbfgs"
    epochs: int = 100
    lr: float | None = None
    weight_decay: float = 1e-4
    k: int = 20
    temperature: float = 0.07
    max_train: int | None = None
    max_test: int | None = None
    batch_size: int = 256


@dataclass
class FinetuneSettings:
    """Short end-to-end fine-tune (paper §4) of every pretrained backbone, and the from-scratch
    ``supervised`` row. ``model``/``data``/``optim``/``train`` are merged onto the base pretrain config's
    sections; ``options`` are the supervised objective's (``label_smoothing``, ``pos_embed``, ...)."""

    enabled: bool = False
    num_classes: int | None = None
    options: dict = field(default_factory=dict)
    model: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    optim: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    eval_batch_size: int = 256


@dataclass
class ObjectiveSettings:
    """Settings of one objective label (see the module docstring)."""

    objective: str | None = None
    options: dict = field(default_factory=dict)
    pretrain: dict = field(default_factory=dict)
    finetune: dict = field(default_factory=dict)
    heads: list | None = None
    num_pairs: list | None = None


@dataclass
class GridBlock:
    """``objectives`` x ``heads`` x ``num_pairs`` x ``seeds``; unset lists default to the base config's
    ``objective.head`` / ``objective.num_pairs`` and the top-level ``seeds``."""

    objectives: list
    heads: list | None = None
    num_pairs: list | None = None
    seeds: list | None = None


@dataclass
class AblationConfig:
    name: str
    pretrain: dict
    grid: list
    seeds: list
    objectives: dict
    pretext: PretextSettings
    probe: ProbeSettings
    finetune: FinetuneSettings
    base: str | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_TOP_KEYS = ("name", "base", "pretrain", "grid", "seeds", "objectives", "pretext", "probe", "finetune")


def _check_keys(data: dict, cls, where: str) -> None:
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise ValueError(f"unknown ablation config key {where}.{unknown[0]}; valid keys under {where}: {names}")


def _section(cls, data, where: str):
    """A settings dataclass from a mapping; ``false``/``None`` -> disabled, ``true`` -> enabled defaults."""
    if data is None or data is False:
        return cls(enabled=False) if "enabled" in cls.__dataclass_fields__ else cls()
    if data is True:
        return cls(enabled=True)
    if not isinstance(data, dict):
        raise ValueError(f"ablation config {where} must be a mapping (or true/false), got {type(data).__name__}")
    _check_keys(data, cls, where)
    hints = typing.get_type_hints(cls)
    for key, value in data.items():
        if hints[key] is dict and value is not None and not isinstance(value, dict):
            raise ValueError(f"ablation config {where}.{key} must be a mapping, got {value!r}")
    kwargs = {k: (v if v is not None or hints[k] is not dict else {}) for k, v in data.items()}
    if "enabled" in cls.__dataclass_fields__ and "enabled" not in data:
        kwargs["enabled"] = True  # giving the section turns it on
    return cls(**kwargs)


def _as_list(value, where: str) -> list:
    if value is None:
        return None
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise ValueError(f"{where} must not be empty")
    if len({json.dumps(v) for v in value}) != len(value):
        raise ValueError(f"{where} lists a value twice: {value}")
    return value


def _merge(a: dict, b: dict) -> dict:
    out = {k: _merge(v, {}) if isinstance(v, dict) else v for k, v in a.items()}
    for k, v in (b or {}).items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else (
            _merge(v, {}) if isinstance(v, dict) else v)
    return out


def load_ablation_config(config: str | Path | dict | AblationConfig, overrides: Iterable[str] = ()) -> AblationConfig:
    """Read and validate an ablation config (YAML path or mapping) with dotted ``overrides``
    (``grid.seeds=[0]``, ``pretrain.train.max_steps=50``, ``objectives.mae.options.mask_ratio=0.5``, or
    ``grid.0.seeds=[0]`` for the first block of a list). Unknown keys, unknown objectives/heads, bad #pairs
    and heads/#pairs given for a non-PART objective raise ``ValueError`` naming them."""
    if isinstance(config, AblationConfig):
        if not overrides:
            return config
        config = config.to_dict()
    folder = Path(".")
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise ValueError(f"ablation config file not found: {path}")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ValueError(f"ablation config {path} must contain a mapping at the top level")
        data.setdefault("name", path.stem)
        folder = path.parent
    elif isinstance(config, dict):
        data = _merge(config, {})
    else:
        raise ValueError(f"config must be a YAML path, a mapping or an AblationConfig, got {type(config).__name__}")
    data = _apply_overrides(data, overrides)
    unknown = sorted(set(data) - set(_TOP_KEYS))
    if unknown:
        raise ValueError(f"unknown ablation config key {unknown[0]!r}; valid top-level keys: {list(_TOP_KEYS)}")

    pretrain = data.get("pretrain") or {}
    if not isinstance(pretrain, dict):
        raise ValueError("ablation config pretrain must be a mapping (a pretraining config)")
    base = data.get("base")
    if base is not None:
        bpath = Path(base)
        if not bpath.is_absolute() and not bpath.is_file():
            bpath = folder / bpath
        if not bpath.is_file():
            raise ValueError(f"ablation config base: pretraining config file not found: {base} (looked in {folder})")
        loaded = yaml.safe_load(bpath.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"base config {bpath} must contain a mapping at the top level")
        pretrain = _merge(loaded, pretrain)
        base = str(bpath)
    try:
        base_cfg = load_config(None, (), base=pretrain)
    except ValueError as exc:
        raise ValueError(f"ablation config pretrain: {exc}") from None

    seeds = _as_list(data.get("seeds", [base_cfg.train.seed]), "seeds")
    raw_grid = data.get("grid")
    if raw_grid is None:
        raise ValueError("ablation config needs a grid (grid: {objectives: [...], num_pairs: [...], seeds: [...]})")
    blocks_raw = raw_grid if isinstance(raw_grid, list) else [raw_grid]
    blocks = []
    for i, b in enumerate(blocks_raw):
        where = f"grid[{i}]" if isinstance(raw_grid, list) else "grid"
        if not isinstance(b, dict):
            raise ValueError(f"{where} must be a mapping with objectives (and heads, num_pairs, seeds)")
        _check_keys(b, GridBlock, where)
        if "objectives" not in b:
            raise ValueError(f"{where} needs objectives: [...]")
        blocks.append(GridBlock(
            objectives=_as_list(b["objectives"], f"{where}.objectives"),
            heads=_as_list(b.get("heads"), f"{where}.heads"),
            num_pairs=_as_list(b.get("num_pairs"), f"{where}.num_pairs"),
            seeds=_as_list(b.get("seeds"), f"{where}.seeds"),
        ))

    objectives = {}
    for label, s in (data.get("objectives") or {}).items():
        where = f"objectives.{label}"
        if s is None:
            s = {}
        if not isinstance(s, dict):
            raise ValueError(f"{where} must be a mapping (objective, options, pretrain, finetune, heads, num_pairs)")
        settings = _section(ObjectiveSettings, s, where)
        settings.heads = _as_list(settings.heads, f"{where}.heads")
        settings.num_pairs = _as_list(settings.num_pairs, f"{where}.num_pairs")
        objectives[str(label)] = settings

    acfg = AblationConfig(
        name=str(data.get("name") or "ablation"), base=base, pretrain=pretrain, grid=blocks, seeds=seeds,
        objectives=objectives,
        pretext=_section(PretextSettings, data.get("pretext", {}), "pretext"),
        probe=_section(ProbeSettings, data.get("probe", {}), "probe"),
        finetune=_section(FinetuneSettings, data.get("finetune", False), "finetune"),
    )
    _validate(acfg, base_cfg)
    return acfg


def _apply_overrides(data: dict, overrides: Iterable[str]) -> dict:
    """Dotted overrides; a numeric part indexes a list (``grid.0.seeds``)."""
    plain, indexed = [], []
    for item in overrides or ():
        key = item.split("=", 1)[0]
        (indexed if any(p.isdigit() for p in key.split(".")) else plain).append(item)
    out = apply_overrides(data, plain)
    for item in indexed:
        from .config import parse_override

        key, value = parse_override(item)
        node = out
        parts = key.split(".")
        for p in parts[:-1]:
            if isinstance(node, list):
                if not p.isdigit() or int(p) >= len(node):
                    raise ValueError(f"override {key!r}: no list entry {p}")
                node = node[int(p)]
            else:
                node = node.setdefault(p, {})
            if not isinstance(node, (dict, list)):
                raise ValueError(f"override {key!r}: {p!r} is not a section")
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ValueError(f"override {key!r}: no list entry {last}")
            node[int(last)] = value
        else:
            node[last] = value
    return out


def _validate(acfg: AblationConfig, base_cfg: Config) -> None:
    from .models.heads import HEADS
    from .objectives.registry import objective_names
    from .targets import validate_num_pairs

    names = objective_names()
    for label, s in acfg.objectives.items():
        method = s.objective or label
        where = f"objectives.{label}"
        if method not in names:
            raise ValueError(f"{where}.objective: unknown objective {method!r}; choose one of {names}")
        if method not in PART_OBJECTIVES:
            for key in ("heads", "num_pairs"):
                if getattr(s, key) is not None:
                    raise ValueError(
                        f"{where}.{key}: {key} only vary for the PART objectives {list(PART_OBJECTIVES)}; "
                        f"{label!r} ({method}) has no relative encoder; remove {where}.{key}")
        if method == SUPERVISED and s.pretrain:
            raise ValueError(f"{where}.pretrain: {label!r} is the from-scratch fine-tune row and has no "
                             f"pretraining; put its settings under {where}.finetune")
        if method in PART_OBJECTIVES:
            for key, lists in (("head", "heads"), ("num_pairs", "num_pairs")):
                if key in s.options:
                    raise ValueError(f"{where}.options.{key}: vary it with {where}.{lists} or grid.{lists}, "
                                     "not as an option")
        for key in s.finetune:
            if key not in ("options", "model", "data", "optim", "train"):
                raise ValueError(f"{where}.finetune.{key}: unknown key; valid: options, model, data, optim, train")
    for i, block in enumerate(acfg.grid):
        where = f"grid[{i}]" if len(acfg.grid) > 1 else "grid"
        methods = []
        for label in block.objectives:
            if not isinstance(label, str):
                raise ValueError(f"{where}.objectives: entries must be objective names, got {label!r}")
            if label not in acfg.objectives and label not in names:
                raise ValueError(
                    f"{where}.objectives: unknown objective {label!r}; choose one of {names} or define a "
                    f"variant under objectives.{label} (e.g. objective: supervised, options: {{...}})")
            methods.append(_method(acfg, label))
        part_any = any(m in PART_OBJECTIVES for m in methods)
        for key in ("heads", "num_pairs"):
            if getattr(block, key) is not None and not part_any:
                raise ValueError(
                    f"{where}.{key}: {key} only vary for the PART objectives {list(PART_OBJECTIVES)}; none of "
                    f"{block.objectives} is one; remove {where}.{key}")
        for label in block.objectives:
            s = acfg.objectives.get(label)
            for h in (s.heads if s and s.heads else block.heads) or []:
                if h not in HEADS:
                    raise ValueError(f"{where}.heads: unknown head {h!r}; choose one of {list(HEADS)}")
            for p in (s.num_pairs if s and s.num_pairs else block.num_pairs) or []:
                try:
                    validate_num_pairs(p)
                except ValueError as exc:
                    raise ValueError(f"{where}.num_pairs: {exc}") from None
        for seed in block.seeds or acfg.seeds:
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                raise ValueError(f"{where}.seeds: seeds must be non-negative ints, got {seed!r}")
        if SUPERVISED in methods and not acfg.finetune.enabled:
            label = block.objectives[methods.index(SUPERVISED)]
            raise ValueError(f"{where}.objectives: {label!r} is the from-scratch fine-tune row; enable "
                             "finetune (finetune: {num_classes: ..., train: {...}})")
    for seed in acfg.seeds:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seeds: seeds must be non-negative ints, got {seed!r}")
    ft = acfg.finetune
    if ft.enabled and (isinstance(ft.num_classes, bool) or not isinstance(ft.num_classes, int) or ft.num_classes < 2):
        raise ValueError(f"finetune.num_classes must be an int >= 2 (the number of classes), got {ft.num_classes!r}")
    # checked here, not after the first hour of pretraining
    counts = [("probe", acfg.probe, k, k in ("max_train", "max_test"))
              for k in ("epochs", "k", "batch_size", "max_train", "max_test")]
    counts += [("pretext", acfg.pretext, k, k == "max_samples") for k in ("max_samples", "batch_size")]
    counts += [("finetune", acfg.finetune, "eval_batch_size", False)]
    for section, settings, key, optional in counts:
        value = getattr(settings, key)
        if not settings.enabled or (optional and value is None):
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{section}.{key} must be a positive int{' or null' if optional else ''}, got {value!r}")
    if acfg.probe.enabled and acfg.probe.pool not in ("avg", "token"):
        raise ValueError(f"probe.pool must be 'avg' or 'token', got {acfg.probe.pool!r}")
    if acfg.probe.enabled and acfg.probe.classifier not in ("lbfgs", "adamw"):
        raise ValueError(f"probe.classifier must be 'lbfgs' or 'adamw', got {acfg.probe.classifier!r}")


def _method(acfg: AblationConfig, label: str) -> str:
    s = acfg.objectives.get(label)
    return (s.objective if s is not None and s.objective else label)


# --------------------------------------------------------------------------------------------------
# cells
# --------------------------------------------------------------------------------------------------
@dataclass
class Cell:
    """One grid point. ``pretrain``/``finetune``: resolved :class:`~part.config.Config` (None: no such
    stage; ``supervised`` has no pretraining)."""

    name: str
    label: str
    method: str
    head: str | None
    num_pairs: Any
    seed: int
    pretrain: Config | None
    finetune: Config | None

    def key(self) -> tuple:
        return (self.label, self.head, self.num_pairs)


_TYPED_OBJECTIVE = {f.name for f in dataclasses.fields(ObjectiveConfig)} - {"name", "options"}


def _pretrain_dict(acfg: AblationConfig, label: str, head, num_pairs, seed: int) -> dict:
    s = acfg.objectives.get(label) or ObjectiveSettings()
    method = s.objective or label
    d = _merge(acfg.pretrain, s.pretrain)
    obj = d.setdefault("objective", {})
    obj["name"] = method
    if method in PART_OBJECTIVES:
        obj["head"], obj["num_pairs"] = head, num_pairs
        # PART's own options live in the typed objective section (num_patches, box_size, scale_range, ...)
        opts = dict(obj.get("options") or {})
        for k, v in s.options.items():
            if k in _TYPED_OBJECTIVE:
                obj[k] = v
            else:
                opts[k] = v
        obj["options"] = opts
    else:
        obj["options"] = dict(s.options)
    d.setdefault("train", {})["seed"] = seed
    return d


def _finetune_dict(acfg: AblationConfig, label: str, seed: int, pretrain_model: dict) -> dict:
    ft = acfg.finetune
    s = acfg.objectives.get(label) or ObjectiveSettings()
    extra = s.finetune
    d = {
        "model": _merge(_merge(pretrain_model, ft.model), extra.get("model") or {}),
        "data": _merge(_merge(acfg.pretrain.get("data") or {}, ft.data), extra.get("data") or {}),
        "optim": _merge(_merge(acfg.pretrain.get("optim") or {}, ft.optim), extra.get("optim") or {}),
        "train": _merge(_merge(acfg.pretrain.get("train") or {}, ft.train), extra.get("train") or {}),
    }
    options = {"num_classes": ft.num_classes, **ft.options, **(extra.get("options") or {})}
    if (s.objective or label) == SUPERVISED:
        options.update(s.options)
    d["objective"] = {"name": SUPERVISED, "options": options}
    d["train"]["seed"] = seed
    return d


def _fmt_pairs(p) -> str:
    return str(p)


def cell_name(label: str, head: str | None, num_pairs, seed: int) -> str:
    """``part-cross_attention-p1024-s0``, ``mp3-s0``: the cell's folder name under ``<out>/cells``."""
    parts = [label]
    if head is not None:
        parts.append(str(head))
    if num_pairs is not None:
        parts.append(f"p{_fmt_pairs(num_pairs)}")
    parts.append(f"s{seed}")
    return "-".join(parts)


def plan_cells(acfg: AblationConfig) -> list[Cell]:
    """Every cell of the grid, seed by seed (then blocks, objectives, heads, #pairs), duplicates once.
    Each cell's configs are resolved and validated here, so a bad value fails before any training."""
    base_cfg = load_config(None, (), base=acfg.pretrain)
    cells: dict[str, Cell] = {}
    for i, block in enumerate(acfg.grid):
        for label in block.objectives:
            s = acfg.objectives.get(label) or ObjectiveSettings()
            method = s.objective or label
            if method in PART_OBJECTIVES:
                heads = s.heads or block.heads or [base_cfg.objective.head]
                pairs = s.num_pairs or block.num_pairs or [base_cfg.objective.num_pairs]
            else:
                heads, pairs = [None], [None]
            for head in heads:
                for p in pairs:
                    for seed in block.seeds or acfg.seeds:
                        name = cell_name(label, head, p, seed)
                        if name in cells:
                            continue
                        where = f"cell {name}"
                        pre = None
                        model = acfg.pretrain.get("model") or {}
                        if method != SUPERVISED:
                            try:
                                pre = load_config(None, (), base=_pretrain_dict(acfg, label, head, p, seed))
                            except ValueError as exc:
                                raise ValueError(f"{where}: pretrain config: {exc}") from None
                            model = pre.to_dict()["model"]
                        ft = None
                        if acfg.finetune.enabled:
                            try:
                                ft = load_config(None, (), base=_finetune_dict(acfg, label, seed, model))
                            except ValueError as exc:
                                raise ValueError(f"{where}: finetune config: {exc}") from None
                        cells[name] = Cell(name, label, method, head, p, seed, pre, ft)
    # seed-major order: a grid stopped half-way has whole tables for its first seeds
    ordered = sorted(cells.values(), key=lambda c: c.seed)
    _check_buildable(ordered)
    return ordered


def _check_buildable(cells: list[Cell]) -> None:
    """Build each distinct objective once on a narrow, one-block copy of its backbone (same image/patch
    size and #heads), so unknown options, too many pairs for the patches, ... fail before any training."""
    import torch

    from .engine import build_objective
    from .models.vit import VIT_SIZES
    from .models.vit1d import VIT1D_SIZES

    seen = set()
    for cell in cells:
        for stage, cfg in (("pretrain", cell.pretrain), ("finetune", cell.finetune)):
            if cfg is None:
                continue
            d = cfg.to_dict()
            key = json.dumps({"o": d["objective"], "m": d["model"]}, sort_keys=True, default=str)
            if key in seen:
                continue
            seen.add(key)
            m = d["model"]
            sizes = {**{f"vit_{k}": v for k, v in VIT_SIZES.items()}, **{f"vit1d_{k}": v for k, v in VIT1D_SIZES.items()}}
            preset = sizes.get(m["arch"], {})
            heads = m["num_heads"] or preset.get("num_heads")
            m["depth"] = 1  # depth changes no option check; width stays (decoder/head divisibility)
            if d["objective"].get("head") == "mlp" and heads:  # Tab. 5's MLP head has N*d*N^2*2 weights
                m["embed_dim"], m["num_heads"] = 8 * heads, heads
            small = Config(**{k: getattr(cfg, k) for k in ("objective", "data", "optim", "train")},
                           model=type(cfg.model)(**m))
            state = torch.random.get_rng_state()
            try:
                build_objective(small)
            except ValueError as exc:
                raise ValueError(f"cell {cell.name}: {stage} objective {d['objective']['name']!r}: {exc}") from None
            finally:
                torch.random.set_rng_state(state)


# --------------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------------
@dataclass
class AblationResult:
    """``out``: the ablation folder; ``rows``: one dict per cell (the CSV); ``groups``: the aggregated
    rows (mean/std per (objective, head, #pairs)); ``table``: Markdown; ``ran``/``skipped``: cell names
    run (entirely or partly) / skipped as finished in this call; ``plots``: PNG paths."""

    out: Path
    rows: list
    groups: list
    table: str
    csv_path: Path | None = None
    table_path: Path | None = None
    plots: list = field(default_factory=list)
    ran: list = field(default_factory=list)
    skipped: list = field(default_factory=list)
    cells: list = field(default_factory=list)


CSV_COLUMNS = [
    "cell", "objective", "method", "head", "num_pairs", "seed", "status",
    "pretrain_steps", "train_loss", "pretext_loss", "err_x", "err_y", "err_euclid", "err_w", "err_h", "pretext_acc",
    "probe_top1", "probe_top5", "knn_top1", "finetune_top1", "finetune_top5",
    "pretrain_s", "pretext_s", "probe_s", "finetune_s", "wall_s",
]


def _norm(obj) -> Any:
    """JSON-normal form (tuples -> lists, sorted keys) for comparing stored and current settings."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _first_difference(old, new, prefix: str = "") -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            if old.get(k, "<unset>") != new.get(k, "<unset>"):
                return _first_difference(old.get(k, "<unset>"), new.get(k, "<unset>"), f"{prefix}{k}.")
    return f"{prefix.rstrip('.')}: {old!r} -> {new!r}"


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    from .evaluation.metrics import save_results_json

    save_results_json(path, data)


# how a run executes, not what it computes: changing them keeps finished cells valid
_EXEC_KEYS = (("train", "threads"), ("data", "num_workers"), ("train", "log_every"), ("train", "ckpt_every"),
              ("train", "keep_last"), ("train", "device"))


def _run_spec(cfg: dict) -> dict:
    out = _norm(cfg)
    for section, key in _EXEC_KEYS:
        out.get(section, {}).pop(key, None)
    return out


def _cell_spec(cell: Cell, acfg: AblationConfig) -> dict:
    spec = {
        "pretrain": _run_spec(cell.pretrain.to_dict()) if cell.pretrain is not None else None,
        "pretext": dataclasses.asdict(acfg.pretext) if acfg.pretext.enabled and cell.pretrain is not None else None,
        "probe": dataclasses.asdict(acfg.probe) if acfg.probe.enabled and cell.pretrain is not None else None,
        "finetune": _run_spec(cell.finetune.to_dict()) if cell.finetune is not None else None,
    }
    return _norm(spec)


_STAGE_TYPES = {"pretext": PretextSettings, "probe": ProbeSettings}


def _canonical(stage: str, value) -> Any:
    """A stored stage spec in today's normal form: settings written by an older version get the fields
    added since then at their defaults, so adding an option to the config schema does not invalidate
    finished cells. Unreadable specs stay as they are (and compare unequal)."""
    if value is None or not isinstance(value, dict):
        return value
    try:
        if stage in ("pretrain", "finetune"):
            from .config import config_from_dict

            return _run_spec(config_from_dict(value).to_dict())
        return _norm(dataclasses.asdict(_STAGE_TYPES[stage](**value)))
    except (TypeError, ValueError, KeyError):
        return _norm(value)


def _same(stage: str, old, new) -> bool:
    return _canonical(stage, old) == new


def _run_dir_state(run: Path, spec: dict, what: str, cell: str) -> tuple[bool, bool]:
    """``(resume, overwrite)`` for the engine on an existing run folder; a folder trained with other
    settings raises ``ValueError``."""
    cfg_path = run / "config.yaml"
    if not cfg_path.is_file():
        return False, run.exists() and any(run.iterdir())
    old = _run_spec(load_config(cfg_path).to_dict())
    if old != spec:
        raise ValueError(
            f"cell {cell}: {run} holds a {what} run with other settings ({_first_difference(old, spec)}); "
            "use another --out, or resume=False (--no-resume) to rerun every cell")
    from .engine import list_checkpoints

    return (True, False) if list_checkpoints(run / "checkpoints") else (False, True)


def _last_record(run: Path) -> dict:
    path = run / "metrics.jsonl"
    if not path.is_file():
        return {}
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    return json.loads(lines[-1]) if lines else {}


def pretext_metrics(run: Path, split: str = "test", max_samples: int | None = None, batch_size: int = 256,
                    seed: int = 0) -> dict:
    """``loss`` and the objective's own metrics (MP3/DropPos position accuracy ``acc``, MAE ``mse_visible``,
    ...), averaged over the first ``max_samples`` images of ``split`` (eval mode, no gradients, masks and
    drops drawn from a generator seeded with ``seed``), plus ``num_samples``.

    For the baselines; PART's translation errors come from :func:`part.evaluation.evaluate`. (That
    function reads any output with same-shaped ``pred``/``target`` as translations, which MAE's pixel
    reconstructions also are, so it is not used for them.)"""
    import torch
    from torch.utils.data import DataLoader

    from .engine import build_dataset, load_run
    from .evaluation.features import limit, resolve_device

    objective, cfg = load_run(run)
    dev = resolve_device(cfg.train.device)
    objective.to(dev)
    data = limit(build_dataset(cfg, train=False, split=split), max_samples)
    gen = torch.Generator(device=dev).manual_seed(seed)
    sums: dict[str, float] = {}
    n = 0
    with torch.no_grad():
        for x, _ in DataLoader(data, batch_size=batch_size, shuffle=False):
            out = objective(x.to(dev), generator=gen)
            b = x.shape[0]
            for key, v in {"loss": out.loss, **out.metrics}.items():
                sums[key] = sums.get(key, 0.0) + float(v) * b  # batch means weighted by batch size
            n += b
    if n == 0:
        raise ValueError(f"the {split} split of {cfg.data.kind} is empty")
    return {**{k: v / n for k, v in sums.items()}, "num_samples": n}


def _run_cell(cell: Cell, cdir: Path, acfg: AblationConfig, spec: dict, progress: bool, log) -> dict:
    """Run the missing stages of one cell; returns ``stages`` (per stage: spec, metrics, seconds)."""
    from .api import pretrain
    from .engine.trainer import TrainingDiverged

    cdir.mkdir(parents=True, exist_ok=True)
    stages_path = cdir / "stages.json"
    stages = _read_json(stages_path)

    def done(stage: str) -> bool:
        return stage in stages and _same(stage, stages[stage].get("spec"), spec[stage])

    def record(stage: str, metrics: dict, seconds: float) -> None:
        stages[stage] = {"spec": spec[stage], "metrics": metrics, "seconds": seconds}
        _write_json(stages_path, stages)

    run = cdir / "pretrain"
    if spec["pretrain"] is not None:
        if "pretrain" in stages and not done("pretrain"):
            raise ValueError(
                f"cell {cell.name}: pretrained with other settings "
                f"({_first_difference(_canonical('pretrain', stages['pretrain']['spec']), spec['pretrain'])}); use another --out, or "
                "resume=False (--no-resume) to rerun every cell")
        if not done("pretrain") or not (run / "weights.safetensors").is_file():
            resume, overwrite = _run_dir_state(run, spec["pretrain"], "pretraining", cell.name)
            for s in ("pretext", "probe", "finetune"):  # they read the weights being (re)made
                stages.pop(s, None)
            shutil.rmtree(cdir / "finetune", ignore_errors=True)
            log(f"  pretrain {cell.method}" + (" (resuming)" if resume else ""))
            t0 = time.perf_counter()
            try:
                pretrain(cell.pretrain, out=run, resume=resume, overwrite=overwrite, progress=progress)
            except TrainingDiverged as exc:
                return {"error": f"diverged: {exc}", **stages}
            last = _last_record(run)
            metrics = {k: v for k, v in last.items() if k not in ("epoch", "lr", "img_per_s")}
            record("pretrain", metrics, time.perf_counter() - t0)

    if spec["pretext"] is not None and not done("pretext"):
        from .evaluation import evaluate

        p = acfg.pretext
        t0 = time.perf_counter()
        if cell.method in PART_OBJECTIVES:  # translation errors of the relative encoder
            res = evaluate(run, split=p.split, out=cdir / "pretext.json", batch_size=p.batch_size,
                           max_samples=p.max_samples, seed=cell.seed, verbose=False)
        else:
            res = pretext_metrics(run, p.split, p.max_samples, p.batch_size, cell.seed)
            _write_json(cdir / "pretext.json", {"task": "pretext", "run": str(run), "split": p.split,
                                                "objective": cell.method, **res})
        metrics = {k: v for k, v in res.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        record("pretext", metrics, time.perf_counter() - t0)
        log(f"  pretext: " + ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "num_samples"))

    if spec["probe"] is not None and not done("probe"):
        from .evaluation import probe

        p = acfg.probe
        t0 = time.perf_counter()
        res = probe(run, out=cdir / "probe.json", pool=p.pool, k=p.k, temperature=p.temperature,
                    classifier=p.classifier, epochs=p.epochs, lr=p.lr, weight_decay=p.weight_decay,
                    max_train=p.max_train, max_test=p.max_test, batch_size=p.batch_size, seed=cell.seed,
                    verbose=False)
        metrics = {"probe_top1": res.linear["top1"], "probe_top5": res.linear.get("top5"),
                   "knn_top1": res.knn["top1"]}
        record("probe", metrics, time.perf_counter() - t0)
        log(f"  probe: linear top1 {metrics['probe_top1']:.4f}, kNN top1 {metrics['knn_top1']:.4f}")

    if spec["finetune"] is not None and not done("finetune"):
        from .evaluation import finetune

        ft_run = cdir / "finetune"
        if "finetune" in stages or (ft_run / "config.yaml").is_file():
            old = (_canonical("finetune", stages["finetune"]["spec"]) if "finetune" in stages
                   else _run_spec(load_config(ft_run / "config.yaml").to_dict()))
            if old != spec["finetune"]:  # a new fine-tune recipe on the same pretrained weights
                log(f"  fine-tune settings changed ({_first_difference(old, spec['finetune'])}): fine-tuning again")
                shutil.rmtree(ft_run, ignore_errors=True)
                stages.pop("finetune", None)
        resume, overwrite = _run_dir_state(ft_run, spec["finetune"], "fine-tuning", cell.name)
        init = run if cell.pretrain is not None else None
        log(f"  finetune " + ("from scratch" if init is None else "from the pretrained backbone")
            + (" (resuming)" if resume else ""))
        t0 = time.perf_counter()
        try:
            res = finetune(cell.finetune, init=None if resume else init, out=ft_run, resume=resume,
                           overwrite=overwrite, progress=progress, evaluate=True,
                           eval_batch_size=acfg.finetune.eval_batch_size)
        except TrainingDiverged as exc:
            return {"error": f"fine-tune diverged: {exc}", **stages}
        metrics = {"finetune_top1": res.results["top1"], "finetune_top5": res.results.get("top5"),
                   "finetune_steps": res.train.step}
        record("finetune", metrics, time.perf_counter() - t0)
        log(f"  finetune: top1 {metrics['finetune_top1']:.4f}")
    return stages


def _row(cell: Cell, stages: dict) -> dict:
    pre = stages.get("pretrain", {}).get("metrics", {})
    pt = stages.get("pretext", {}).get("metrics", {})
    pr = stages.get("probe", {}).get("metrics", {})
    ft = stages.get("finetune", {}).get("metrics", {})
    sec = {s: stages[s]["seconds"] for s in ("pretrain", "pretext", "probe", "finetune") if s in stages}
    row = {
        "cell": cell.name, "objective": cell.label, "method": cell.method, "head": cell.head,
        "num_pairs": cell.num_pairs, "seed": cell.seed, "status": stages.get("error", "ok"),
        "pretrain_steps": pre.get("step"), "train_loss": pre.get("loss"),
        "pretext_loss": pt.get("loss"), "err_x": pt.get("err_x"), "err_y": pt.get("err_y"),
        "err_euclid": pt.get("err_euclid"), "err_w": pt.get("err_w"), "err_h": pt.get("err_h"),
        "pretext_acc": pt.get("acc"),
        "probe_top1": pr.get("probe_top1"), "probe_top5": pr.get("probe_top5"), "knn_top1": pr.get("knn_top1"),
        "finetune_top1": ft.get("finetune_top1"), "finetune_top5": ft.get("finetune_top5"),
        "pretrain_s": sec.get("pretrain"), "pretext_s": sec.get("pretext"), "probe_s": sec.get("probe"),
        "finetune_s": sec.get("finetune"), "wall_s": sum(sec.values()) if sec else None,
    }
    return row


def ablate(
    config: str | Path | dict | AblationConfig,
    out: str | Path | None = None,
    resume: bool = True,
    overrides: Iterable[str] = (),
    progress: bool = False,
    dry_run: bool = False,
    verbose: bool = True,
) -> AblationResult:
    """Run an ablation grid: every cell pretrain -> pretext errors -> probe -> fine-tune, then the
    CSV, the mean ± std table and the plots (paper Tab. 2-7, Fig. 8).

    Args:
        config: ablation YAML path (``configs/ablate_*.yaml``), mapping or :class:`AblationConfig`.
        out: the ablation folder (default ``runs/<config name>``).
        resume: continue in ``out``: skip finished cells, resume half-finished training runs from their
            checkpoints. ``False``: delete ``<out>/cells`` and rerun every cell.
        overrides: dotted ``key=value`` strings on the ablation config (``pretrain.train.max_steps=50``,
            ``grid.seeds=[0]``, ``probe.max_train=2000``, ...).
        progress: progress bars of the training runs.
        dry_run: plan and validate the cells, run nothing, write nothing (``cells`` lists them).
        verbose: print one line per stage, and the table and the folder at the end.
    Returns:
        :class:`AblationResult`.
    """
    acfg = load_ablation_config(config, overrides)
    cells = plan_cells(acfg)
    out = Path(out) if out is not None else Path("runs") / acfg.name
    log = (lambda msg: print(msg, flush=True)) if verbose else (lambda msg: None)
    if dry_run:
        for c in cells:
            log(c.name)
        log(f"{len(cells)} cells")
        return AblationResult(out, [], [], "", cells=cells)
    if not resume and (out / "cells").exists():
        shutil.rmtree(out / "cells")
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "ablation.yaml", "w") as f:
        yaml.safe_dump(_norm(acfg.to_dict()), f, sort_keys=False)

    rows, ran, skipped = [], [], []
    t_all = time.perf_counter()
    for i, cell in enumerate(cells, 1):
        cdir = out / "cells" / cell.name
        spec = _cell_spec(cell, acfg)
        result_path = cdir / "result.json"
        if result_path.is_file():
            old = _read_json(result_path)
            stored = old.get("spec")
            if "row" in old and isinstance(stored, dict) and set(stored) == set(spec) and all(
                    _same(k, stored[k], spec[k]) for k in spec):
                rows.append(old["row"])
                skipped.append(cell.name)
                log(f"[{i}/{len(cells)}] {cell.name}: finished earlier, skipped")
                continue
        log(f"[{i}/{len(cells)}] {cell.name}")
        stages = _run_cell(cell, cdir, acfg, spec, progress, log)
        row = _row(cell, stages)
        rows.append(row)
        ran.append(cell.name)
        if "error" in stages:
            log(f"  {stages['error']}")
        else:
            _write_json(result_path, {"spec": spec, "row": row})
        log(f"  done in {row['wall_s'] or 0:.1f} s")

    groups = aggregate(rows)
    table = format_markdown(groups)
    csv_path = write_csv(rows, out / "results.csv")
    table_path = out / "table.md"
    header = (f"# Ablation {acfg.name}\n\nmean ± std over seeds (sample std; a single seed shows its value). "
              f"Accuracies in %. {len(rows)} cells; see results.csv.\n\n")
    table_path.write_text(header + table + "\n")
    plots = make_plots(rows, groups, cells, out / "plots", acfg.name)
    if verbose:
        print(table)
        print(f"ablation '{acfg.name}': {len(ran)} cells run, {len(skipped)} skipped, "
              f"{time.perf_counter() - t_all:.0f} s; results in {out}")
    return AblationResult(out, rows, groups, table, csv_path, table_path, plots, ran, skipped, cells)


# --------------------------------------------------------------------------------------------------
# aggregation and reporting
# --------------------------------------------------------------------------------------------------
METRICS = ["probe_top1", "knn_top1", "finetune_top1", "err_x", "err_y", "err_euclid", "err_w", "err_h",
           "pretext_loss", "pretext_acc", "train_loss", "pretrain_s", "wall_s"]
TABLE_METRICS = [m for m in METRICS if m not in ("train_loss", "pretrain_s")]  # the CSV has every one
ACCURACIES = ["probe_top1", "knn_top1", "finetune_top1"]
LABELS = {
    "probe_top1": "linear probe top-1 (%)", "knn_top1": "kNN top-1 (%)", "finetune_top1": "fine-tune top-1 (%)",
    "err_x": "err_x", "err_y": "err_y", "err_euclid": "err_euclid", "err_w": "err_w", "err_h": "err_h",
    "pretext_loss": "pretext loss", "pretext_acc": "pretext acc (%)", "train_loss": "train loss",
    "pretrain_s": "pretrain s", "wall_s": "time (s)",
}


def _num(v) -> float | None:
    if v is None or v == "":
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def mean_std(values: Iterable) -> tuple[float | None, float | None, int]:
    """``(mean, sample std (n - 1), n)`` of the non-missing values; std is None for fewer than 2."""
    xs = [f for f in (_num(v) for v in values) if f is not None]
    if not xs:
        return None, None, 0
    m = sum(xs) / len(xs)
    if len(xs) < 2:
        return m, None, len(xs)
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)), len(xs)


def aggregate(rows: list[dict]) -> list[dict]:
    """Group rows by (objective, head, num_pairs) in first-seen order; for every metric of
    :data:`METRICS` give ``<metric>_mean``, ``<metric>_std`` (over seeds) and ``seeds`` (rows)."""
    groups: dict[tuple, list] = {}
    for r in rows:
        groups.setdefault((r["objective"], r["head"], r["num_pairs"]), []).append(r)
    out = []
    for (label, head, pairs), rs in groups.items():
        g = {"objective": label, "method": rs[0].get("method"), "head": head, "num_pairs": pairs,
             "seeds": len(rs), "failed": sum(1 for r in rs if r.get("status", "ok") != "ok")}
        for m in METRICS:
            g[f"{m}_mean"], g[f"{m}_std"], g[f"{m}_n"] = mean_std(r.get(m) for r in rs)
        out.append(g)
    return out


def _pm(mean, std, scale: float = 1.0, digits: int = 2, sig: bool = False) -> str:
    if mean is None:
        return ""
    if sig:
        s = f"{mean:.4g}"
        return s if std is None else f"{s} ± {std:.2g}"
    s = f"{mean * scale:.{digits}f}"
    return s if std is None else f"{s} ± {std * scale:.{digits}f}"


def format_markdown(groups: list[dict]) -> str:
    """The Markdown table of :func:`aggregate`'s groups: accuracies in % (2 decimals), pretext errors and
    losses with 4 significant digits, seconds rounded; columns without any value are left out."""
    from .evaluation.metrics import format_table

    rows = []
    for g in groups:
        r = {"objective": g["objective"], "head": g["head"] or "", "#pairs": "" if g["num_pairs"] is None else str(g["num_pairs"]),
             "seeds": g["seeds"] - g["failed"] if not g["failed"] else f"{g['seeds'] - g['failed']} (+{g['failed']} failed)"}
        for m in TABLE_METRICS:
            mean, std = g[f"{m}_mean"], g[f"{m}_std"]
            if m in ACCURACIES or m == "pretext_acc":
                r[LABELS[m]] = _pm(mean, std, 100.0, 2)
            elif m.endswith("_s"):
                r[LABELS[m]] = _pm(mean, std, 1.0, 0)
            else:
                r[LABELS[m]] = _pm(mean, std, sig=True)
        rows.append(r)
    cols = ["objective", "head", "#pairs", "seeds"] + [LABELS[m] for m in TABLE_METRICS if any(r[LABELS[m]] for r in rows)]
    if not any(r["head"] for r in rows):
        cols.remove("head")
    if not any(r["#pairs"] for r in rows):
        cols.remove("#pairs")
    return format_table(rows, cols)


def write_csv(rows: list[dict], path: Path) -> Path:
    """``results.csv``: one row per cell, columns :data:`CSV_COLUMNS` (missing values empty)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})
    tmp.replace(path)
    return path


def read_csv(path: str | Path) -> list[dict]:
    """Rows of a ``results.csv`` (strings; numbers stay strings, empty cells are ``""``)."""
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _pairs_value(num_pairs, cfg: Config | None) -> float | None:
    """#pairs as a number (``"all"`` -> ``N (N - 1)`` for the cell's patches)."""
    if isinstance(num_pairs, (int, float)) and not isinstance(num_pairs, bool):
        return float(num_pairs)
    if num_pairs == "all" and cfg is not None:
        from .targets import max_pairs

        m = cfg.model
        n = cfg.objective.num_patches
        if n is None:
            size = m.img_size if isinstance(m.img_size, (list, tuple)) else [m.img_size] * (1 if m.arch.startswith("vit1d") else 2)
            n = 1
            for s in size:
                n *= int(s) // m.patch_size
        return float(max_pairs(n))
    return None


def make_plots(rows: list[dict], groups: list[dict], cells: list[Cell], folder: Path, title: str) -> list[Path]:
    """``accuracy_vs_pairs.png`` (Fig. 8 style: one line per PART objective/head, error bars = std over
    seeds, other objectives as dashed horizontal lines), ``accuracy_by_objective.png`` (a bar per
    (objective, head, #pairs), one panel per accuracy) and ``pretext_errors.png`` (PART rows, Tab. 5 style).
    Panels only for metrics that have values; returns the files written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    accs = [m for m in ACCURACIES if any(g[f"{m}_mean"] is not None for g in groups)]
    cfg_of = {c.key(): c.pretrain for c in cells}
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    part_groups = [g for g in groups if g["method"] in PART_OBJECTIVES and g["num_pairs"] is not None]
    if accs and part_groups:
        fig, axes = plt.subplots(1, len(accs), figsize=(5.2 * len(accs), 4.0), squeeze=False, constrained_layout=True)
        for ax, m in zip(axes[0], accs):
            lines: dict = {}
            for g in part_groups:
                if g[f"{m}_mean"] is None:
                    continue
                x = _pairs_value(g["num_pairs"], cfg_of.get((g["objective"], g["head"], g["num_pairs"])))
                if x is not None:
                    lines.setdefault((g["objective"], g["head"]), []).append((x, g[f"{m}_mean"], g[f"{m}_std"] or 0.0, g["num_pairs"]))
            ticks = {}
            for j, ((label, head), pts) in enumerate(lines.items()):
                pts.sort()
                ax.errorbar([p[0] for p in pts], [100 * p[1] for p in pts], yerr=[100 * p[2] for p in pts],
                            marker="o", capsize=3, color=colors[j % len(colors)], label=f"{label} / {head}")
                ticks.update({p[0]: (str(p[3]) if p[3] != "all" else f"all\n({int(p[0])})") for p in pts})
            k = len(lines)
            for g in groups:
                if g["method"] in PART_OBJECTIVES or g[f"{m}_mean"] is None:
                    continue
                ax.axhline(100 * g[f"{m}_mean"], ls="--", lw=1, color=colors[k % len(colors)], label=g["objective"])
                k += 1
            ax.set_xscale("log", base=2)
            if ticks:
                ax.set_xticks(sorted(ticks), [ticks[t] for t in sorted(ticks)])
                ax.minorticks_off()
            ax.set(xlabel="#pairs per image", ylabel=LABELS[m], title=LABELS[m].replace(" (%)", ""))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(f"{title}: accuracy vs #pairs (mean ± std over seeds)")
        path = folder / "accuracy_vs_pairs.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    if accs:
        names = [_group_label(g) for g in groups]
        order = list(dict.fromkeys(g["objective"] for g in groups))
        col = [colors[order.index(g["objective"]) % len(colors)] for g in groups]
        width = max(5.0, 0.5 * len(groups) + 1.5)  # one panel per accuracy, stacked
        fig, axes = plt.subplots(len(accs), 1, figsize=(width, 1.2 + 3.6 * len(accs)), squeeze=False,
                                 constrained_layout=True)
        for ax, m in zip(axes[:, 0], accs):
            means = [100 * (g[f"{m}_mean"] or 0.0) for g in groups]
            stds = [100 * (g[f"{m}_std"] or 0.0) for g in groups]
            bars = ax.bar(range(len(groups)), means, yerr=stds, capsize=3, color=col)
            have = [(mm, sd) for mm, sd, g in zip(means, stds, groups) if g[f"{m}_mean"] is not None]
            if have:  # zoom on the values (differences are often a few points), error bars included
                lo, hi = min(mm - sd for mm, sd in have), max(mm + sd for mm, sd in have)
                pad = max(0.12 * (hi - lo), 1.0)
                ax.set_ylim(max(0.0, lo - pad), min(100.0, hi + pad))
            for b, g, mm in zip(bars, groups, means):
                ax.annotate("n/a" if g[f"{m}_mean"] is None else f"{mm:.1f}", (b.get_x() + b.get_width() / 2,
                            ax.get_ylim()[0]), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=7)
            ax.set_xticks(range(len(groups)), names, rotation=60, ha="right", fontsize=7)
            ax.set(ylabel=LABELS[m], title=LABELS[m].replace(" (%)", "") + " by objective")
            ax.grid(axis="y", alpha=0.3)
        fig.suptitle(f"{title}: accuracy per objective (mean ± std over seeds)")
        path = folder / "accuracy_by_objective.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)

    errs = [e for e in ("err_x", "err_y", "err_euclid") if any(g[f"{e}_mean"] is not None for g in part_groups)]
    if errs:
        pg = [g for g in part_groups if any(g[f"{e}_mean"] is not None for e in errs)]
        fig, ax = plt.subplots(figsize=(max(5.0, 0.5 * len(pg) * len(errs) + 2), 4.0), constrained_layout=True)
        width = 0.8 / len(errs)
        for j, e in enumerate(errs):
            ax.bar([i + (j - (len(errs) - 1) / 2) * width for i in range(len(pg))],
                   [g[f"{e}_mean"] or 0.0 for g in pg], width, yerr=[g[f"{e}_std"] or 0.0 for g in pg], capsize=2,
                   label=e, color=colors[j % len(colors)])
        ax.set_xticks(range(len(pg)), [_group_label(g) for g in pg], rotation=60, ha="right", fontsize=7)
        ax.set(ylabel="error on the held-out split", title=f"{title}: PART pretext errors (mean ± std over seeds)")
        ax.legend()
        ax.grid(axis="y", alpha=0.3)
        path = folder / "pretext_errors.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _group_label(g: dict) -> str:
    parts = [g["objective"]]
    if g["head"]:
        parts.append(g["head"])
    if g["num_pairs"] is not None:
        parts.append(f"#{g['num_pairs']}")
    return " / ".join(parts)


__all__ = [
    "ablate", "AblationResult", "AblationConfig", "load_ablation_config", "plan_cells", "Cell", "cell_name",
    "pretext_metrics",
    "aggregate", "mean_std", "format_markdown", "write_csv", "read_csv", "make_plots", "CSV_COLUMNS",
    "PART_OBJECTIVES",
]
