"""Build any pretext objective by name, on a given backbone (issue 7: one framework for the paper's
comparisons, Tab. 1-7).

==============  ==========================================================================================
name            objective
==============  ==========================================================================================
``part``        :class:`PARTModel`, off-grid sampling (paper §4)
``part_grid``   :class:`PARTModel`, grid sampling (PART-grid, §5.3 Tab. 4)
``part_scale``  :class:`PARTModel`, scale/aspect boxes, 4-d targets (§5.1 Tab. 1)
``mp3``         :class:`MP3Objective` (Zhai et al. 2022)
``droppos``     :class:`DropPosObjective` (Wang et al. 2023)
``mae``         :class:`MAEObjective` (He et al. 2022)
``supervised``  :class:`SupervisedObjective` (needs ``num_classes``; ``uses_labels = True``)
==============  ==========================================================================================

``cfg`` holds the constructor's keyword arguments (for ``part*``: ``head``, ``num_pairs``, ``num_patches``,
...; the heads are those of :mod:`part.models.registry`). Options a constructor does not take raise
``ValueError`` naming them, so a typo in a config file fails loudly.

This table is the one list of objectives and of the sampler each PART name fixes. The typed ``objective``
config section (:class:`part.config.ObjectiveConfig`) holds PART's own options (:data:`PART_FIELDS`, the
keyword arguments of :class:`PARTModel` of the same names); :func:`resolve_objective_config` checks a section
against this table (PART fields only for PART objectives, options known to the objective) and fills the PART
defaults from :class:`PARTModel`'s signature, their one home.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch.nn as nn

from ..sampling.boxes import SCALE_RANGE
from ..sampling.samplers import SAMPLERS
from .droppos import DropPosObjective
from .mae import MAEObjective
from .mp3 import MP3Objective
from .part import PARTModel
from .supervised import SupervisedObjective

# name -> (class, fixed keyword arguments implied by the name)
OBJECTIVES: dict[str, tuple[type, dict]] = {
    "part": (PARTModel, {"sampler": "offgrid"}),
    "part_grid": (PARTModel, {"sampler": "grid"}),
    "part_scale": (PARTModel, {"sampler": "scale"}),
    "mp3": (MP3Objective, {}),
    "droppos": (DropPosObjective, {}),
    "mae": (MAEObjective, {}),
    "supervised": (SupervisedObjective, {}),
}


#: Typed fields of the ``objective`` config section that only the PART objectives read: the keyword arguments
#: of :class:`PARTModel` of the same names. Other objectives take their options under ``objective.options``.
PART_FIELDS = (
    "head", "num_pairs", "num_patches", "box_size", "scale_range", "head_heads", "head_hidden", "self_pairs", "positions",
)

#: PART fields written into a run's config when unset, from :class:`PARTModel`'s defaults (the others stay
#: ``None``: derived from the data, the sampler or the head, see :class:`PARTModel`).
_RECORDED = ("head", "num_pairs", "self_pairs")

#: ``positions`` written into a run's config when unset, per sampler: the 2D samplers' own defaults
#: (:data:`~part.sampling.samplers.SAMPLERS`; the 1D samplers of the same names agree, a test holds them
#: equal): off-grid integer, scale continuous. Recorded so that a later change of default cannot change a
#: run that is resumed or reloaded (issue 18 changed the 2D off-grid default).
RECORDED_POSITIONS = {
    name: params["positions"].default
    for name, cls in SAMPLERS.items()
    if "positions" in (params := inspect.signature(cls.__init__).parameters)
}

#: ``positions`` of run folders written before it was recorded (config without the field): the sampler
#: defaults of that time, 2D off-grid continuous (until issue 18), 1D off-grid integer, scale continuous.
#: Key: (sampler, one_d).
FORMER_POSITIONS = {("offgrid", False): "continuous", ("offgrid", True): "integer",
                    ("scale", False): "continuous", ("scale", True): "continuous"}

#: Earlier defaults of recorded PART fields: run folders written under them hold these values, also for
#: non-PART objectives (see :func:`resolve_objective_config`). ``head`` was ``cross_attention`` until issue 18.
_FORMER_DEFAULTS: dict[str, tuple] = {"head": ("cross_attention",)}


def objective_names() -> list[str]:
    """The names :func:`build_objective` accepts."""
    return list(OBJECTIVES)


def part_objectives() -> list[str]:
    """The PART objectives (built on :class:`PARTModel`), e.g. ``["part", "part_grid", "part_scale"]``."""
    return [n for n, (cls, _) in OBJECTIVES.items() if cls is PARTModel]


def objective_sampler(name: str) -> str | None:
    """The sampler a PART objective's name fixes (``"offgrid"``, ``"grid"``, ``"scale"``), else ``None``."""
    return _lookup(name)[1].get("sampler")


def part_defaults() -> dict[str, Any]:
    """What a PART objective uses for each unset PART field: :class:`PARTModel`'s defaults, and
    :data:`~part.sampling.boxes.SCALE_RANGE` for ``scale_range``."""
    params = inspect.signature(PARTModel.__init__).parameters
    out = {f: params[f].default for f in PART_FIELDS}
    out["scale_range"] = list(SCALE_RANGE)
    return out


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return type(a) is type(b) and a == b


def resolve_objective_config(section) -> None:
    """Check an ``objective`` config section against the objective table and fill PART defaults, in place.

    ``section`` has ``name``, ``options`` (a mapping) and the :data:`PART_FIELDS` as attributes
    (:class:`part.config.ObjectiveConfig`). Raises ``ValueError`` naming the field for: an unknown ``name``;
    a PART field set for a non-PART objective; an ``options`` key the objective does not take, or a PART
    field given under ``options`` of a PART objective. For PART objectives the unset ``head``, ``num_pairs``
    and ``self_pairs`` are filled with :class:`PARTModel`'s defaults (and ``scale_range`` for ``part_scale``),
    and ``positions`` with its sampler's default (:data:`RECORDED_POSITIONS`), so a run folder's
    ``config.yaml`` records them.

    Run folders written before this check recorded every PART field for every objective; a non-PART section
    holding exactly a PART default, current or former (:data:`_FORMER_DEFAULTS`, e.g. ``head:
    cross_attention``), is accepted and the field cleared.
    """
    name = section.name
    if name not in OBJECTIVES:
        raise ValueError(f"objective.name: unknown objective {name!r}; choose one of {objective_names()}")
    options = dict(section.options or {})
    defaults = part_defaults()
    if name in part_objectives():
        misplaced = sorted(set(options) & set(PART_FIELDS))
        if misplaced:
            raise ValueError(f"objective.options.{misplaced[0]}: set it as objective.{misplaced[0]} (a typed PART field)")
        valid = [o for o in objective_options(name) if o not in PART_FIELDS]
        fill = _RECORDED + (("scale_range",) if objective_sampler(name) == "scale" else ())
        for f in fill:
            if getattr(section, f) is None:
                setattr(section, f, defaults[f])
        sampler = objective_sampler(name)
        if section.positions is None and sampler in RECORDED_POSITIONS:
            section.positions = RECORDED_POSITIONS[sampler]
    else:
        for f in PART_FIELDS:
            value = getattr(section, f)
            if value is None:
                continue
            if _same(value, defaults[f]) or any(_same(value, old) for old in _FORMER_DEFAULTS.get(f, ())):
                setattr(section, f, None)
                continue
            raise ValueError(
                f"objective.{f}={value!r} is used only by the PART objectives {part_objectives()}, not by "
                f"objective {name!r}; remove it ({name}'s own options go under objective.options)"
            )
        valid = objective_options(name)
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"objective.options.{unknown[0]}: objective {name!r} does not take it; its options: {valid}")


def former_positions(raw: dict) -> dict:
    """A run folder's raw config mapping (as read from its ``config.yaml``) with ``objective.positions`` set
    to the default of the time it was written when it holds none (:data:`FORMER_POSITIONS`): such a folder
    predates the recording of ``positions``, and reading it with today's default would change the run.
    Returns ``raw`` itself when nothing is missing, else a copy."""
    obj = raw.get("objective") if isinstance(raw, dict) else None
    if not isinstance(obj, dict) or obj.get("positions") is not None:
        return raw
    name = obj.get("name", "part")
    sampler = objective_sampler(name) if name in OBJECTIVES else None
    if sampler not in RECORDED_POSITIONS:
        return raw
    one_d = str((raw.get("model") or {}).get("arch", "")).startswith("vit1d")
    return {**raw, "objective": {**obj, "positions": FORMER_POSITIONS[(sampler, one_d)]}}


def objective_kwargs(section) -> dict[str, Any]:
    """The keyword arguments of :func:`build_objective` for a resolved ``objective`` config section: the PART
    fields (as :class:`PARTModel` takes them) for PART objectives, then ``options``."""
    kwargs: dict[str, Any] = {}
    if section.name in part_objectives():
        kwargs = {f: getattr(section, f) for f in PART_FIELDS}
        if kwargs["scale_range"] is not None:
            kwargs["scale_range"] = tuple(kwargs["scale_range"])
    kwargs.update(section.options or {})
    return kwargs


def objective_options(name: str) -> list[str]:
    """Keyword options the objective ``name`` accepts in ``cfg`` (its constructor's, minus fixed ones)."""
    cls, fixed = _lookup(name)
    params = list(inspect.signature(cls.__init__).parameters)[2:]  # drop self, backbone
    return [p for p in params if p not in fixed]


def _lookup(name: str) -> tuple[type, dict]:
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {objective_names()}")
    return OBJECTIVES[name]


def build_objective(name: str, backbone: nn.Module, **cfg) -> nn.Module:
    """Build objective ``name`` on ``backbone`` with constructor options ``cfg``.

    Raises ``ValueError`` for an unknown name (listing the valid ones), for options the objective does
    not take (listing the valid ones), for a missing required option (``num_classes`` of ``supervised``)
    and for ``sampler`` given to a ``part*`` name (the name fixes it).
    """
    cls, fixed = _lookup(name)
    clash = sorted(set(cfg) & set(fixed))
    if clash:
        raise ValueError(
            f"objective {name!r} fixes {', '.join(f'{k}={fixed[k]!r}' for k in clash)}; remove {clash} from its "
            f"options (choose the objective name instead: {[n for n in OBJECTIVES if OBJECTIVES[n][0] is cls]})"
        )
    valid = objective_options(name)
    unknown = sorted(set(cfg) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for objective {name!r}; valid options: {valid}")
    params = inspect.signature(cls.__init__).parameters
    missing = [p for p in valid if params[p].default is inspect.Parameter.empty and p not in cfg]
    if missing:
        raise ValueError(f"objective {name!r} needs option(s) {missing}")
    return cls(backbone, **fixed, **cfg)


__all__ = [
    "OBJECTIVES", "PART_FIELDS", "build_objective", "objective_kwargs", "objective_names", "objective_options",
    "objective_sampler", "part_defaults", "part_objectives", "resolve_objective_config",
]
