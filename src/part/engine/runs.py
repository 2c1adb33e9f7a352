"""Run folders: which folder and config a command works on (:func:`resolve_config`, :func:`resolve_run`), and
reading a finished run back (config + weights -> the objective module, :func:`load_run`)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch.nn as nn

from ..config import Config, load_config, validate_config
from .datainfo import complete_config
from .folders import check_folder
from .migrations import read_run_folder_config
from .resolve import load_objective, resolve
from .runfolder import has_run, settle_run


def resolve_config(config: str | Path | Config | dict | None, overrides: Iterable[str] = ()) -> Config:
    """A :class:`Config` from a YAML path, a mapping, a Config, or None (defaults), plus dotted overrides."""
    if isinstance(config, Config):
        if not overrides:
            return validate_config(config)  # a resolved copy: the PART defaults filled, so config.yaml records them
        config = config.to_dict()
    if isinstance(config, dict):
        return load_config(None, overrides, base=config)
    return load_config(config, overrides)


def default_run_dir(config: str | Path | Config | dict | None, root: str | Path = "runs") -> Path:
    name = Path(config).stem if isinstance(config, (str, Path)) else "run"
    return Path(root) / name


# keys that may differ between a run's saved config and the command that requeues it (execution only)
EXECUTION_KEYS = {("train", "threads"), ("train", "device"), ("data", "num_workers"), ("data", "root"),
                  ("train", "strategy"), ("train", "activation_checkpointing"),
                  ("train", "fsdp_reshard")}


def resolve_run(config, out, overrides: Iterable[str] = (), resume: bool | str = False,
                init=None) -> tuple[Path, Config]:
    """The run folder and its config: with ``resume`` the run's own ``config.yaml`` (plus overrides),
    otherwise ``config`` resolved by :func:`resolve_config`, with the values it leaves to the data filled in
    (:func:`part.engine.datainfo.complete_config`; ``init`` is the ``--init`` source whose recorded statistics a
    fine-tune reuses).

    ``resume="auto"``: the run's config when ``out`` holds a run, else ``config``. When both exist they must
    agree (apart from execution-only keys such as ``train.threads``), so a requeued job cannot silently
    continue with a changed recipe."""
    run = Path(out) if out is not None else default_run_dir(config)
    settle_run(run)  # an interrupted replace is finished or undone before the folder is read
    check_folder(run, "run")  # a folder part did not make is refused before anything is read from it
    exists = has_run(run)
    if not resume or (resume == "auto" and not exists):
        return run, complete_config(resolve_config(config, overrides), init)
    if not exists:
        raise ValueError(f"--resume: no run to resume in {run} (no config.yaml)")
    saved = complete_config(run_folder_config(run, overrides), init)
    if resume == "auto" and config is not None:
        given = complete_config(resolve_config(config, overrides), init).to_dict()
        have = saved.to_dict()
        diff = [f"{sec}.{k}: {have[sec][k]!r} in the run, {given[sec][k]!r} given" for sec in have
                for k in have[sec] if (sec, k) not in EXECUTION_KEYS and have[sec][k] != given[sec][k]]
        if diff:
            raise ValueError(f"--resume auto: {run} was started with another config ({diff[0]}"
                             f"{f' and {len(diff) - 1} more' if len(diff) > 1 else ''}); use --resume to "
                             "continue with the run's own config, or another --out")
    return run, saved


def read_run_config(run_dir: str | Path) -> tuple[Path, Config]:
    """``(run folder, its config)`` of a run folder; ``ValueError`` naming the folder when it is missing or
    holds no ``config.yaml``."""
    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"run folder not found: {run}")
    if not (run / "config.yaml").is_file():
        raise ValueError(f"{run} is not a part run folder (no config.yaml)")
    return run, run_folder_config(run)


def run_folder_config(run: Path, overrides: Iterable[str] = ()) -> Config:
    """The config a run folder was made with: its ``config.yaml`` (plus ``overrides``), with the fields it
    predates read as they were then (:mod:`part.engine.migrations`), never with a later default."""
    return read_run_folder_config(run, overrides)


def load_run(run_dir: str | Path, checkpoint: str | None = None) -> tuple[nn.Module, Config]:
    """``(objective, config)``: the objective of a run rebuilt from its ``config.yaml`` and loaded with its
    weights (eval mode), and the run's config.

    The weights are found by :func:`part.engine.resolve.resolve`: ``weights.safetensors`` (finished runs) or,
    if absent or ``checkpoint="last"``, the newest checkpoint; a folder of ``part export --relative-encoder``
    (:mod:`part.engine.reference`) is rebuilt from its backbone and relative encoder. Raises ``ValueError``
    naming the folder when it is missing, is not a run folder or has nothing to load.
    """
    run = Path(run_dir)
    if not run.is_dir():
        raise ValueError(f"run folder not found: {run}")
    if not (run / "config.yaml").is_file():
        raise ValueError(f"{run} is not a part run folder (no config.yaml)")
    src = resolve(run, "run", checkpoint)
    if src.kind not in ("run", "published"):
        raise ValueError(f"run folder {run} has no weights (no weights.safetensors and no checkpoints)")
    return load_objective(src), src.config


__all__ = ["resolve_config", "default_run_dir", "EXECUTION_KEYS", "resolve_run", "read_run_config", "load_run",
           "run_folder_config"]
