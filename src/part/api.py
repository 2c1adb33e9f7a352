"""The Python API that the CLI mirrors one to one: ``part.pretrain(...)`` = ``part pretrain ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .config import Config
from .engine.runfolder import check_resume_init
from .engine.runs import default_run_dir, resolve_config, resolve_run


def pretrain(
    config: str | Path | Config | dict | None = None,
    out: str | Path | None = None,
    overrides: Iterable[str] = (),
    resume: bool | str = False,
    overwrite: bool = False,
    init: str | Path | None = None,
    progress: bool = True,
    allow_data_change: bool = False,
):
    """Pretrain with PART (or another objective of the config) and write a run folder.

    Args:
        config: YAML path, mapping or :class:`~part.config.Config` (see ``configs/``).
        out: run folder (default ``runs/<config name>``).
        overrides: dotted ``key=value`` strings, e.g. ``["optim.lr=1e-3", "train.max_steps=100"]``.
        resume: ``True``: continue the run in ``out`` exactly where its newest verified checkpoint stopped;
            ``"auto"``: continue when ``out`` holds a run, else start one (requeued jobs).
        overwrite: replace an existing run in ``out`` (after everything else was validated).
        init: initialise the weights of a NEW run from a run folder or ``.safetensors`` file.
        allow_data_change: let ``resume`` continue on data other than the run trained on (refused
            otherwise); the change is recorded with its step in ``<run>/data_changes.jsonl``.
    Returns:
        :class:`part.engine.TrainResult` with ``run_dir``, ``step``, last ``metrics`` and ``history``.
    """
    from .engine.trainer import train

    check_resume_init(resume, init)  # before resolve_run: the clash is named whatever the folder holds
    from .engine.datainfo import write_data_record

    run, cfg = resolve_run(config, out, overrides, resume)
    res = train(cfg, run, resume=resume, overwrite=overwrite, init=init, progress=progress,
                allow_data_change=allow_data_change)
    if not res.finished_before:
        write_data_record(run, cfg, [cfg.data.split])  # which samples (groups, subjects) it trained on
    return res


__all__ = ["pretrain", "resolve_config", "resolve_run", "default_run_dir"]
