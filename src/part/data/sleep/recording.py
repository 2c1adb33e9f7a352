"""Windows of sleep recordings in memory (:class:`SleepRecording`), what every reader returns, and their
``.npz`` form (:meth:`SleepRecording.save_npz` writes it, :func:`load_sleep_npz` reads it) - paper App. 8.1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DatasetFormatError, DatasetNotFoundError
from ..signal import PAPER_EEG, instance_normalize
from .stages import STAGES

__all__ = ["SleepRecording", "load_sleep_npz", "select_channels"]


@dataclass
class SleepRecording:
    """Windows of one or more sleep recordings, ready for a model (App. 8.1). The readers
    (:func:`part.data.sleep.load_physionet2018_record`, :func:`part.data.sleep.load_sleep_edf_record`,
    :func:`load_sleep_npz`) and the synthetic generator return one; :class:`part.data.sleep.SleepSource`
    joins several.

    Attributes:
        X: ``float32 (W, C, T)`` windows (``T = fs * window_s``), instance-normalised by the loaders.
        y: ``int64 (W,)`` stage in ``0..4`` = :data:`STAGES` (W, N1, N2, N3, REM).
        subject: ``str (W,)`` subject id of each window (the split unit of :func:`subject_split`).
        record: ``str (W,)`` record (night) id of each window.
        onset: ``float64 (W,)`` window start in seconds from its record's start.
        channels: channel names, ``len == C``.
        fs: sampling rate of ``X`` in Hz.
    """

    X: np.ndarray
    y: np.ndarray
    subject: np.ndarray
    record: np.ndarray = field(default=None)  # type: ignore[assignment]
    onset: np.ndarray = field(default=None)  # type: ignore[assignment]
    channels: tuple[str, ...] = ()
    fs: float = PAPER_EEG.fs

    def __post_init__(self) -> None:
        self.X = np.asarray(self.X, dtype=np.float32)
        if self.X.ndim != 3:
            raise ValueError(f"X must be shaped (W, C, T), got {self.X.shape}")
        w, c, _ = self.X.shape
        self.y = np.asarray(self.y).astype(np.int64, copy=False).reshape(-1)
        self.subject = np.asarray(self.subject).astype(str).reshape(-1)
        self.record = self.subject.copy() if self.record is None else np.asarray(self.record).astype(str)
        self.onset = np.zeros(w) if self.onset is None else np.asarray(self.onset, dtype=np.float64)
        for name in ("y", "subject", "record", "onset"):
            if getattr(self, name).shape != (w,):
                raise ValueError(f"{name} must have shape ({w},) to match X, got {getattr(self, name).shape}")
        if w and (self.y.min() < 0 or self.y.max() >= len(STAGES)):
            raise ValueError(f"y must hold stages in 0..{len(STAGES) - 1}, got values in [{self.y.min()}, {self.y.max()}]")
        self.channels = tuple(str(ch) for ch in self.channels) or tuple(f"ch{i}" for i in range(c))
        if len(self.channels) != c:
            raise ValueError(f"channels has {len(self.channels)} names for {c} channels in X")
        self.fs = float(self.fs)

    def __len__(self) -> int:
        return self.X.shape[0]

    @property
    def window_s(self) -> float:
        """Window length in seconds."""
        return self.X.shape[2] / self.fs

    @property
    def subjects(self) -> tuple[str, ...]:
        """Distinct subject ids, sorted."""
        return tuple(np.unique(self.subject).tolist())

    def stage_counts(self) -> np.ndarray:
        """``int64 (5,)`` number of windows per stage."""
        return np.bincount(self.y, minlength=len(STAGES)).astype(np.int64)

    def subset(self, index) -> "SleepRecording":
        """Windows selected by an index array or boolean mask (arrays are copied)."""
        idx = np.asarray(index)
        return SleepRecording(
            self.X[idx], self.y[idx], self.subject[idx], self.record[idx], self.onset[idx], self.channels, self.fs
        )

    def save_npz(self, path: str | Path, compressed: bool = False) -> Path:
        """Write the arrays to ``path`` (readable by :func:`load_sleep_npz`, no pickle)."""
        path = Path(path)
        save = np.savez_compressed if compressed else np.savez
        save(
            path,
            X=self.X,
            y=self.y,
            subject=self.subject.astype(str),
            record=self.record.astype(str),
            onset=self.onset,
            channels=np.asarray(self.channels, dtype=str),
            fs=np.float64(self.fs),
        )
        return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")

def select_channels(available: Sequence[str], wanted: Sequence[str], source: str) -> list[int]:
    """Indices of ``wanted`` in ``available``: exact match first, then case/space-insensitive.

    ``source`` names the record or file in the error raised for missing names, which lists the available
    ones."""
    avail = [str(a) for a in available]
    norm = {}
    for i, a in enumerate(avail):
        norm.setdefault("".join(a.split()).upper(), i)
    out = []
    missing = []
    for ch in wanted:
        if ch in avail:
            out.append(avail.index(ch))
        elif "".join(str(ch).split()).upper() in norm:
            out.append(norm["".join(str(ch).split()).upper()])
        else:
            missing.append(ch)
    if missing:
        raise ValueError(
            f"{source}: channel(s) {missing} not found; available channels: {avail}"
        )
    if not out:
        raise ValueError(f"{source}: no channels requested")
    return out


def load_sleep_npz(
    path: str | Path,
    channels: Sequence[str] | None = None,
    fs: float | None = None,
    normalize: bool = False,
) -> SleepRecording:
    """Read already-windowed data: an ``.npz`` with ``X`` ``(W, C, T)``, ``y`` ``(W,)`` in ``0..4`` and
    ``subject`` ``(W,)``; optional ``record``, ``onset``, ``channels`` ``(C,)`` and ``fs`` (as written by
    :meth:`SleepRecording.save_npz`).

    Args:
        channels: names to keep; needs a ``channels`` array in the file (missing names are listed).
        fs: rate of ``X``; default the file's ``fs``, else ``PAPER_EEG.fs`` (100 Hz). A given value must match
            the file's.
        normalize: instance-normalise the windows (off by default: such files are usually preprocessed).
    """
    path = Path(path)
    if not path.exists():
        raise DatasetNotFoundError(f"npz file {path} does not exist")
    with np.load(path, allow_pickle=False) as z:
        missing = [k for k in ("X", "y", "subject") if k not in z.files]
        if missing:
            raise DatasetFormatError(f"{path}: missing array(s) {missing}; found {sorted(z.files)}")
        X = np.asarray(z["X"], dtype=np.float32)
        y = np.asarray(z["y"])
        subject = z["subject"]
        record = z["record"] if "record" in z.files else None
        onset = z["onset"] if "onset" in z.files else None
        names = tuple(str(c) for c in z["channels"]) if "channels" in z.files else None
        file_fs = float(z["fs"]) if "fs" in z.files else None
    if X.ndim != 3:
        raise DatasetFormatError(f"{path}: X must be shaped (W, C, T), got {X.shape}")
    if y.shape != (X.shape[0],):
        raise DatasetFormatError(f"{path}: y must have shape ({X.shape[0]},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer) or (y.size and (y.min() < 0 or y.max() >= len(STAGES))):
        raise DatasetFormatError(f"{path}: y must be integer stages in 0..{len(STAGES) - 1}")
    if fs is not None and file_fs is not None and abs(fs - file_fs) > 1e-9:
        raise ValueError(f"{path}: fs={fs:g} Hz was requested but the file holds {file_fs:g} Hz windows")
    rate = file_fs if file_fs is not None else (PAPER_EEG.fs if fs is None else fs)
    if channels is not None:
        if names is None:
            raise ValueError(f"{path}: channels={list(channels)} requested but the file stores no channel names")
        idx = select_channels(names, channels, str(path))
        X, names = X[:, idx], tuple(names[i] for i in idx)
    if normalize:
        X = instance_normalize(X)
    return SleepRecording(X, y, subject, record, onset, names or (), rate)
