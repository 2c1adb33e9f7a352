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


# keys that may differ between a run's saved config and the command that requeues it (execution only)
EXECUTION_KEYS = {("train", "threads"), ("train", "device"), ("data", "num_workers"), ("data", "root")}


def resolve_run(config, out, overrides: Iterable[str] = (), resume: bool | str = False,
                init=None) -> tuple[Path, Config]:
    """The run folder and its config: with ``resume`` the run's own ``config.yaml`` (plus overrides),
    otherwise ``config`` resolved by :func:`resolve_config`, with the values it leaves to the data filled in
    (:func:`part.engine.complete_config`; ``init`` is the ``--init`` source whose recorded statistics a
    fine-tune reuses).

    ``resume="auto"``: the run's config when ``out`` holds a run, else ``config``. When both exist they must
    agree (apart from execution-only keys such as ``train.threads``), so a requeued job cannot silently
    continue with a changed recipe."""
    from .engine.datainfo import complete_config

    run = Path(out) if out is not None else default_run_dir(config)
    has_run = (run / "config.yaml").is_file()
    if not resume or (resume == "auto" and not has_run):
        return run, complete_config(resolve_config(config, overrides), init)
    if not has_run:
        raise ValueError(f"--resume: no run to resume in {run} (no config.yaml)")
    saved = complete_config(load_config(run / "config.yaml", overrides), init)
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


def pretrain(
    config: str | Path | Config | dict | None = None,
    out: str | Path | None = None,
    overrides: Iterable[str] = (),
    resume: bool | str = False,
    overwrite: bool = False,
    init: str | Path | None = None,
    progress: bool = True,
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
    Returns:
        :class:`part.engine.TrainResult` with ``run_dir``, ``step``, last ``metrics`` and ``history``.
    """
    from .engine.trainer import train

    if resume is True and init is not None:
        raise ValueError("--resume continues a run from its own checkpoint; --init is only for a new run "
                         "(drop one of them)")
    from .engine.datainfo import write_data_record

    run, cfg = resolve_run(config, out, overrides, resume)
    res = train(cfg, run, resume=resume, overwrite=overwrite, init=init, progress=progress)
    if not res.finished_before:
        write_data_record(run, cfg, [cfg.data.split])  # which samples (groups, subjects) it trained on
    return res


__all__ = ["pretrain", "resolve_config", "resolve_run", "default_run_dir"]
