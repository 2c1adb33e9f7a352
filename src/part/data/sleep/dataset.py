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

Splits (``data.split``, the one vocabulary of :mod:`part.data.signal_options`), by subject as in App. 8.1
("recordings from 1,653 subjects ... for all pretraining strategies", "down-sample the dataset to 10 subjects"
for fine-tuning, "evaluated on recordings from 200 subjects, which are held out from both pretraining and
finetuning stages"), drawn by :func:`part.data.sleep.subject_split`:

* ``"train"`` (also spelt ``"pretrain"``): every non-test subject (labels are returned but PART ignores them);
* ``"finetune"``: ``n_finetune`` (default 10) of those subjects - the low-label set;
* ``"test"``: the held-out subjects (``n_test``: a fraction of the subjects, default 0.2, or a count).

The split depends on ``data.options.split_seed`` (default 0) and the data options only, never on
``train.seed``: a pretraining run and fine-tuning runs with other training seeds see the same held-out
subjects, so a test subject can never leak into pretraining or fine-tuning.

Cache. Raw records are read, filtered and windowed once (:mod:`part.data.sleep.cache`); ``cache: false``
reads them into memory without writing anything.

Options (``data.options``), by kind, typed in :mod:`part.data.sleep.options` (their defaults are written
there); an unknown option or a value of the wrong type raises ``ValueError`` naming it:

* every kind: ``n_finetune`` (10), ``n_test`` (0.2), ``split_seed`` (0), ``finetune_in_pretrain`` (true);
* ``sleep_synthetic``: ``n_subjects`` (24), ``epochs_per_subject`` (120), ``channels`` (count or names;
  default ``data.channels`` = ``model.in_chans``), ``seed`` (0), ``fs`` (100), ``window_s`` (30),
  ``noise`` (1.0), ``normalize`` (``window``);
* ``physionet2018`` / ``sleep_edf``: ``channels`` (names; default the six / two EEG derivations),
  ``max_records`` (all), ``fs`` (100), ``band`` ([0.1, 30]), ``window_s`` (30), ``wake_edge_min`` (none),
  ``normalize`` (``window``), ``backend`` (auto), ``cache`` (true), ``cache_dir``;
* ``sleep_npz``: ``channels`` (names), ``fs``, ``normalize`` (``none``), ``max_records``.

``normalize`` is ``window`` (instance normalisation) or ``none``, in the vocabulary of every 1D kind
(:func:`part.data.signal_options.normalize_mode`; the older ``true`` / ``false`` still read as those two).

``data.max_samples`` keeps a fixed random subset (seeded by ``split_seed``) of that many windows of the
split, e.g. to evaluate on part of a large test set.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import DatasetNotFoundError
from ..signal_options import split_name
from .cache import cached_source
from .options import RecordSleepOptions, SleepNpzOptions, SyntheticSleepOptions, sleep_options
from .physionet import PHYSIONET2018_EEG, PHYSIONET2018_FORMAT
from .sleep_edf import SLEEP_EDF_FORMAT
from .source import SLEEP_NPZ_FORMAT, RecordFormat, SleepSource
from .split import SubjectSplit, subject_split
from .stages import STAGES
from .synthetic import make_synthetic_sleep

__all__ = [
    "SLEEP_KINDS",
    "SLEEP_SPLITS",
    "SleepKind",
    "SleepSplitDataset",
    "build_sleep_dataset",
    "load_sleep_source",
    "record_paths",
    "sleep_kind",
]

SLEEP_SPLITS: tuple[str, ...] = ("train", "finetune", "test")
"""``data.split`` values (``"pretrain"`` is another name of ``"train"``:
:data:`part.data.signal_options.SPLIT_ALIASES`)."""

_DRAW_STREAM = {"train": 0, "finetune": 2, "test": 3}  # seeds data.max_samples' draw per split (kept as they were)


# ------------------------------------------------------------------------------------------ dataset


class SleepSplitDataset(Dataset):
    """A view of some windows of a :class:`SleepSource` - one split of it, or any index set: item ``i`` is
    ``(x, label)``, ``x`` a ``float32`` tensor ``(C, T)`` (a copy, after ``transform``) and ``label`` an
    ``int`` stage in ``0..4`` (:data:`part.data.sleep.STAGES`).

    Attributes:
        source: the :class:`SleepSource`. indices: ``int64 (n,)`` global window indices (default: all).
        split: ``"train"``, ``"finetune"``, ``"test"`` or ``None`` (a hand-made view).
        split_info: the :class:`SubjectSplit` the view comes from, or ``None``.
        transform: optional ``x -> x`` applied to every window tensor.
        normalize: how the windows were normalised when read (``window`` / ``none``; None: not said).

    Like every 1D dataset (:class:`part.data.signal_npz.SignalDataset`) it has ``labels``, ``groups`` (here the
    subjects), ``classes``, ``channels``, ``fs``, ``split``, ``normalize`` and ``record()``.
    """

    def __init__(
        self,
        source: SleepSource,
        indices: Iterable[int] | np.ndarray | None = None,
        split: str | None = None,
        split_info: SubjectSplit | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        normalize: str | None = None,
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
        self.normalize = normalize

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
    def groups(self) -> np.ndarray:
        """``str (n,)``: the subjects, under the name every 1D dataset gives its groups."""
        return self.subject

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
        """What this split holds, for a run's ``data.json``: its subjects (also as ``groups``, the key of every
        1D kind), the held-out test subjects of the split it comes from, windows per stage and the
        normalisation."""
        out = {"split": self.split, "num_samples": len(self), "subjects": list(self.subjects),
               "groups": list(self.subjects), "class_counts": dict(zip(STAGES, self.stage_counts().tolist()))}
        if self.split_info is not None:
            out["test_subjects"] = list(self.split_info.test_subjects)
            out["finetune_subjects"] = list(self.split_info.finetune_subjects)
        if self.normalize is not None:
            out["normalize"] = self.normalize
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
def _synthetic(n_subjects: int, epochs: int, channels, seed: int, fs: float, window_s: float, noise: float,
               normalize: bool):
    return make_synthetic_sleep(
        n_subjects, epochs, channels=list(channels) if isinstance(channels, tuple) else channels,
        fs=fs, seed=seed, window_s=window_s, noise=noise, normalize=normalize,
    )


def _synthetic_source(fmt: None, kind: str, root, o: SyntheticSleepOptions, channels: int | None) -> SleepSource:
    """``sleep_synthetic``: regenerated deterministically (``root`` unused), memoised in the process."""
    ch = o.channels if o.channels is not None else channels
    ch = len(PHYSIONET2018_EEG) if ch is None else ch
    rec = _synthetic(o.n_subjects, o.epochs_per_subject, tuple(str(c) for c in ch) if isinstance(ch, tuple) else ch,
                     o.seed, float(o.fs), float(o.window_s), float(o.noise), o.normalize == "window")
    return SleepSource.from_recordings([rec])


def _root(kind: str, root) -> Path:
    if root is None:
        raise ValueError(f"data.kind={kind!r} needs data.root (the folder of the recordings)")
    return Path(root).expanduser()


def _record_source(fmt: RecordFormat, kind: str, root, o: RecordSleepOptions, channels: int | None) -> SleepSource:
    """Raw records of ``fmt`` under ``root``: read, filtered, windowed once and cached (or reused)."""
    root = _root(kind, root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"data.root {root} does not exist or is not a folder")
    paths = fmt.find(root)[: o.max_records]
    names = o.channels if o.channels is not None else fmt.channels
    if not names:
        raise ValueError(f"data.options.channels must be a list of channel names, got {o.channels!r}")
    reader_kw = dict(channels=list(names), fs=float(o.fs), band=tuple(float(b) for b in o.band),
                     window_s=float(o.window_s), normalize=o.normalize == "window", wake_edge_min=o.wake_edge_min,
                     backend=o.backend)
    if not o.cache:
        return SleepSource.from_recordings([fmt.read(p, **reader_kw) for p in paths])
    return cached_source(kind, root, paths, fmt, reader_kw, o.cache_dir)


def _npz_source(fmt: RecordFormat, kind: str, root, o: SleepNpzOptions, channels: int | None) -> SleepSource:
    """Already-windowed ``.npz`` file(s): ``root`` is one file or a folder of them."""
    root = _root(kind, root)
    if root.is_file():
        paths = [root]
    elif root.is_dir():
        paths = fmt.find(root)
    else:
        raise DatasetNotFoundError(f"data.root {root} does not exist (expected an .npz file or a folder of them)")
    fs = None if o.fs is None else float(o.fs)
    return SleepSource.from_recordings(
        [fmt.read(p, channels=o.channels, fs=fs, normalize=o.normalize == "window") for p in paths[: o.max_records]])


@dataclass(frozen=True)
class SleepKind:
    """A sleep data kind: its typed ``data.options`` (:mod:`part.data.sleep.options`), the source of its windows
    ``source(format, kind, root, options, channels) -> SleepSource`` and the format of its record files (None:
    no files)."""

    options: type
    source: Callable[..., SleepSource]
    format: RecordFormat | None = None


SLEEP_KINDS: dict[str, SleepKind] = {
    "sleep_synthetic": SleepKind(SyntheticSleepOptions, _synthetic_source),
    "physionet2018": SleepKind(RecordSleepOptions, _record_source, PHYSIONET2018_FORMAT),
    "sleep_edf": SleepKind(RecordSleepOptions, _record_source, SLEEP_EDF_FORMAT),
    "sleep_npz": SleepKind(SleepNpzOptions, _npz_source, SLEEP_NPZ_FORMAT),
}
"""The sleep ``data.kind`` values (the only place their names are written), served by :func:`build_sleep_dataset`."""


def sleep_kind(kind: str) -> SleepKind:
    """The :class:`SleepKind` named ``kind``; ``ValueError`` listing them otherwise."""
    if kind not in SLEEP_KINDS:
        raise ValueError(f"data.kind={kind!r} is not a sleep data kind; choose one of {list(SLEEP_KINDS)}")
    return SLEEP_KINDS[kind]


def record_paths(root: Path, kind: str) -> list[Path]:
    """Sorted record files of the sleep kind ``kind`` under ``root``, searched recursively (its format's
    ``find``: PhysioNet 2018 headers with stage annotations, Sleep-EDF PSG files, ``.npz`` files)."""
    fmt = sleep_kind(kind).format
    if fmt is None:
        raise ValueError(f"data.kind={kind!r} reads no record files")
    return fmt.find(Path(root))


def load_sleep_source(kind: str, root: str | os.PathLike | None, options: Any = None,
                      channels: int | None = None) -> SleepSource:
    """All windows of a sleep data source (before the subject split).

    Args:
        kind: one of :data:`SLEEP_KINDS`.
        root: data folder (``physionet2018``, ``sleep_edf``), ``.npz`` file or folder (``sleep_npz``);
            ignored by ``sleep_synthetic``.
        options: ``data.options`` (a mapping, see the module docstring, or the kind's typed options); split
            options are accepted and ignored here.
        channels: channel count for ``sleep_synthetic`` when ``options`` gives none (``model.in_chans``).
    Raises:
        ValueError: unknown kind or option, bad option value; DatasetNotFoundError: missing root or no
        records in it; DatasetFormatError: malformed records (messages name the file).
    """
    spec = sleep_kind(kind)
    o = options if isinstance(options, spec.options) else sleep_options(spec.options, options, kind)
    return spec.source(spec.format, kind, root, o, channels)


def build_sleep_dataset(d, split: str = "train", seed: int | None = None, options: Any = None) -> SleepSplitDataset:
    """The ``split`` of the sleep data described by a :class:`part.config.DataConfig` (paper App. 8.1).

    Args:
        d: data config: ``kind`` in :data:`SLEEP_KINDS`, ``root``, ``options``, ``max_samples``; its
            ``image_size`` (default ``model.img_size``) must equal the window length ``T = fs * window_s``
            and ``channels`` (default ``model.in_chans``) the number of channels.
        split: ``"train"`` (= ``"pretrain"``), ``"finetune"`` or ``"test"``.
        seed: the run's ``train.seed``. Deliberately unused: the subject split follows
            ``data.options.split_seed`` so that every run on the same data holds out the same subjects.
        options: ``d.options`` already read by :func:`part.data.sleep.options.sleep_options` (default: read here).
    Returns:
        :class:`SleepSplitDataset` yielding ``(x float32 (C, T), stage int)``.
    Raises:
        ValueError: unknown split, kind or option; window length / channel count not matching the model;
        more fine-tune + test subjects than subjects. DatasetNotFoundError / DatasetFormatError from reading.
    """
    del seed  # see the docstring: the split must not depend on the training seed
    kind = d.kind
    spec = sleep_kind(kind)
    split = split_name(split, SLEEP_SPLITS, kind)
    o = options if options is not None else sleep_options(spec.options, d.options, kind)
    n_ch = d.channels if isinstance(d.channels, int) else None
    src = spec.source(spec.format, kind, d.root, o, n_ch)
    _check_shape(src, n_ch, d.image_size)
    try:
        info = subject_split(src.subject, n_finetune=o.n_finetune, n_test=o.n_test, seed=o.split_seed,
                             finetune_in_pretrain=o.finetune_in_pretrain)
    except ValueError as err:
        raise ValueError(f"data.options (n_finetune / n_test) for {kind}: {err}") from None
    idx = {"train": info.pretrain, "finetune": info.finetune, "test": info.test}[split]
    if d.max_samples is not None:
        if d.max_samples < 1:
            raise ValueError(f"data.max_samples must be >= 1, got {d.max_samples}")
        if d.max_samples < idx.size:
            rng = np.random.default_rng([o.split_seed, _DRAW_STREAM[split]])
            idx = np.sort(rng.choice(idx, size=d.max_samples, replace=False))
    return SleepSplitDataset(src, idx, split, info, normalize=o.normalize)


def _check_shape(src: SleepSource, channels: int | None, length) -> None:
    """The source's channel count and window length must be the model's (``data.channels``, ``data.image_size``)."""
    c = len(src.channels)
    if channels is not None and channels != c:
        raise ValueError(
            f"the sleep data has {c} channels {list(src.channels)} but the model expects model.in_chans="
            f"{channels} (data.channels); make them equal"
        )
    if length is not None and (not isinstance(length, int) or length != src.window_len):
        raise ValueError(
            f"the sleep windows have T={src.window_len} samples ({src.window_len / src.fs:g} s at {src.fs:g} Hz) "
            f"but model.img_size (data.image_size) is {length!r}; set model.img_size: {src.window_len}"
        )
