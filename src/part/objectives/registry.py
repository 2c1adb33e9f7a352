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
defaults from :class:`PARTModel`'s signature, their one home. Every other option is typed by its objective's
constructor: :func:`options_type` is the dataclass the config checks ``objective.options`` against.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
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


def resolve_objective_config(section):
    """An ``objective`` config section checked against the objective table, PART defaults filled: a new
    section (``dataclasses.replace``); ``section`` itself is never changed.

    ``section`` has ``name``, ``options`` (a mapping) and the :data:`PART_FIELDS` as attributes
    (:class:`part.config.ObjectiveConfig`). Raises ``ValueError`` naming the field for: an unknown ``name``;
    a PART field set for a non-PART objective; an ``options`` key the objective does not take, or a PART
    field given under ``options`` of a PART objective. For PART objectives the unset ``head``, ``num_pairs``
    and ``self_pairs`` are filled with :class:`PARTModel`'s defaults (and ``scale_range`` for ``part_scale``),
    and ``positions`` with its sampler's default (:data:`RECORDED_POSITIONS`), so a run folder's
    ``config.yaml`` records them. Run folders of earlier versions are read through
    :mod:`part.engine.migrations` first. The types of ``options`` are checked by the config against
    :func:`options_type`, their ranges by the objective's constructor.
    """
    name = section.name
    if name not in OBJECTIVES:
        raise ValueError(f"objective.name: unknown objective {name!r}; choose one of {objective_names()}")
    options = dict(section.options or {})
    filled = {}
    if name in part_objectives():
        misplaced = sorted(set(options) & set(PART_FIELDS))
        if misplaced:
            raise ValueError(f"objective.options.{misplaced[0]}: set it as objective.{misplaced[0]} (a typed PART field)")
        defaults = part_defaults()
        sampler = objective_sampler(name)
        for f in _RECORDED + (("scale_range",) if sampler == "scale" else ()):
            if getattr(section, f) is None:
                filled[f] = defaults[f]
        if section.positions is None and sampler in RECORDED_POSITIONS:
            filled["positions"] = RECORDED_POSITIONS[sampler]
    else:
        for f in PART_FIELDS:
            value = getattr(section, f)
            if value is not None:
                raise ValueError(
                    f"objective.{f}={value!r} is used only by the PART objectives {part_objectives()}, not by "
                    f"objective {name!r}; remove it ({name}'s own options go under objective.options)"
                )
    valid = list(options_fields(name))
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"objective.options.{unknown[0]}: objective {name!r} does not take it; its options: {valid}")
    return dataclasses.replace(section, options=options, **filled)


@functools.cache
def options_type(name: str) -> type:
    """The typed options of objective ``name`` (what goes under ``objective.options``): a frozen dataclass
    with one field per keyword of its constructor that is neither fixed by the name (a PART sampler) nor a
    typed PART field, with the constructor's type hint and default, their one home (a required keyword,
    e.g. ``num_classes`` of ``supervised``, has none). The config checks the given options' types against
    these fields at load (:func:`part.config.validate_config`), with the errors of its typed fields."""
    cls, _ = _lookup(name)
    hints = typing.get_type_hints(cls.__init__)
    params = inspect.signature(cls.__init__).parameters
    required, optional = [], []
    for p in objective_options(name):
        if p in PART_FIELDS:
            continue
        if params[p].default is inspect.Parameter.empty:
            required.append((p, hints.get(p, Any)))
        else:
            optional.append((p, hints.get(p, Any), dataclasses.field(default=params[p].default)))
    return dataclasses.make_dataclass(f"{cls.__name__}Options", required + optional, frozen=True)


def options_fields(name: str) -> dict[str, Any]:
    """``{option: type hint}`` of :func:`options_type`: the keys ``objective.options`` of ``name`` may hold."""
    return {f.name: f.type for f in dataclasses.fields(options_type(name))}


def objective_kwargs(section) -> dict[str, Any]:
    """The keyword arguments of :func:`build_objective` for an ``objective`` config section: the PART fields
    that are set (as :class:`PARTModel` takes them; an unset one keeps the constructor's default) for PART
    objectives, then ``options``. Nothing is checked here: the config was checked at load, and the objective
    checks its own arguments."""
    kwargs: dict[str, Any] = {}
    if section.name in part_objectives():
        kwargs = {f: getattr(section, f) for f in PART_FIELDS if getattr(section, f) is not None}
        if "scale_range" in kwargs:
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
    "objective_sampler", "options_fields", "options_type", "part_defaults", "part_objectives", "RECORDED_POSITIONS",
    "resolve_objective_config",
]
