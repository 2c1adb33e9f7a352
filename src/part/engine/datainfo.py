"""What a run takes from its data: config values left to the data, and the record of the samples it used.

* :func:`complete_config` fills the config values a run leaves to its data (the kinds that describe their
  data, :attr:`part.data.kinds.DataKind.describe`: ``signal_npz``), before anything is trained, so the run's
  ``config.yaml`` holds them and every later command (fine-tune, probe, evaluate, export) reads the same
  numbers instead of recomputing them: ``objective.options.num_classes`` (a supervised
  run that leaves it unset) and ``data.mean`` / ``data.std`` (``data.options.normalize: dataset``: the
  per-channel statistics of the train split, or those of the ``--init`` run so that a fine-tuned encoder sees
  its inputs on the scale it was pretrained on).
* :func:`write_data_record` writes ``<run>/data.json``: for every split a run used, the file (and SHA-256),
  which rows or groups / subjects, and the class counts (``SignalDataset.record`` /
  ``SleepSplitDataset.record``). Kinds whose datasets keep no record (the image readers; ``records`` of
  :data:`part.data.kinds.DATA_KINDS`) write nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..config import Config, config_from_dict, validate_config
from ..data.kinds import DATA_KINDS, data_kind, data_options

__all__ = ["complete_config", "data_records", "write_data_record", "RECORDED_KINDS", "IDENTITY_KEYS",
           "data_fingerprint", "data_changes"]

RECORDED_KINDS = tuple(name for name, kind in DATA_KINDS.items() if kind.records)
"""``data.kind`` values whose datasets say which samples they hold (written to ``data.json``)."""


def _init_stats(init, channels: int) -> tuple[list, list, str] | None:
    """``(mean, std, where)`` recorded by an ``--init`` source (:func:`part.engine.resolve.resolve`: a run
    folder, a weights file of a run, an export) whose inputs were normalised with ``normalize: dataset``
    statistics of ``channels`` channels; else None."""
    if init is None or str(init).lower() == "none":
        return None
    from .resolve import resolve

    src = resolve(init, "--init")
    pre = src.preprocessing
    if pre.get("normalize") == "dataset" and pre.get("mean") and len(pre["mean"]) == channels:
        return list(pre["mean"]), list(pre["std"]), str(src.where)
    return None


def complete_config(cfg: Config, init: str | os.PathLike | None = None) -> Config:
    """``cfg`` with the values left to the data filled in (a new :class:`Config`; ``cfg`` is unchanged).

    Only the kinds that describe their data (``data.kind: signal_npz``) have such values (see the module
    docstring); other kinds are returned as they are. ``init``: the ``--init`` source of a fine-tune, whose
    recorded ``data.mean`` / ``data.std`` are reused when the config sets none. Raises ``ValueError`` when
    ``objective.options.num_classes`` disagrees with the data's ``class_names``, or when a supervised run's
    data has no labels to count classes from.
    """
    describe = data_kind(cfg.data.kind).describe
    if describe is None:
        return cfg
    options = data_options(cfg.data)
    data = describe(cfg.data.root, options)
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
    if options.normalize == "dataset" and d.mean is None and d.std is None:
        found = _init_stats(init, data.num_channels)
        if found is not None:
            d.mean, d.std, where = found
            print(f"data.mean / data.std: the per-channel statistics recorded in {where}", file=sys.stderr)
        else:
            d.mean, d.std = data.channel_stats()
    return validate_config(out)


def data_records(cfg: Config, splits) -> dict:
    """``{split: record}`` of the datasets of ``cfg`` for ``splits`` (empty for kinds that keep no record)."""
    if not data_kind(cfg.data.kind).records:
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


# --- what a run trained on: a cheap fingerprint, compared on --resume --------------------------------------
IDENTITY_KEYS = ("kind", "root", "split", "max_samples", "skip_corrupt", "val_carve", "carve_seed",
                 "label_fraction", "label_seed", "options")
"""``data`` fields that say which samples a run reads (augmentation and ``num_workers`` do not)."""

_HEAD = 1 << 20  # bytes hashed at each end of a data file
_MAX_FILES = 10_000  # entries of a data folder listed (path and size) for the fingerprint


def _labels_of(dataset):
    """The ``(N,)`` labels a dataset exposes without reading items (through ``Subset`` / wrappers), or None."""
    import numpy as np

    seen = 0
    while dataset is not None and seen < 8:
        indices = getattr(dataset, "indices", None)
        inner = getattr(dataset, "dataset", None)
        labels = getattr(dataset, "labels", None) if inner is None else None
        if labels is not None:
            return np.asarray(labels).reshape(-1)
        if inner is not None and indices is not None:
            below = _labels_of(inner)
            return None if below is None else below[np.asarray(indices)]
        dataset, seen = inner, seen + 1
    return None


def _file_digest(path: Path, h) -> None:
    size = path.stat().st_size
    h.update(f"{size}\n".encode())
    with open(path, "rb") as f:
        h.update(f.read(_HEAD))
        if size > 2 * _HEAD:
            f.seek(size - _HEAD)
        h.update(f.read(_HEAD))


def _root_digest(root) -> str | None:
    """sha256 over a data file's size and first and last MiB, or over a data folder's listing (relative
    path and size of up to :data:`_MAX_FILES` entries, in sorted order; the first and last MiB of a folder
    of at most 16 files too). Independent of where the data lies: a copy moved elsewhere digests the same."""
    import hashlib

    if root is None:
        return None
    root = Path(str(root))
    h = hashlib.sha256()
    try:
        if root.is_file():
            _file_digest(root, h)
            return h.hexdigest()
        if not root.is_dir():
            return None
        files = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath) / name
                files.append((str(p.relative_to(root)), p))
                if len(files) >= _MAX_FILES:
                    break
            if len(files) >= _MAX_FILES:
                break
        for rel, p in files:
            h.update(f"{rel}\t{p.stat().st_size}\n".encode())
        if len(files) <= 16:
            for _, p in files:
                _file_digest(p, h)
        return h.hexdigest()
    except OSError:
        return None


def data_fingerprint(cfg: Config, dataset) -> dict:
    """What identifies the data a run trains on, cheaply: ``kind``, ``root`` (as configured), ``samples``
    (the dataset's length), ``labels`` (sha256 of the labels it exposes, or None) and ``content`` (sha256
    of the root's size and ends, or of a folder's listing: :func:`_root_digest`). Saved with every
    checkpoint (``state["data"]``) and compared by :func:`data_changes` on ``--resume``."""
    import hashlib

    import numpy as np

    try:
        samples = len(dataset)
    except TypeError:  # a stream without a length
        samples = None
    labels = _labels_of(dataset)
    return {"kind": cfg.data.kind, "root": None if cfg.data.root is None else str(cfg.data.root),
            "samples": samples,
            "labels": None if labels is None else hashlib.sha256(
                np.ascontiguousarray(labels.astype(np.int64)).tobytes()).hexdigest(),
            "content": _root_digest(cfg.data.root)}


def data_changes(before: dict, after: dict, recorded: dict | None, now: dict) -> list[str]:
    """What differs between the data a run trained on and the data a ``--resume`` would continue on, as
    ``"what: before -> after"`` lines (empty: the same data).

    ``before`` / ``after``: the ``data`` sections (:data:`IDENTITY_KEYS`) of the run's recorded config and of the
    resumed one; ``recorded`` / ``now``: the fingerprint saved with the checkpoint (None for checkpoints of
    part < 0.x) and the current one. The same content at another ``root`` (the data moved, a cluster mounts it
    elsewhere) is no change; without a recorded fingerprint any identity key that differs is one."""
    out = []
    if recorded:
        for k in ("kind", "samples", "labels", "content"):
            if recorded.get(k) != now.get(k) and not (k == "content" and None in (recorded.get(k), now.get(k))):
                out.append(f"{'number of samples' if k == 'samples' else k}: {_short(recorded.get(k))} -> "
                           f"{_short(now.get(k))}")
    for k in IDENTITY_KEYS:
        if k == "root" and recorded and not out:
            continue  # moved: same kind, samples, labels and content
        if before.get(k) != after.get(k):
            out.append(f"data.{k}: {before.get(k)!r} -> {after.get(k)!r}")
    return out


def _short(v):
    return v[:12] if isinstance(v, str) and len(v) == 64 else v
