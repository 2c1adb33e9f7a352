"""Grid -> cells: every point of an ablation grid as resolved, validated :class:`~part.config.Config` s.

A cell is one (objective label, head, #pairs, seed). Its pretraining config is the base ``pretrain`` config
with the label's ``pretrain`` sections merged on, the objective, head, #pairs and seed set; its fine-tune
config the base ``model`` (as pretrained), ``data``, ``optim``, ``train`` with ``finetune.*`` merged on and
``objective: supervised`` (paper §4 "Supervised finetuning"). Both are built with :func:`part.config.load_config`
and every distinct objective is built once on a one-block copy of its backbone, so a bad value fails here,
before any training.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..config import Config, ObjectiveConfig, load_config, merge_dicts
from ..engine import build_objective
from ..models.vit import VIT_SIZES
from ..objectives.registry import PART_FIELDS
from ..models.vit1d import VIT1D_SIZES
from .folds import fold_data, transductive
from .settings import PART_OBJECTIVES, SUPERVISED, AblationConfig


@dataclass
class FinetuneRun:
    """One fine-tune of a cell: ``key`` (its stage name and folder: ``finetune``, or ``finetune-f0.1-s2`` in
    the label-fraction protocol), the label ``fraction`` (None: all labels), the fine-tune ``seed`` and its
    resolved ``config``."""

    key: str
    fraction: float | None
    seed: int
    config: Config


@dataclass
class Cell:
    """One grid point. ``pretrain``: resolved :class:`~part.config.Config` (None: ``supervised`` has no
    pretraining); ``finetunes``: its fine-tune runs (empty: fine-tuning disabled). ``num_patches``: N patches
    per image of a PART cell's objective, as its sampler reports it (None for other objectives). ``fold``: the
    cell's fold (``folds:``; None without folds); ``probe_data``: the labelled ``data`` root / options the probe
    reads when the pretraining read other data, and ``pretrain_data`` that data to write before pretraining
    (``pretrain_on: train+test``; :mod:`part.ablation.folds`)."""

    name: str
    label: str
    method: str
    head: str | None
    num_pairs: Any
    seed: int
    pretrain: Config | None
    finetunes: list = field(default_factory=list)
    num_patches: int | None = None
    fold: int | None = None
    probe_data: dict | None = None
    pretrain_data: Any = None

    @property
    def finetune(self) -> Config | None:
        """The config of the cell's first fine-tune (the only one outside the label-fraction protocol)."""
        return self.finetunes[0].config if self.finetunes else None

    def key(self) -> tuple:
        return (self.label, self.head, self.num_pairs)


_TYPED_OBJECTIVE = {f.name for f in dataclasses.fields(ObjectiveConfig)} - {"name", "options"}


def pretrain_dict(acfg: AblationConfig, label: str, head, num_pairs, seed: int) -> dict:
    """The pretraining config (a mapping) of the cell ``(label, head, num_pairs, seed)``."""
    s = acfg.settings(label)
    method = acfg.method(label)
    d = merge_dicts(acfg.pretrain, s.pretrain)
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
    else:  # the base config's PART fields (e.g. num_pairs) do not apply to a baseline
        for k in PART_FIELDS:
            obj.pop(k, None)
        obj["options"] = dict(s.options)
    d.setdefault("train", {})["seed"] = seed
    return d


def finetune_dict(acfg: AblationConfig, label: str, seed: int, pretrain_model: dict,
                  fraction: float | None = None) -> dict:
    """The fine-tune config (a mapping) of ``label`` at ``seed`` on the pretrained ``model`` section, at the
    label ``fraction`` (``data.label_fraction``; None or 1: all labels) with its ``finetune.by_fraction``
    sections merged on last."""
    ft = acfg.finetune
    s = acfg.settings(label)
    extra = merge_dicts(s.finetune, fraction_sections(acfg, fraction))
    d = {
        "model": merge_dicts(merge_dicts(pretrain_model, ft.model), extra.get("model")),
        "data": merge_dicts(merge_dicts(acfg.pretrain.get("data") or {}, ft.data), extra.get("data")),
        "optim": merge_dicts(merge_dicts(acfg.pretrain.get("optim") or {}, ft.optim), extra.get("optim")),
        "train": merge_dicts(merge_dicts(acfg.pretrain.get("train") or {}, ft.train), extra.get("train")),
    }
    options = {"num_classes": ft.num_classes, **ft.options, **(extra.get("options") or {})}
    if acfg.method(label) == SUPERVISED:
        options.update(s.options)
    d["objective"] = {"name": SUPERVISED, "options": options}
    d["train"]["seed"] = seed
    if fraction is not None and fraction < 1:
        d["data"]["label_fraction"] = fraction
    return d


def fraction_sections(acfg: AblationConfig, fraction: float | None) -> dict:
    """``finetune.by_fraction`` of ``fraction`` (keys compared as numbers: ``0.1`` and ``"0.1"`` agree)."""
    if fraction is None:
        return {}
    for key, sections in acfg.finetune.by_fraction.items():
        if float(key) == float(fraction):
            return sections
    return {}


def finetune_key(fraction: float | None, seed: int | None) -> str:
    """``finetune`` (one fine-tune per cell) or ``finetune-f0.1-s2``: a fine-tune's stage name and folder."""
    if fraction is None and seed is None:
        return "finetune"
    return f"finetune-f{fraction if fraction is not None else 1:g}-s{seed}"


def cell_name(label: str, head: str | None, num_pairs, seed: int, fold: int | None = None) -> str:
    """``part-cross_attention-p1024-s0``, ``mp3-s0``, ``mp3-k2-s0`` (fold 2): the cell's folder name under
    ``<out>/cells``."""
    parts = [label]
    if head is not None:
        parts.append(str(head))
    if num_pairs is not None:
        parts.append(f"p{num_pairs}")
    if fold is not None:
        parts.append(f"k{fold}")
    parts.append(f"s{seed}")
    return "-".join(parts)


def plan_cells(acfg: AblationConfig, out: str | Path | None = None) -> list[Cell]:
    """Every cell of the grid, seed by seed (then folds, blocks, objectives, heads, #pairs), duplicates once.
    Each cell's configs are resolved and validated here, so a bad value fails before any training. ``out``:
    the ablation folder (default ``runs/<name>``), where ``pretrain_on: train+test`` puts its pretraining data."""
    out = Path(out) if out is not None else Path("runs") / acfg.name
    cells: dict[str, Cell] = {}
    for fold, groups in enumerate(acfg.folds) if acfg.folds else [(None, None)]:
        facfg = acfg if groups is None else dataclasses.replace(
            acfg, pretrain={**acfg.pretrain, "data": fold_data(acfg.pretrain["data"], groups)})
        base_cfg = load_config(None, (), base=facfg.pretrain)
        for block in facfg.grid:
            for label in block.objectives:
                s = facfg.settings(label)
                method = facfg.method(label)
                if method in PART_OBJECTIVES:
                    heads = s.heads or block.heads or [base_cfg.objective.head]
                    pairs = s.num_pairs or block.num_pairs or [base_cfg.objective.num_pairs]
                else:
                    heads, pairs = [None], [None]
                for head in heads:
                    for p in pairs:
                        for seed in block.seeds or facfg.seeds:
                            name = cell_name(label, head, p, seed, fold)
                            if name not in cells:
                                cells[name] = _cell(facfg, name, label, method, head, p, seed, block, fold, out)
    # seed-major order: a grid stopped half-way has whole tables for its first seeds
    ordered = sorted(cells.values(), key=lambda c: c.seed)
    check_buildable(ordered)
    return ordered


def _cell(acfg: AblationConfig, name: str, label: str, method: str, head, num_pairs, seed: int,
          block=None, fold: int | None = None, out: Path | None = None) -> Cell:
    where = f"cell {name}"
    pre = None
    model = acfg.pretrain.get("model") or {}
    probe_data = source = None
    if method != SUPERVISED:
        try:
            d = pretrain_dict(acfg, label, head, num_pairs, seed)
            if acfg.pretrain_on != "train":
                d, probe_data, source = transductive(d, out, fold)
            pre = load_config(None, (), base=d)
        except ValueError as exc:
            raise ValueError(f"{where}: pretrain config: {exc}") from None
        model = pre.to_dict()["model"]
    runs = []
    if acfg.finetune.enabled:
        fractions = (block.fractions if block is not None and block.fractions else None) or acfg.finetune.fractions
        seeds = (block.finetune_seeds if block is not None and block.finetune_seeds else None) or acfg.finetune.seeds
        protocol = fractions is not None or seeds is not None
        for fraction in fractions or [None]:
            for ft_seed in seeds or [seed]:
                key = finetune_key(fraction, ft_seed) if protocol else finetune_key(None, None)
                try:
                    cfg = load_config(None, (), base=finetune_dict(acfg, label, ft_seed, model, fraction))
                except ValueError as exc:
                    raise ValueError(f"{where}: {key} config: {exc}") from None
                runs.append(FinetuneRun(key, fraction, ft_seed, cfg))
    return Cell(name, label, method, head, num_pairs, seed, pre, runs, fold=fold, probe_data=probe_data,
                pretrain_data=source)


def check_buildable(cells: list[Cell]) -> None:
    """Build each distinct objective once on a narrow, one-block copy of its backbone (same image/patch
    size and #heads), so unknown options, too many pairs for the patches, ... fail before any training.
    Sets each PART cell's ``num_patches`` from the objective built for it."""
    built: dict[str, int | None] = {}
    for cell in cells:
        for stage, cfg in [("pretrain", cell.pretrain)] + [(r.key, r.config) for r in cell.finetunes]:
            if cfg is None:
                continue
            d = cfg.to_dict()
            key = json.dumps({"o": d["objective"], "m": d["model"]}, sort_keys=True, default=str)
            if key not in built:
                built[key] = _build_small(cfg, d, f"cell {cell.name}: {stage}")
            if stage == "pretrain" and cell.method in PART_OBJECTIVES:
                cell.num_patches = built[key]


_PRESETS = {**{f"vit_{k}": v for k, v in VIT_SIZES.items()}, **{f"vit1d_{k}": v for k, v in VIT1D_SIZES.items()}}


def _build_small(cfg: Config, d: dict, where: str) -> int | None:
    """Build ``cfg``'s objective on a one-block copy of its backbone; returns the objective's ``num_patches``
    for PART objectives (None otherwise). The global torch RNG is left as it was."""
    m = d["model"]
    preset = _PRESETS.get(m["arch"], {})
    heads = m["num_heads"] or preset.get("num_heads")
    m["depth"] = 1  # depth changes no option check; width stays (decoder/head divisibility)
    if d["objective"].get("head") == "mlp" and heads:  # Tab. 5's MLP head has N*d*N^2*2 weights
        m["embed_dim"], m["num_heads"] = 8 * heads, heads
    small = Config(**{k: getattr(cfg, k) for k in ("objective", "data", "optim", "train")}, model=type(cfg.model)(**m))
    state = torch.random.get_rng_state()
    try:
        objective = build_objective(small)
    except ValueError as exc:
        raise ValueError(f"{where} objective {d['objective']['name']!r}: {exc}") from None
    finally:
        torch.random.set_rng_state(state)
    return objective.num_patches if cfg.objective.name in PART_OBJECTIVES else None


__all__ = ["Cell", "FinetuneRun", "cell_name", "plan_cells", "check_buildable", "pretrain_dict", "finetune_dict",
           "finetune_key", "fraction_sections"]
