"""Cross-validation folds and transductive pretraining of an ablation (``folds:``, ``pretrain_on:``), for
``data.kind: signal_npz`` sets given by their path.

**Folds** (``folds: [[g0, g5], [g1, g6], ...]``): every cell runs once per fold. Fold ``k`` reads the train
file of ``pretrain.data.root`` (``<root>/train.npz`` for a folder, the file itself otherwise) with
``data.options.split_by: group`` and ``test_groups`` = the fold's groups: the listed groups (recordings,
subjects) are the fold's test split, every other sample its train split. The real ``test.npz`` is never read,
so settings can be chosen on the folds and measured on the published test split once. Cell names carry the
fold (``part-cross_attention-p256-k0-s1``); :mod:`part.ablation.paired` pools the folds.

**Transductive pretraining** (``pretrain_on: train+test``): PART also pretrains on the *signals* ``x`` of the
split it is evaluated on (``test.npz``, or the fold's held-out groups), never on their labels. Each fold's
(or the set's) pretraining data is written, without ``y`` or ``class_names``, to
``<out>/pretrain_data/<fold>/``: ``train.npz`` (the train signals, then the evaluated ones; ``group`` as in
the source, ``train`` / ``test`` for a folder) and ``test.npz`` (the evaluated signals alone: the pretext loss
reads them). Label arrays of the source files are never loaded (``np.load`` reads an npz member only when
asked); the user's data is not modified. With ``normalize: dataset`` the statistics are those of the labelled
train split (set as ``data.mean`` / ``data.std`` of the pretraining), so fine-tunes and probes normalise as in
the inductive protocol; the probe reads the labelled splits. Legitimate only when the target signals exist
before training (an offline batch, a calibration recording); never compare its numbers with inductive ones.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import merge_dicts
from ..data.signal_npz import SIGNAL_NPZ_KIND, SignalNpzData

__all__ = ["PRETRAIN_ON", "PretrainData", "parse_folds", "parse_pretrain_on", "check_signal_data", "fold_data",
           "transductive", "write_pretrain_data"]

PRETRAIN_ON = ("train", "train+test")
_META = ("channel_names", "fs")  # per-set arrays the pretraining files keep (never y, never class_names)


@dataclass(frozen=True)
class PretrainData:
    """The label-free pretraining data of one fold (``fold`` None: the published split): written to
    ``folder`` from ``root`` (a folder with ``train.npz`` / ``test.npz``, or one file whose rows in
    ``test_groups`` are the evaluated ones)."""

    folder: str
    root: str
    test_groups: tuple = ()


def parse_folds(value) -> list | None:
    """``folds``: ``None`` or a list of folds, each a non-empty list of group ids (strings; a single id may
    be given bare). Raises ``ValueError`` naming ``folds[i]``."""
    if value is None:
        return None
    if not isinstance(value, list) or not value:
        raise ValueError(f"ablation config folds must be a list of folds, each a list of held-out groups, got {value!r}")
    out = []
    for i, fold in enumerate(value):
        groups = fold if isinstance(fold, list) else [fold]
        if not groups or any(isinstance(g, (list, dict, bool)) or g is None for g in groups):
            raise ValueError(f"folds[{i}] must be a non-empty list of group ids, got {fold!r}")
        groups = [str(g) for g in groups]
        if len(set(groups)) != len(groups):
            raise ValueError(f"folds[{i}] lists a group twice: {groups}")
        out.append(groups)
    if len({json.dumps(sorted(f)) for f in out}) != len(out):
        raise ValueError(f"folds lists the same fold twice: {out}")
    return out


def parse_pretrain_on(value) -> str:
    """``pretrain_on``: ``train`` (default; inductive) or ``train+test`` (transductive)."""
    value = "train" if value is None else value
    if value not in PRETRAIN_ON:
        raise ValueError(f"ablation config pretrain_on must be one of {list(PRETRAIN_ON)}, got {value!r}")
    return value


def check_signal_data(data: dict, folds, pretrain_on: str) -> None:
    """Folds and transductive pretraining need ``pretrain.data.kind: signal_npz`` and a ``data.root``; folds
    refuse a data config that already splits by group. Raises ``ValueError`` naming the key."""
    if not folds and pretrain_on == "train":
        return
    what = "folds" if folds else "pretrain_on: train+test"
    if data.get("kind") != SIGNAL_NPZ_KIND:
        raise ValueError(f"ablation config {what} needs pretrain.data.kind: {SIGNAL_NPZ_KIND} (held-out groups of "
                         f"its signals), got {data.get('kind')!r}")
    if not data.get("root"):
        raise ValueError(f"ablation config {what} needs pretrain.data.root (a folder with train.npz, or one .npz)")
    if folds and (data.get("options") or {}).get("split_by") is not None:
        raise ValueError("ablation config folds set data.options.split_by / test_groups per fold; remove them from "
                         "pretrain.data.options")


def _train_file(root: str) -> str:
    path = Path(root).expanduser()
    return str(path / "train.npz") if path.is_dir() else str(root)


def fold_data(data: dict, groups: list) -> dict:
    """The ``data`` section of a fold: the train file of ``data.root``, split by group with ``groups`` held
    out as the test split (``data.options.split_by: group``, ``test_groups``)."""
    options = merge_dicts(data.get("options") or {}, {"split_by": "group", "test_groups": list(groups)})
    return merge_dicts(data, {"root": _train_file(data["root"]), "options": options})


def transductive(pre: dict, out: Path, fold: int | None) -> tuple[dict, dict, PretrainData]:
    """``(pretraining config mapping, probe data, PretrainData)`` of a cell with ``pretrain_on: train+test``.

    ``pre`` is the cell's (inductive) pretraining config mapping; its ``data`` becomes the label-free folder
    ``<out>/pretrain_data/<fold|all>`` with the labelled train split's statistics when it normalises with
    ``dataset`` statistics of its own; the probe data is the labelled ``root`` / ``options``."""
    data = pre["data"]
    options = dict(data.get("options") or {})
    labelled = SignalNpzData(data["root"], options)
    if not labelled.has_split("test"):
        raise ValueError(f"pretrain_on: train+test needs the test split of {data['root']} (test.npz, or folds)")
    folder = Path(out) / "pretrain_data" / (f"fold{fold}" if fold is not None else "all")
    source = PretrainData(str(folder), str(data["root"]), tuple(options.get("test_groups") or ()))
    plain = {k: v for k, v in options.items() if k not in ("split_by", "test_groups", "val_groups")}
    new = {"root": str(folder), "options": plain}
    if labelled.options.normalize == "dataset" and data.get("mean") is None and data.get("std") is None:
        new["mean"], new["std"] = labelled.channel_stats()
    probe = {"root": data["root"], "options": options}
    out_pre = merge_dicts(pre, {})
    out_pre["data"] = {**out_pre["data"], **new}  # options replaced, not merged: no split_by is left
    return out_pre, probe, source


def _read(path: Path, rows=None) -> tuple[np.ndarray, np.ndarray | None, dict]:
    """``(x, group or None, meta arrays)`` of ``path``: its label arrays are never loaded."""
    with np.load(path, allow_pickle=False) as f:
        x = np.asarray(f["x"])
        group = np.asarray(f["group"]).astype(str) if "group" in f.files else None
        meta = {k: f[k] for k in _META if k in f.files}
    return x, group, meta


def _pretrain_arrays(src: PretrainData) -> tuple[dict, dict]:
    """The arrays of ``train.npz`` and ``test.npz`` of the pretraining folder of ``src``."""
    root = Path(src.root).expanduser()
    if src.test_groups:  # one file: its held-out rows are the evaluated ones
        x, group, meta = _read(root)
        held = np.isin(group, list(src.test_groups))
        order = np.concatenate([np.flatnonzero(~held), np.flatnonzero(held)])
        train = {"x": x[order], "group": group[order], **meta}
        test = {"x": x[held], "group": group[held], **meta}
        return train, test
    xt, _, meta = _read(root / "train.npz")
    xe, _, _ = _read(root / "test.npz")
    if xt.shape[1:] != xe.shape[1:]:
        raise ValueError(f"pretrain_on: train+test: x of {root / 'train.npz'} {xt.shape} and of {root / 'test.npz'} "
                         f"{xe.shape} must have the same C, T")
    group = np.array(["train"] * len(xt) + ["test"] * len(xe))
    train = {"x": np.concatenate([xt, xe]), "group": group, **meta}
    return train, {"x": xe, "group": np.array(["test"] * len(xe)), **meta}


def _same_file(path: Path, arrays: dict) -> bool:
    if not path.is_file():
        return False
    try:
        with np.load(path, allow_pickle=False) as f:
            return set(f.files) == set(arrays) and all(np.array_equal(f[k], v) for k, v in arrays.items())
    except (OSError, ValueError):
        return False


def write_pretrain_data(src: PretrainData) -> Path:
    """Write the label-free pretraining folder of ``src`` (unchanged files are left as they are, so a resumed
    pretraining reads the same bytes). Returns the folder."""
    folder = Path(src.folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, arrays in zip(("train", "test"), _pretrain_arrays(src)):
        path = folder / f"{name}.npz"
        if not _same_file(path, arrays):
            tmp = folder / f".{name}.tmp.npz"
            np.savez(tmp, **arrays)
            tmp.replace(path)
    return folder
