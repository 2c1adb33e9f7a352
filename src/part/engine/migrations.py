"""Run folders written by earlier versions of ``part``, read as they were made: the one home of migrations.

A run folder's ``config.yaml`` records every value its run used, so that a later change of a default cannot
change a run that is resumed or reloaded. Folders written before a value was recorded, or under an earlier
rule, are brought to today's schema here, on the raw mapping, before the config is validated
(:func:`read_run_folder_config`; every command that reads a run folder's config goes through it):

* ``objective.positions`` (recorded since issue 18): a folder without it gets the sampler default of its
  time (:data:`FORMER_POSITIONS`), never today's;
* PART fields of a non-PART objective: folders written before the objective section was checked recorded
  every PART field for every objective; a value that is a PART default, current or former
  (:data:`FORMER_DEFAULTS`), is dropped (any other value is still an error of the config).

A new migration is one function here, added to :func:`migrate_run_config`, and a test in
``tests/engine/test_run_config.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..config import Config, load_config, read_yaml_mapping
from ..objectives.registry import OBJECTIVES, PART_FIELDS, RECORDED_POSITIONS, objective_sampler, part_defaults
from ..objectives.registry import part_objectives

__all__ = ["FORMER_POSITIONS", "FORMER_DEFAULTS", "former_positions", "drop_former_part_fields",
           "migrate_run_config", "read_run_folder_config"]

#: ``positions`` of run folders written before it was recorded (config without the field): the sampler
#: defaults of that time, 2D off-grid continuous (until issue 18), 1D off-grid integer, scale continuous.
#: Key: (sampler, one_d).
FORMER_POSITIONS = {("offgrid", False): "continuous", ("offgrid", True): "integer",
                    ("scale", False): "continuous", ("scale", True): "continuous"}

#: Earlier defaults of recorded PART fields: run folders written under them hold these values, also for
#: non-PART objectives. ``head`` was ``cross_attention`` until issue 18.
FORMER_DEFAULTS: dict[str, tuple] = {"head": ("cross_attention",)}


def former_positions(raw: dict) -> dict:
    """A run folder's raw config mapping with ``objective.positions`` set to the default of the time it was
    written when it holds none (:data:`FORMER_POSITIONS`). Returns ``raw`` itself when nothing is missing,
    else a copy."""
    obj = raw.get("objective") if isinstance(raw, dict) else None
    if not isinstance(obj, dict) or obj.get("positions") is not None:
        return raw
    name = obj.get("name", "part")
    sampler = objective_sampler(name) if name in OBJECTIVES else None
    if sampler not in RECORDED_POSITIONS:
        return raw
    one_d = str((raw.get("model") or {}).get("arch", "")).startswith("vit1d")
    return {**raw, "objective": {**obj, "positions": FORMER_POSITIONS[(sampler, one_d)]}}


def _same(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return list(a) == list(b)
    return type(a) is type(b) and a == b


def drop_former_part_fields(raw: dict) -> dict:
    """A run folder's raw config mapping without the PART fields that a non-PART objective's section holds at
    a PART default, current or former (:data:`FORMER_DEFAULTS`). Returns ``raw`` itself when there are none,
    else a copy; a PART field at another value is left for the config's check to name."""
    obj = raw.get("objective") if isinstance(raw, dict) else None
    if not isinstance(obj, dict) or obj.get("name", "part") not in OBJECTIVES or obj.get("name", "part") in part_objectives():
        return raw
    defaults = part_defaults()
    drop = [f for f in PART_FIELDS if obj.get(f) is not None and (
        _same(obj[f], defaults[f]) or any(_same(obj[f], old) for old in FORMER_DEFAULTS.get(f, ())))]
    if not drop:
        return raw
    return {**raw, "objective": {k: v for k, v in obj.items() if k not in drop}}


def migrate_run_config(raw: dict) -> dict:
    """A run folder's raw ``config.yaml`` mapping brought to today's schema (every migration of this
    module, in order); ``raw`` itself is never changed."""
    return drop_former_part_fields(former_positions(raw))


def read_run_folder_config(run: str | Path, overrides: Iterable[str] = ()) -> Config:
    """The config a run folder (or a published folder of ``part export --relative-encoder``) was made with:
    its ``config.yaml`` migrated (:func:`migrate_run_config`), plus ``overrides``, validated."""
    return load_config(None, overrides, base=migrate_run_config(read_yaml_mapping(Path(run) / "config.yaml")))
