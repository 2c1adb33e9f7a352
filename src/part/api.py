"""The Python API that the CLI mirrors one to one: ``part.pretrain(...)`` = ``part pretrain ...``."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

from .config import Config, load_config, validate_config


def resolve_config(config: str | Path | Config | dict | None, overrides: Iterable[str] = ()) -> Config:
    """A :class:`Config` from a YAML path, a mapping, a Config, or None (defaults), plus dotted overrides."""
    if isinstance(config, Config):
        if not overrides:
            return config
        config = config.to_dict()
    if isinstance(config, dict):
        return load_config(None, overrides, base=config)
    cfg = load_config(config, overrides)
    validate_config(cfg)
    return cfg


def default_run_dir(config: str | Path | Config | dict | None, root: str | Path = "runs") -> Path:
    name = Path(config).stem if isinstance(config, (str, Path)) else "run"
    return Path(root) / name


def resolve_run(config, out, overrides: Iterable[str] = (), resume: bool = False) -> tuple[Path, Config]:
    """The run folder and its config: with ``resume`` the run's own ``config.yaml`` (plus overrides),
    otherwise ``config`` resolved by :func:`resolve_config`."""
    run = Path(out) if out is not None else default_run_dir(config)
    if not resume:
        return run, resolve_config(config, overrides)
    if not (run / "config.yaml").is_file():
        raise ValueError(f"--resume: no run to resume in {run} (no config.yaml)")
    return run, load_config(run / "config.yaml", overrides)


def pretrain(
    config: str | Path | Config | dict | None = None,
    out: str | Path | None = None,
    overrides: Iterable[str] = (),
    resume: bool = False,
    overwrite: bool = False,
    init: str | Path | None = None,
    progress: bool = True,
):
    """Pretrain with PART (or another objective of the config) and write a run folder.

    Args:
        config: YAML path, mapping or :class:`~part.config.Config` (see ``configs/``).
        out: run folder (default ``runs/<config name>``).
        overrides: dotted ``key=value`` strings, e.g. ``["optim.lr=1e-3", "train.max_steps=100"]``.
        resume: continue the run in ``out`` exactly where its last checkpoint stopped.
        overwrite: replace an existing run in ``out``.
        init: initialise the weights of a NEW run from a run folder or ``.safetensors`` file.
    Returns:
        :class:`part.engine.TrainResult` with ``run_dir``, ``step``, last ``metrics`` and ``history``.
    """
    from .engine.trainer import train

    run, cfg = resolve_run(config, out, overrides, resume)
    return train(cfg, run, resume=resume, overwrite=overwrite, init=init, progress=progress)


__all__ = ["pretrain", "resolve_config", "resolve_run", "default_run_dir"]
