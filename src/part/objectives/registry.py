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
...; the heads of Tab. 5 are ``head="cross_attention" | "pairwise_mlp" | "mlp"``). Options a constructor
does not take raise ``ValueError`` naming them, so a typo in a config file fails loudly.
"""

from __future__ import annotations

import inspect

import torch.nn as nn

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


def objective_names() -> list[str]:
    """The names :func:`build_objective` accepts."""
    return list(OBJECTIVES)


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


__all__ = ["OBJECTIVES", "build_objective", "objective_names", "objective_options"]
