"""Sleep-staging datasets from a config's ``data`` section, with subject-wise splits and a window cache
(paper §5.2 "Time-series prediction", Appendix 8.1 "1D time series classification").

:func:`build_sleep_dataset` is what :func:`part.engine.builders.build_dataset` calls for the sleep kinds:

==================  =======================================================================================
``data.kind``       source
==================  =======================================================================================
``sleep_synthetic`` :func:`part.data.sleep.make_synthetic_sleep` - SYNTHETIC sleep-like EEG, not
                    real data (demos and tests). Regenerated deterministically, memoised in the process.
``physionet2018``   every PhysioNet/CinC 2018 record (``*.hea`` + signals + ``*.arousal``) under
                    ``data.root`` (:func:`part.data.sleep.load_physionet2018_record`), 6 EEG channels.
``sleep_edf``       every Sleep-EDF night (``*-PSG.edf`` + ``*-Hypnogram.edf``) under ``data.root``
                    (:func:`part.data.sleep.load_sleep_edf_record`), Fpz-Cz and Pz-Oz.
``sleep_npz``       already-windowed ``.npz`` file(s): ``data.root`` is one file or a folder of them
                    (:func:`part.data.sleep.load_sleep_npz`).
==================  =======================================================================================

Preprocessing of the raw kinds (App. 8.1): 0.1-30 Hz zero-phase band-pass, re-sampling to 100 Hz, 30-s
windows on the scoring grid, per-window instance normalisation; 5 classes W, N1, N2, N3, REM (R&K stage 4
merged into N3).

Splits (``data.split``), by subject as in App. 8.1 ("recordings from 1,653 subjects ... for all pretraining
strategies", "down-sample the dataset to 10 subjects" for fine-tuning, "evaluated on recordings from 200
subjects, which are held out from both pretraining and finetuning stages"), drawn by
:func:`part.data.sleep.subject_split`:

* ``"pretrain"`` (alias ``"train"``): every non-test subject (labels are returned but PART ignores them);
* ``"finetune"``: ``n_finetune`` (default 10) of those subjects - the low-label set;
* ``"test"``: the held-out subjects (``n_test``: a fraction of the subjects, default 0.2, or a count).

The split depends on ``data.options.split_seed`` (default 0) and the data options only, never on
``train.seed``: a pretraining run and fine-tuning runs with other training seeds see the same held-out
subjects, so a test subject can never leak into pretraining or fine-tuning.

Cache. Raw records are read, filtered and windowed once (:mod:`part.data.sleep.cache`); ``cache: false``
reads them into memory without writing anything.

Options (``data.options``), by kind; an unknown option raises ``ValueError`` listing the valid ones:

* every kind: ``n_finetune`` (10), ``n_test`` (0.2), ``split_seed`` (0), ``finetune_in_pretrain`` (true);
* ``sleep_synthetic``: ``n_subjects`` (24), ``epochs_per_subject`` (120), ``channels`` (count or names;
  default ``data.channels`` = ``model.in_chans``), ``seed`` (0), ``fs`` (100), ``window_s`` (30),
  ``noise`` (1.0);
* ``physionet2018`` / ``sleep_edf``: ``channels`` (names; default the six / two EEG derivations),
  ``max_records`` (all), ``fs`` (100), ``band`` ([0.1, 30]), ``window_s`` (30), ``wake_edge_min`` (none),
  ``normalize`` (true), ``backend`` (auto), ``cache`` (true), ``cache_dir``;
* ``sleep_npz``: ``channels`` (names), ``fs``, ``normalize`` (false), ``max_records``.

``data.max_samples`` keeps a fixed random subset (seeded by ``split_seed``) of that many windows of the
split, e.g. to evaluate on part of a large test set.
"""

from __future__ import annotations


from __future__ import annotations

import os
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DatasetNotFoundError
from ..signal import PAPER_EEG
from .cache import cached_source
from .physionet import PHYSIONET2018_EEG, load_physionet2018_record
from .recording import load_sleep_npz
from .sleep_edf import SLEEP_EDF_EEG, load_sleep_edf_record
from .source import SleepSource, record_paths
from .split import PAPER_SPLIT, SubjectSplit, subject_split
from .stages import STAGES
from .synthetic import make_synthetic_sleep

__all__ = [
    "SLEEP_KINDS",
    "SLEEP_SPLITS",
    "SleepSplitDataset",
    "build_sleep_dataset",
    "load_sleep_source",
]

SLEEP_KINDS: tuple[str, ...] = ("sleep_synthetic", "physionet2018", "sleep_edf", "sleep_npz")
"""``data.kind`` values served by :func:`build_sleep_dataset`."""

SLEEP_SPLITS: tuple[str, ...] = ("pretrain", "train", "finetune", "test")
"""``data.split`` values; ``"train"`` is an alias of ``"pretrain"``."""

_SPLIT_OPTIONS = asdict(PAPER_SPLIT)
_KIND_OPTIONS: dict[str, dict[str, Any]] = {
    "sleep_synthetic": {
        "n_subjects": 24, "epochs_per_subject": 120, "channels": None, "seed": 0, "fs": PAPER_EEG.fs,
        "window_s": PAPER_EEG.window_s, "noise": 1.0,
    },
    "physionet2018": {
        "channels": PHYSIONET2018_EEG, "max_records": None, "fs": PAPER_EEG.fs, "band": PAPER_EEG.band,
        "window_s": PAPER_EEG.window_s, "wake_edge_min": None, "normalize": PAPER_EEG.normalize,
        "backend": "auto", "cache": True, "cache_dir": None,
    },
    "sleep_npz": {"channels": None, "fs": None, "normalize": False, "max_records": None},
}
_KIND_OPTIONS["sleep_edf"] = {**_KIND_OPTIONS["physionet2018"], "channels": SLEEP_EDF_EEG}


def _options(kind: str, given: dict | None) -> dict[str, Any]:
    """Defaults of ``kind`` updated by ``given``; unknown names raise ``ValueError`` listing the valid ones."""
    if kind not in _KIND_OPTIONS:
        raise ValueError(f"data.kind={kind!r} is not a sleep data kind; choose one of {list(SLEEP_KINDS)}")
    valid = {**_SPLIT_OPTIONS, **_KIND_OPTIONS[kind]}
    given = dict(given or {})
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(
            f"unknown data.options {unknown} for data.kind={kind!r}; valid options: {sorted(valid)}"
        )
    out = {**valid, **given}
    m = out.get("max_records")
    if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
        raise ValueError(f"data.options.max_records must be a positive int, got {m!r}")
    return out


# ------------------------------------------------------------------------------------------ dataset


class SleepSplitDataset(Dataset):
    """A view of some windows of a :class:`SleepSource` - one split of it, or any index set: item ``i`` is
    ``(x, label)``, ``x`` a ``float32`` tensor ``(C, T)`` (a copy, after ``transform``) and ``label`` an
    ``int`` stage in ``0..4`` (:data:`part.data.sleep.STAGES`).

    Attributes:
        source: the :class:`SleepSource`. indices: ``int64 (n,)`` global window indices (default: all).
        split: ``"pretrain"``, ``"finetune"``, ``"test"`` or ``None`` (a hand-made view).
        split_info: the :class:`SubjectSplit` the view comes from, or ``None``.
        transform: optional ``x -> x`` applied to every window tensor.
    """

    def __init__(
        self,
        source: SleepSource,
        indices: Iterable[int] | np.ndarray | None = None,
        split: str | None = None,
        split_info: SubjectSplit | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        n = len(source)
        idx = np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"indices out of range for {n} windows: [{idx.min()}, {idx.max()}]")
        self.source = source
        self.indices = idx
        self.split = split
        self.split_info = split_info
        self.transform = transform

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        g = int(self.indices[i])
        # a copy: memory-mapped windows are read-only, and in-memory ones are shared (memoised synthetic data)
        x = torch.from_numpy(np.array(self.source.window(g), dtype=np.float32, copy=True))
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.source.y[g])

    @property
    def labels(self) -> np.ndarray:
        """``int64 (n,)`` stages of the split's windows."""
        return self.source.y[self.indices]

    @property
    def subject(self) -> np.ndarray:
        """``str (n,)`` subject id of every window of the split."""
        return self.source.subject[self.indices]

    @property
    def subjects(self) -> tuple[str, ...]:
        """Distinct subjects of the split, sorted."""
        return tuple(np.unique(self.subject).tolist())

    @property
    def channels(self) -> tuple[str, ...]:
        return self.source.channels

    @property
    def fs(self) -> float:
        return self.source.fs

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names of labels ``0..4``."""
        return STAGES

    def record(self) -> dict:
        """What this split holds, for a run's ``data.json``: its subjects, the held-out test subjects of
        the split it comes from, and windows per stage."""
        out = {"split": self.split, "num_samples": len(self), "subjects": list(self.subjects),
               "class_counts": dict(zip(STAGES, self.stage_counts().tolist()))}
        if self.split_info is not None:
            out["test_subjects"] = list(self.split_info.test_subjects)
            out["finetune_subjects"] = list(self.split_info.finetune_subjects)
        return out

    def stage_counts(self) -> np.ndarray:
        """``int64 (5,)`` windows per stage in the split."""
        return np.bincount(self.labels, minlength=len(STAGES)).astype(np.int64)

    def __repr__(self) -> str:
        return (
            f"SleepSplitDataset(split={self.split!r}, windows={len(self)}, subjects={len(self.subjects)}, "
            f"channels={len(self.channels)}, T={self.source.window_len}, fs={self.fs:g})"
        )


# ------------------------------------------------------------------------------------------ loading


@lru_cache(maxsize=2)
def _synthetic(n_subjects: int, epochs: int, channels, seed: int, fs: float, window_s: float, noise: float):
    return make_synthetic_sleep(
        n_subjects, epochs, channels=list(channels) if isinstance(channels, tuple) else channels,
        fs=fs, seed=seed, window_s=window_s, noise=noise,
    )


def _as_tuple(v):
    return tuple(str(c) for c in v) if isinstance(v, (list, tuple)) else v


def _raw_source(kind: str, root: Path, o: dict) -> SleepSource:
    """Read (or reuse cached windows of) every record of ``kind`` under ``root``."""
    paths = record_paths(root, kind)
    if o["max_records"] is not None:
        paths = paths[: o["max_records"]]
    channels = _as_tuple(o["channels"])
    if isinstance(channels, str) or not channels:
        raise ValueError(f"data.options.channels must be a list of channel names, got {o['channels']!r}")
    band = tuple(float(b) for b in o["band"])
    reader_kw = dict(channels=list(channels), fs=float(o["fs"]), band=band, window_s=float(o["window_s"]),
                     normalize=bool(o["normalize"]), wake_edge_min=o["wake_edge_min"], backend=o["backend"])
    read = load_physionet2018_record if kind == "physionet2018" else load_sleep_edf_record
    if not o["cache"]:
        return SleepSource.from_recordings([read(p, **reader_kw) for p in paths])
    return cached_source(kind, root, paths, read, reader_kw, o["cache_dir"])


def _npz_source(root: Path, o: dict) -> SleepSource:
    if root.is_file():
        paths = [root]
    elif root.is_dir():
        paths = record_paths(root, "sleep_npz")
    else:
        raise DatasetNotFoundError(f"data.root {root} does not exist (expected an .npz file or a folder of them)")
    if o["max_records"] is not None:
        paths = paths[: o["max_records"]]
    channels = _as_tuple(o["channels"])
    fs = None if o["fs"] is None else float(o["fs"])
    return SleepSource.from_recordings(
        [load_sleep_npz(p, channels=channels, fs=fs, normalize=bool(o["normalize"])) for p in paths]
    )


def load_sleep_source(kind: str, root: str | os.PathLike | None, options: dict | None = None,
                      channels: int | None = None) -> SleepSource:
    """All windows of a sleep data source (before the subject split).

    Args:
        kind: one of :data:`SLEEP_KINDS`.
        root: data folder (``physionet2018``, ``sleep_edf``), ``.npz`` file or folder (``sleep_npz``);
            ignored by ``sleep_synthetic``.
        options: ``data.options`` (see the module docstring); split options are accepted and ignored here.
        channels: channel count for ``sleep_synthetic`` when ``options`` gives none (``model.in_chans``).
    Raises:
        ValueError: unknown kind or option, bad option value; DatasetNotFoundError: missing root or no
        records in it; DatasetFormatError: malformed records (messages name the file).
    """
    o = _options(kind, options)
    if kind == "sleep_synthetic":
        ch = o["channels"] if o["channels"] is not None else channels
        ch = len(PHYSIONET2018_EEG) if ch is None else ch
        rec = _synthetic(int(o["n_subjects"]), int(o["epochs_per_subject"]), _as_tuple(ch), int(o["seed"]),
                         float(o["fs"]), float(o["window_s"]), float(o["noise"]))
        return SleepSource.from_recordings([rec])
    if root is None:
        raise ValueError(f"data.kind={kind!r} needs data.root (the folder of the recordings)")
    root = Path(root).expanduser()
    if kind == "sleep_npz":
        return _npz_source(root, o)
    if not root.is_dir():
        raise DatasetNotFoundError(f"data.root {root} does not exist or is not a folder")
    return _raw_source(kind, root, o)


def build_sleep_dataset(d, split: str = "pretrain", seed: int | None = None) -> SleepSplitDataset:
    """The ``split`` of the sleep data described by a :class:`part.config.DataConfig` (paper App. 8.1).

    Args:
        d: data config: ``kind`` in :data:`SLEEP_KINDS`, ``root``, ``options``, ``max_samples``; its
            ``image_size`` (default ``model.img_size``) must equal the window length ``T = fs * window_s``
            and ``channels`` (default ``model.in_chans``) the number of channels.
        split: ``"pretrain"`` (= ``"train"``), ``"finetune"`` or ``"test"``.
        seed: the run's ``train.seed``. Deliberately unused: the subject split follows
            ``data.options.split_seed`` so that every run on the same data holds out the same subjects.
    Returns:
        :class:`SleepSplitDataset` yielding ``(x float32 (C, T), stage int)``.
    Raises:
        ValueError: unknown split, kind or option; window length / channel count not matching the model;
        more fine-tune + test subjects than subjects. DatasetNotFoundError / DatasetFormatError from reading.
    """
    del seed  # see the docstring: the split must not depend on the training seed
    if split not in SLEEP_SPLITS:
        raise ValueError(f"data.split={split!r} is not a sleep split; choose one of {list(SLEEP_SPLITS)}")
    split = "pretrain" if split == "train" else split
    kind = d.kind
    o = _options(kind, d.options)
    n_ch = d.channels if isinstance(d.channels, int) else None
    src = load_sleep_source(kind, d.root, d.options, channels=n_ch)
    c = len(src.channels)
    if n_ch is not None and n_ch != c:
        raise ValueError(
            f"the sleep data has {c} channels {list(src.channels)} but the model expects model.in_chans="
            f"{n_ch} (data.channels); make them equal"
        )
    t = d.image_size
    if t is not None and (not isinstance(t, int) or t != src.window_len):
        raise ValueError(
            f"the sleep windows have T={src.window_len} samples ({src.window_len / src.fs:g} s at {src.fs:g} Hz) "
            f"but model.img_size (data.image_size) is {t!r}; set model.img_size: {src.window_len}"
        )
    n_test = o["n_test"]
    if isinstance(n_test, bool) or not isinstance(n_test, (int, float)):
        raise ValueError(f"data.options.n_test must be a count or a fraction, got {n_test!r}")
    n_fine = o["n_finetune"]
    if isinstance(n_fine, bool) or not isinstance(n_fine, int):
        raise ValueError(f"data.options.n_finetune must be an int, got {n_fine!r}")
    try:
        info = subject_split(src.subject, n_finetune=n_fine, n_test=n_test, seed=int(o["split_seed"]),
                             finetune_in_pretrain=bool(o["finetune_in_pretrain"]))
    except ValueError as err:
        raise ValueError(f"data.options (n_finetune / n_test) for {kind}: {err}") from None
    idx = {"pretrain": info.pretrain, "finetune": info.finetune, "test": info.test}[split]
    if d.max_samples is not None:
        if d.max_samples < 1:
            raise ValueError(f"data.max_samples must be >= 1, got {d.max_samples}")
        if d.max_samples < idx.size:
            rng = np.random.default_rng([int(o["split_seed"]), SLEEP_SPLITS.index(split)])
            idx = np.sort(rng.choice(idx, size=d.max_samples, replace=False))
    return SleepSplitDataset(src, idx, split, info)
