"""What a run takes from its data: config values left to the data, and the record of the samples it used.

* :func:`complete_config` fills the config values a ``signal_npz`` run leaves to its data, before anything
  is trained, so the run's ``config.yaml`` holds them and every later command (fine-tune, probe, evaluate,
  export) reads the same numbers instead of recomputing them: ``objective.options.num_classes`` (a supervised
  run that leaves it unset) and ``data.mean`` / ``data.std`` (``data.options.normalize: dataset``: the
  per-channel statistics of the train split, or those of the ``--init`` run so that a fine-tuned encoder sees
  its inputs on the scale it was pretrained on).
* :func:`write_data_record` writes ``<run>/data.json``: for every split a run used, the file (and SHA-256),
  which rows or groups / subjects, and the class counts (``SignalDataset.record`` /
  ``SleepSplitDataset.record``). Kinds whose datasets keep no record (the image readers) write nothing.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from ..config import Config, config_from_dict, load_config, validate_config
from ..data.signal_npz import SIGNAL_NPZ_KIND, SignalNpzData

__all__ = ["complete_config", "data_records", "write_data_record", "RECORDED_KINDS"]

RECORDED_KINDS = (SIGNAL_NPZ_KIND, "sleep_synthetic", "physionet2018", "sleep_edf", "sleep_npz")
"""``data.kind`` values whose datasets say which samples they hold (written to ``data.json``)."""


def _init_stats(init, channels: int) -> tuple[list, list, str] | None:
    """``(mean, std, where)`` recorded by an ``--init`` source: a run folder's ``config.yaml`` (or that of the
    run holding a weights file) with ``normalize: dataset``, or an export's ``preprocessing``; else None."""
    if init is None or str(init).lower() == "none":
        return None
    path = Path(init)
    if path.is_file():  # an export's architecture JSON beside the weights may carry them
        for side in (path.with_suffix(".json"), path.parent / "config.json"):
            if side.is_file():
                pre = json.loads(side.read_text()).get("preprocessing") or {}
                if pre.get("normalize") == "dataset" and len(pre.get("mean") or ()) == channels:
                    return list(pre["mean"]), list(pre["std"]), str(side)
    folders = [path] if path.is_dir() else [path.parent, path.parent.parent] if path.is_file() else []
    for folder in folders:  # a run folder, or the run holding weights.safetensors / checkpoints / export
        if (folder / "config.yaml").is_file():
            d = load_config(folder / "config.yaml").data
            if (d.kind == SIGNAL_NPZ_KIND and d.options.get("normalize", "dataset") == "dataset" and d.mean
                    and len(d.mean) == channels):
                return list(d.mean), list(d.std), str(folder / "config.yaml")
            return None
    return None


def complete_config(cfg: Config, init: str | os.PathLike | None = None) -> Config:
    """``cfg`` with the values left to the data filled in (a new :class:`Config`; ``cfg`` is unchanged).

    Only ``data.kind: signal_npz`` has such values (see the module docstring); other kinds are returned as
    they are. ``init``: the ``--init`` source of a fine-tune, whose recorded ``data.mean`` / ``data.std`` are
    reused when the config sets none. Raises ``ValueError`` when ``objective.options.num_classes`` disagrees
    with the data's ``class_names``, or when a supervised run's data has no labels to count classes from.
    """
    if cfg.data.kind != SIGNAL_NPZ_KIND:
        return cfg
    data = SignalNpzData(cfg.data.root, cfg.data.options)
    out = config_from_dict(cfg.to_dict())
    if out.objective.name == "supervised":
        opts = out.objective.options
        names = data.class_names
        if opts.get("num_classes") is None:
            k = data.num_classes
            if k is None:
                raise ValueError(f"objective.options.num_classes is unset and {data.root} has no 'y' labels to "
                                 "count the classes from")
            opts["num_classes"] = k
        elif names is not None and opts["num_classes"] != len(names):
            raise ValueError(f"objective.options.num_classes={opts['num_classes']} but the data names "
                             f"{len(names)} classes (class_names {list(names)})")
    d = out.data
    if data.options.normalize == "dataset" and d.mean is None and d.std is None:
        found = _init_stats(init, data.num_channels)
        if found is not None:
            d.mean, d.std, where = found
            print(f"data.mean / data.std: the per-channel statistics recorded in {where}", file=sys.stderr)
        else:
            d.mean, d.std = data.channel_stats()
    validate_config(out)
    return out


def data_records(cfg: Config, splits) -> dict:
    """``{split: record}`` of the datasets of ``cfg`` for ``splits`` (empty for kinds that keep no record)."""
    if cfg.data.kind not in RECORDED_KINDS:
        return {}
    from .builders import build_dataset

    return {s: build_dataset(cfg, train=False, split=s).record() for s in dict.fromkeys(splits)}


def write_data_record(run: str | os.PathLike, cfg: Config, splits) -> Path | None:
    """Write ``<run>/data.json`` = ``{"kind", "root", "splits": {split: record}}`` (atomic, under the run's
    lock, main process only). Returns the path, or None when the kind keeps no record."""
    from ..io import write_json
    from .runfolder import RunLock

    if int(os.environ.get("RANK", "0")) != 0:
        return None
    records = data_records(cfg, splits)
    if not records:
        return None
    path = Path(run) / "data.json"
    with RunLock(run):
        write_json(path, {"kind": cfg.data.kind, "root": str(cfg.data.root), "splits": records})
    return path
