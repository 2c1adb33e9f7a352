"""The ablation config: what an ``configs/ablate_*.yaml`` file may say, read and checked before any training.

An ablation config is a base pretraining config (``pretrain``, the schema of :mod:`part.config`, optionally on
top of a ``base`` file) plus a grid and the settings of the evaluation stages; see :mod:`part.ablation`.
Files, merges and ``--set`` overrides go through :mod:`part.config` (:func:`~part.config.read_yaml_mapping`,
:func:`~part.config.merge_dicts`, :func:`~part.config.apply_overrides`, whose dotted keys index lists:
``grid.0.seeds=[0]``); the pretraining config is validated by :func:`~part.config.load_config`. This module
adds the ablation's own sections and the rules of the grid.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..data.subsets import check_subset_options
from ..config import Config, apply_overrides, load_config, merge_dicts, parse_override, read_yaml_mapping
from ..evaluation.features import DEFAULT_POOL, EVAL_BATCH_SIZE, POOLS
from ..evaluation.knn import KNN_K, KNN_TEMPERATURE
from ..evaluation.probing import CLASSIFIERS, DEFAULT_CLASSIFIER, PROBE_EPOCHS, PROBE_WEIGHT_DECAY
from ..objectives.registry import part_objectives
from .folds import check_signal_data, parse_folds, parse_pretrain_on
from .paired import parse_paired

PART_OBJECTIVES = tuple(part_objectives())  # the objectives with a relative encoder: heads and #pairs vary
SUPERVISED = "supervised"  # the from-scratch fine-tune row: no pretraining


@dataclass
class PretextSettings:
    """Pretext metrics of each pretrained model on a held-out split (:func:`part.evaluation.evaluate`):
    PART ``err_x``/``err_y``/``err_euclid`` (paper App. "Image classification": "ℓ2 error, and the mean
    squared error in x and y"), MP3/DropPos position accuracy, MAE reconstruction loss."""

    enabled: bool = True
    split: str = "test"
    max_samples: int | None = 1000
    batch_size: int = EVAL_BATCH_SIZE


@dataclass
class ProbeSettings:
    """Linear probe + weighted kNN on frozen features (:func:`part.evaluation.probe`)."""

    enabled: bool = True
    pool: str = DEFAULT_POOL
    classifier: str = DEFAULT_CLASSIFIER
    epochs: int = PROBE_EPOCHS
    lr: float | None = None
    weight_decay: float = PROBE_WEIGHT_DECAY
    k: int = KNN_K
    temperature: float = KNN_TEMPERATURE
    max_train: int | None = None
    max_test: int | None = None
    batch_size: int = EVAL_BATCH_SIZE
    # validation carve of the train split (data.val_carve): the probe trains on the rest and reports the carve
    # (val_*) beside the test split; `curve` probes every kept pretraining checkpoint on the carve (probe vs
    # pretraining epoch: has the representation stopped improving?)
    val_carve: Any = None
    curve: bool = False


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
    eval_batch_size: int = EVAL_BATCH_SIZE
    # label-scarce protocol (issue 24): fine-tune at each fraction of the labels (data.label_fraction; null or
    # 1.0: all of them) with each fine-tune seed; `by_fraction` merges sections per fraction (e.g. epochs),
    # keyed by the fraction. Unset: one fine-tune per cell at the cell's seed (folder finetune/).
    fractions: list | None = None
    seeds: list | None = None
    by_fraction: dict = field(default_factory=dict)
    test: bool = True  # evaluate the test split after each fine-tune (false: validation only, for choices)


@dataclass
class ObjectiveSettings:
    """Settings of one objective label (see :mod:`part.ablation`)."""

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
    fractions: list | None = None  # the block's label fractions (default finetune.fractions)
    finetune_seeds: list | None = None  # the block's fine-tune seeds (default finetune.seeds)


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
    summaries: str | None = None  # folder of the committed stage summaries (part.ablation.summaries)
    page: str | None = None  # the results page written from them (part.ablation.page)
    claims: list = field(default_factory=list)  # the paper's claims the page judges (part.ablation.page)
    folds: list | None = None  # held-out groups of each cross-validation fold (part.ablation.folds)
    pretrain_on: str = "train"  # train, or train+test: also the evaluated signals, never their labels (folds)
    paired: Any = None  # paired differences against a baseline row (part.ablation.paired)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def settings(self, label: str) -> ObjectiveSettings:
        """The settings of ``label`` (defaults when it has none)."""
        return self.objectives.get(label) or ObjectiveSettings()

    def method(self, label: str) -> str:
        """The registry name behind ``label`` (``objectives.<label>.objective``, default the label)."""
        return self.settings(label).objective or label


_TOP_KEYS = ("name", "base", "pretrain", "grid", "seeds", "objectives", "pretext", "probe", "finetune",
             "summaries", "page", "claims", "folds", "pretrain_on", "paired")


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


def _as_list(value, where: str) -> list | None:
    if value is None:
        return None
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise ValueError(f"{where} must not be empty")
    if len({json.dumps(v) for v in value}) != len(value):
        raise ValueError(f"{where} lists a value twice: {value}")
    return value


def _pretrain_mapping(value) -> dict:
    if not isinstance(value or {}, dict):
        raise ValueError("ablation config pretrain must be a mapping (a pretraining config)")
    return value or {}


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
        data = read_yaml_mapping(path, "ablation config file")
        data.setdefault("name", path.stem)
        folder = path.parent
    elif isinstance(config, dict):
        data = merge_dicts(config, {})
    else:
        raise ValueError(f"config must be a YAML path, a mapping or an AblationConfig, got {type(config).__name__}")
    overrides = list(overrides or ())
    keys = [parse_override(o)[0] for o in overrides]
    unknown = sorted((set(data) | {k.split(".")[0] for k in keys}) - set(_TOP_KEYS))
    if unknown:
        raise ValueError(f"unknown ablation config key {unknown[0]!r}; valid top-level keys: {list(_TOP_KEYS)}")
    data, base, pretrain, base_cfg = _pretraining(data, overrides, keys, folder)
    seeds = _as_list(data.get("seeds", [base_cfg.train.seed]), "seeds")
    blocks = _grid_blocks(data.get("grid"))
    objectives = _objective_settings(data.get("objectives"))
    acfg = AblationConfig(
        name=str(data.get("name") or "ablation"), base=base, pretrain=pretrain, grid=blocks, seeds=seeds,
        objectives=objectives,
        pretext=_section(PretextSettings, data.get("pretext", {}), "pretext"),
        probe=_section(ProbeSettings, data.get("probe", {}), "probe"),
        finetune=_section(FinetuneSettings, data.get("finetune", False), "finetune"),
        summaries=_optional_path(data.get("summaries"), "summaries"),
        page=_optional_path(data.get("page"), "page"),
        claims=_claims(data.get("claims")),
        folds=parse_folds(data.get("folds")),
        pretrain_on=parse_pretrain_on(data.get("pretrain_on")),
        paired=parse_paired(data.get("paired")),
    )
    check_signal_data(acfg.pretrain.get("data") or {}, acfg.folds, acfg.pretrain_on)
    ft = acfg.finetune
    ft.fractions = _as_list(ft.fractions, "finetune.fractions")
    ft.seeds = _as_list(ft.seeds, "finetune.seeds")
    _validate(acfg, base_cfg)
    return acfg


def _pretraining(data: dict, overrides: list[str], keys: list[str], folder: Path) -> tuple[dict, str | None, dict, Config]:
    """The pretraining config: the defaults, then the ``base`` file (relative to the ablation config's folder),
    then ``pretrain``; the overrides apply to the whole (``pretrain.data.rrc_scale.0=0.3`` indexes the list
    wherever it was set). Returns ``(data with overrides, base path, pretrain mapping, validated Config)``."""
    base = apply_overrides({"base": data.get("base")}, [o for o, k in zip(overrides, keys) if k == "base"])["base"]
    pretrain = Config().to_dict()
    if base is not None:
        bpath = Path(base)
        if not bpath.is_absolute() and not bpath.is_file():
            bpath = folder / bpath
        if not bpath.is_file():
            raise ValueError(f"ablation config base: pretraining config file not found: {base} (looked in {folder})")
        pretrain = merge_dicts(pretrain, read_yaml_mapping(bpath, "base config"))
        base = str(bpath)
    given = _pretrain_mapping(data.get("pretrain"))
    data = apply_overrides({**data, "pretrain": merge_dicts(pretrain, given)}, overrides)
    pretrain = _pretrain_mapping(data["pretrain"])
    try:
        base_cfg = load_config(None, (), base=pretrain)
    except ValueError as exc:
        raise ValueError(f"ablation config pretrain: {exc}") from None
    return data, base, pretrain, base_cfg


def _grid_blocks(raw_grid) -> list[GridBlock]:
    """``grid``: one mapping or a list of them, each with ``objectives`` (and heads, num_pairs, seeds, ...)."""
    if raw_grid is None:
        raise ValueError("ablation config needs a grid (grid: {objectives: [...], num_pairs: [...], seeds: [...]})")
    blocks = []
    for i, b in enumerate(raw_grid if isinstance(raw_grid, list) else [raw_grid]):
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
            fractions=_as_list(b.get("fractions"), f"{where}.fractions"),
            finetune_seeds=_as_list(b.get("finetune_seeds"), f"{where}.finetune_seeds"),
        ))
    return blocks


def _objective_settings(raw) -> dict[str, ObjectiveSettings]:
    """``objectives``: per label (an objective or a named variant), its :class:`ObjectiveSettings`."""
    objectives = {}
    for label, s in (raw or {}).items():
        where = f"objectives.{label}"
        if s is None:
            s = {}
        if not isinstance(s, dict):
            raise ValueError(f"{where} must be a mapping (objective, options, pretrain, finetune, heads, num_pairs)")
        settings = _section(ObjectiveSettings, s, where)
        settings.heads = _as_list(settings.heads, f"{where}.heads")
        settings.num_pairs = _as_list(settings.num_pairs, f"{where}.num_pairs")
        objectives[str(label)] = settings
    return objectives


def _optional_path(value, key: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise ValueError(f"ablation config {key} must be a path (a string) or null, got {value!r}")
    return value


CLAIM_KEYS = ("name", "better", "worse", "metric", "margin")


def _claims(value) -> list:
    """``claims``: a list of ``{name, better, worse, metric, margin}``; ``better``/``worse`` name a row of the
    page (``label`` or ``label@fraction``), ``metric`` one of ``finetune_top1`` (default), ``probe_top1``,
    ``knn_top1``; ``margin`` (points, default 0): "within ``margin``" claims pass when ``better - worse >
    -margin`` at the 95 % level."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("ablation config claims must be a list of {name, better, worse, metric, margin}")
    out = []
    for i, c in enumerate(value):
        if not isinstance(c, dict) or not {"name", "better", "worse"} <= set(c):
            raise ValueError(f"claims[{i}] must be a mapping with name, better and worse, got {c!r}")
        unknown = sorted(set(c) - set(CLAIM_KEYS))
        if unknown:
            raise ValueError(f"unknown key claims[{i}].{unknown[0]}; valid keys: {list(CLAIM_KEYS)}")
        metric = c.get("metric", "finetune_top1")
        if metric not in ("finetune_top1", "probe_top1", "knn_top1"):
            raise ValueError(f"claims[{i}].metric must be finetune_top1, probe_top1 or knn_top1, got {metric!r}")
        margin = c.get("margin", 0.0)
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin < 0:
            raise ValueError(f"claims[{i}].margin must be a number >= 0 (points), got {margin!r}")
        out.append({"name": str(c["name"]), "better": str(c["better"]), "worse": str(c["worse"]),
                    "metric": metric, "margin": float(margin)})
    return out


def _check_fractions(values, where: str) -> None:
    for f in values or []:
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0 < f <= 1:
            raise ValueError(f"{where}: label fractions must be numbers in (0, 1], got {f!r}")


def _validate(acfg: AblationConfig, base_cfg: Config) -> None:
    """Every value of the ablation config that can fail, checked at load (not after an hour of pretraining)."""
    _validate_objectives(acfg)
    for i, block in enumerate(acfg.grid):
        _validate_block(acfg, block, f"grid[{i}]" if len(acfg.grid) > 1 else "grid")
    for seed in acfg.seeds:
        _check_seed(seed, "seeds: seeds")
    _validate_finetune(acfg)
    _validate_counts(acfg)


def _check_seed(seed, what: str) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"{what} must be non-negative ints, got {seed!r}")


def _validate_objectives(acfg: AblationConfig) -> None:
    """``objectives.<label>``: a known objective, PART-only keys only on PART rows, no pretraining for the
    supervised row, known fine-tune sections."""
    from ..objectives.registry import objective_names

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


def _validate_block(acfg: AblationConfig, block: GridBlock, where: str) -> None:
    """One grid block: known objectives (or variants), heads and #pairs only where a PART row varies them,
    valid heads, #pairs, seeds and fractions, fine-tuning enabled when the supervised row is in it."""
    from ..models.registry import HEADS
    from ..objectives.registry import objective_names
    from ..targets import validate_num_pairs

    names = objective_names()
    methods = []
    for label in block.objectives:
        if not isinstance(label, str):
            raise ValueError(f"{where}.objectives: entries must be objective names, got {label!r}")
        if label not in acfg.objectives and label not in names:
            raise ValueError(
                f"{where}.objectives: unknown objective {label!r}; choose one of {names} or define a "
                f"variant under objectives.{label} (e.g. objective: supervised, options: {{...}})")
        methods.append(acfg.method(label))
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
        _check_seed(seed, f"{where}.seeds: seeds")
    if SUPERVISED in methods and not acfg.finetune.enabled:
        label = block.objectives[methods.index(SUPERVISED)]
        raise ValueError(f"{where}.objectives: {label!r} is the from-scratch fine-tune row; enable "
                         "finetune (finetune: {num_classes: ..., train: {...}})")


def _validate_finetune(acfg: AblationConfig) -> None:
    """``finetune``: label fractions (its own and the grid blocks'), fine-tune seeds, ``by_fraction`` sections,
    the number of classes."""
    ft = acfg.finetune
    _check_fractions(ft.fractions, "finetune.fractions")
    for i, block in enumerate(acfg.grid):
        _check_fractions(block.fractions, f"grid[{i}].fractions")
        for seed in (block.finetune_seeds or []) + (ft.seeds or []):
            _check_seed(seed, "finetune seeds")
    for key, section in ft.by_fraction.items():
        _check_fractions([key], "finetune.by_fraction")
        if not isinstance(section, dict) or set(section) - {"options", "model", "data", "optim", "train"}:
            raise ValueError(f"finetune.by_fraction.{key} must be a mapping of options, model, data, optim, train")
    if ft.enabled and (isinstance(ft.num_classes, bool) or not isinstance(ft.num_classes, int) or ft.num_classes < 2):
        raise ValueError(f"finetune.num_classes must be an int >= 2 (the number of classes), got {ft.num_classes!r}")


def _validate_counts(acfg: AblationConfig) -> None:
    """The probe's, the pretext stage's and the fine-tune evaluation's counts, the probe's carve, pool and
    classifier."""
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
    if acfg.probe.enabled and acfg.probe.val_carve is not None:
        try:
            check_subset_options(acfg.probe.val_carve, 0, None, None)
        except ValueError as exc:
            raise ValueError(f"probe.val_carve: {str(exc).split(': ', 1)[1]}") from None
    for key, valid in (("pool", POOLS), ("classifier", CLASSIFIERS)):
        value = getattr(acfg.probe, key)
        if acfg.probe.enabled and value not in valid:
            raise ValueError(f"probe.{key} must be {' or '.join(map(repr, valid))}, got {value!r}")


__all__ = ["AblationConfig", "PretextSettings", "ProbeSettings", "FinetuneSettings", "ObjectiveSettings",
           "GridBlock", "load_ablation_config", "PART_OBJECTIVES", "SUPERVISED"]
