"""Stage specs: what each stage of an ablation cell computes, in a JSON-normal form, to compare what was stored
(``stages.json``, a cell's ``result.json``, a committed summary) with what today's plan would run.

A spec leaves out the settings that change how a run executes but not what it computes (:data:`EXEC_KEYS`).
Specs written by an older version are read in today's normal form (:func:`canonical`: fields added since
then take their defaults), so adding an option does not invalidate finished stages.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ..config import config_from_dict
from .plan import Cell
from .settings import AblationConfig, PretextSettings, ProbeSettings

# how a run executes, not what it computes: changing them keeps finished cells valid
EXEC_KEYS = (("train", "threads"), ("data", "num_workers"), ("train", "log_every"), ("train", "ckpt_every"),
             ("train", "keep_last"), ("train", "device"))
_STAGE_TYPES = {"pretext": PretextSettings, "probe": ProbeSettings}


def normal_form(obj) -> Any:
    """JSON-normal form (tuples -> lists, sorted keys) for comparing stored and current settings."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def first_difference(old, new, prefix: str = "") -> str:
    """``"optim.lr: 0.001 -> 0.005"``: the first key (sorted, depth first) whose values differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in sorted(set(old) | set(new), key=str):
            if old.get(k, "<unset>") != new.get(k, "<unset>"):
                return first_difference(old.get(k, "<unset>"), new.get(k, "<unset>"), f"{prefix}{k}.")
    return f"{prefix.rstrip('.')}: {old!r} -> {new!r}"


def run_spec(cfg: dict) -> dict:
    """The spec of a training run's config (a mapping): normal form without :data:`EXEC_KEYS` (and without
    ``train.epochs`` when ``train.max_steps`` is set: it is then not used)."""
    out = normal_form(cfg)
    for section, key in EXEC_KEYS:
        out.get(section, {}).pop(key, None)
    train = out.get("train", {})
    if train.get("max_steps") is not None:  # max_steps overrides epochs: epochs computes nothing then
        train.pop("epochs", None)
    return out


def cell_spec(cell: Cell, acfg: AblationConfig) -> dict:
    """The spec of every stage of ``cell`` (None: the stage does not run): ``pretrain``, ``pretext``,
    ``probe``, ``probe_curve`` and one per fine-tune run (``finetune`` or ``finetune-f0.1-s2``)."""
    pre = cell.pretrain is not None
    probe = dataclasses.asdict(acfg.probe) if acfg.probe.enabled and pre else None
    spec = {
        "pretrain": run_spec(cell.pretrain.to_dict()) if pre else None,
        "pretext": dataclasses.asdict(acfg.pretext) if acfg.pretext.enabled and pre else None,
        "probe": probe,
        "probe_curve": probe if probe is not None and acfg.probe.curve else None,
    }
    for r in cell.finetunes:
        spec[r.key] = run_spec(r.config.to_dict())
        if not acfg.finetune.test:
            spec[r.key]["test"] = False
    return normal_form(spec)


def planned_stages(cells: list[Cell], acfg: AblationConfig) -> list[tuple[str, str]]:
    """Every ``(cell, stage)`` the plan runs (the results page lists those without a summary)."""
    return [(c.name, st) for c in cells for st, sp in cell_spec(c, acfg).items() if sp is not None]


def canonical(stage: str, value) -> Any:
    """A stored stage spec in today's normal form: settings written by an older version get the fields
    added since then at their defaults, so adding an option to the config schema does not invalidate
    finished cells. Unreadable specs stay as they are (and compare unequal)."""
    if value is None or not isinstance(value, dict):
        return value
    try:
        if stage == "pretrain" or stage.startswith("finetune"):
            extra = {k: value[k] for k in ("test",) if k in value}
            base = {k: v for k, v in value.items() if k not in extra}
            return {**run_spec(config_from_dict(base).to_dict()), **normal_form(extra)}
        return normal_form(dataclasses.asdict(_STAGE_TYPES[stage.replace("probe_curve", "probe")](**value)))
    except (TypeError, ValueError, KeyError):
        return normal_form(value)


def same(stage: str, old, new) -> bool:
    """Whether the stored spec ``old`` of ``stage`` equals today's ``new`` (read in today's normal form)."""
    return canonical(stage, old) == new


def filled_by_engine(old: dict, spec: dict) -> dict:
    """A run folder's recorded config as the ablation spec states it: ``data.mean`` / ``data.std`` that the
    engine filled in (signal statistics of the train split, ``part.engine.complete_config``) are dropped where
    the spec leaves them unset."""
    old = json.loads(json.dumps(old))
    for key in ("mean", "std"):
        if spec.get("data", {}).get(key) is None and key in old.get("data", {}):
            old["data"][key] = None
    return old


__all__ = ["EXEC_KEYS", "normal_form", "first_difference", "run_spec", "cell_spec", "planned_stages", "canonical", "same",
           "filled_by_engine"]
