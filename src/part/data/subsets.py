"""Seeded, stratified subsets of a labelled training split: the validation carve and the label fractions.

Two data options, for every kind whose reader exposes ``labels`` (all image kinds, ``signal_npz``):

* ``data.val_carve`` (a fraction in (0, 1) or a count >= 1): a stratified validation set carved out of the
  *train* split with the fixed seed ``data.carve_seed`` (samples, not recordings: for a ``signal_npz`` set
  whose trials share recordings, ``data.options.val_groups`` holds whole recordings out instead). ``split: val`` reads the carve, ``split: train`` the
  rest, so every choice (epochs, learning rate, pooling) is made without reading the test split.
* ``data.label_fraction`` (in (0, 1]): the labelled subset a fine-tune trains on, stratified per class with
  at least :data:`MIN_PER_CLASS` examples of each class, drawn with ``data.label_seed`` (default
  ``train.seed``) from the train split (after the carve). The subset depends on the labels and the seed only:
  every method fine-tuned at a given seed sees the same images.

Both are pure functions of ``(labels, size, seed)`` (:func:`stratified_pick`); :class:`LabelledSubset` is the
dataset view that keeps ``labels``, ``classes`` and ``num_classes`` of the reader it wraps.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

MIN_PER_CLASS = 2  # label fractions: at least this many examples of every class

__all__ = ["MIN_PER_CLASS", "stratified_pick", "carve_indices", "fraction_indices", "LabelledSubset",
           "apply_subsets", "check_subset_options"]


def _labels(dataset: Dataset, what: str) -> np.ndarray:
    labels = getattr(dataset, "labels", None)
    if labels is None:
        raise ValueError(f"{what} needs a dataset whose reader exposes its labels; {type(dataset).__name__} does not")
    labels = np.asarray(torch.as_tensor(np.asarray(labels)).reshape(-1), dtype=np.int64)
    if labels.size and (labels < 0).any():
        raise ValueError(f"{what} needs labelled samples; {int((labels < 0).sum())} samples have no label (-1)")
    return labels


def stratified_pick(labels: np.ndarray, per_class: dict[int, int], seed: int) -> np.ndarray:
    """Sorted indices: ``per_class[c]`` indices of each class ``c``, drawn without replacement with ``seed``.

    Args:
        labels: ``(N,)`` int labels.
        per_class: class -> how many of it (at most its count).
        seed: the draw; each class gets its own stream, so changing one class's count keeps the others.
    """
    picked = []
    for c in sorted(per_class):
        members = np.flatnonzero(labels == c)
        k = int(per_class[c])
        if k > members.size:
            raise ValueError(f"class {c} has {members.size} samples, {k} asked")
        rng = np.random.default_rng([int(seed), int(c)])
        picked.append(members[rng.permutation(members.size)[:k]])
    return np.sort(np.concatenate(picked)) if picked else np.zeros(0, dtype=np.int64)


def _counts(labels: np.ndarray) -> dict[int, int]:
    classes, counts = np.unique(labels, return_counts=True)
    return {int(c): int(n) for c, n in zip(classes, counts)}


def carve_indices(labels: np.ndarray, size: Any, seed: int) -> np.ndarray:
    """The validation carve: ``size`` (a fraction of ``N`` in (0, 1) or a count) split over the classes in
    proportion to their counts (largest remainders), at least one per class and one left per class to train.
    Returns sorted indices into ``labels``."""
    counts = _counts(labels)
    n = int(labels.size)
    total = int(round(size * n)) if isinstance(size, float) and size < 1 else int(size)
    if total < len(counts) or total > n - len(counts):
        raise ValueError(f"data.val_carve={size!r} gives {total} of {n} samples; it must leave at least one "
                         f"sample of each of the {len(counts)} classes on both sides")
    exact = {c: total * k / n for c, k in counts.items()}
    per = {c: max(1, min(counts[c] - 1, int(np.floor(v)))) for c, v in exact.items()}
    while sum(per.values()) != total:  # largest remainders, within [1, n_c - 1]
        grow = sum(per.values()) < total
        room = [c for c in counts if (per[c] < counts[c] - 1 if grow else per[c] > 1)]
        c = max(room, key=lambda c: ((exact[c] - per[c]) if grow else (per[c] - exact[c]), -c))
        per[c] += 1 if grow else -1
    return stratified_pick(labels, per, seed)


def fraction_indices(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The labelled subset: ``round(fraction * n_c)`` of each class ``c`` (at least :data:`MIN_PER_CLASS`, at
    most ``n_c``). Returns sorted indices into ``labels``; ``fraction`` 1 returns every index."""
    counts = _counts(labels)
    if fraction >= 1:
        return np.arange(labels.size)
    per = {c: min(n, max(MIN_PER_CLASS, int(round(fraction * n)))) for c, n in counts.items()}
    return stratified_pick(labels, per, seed)


class LabelledSubset(Dataset):
    """The items ``indices`` of ``dataset``, with its ``labels`` (restricted), ``classes`` and
    ``num_classes`` (kept: a subset keeps the label space of its split)."""

    def __init__(self, dataset: Dataset, indices: np.ndarray, description: str):
        self.dataset = dataset
        self.indices = np.asarray(indices, dtype=np.int64)
        self.description = description
        self.labels = _labels(dataset, description)[self.indices]
        self.classes = getattr(dataset, "classes", None)
        self.num_classes = getattr(dataset, "num_classes", None)

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int):
        return self.dataset[int(self.indices[i])]

    def record(self) -> dict:
        """What the run folder records of this subset (:mod:`part.engine.datainfo`)."""
        inner = self.dataset.record() if hasattr(self.dataset, "record") else {}
        return {**inner, "subset": self.description, "num_samples": len(self),
                "class_counts": np.bincount(self.labels).tolist() if self.labels.size else []}


def check_subset_options(val_carve, carve_seed, label_fraction, label_seed) -> None:
    """Types and ranges of the four options, at config load (:func:`part.config.validate_config`)."""
    def bad(key, value, rule):
        raise ValueError(f"data.{key}={value!r}: must be {rule}")

    if val_carve is not None:
        ok = (isinstance(val_carve, float) and 0 < val_carve < 1) or (
            isinstance(val_carve, int) and not isinstance(val_carve, bool) and val_carve >= 1)
        if not ok:
            bad("val_carve", val_carve, "a fraction in (0, 1), a count >= 1, or null")
    for key, value in (("carve_seed", carve_seed), ("label_seed", label_seed)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            bad(key, value, "a non-negative int" + (" or null" if key == "label_seed" else ""))
    if label_fraction is not None:
        if isinstance(label_fraction, bool) or not isinstance(label_fraction, (int, float)) or not (
                0 < label_fraction <= 1):
            bad("label_fraction", label_fraction, "in (0, 1] or null")


def apply_subsets(dataset: Dataset, split: str, *, val_carve=None, carve_seed: int = 0,
                  label_fraction: float | None = None, label_seed: int = 0):
    """The view of ``dataset`` (a *train*-split reader) that ``split`` asks for.

    Args:
        dataset: the reader of the train split (for ``split`` ``"train"`` or ``"val"``).
        split: ``"train"``: the train split without the carve, then the label fraction; ``"val"``: the carve.
        val_carve, carve_seed, label_fraction, label_seed: the data options (module docstring).
    Returns:
        ``dataset`` itself when no option applies, else a :class:`LabelledSubset`.
    """
    out, idx, parts = dataset, None, []
    if val_carve is not None:
        labels = _labels(dataset, "data.val_carve")
        carve = carve_indices(labels, val_carve, carve_seed)
        if split == "val":
            return LabelledSubset(dataset, carve, f"val carve {val_carve} (seed {carve_seed})")
        idx = np.setdiff1d(np.arange(labels.size), carve)
        parts.append(f"train without the val carve {val_carve} (seed {carve_seed})")
    elif split == "val":
        raise ValueError("split 'val' of this data kind is a carve of the train split: set data.val_carve "
                         "(a fraction, e.g. 0.1, or a count)")
    if label_fraction is not None and label_fraction < 1:
        labels = _labels(dataset, "data.label_fraction")
        base = np.arange(labels.size) if idx is None else idx
        pick = fraction_indices(labels[base], float(label_fraction), label_seed)
        idx = base[pick]
        parts.append(f"label fraction {label_fraction} (seed {label_seed})")
    if idx is not None:
        out = LabelledSubset(dataset, idx, ", ".join(parts))
    return out
