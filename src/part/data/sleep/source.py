"""Every window of a sleep data source before the split (:class:`SleepSource`), records kept apart and
possibly memory-mapped, and what a file format of records is (:class:`RecordFormat`: how its files are found,
read and cached)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import DatasetFormatError, DatasetNotFoundError
from .recording import SleepRecording, load_sleep_npz

__all__ = ["SleepSource", "RecordFormat", "npz_records", "SLEEP_NPZ_FORMAT"]


@dataclass
class SleepSource:
    """Every window of a data source before splitting; ``X`` kept per record, possibly memory-mapped.

    Attributes:
        parts: per record, ``float32 (W_r, C, T)`` windows, as an array or as the path of a ``.npy`` file
            that is memory-mapped (read-only) on first access in each process.
        y: ``int64 (W,)`` stages ``0..4`` of all windows, records in order.
        subject, record: ``str (W,)`` ids. onset: ``float64 (W,)`` seconds from the record start.
        channels: ``C`` names. fs: rate in Hz. window_len: ``T`` samples.
    """

    parts: list
    y: np.ndarray
    subject: np.ndarray
    record: np.ndarray
    onset: np.ndarray
    channels: tuple[str, ...]
    fs: float
    window_len: int

    def __post_init__(self) -> None:
        sizes = [_part_len(p) for p in self.parts]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)  # (R + 1,)
        if self.offsets[-1] != self.y.shape[0]:
            raise ValueError(f"{self.offsets[-1]} windows in parts but {self.y.shape[0]} labels")
        self._open: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @classmethod
    def from_recordings(cls, recs: Sequence[SleepRecording], parts: list | None = None) -> "SleepSource":
        """Join recordings (same channels, rate, window length), in order; ``parts`` replaces their ``X``
        (e.g. paths of cached ``.npy`` windows). A recording that does not match the first raises
        :class:`part.data.errors.DatasetFormatError` naming it."""
        recs = list(recs)
        if not recs:
            raise ValueError("no recordings to join")
        ref = recs[0]
        for r in recs[1:]:
            if r.channels != ref.channels or r.fs != ref.fs or r.X.shape[2] != ref.X.shape[2]:
                raise DatasetFormatError(
                    f"record {r.record[0] if len(r) else '?'} has channels {r.channels} at {r.fs:g} Hz x "
                    f"{r.X.shape[2]} samples, unlike {ref.channels} at {ref.fs:g} Hz x {ref.X.shape[2]}"
                )
        return cls(
            parts if parts is not None else [r.X for r in recs],
            np.concatenate([r.y for r in recs]),
            np.concatenate([r.subject for r in recs]),
            np.concatenate([r.record for r in recs]),
            np.concatenate([r.onset for r in recs]),
            ref.channels,
            ref.fs,
            int(ref.X.shape[2]),
        )

    def _part(self, r: int) -> np.ndarray:
        p = self.parts[r]
        if isinstance(p, np.ndarray):
            return p
        arr = self._open.get(r)
        if arr is None:
            arr = self._open[r] = np.load(p, mmap_mode="r", allow_pickle=False)
        return arr

    def window(self, g: int) -> np.ndarray:
        """Window ``g`` (global index) as ``float32 (C, T)`` (a read-only view for memory-mapped records)."""
        r = int(np.searchsorted(self.offsets, g, side="right")) - 1
        return self._part(r)[g - self.offsets[r]]

    def __getstate__(self) -> dict:  # DataLoader workers re-open memory maps instead of pickling data
        state = dict(self.__dict__)
        state["_open"] = {}
        return state


def _part_len(p) -> int:
    if isinstance(p, np.ndarray):
        return int(p.shape[0])
    return int(np.load(p, mmap_mode="r", allow_pickle=False).shape[0])


@dataclass(frozen=True)
class RecordFormat:
    """A file format of sleep records: how its records are found under a folder (``find(root)`` -> sorted
    paths; none found raises :class:`part.data.errors.DatasetNotFoundError` naming the folder), how one is read
    (``read(path, **reader options)`` -> :class:`SleepRecording`), which files a cached copy of one depends on
    (``files(path)``) and its default channels. The sleep data kinds (:data:`part.data.sleep.SLEEP_KINDS`) name
    the formats; a format knows no kind name."""

    find: Callable[[Path], list]
    read: Callable[..., SleepRecording]
    files: Callable[[Path], list] = lambda path: [path]
    channels: tuple[str, ...] | None = None


def npz_records(root: Path) -> list[Path]:
    """Every ``*.npz`` under ``root`` (recursively), sorted."""
    paths = sorted(root.rglob("*.npz"))
    if not paths:
        raise DatasetNotFoundError(f"no .npz files under {root}")
    return paths


SLEEP_NPZ_FORMAT = RecordFormat(npz_records, load_sleep_npz)
"""Already-windowed ``.npz`` files (:func:`part.data.sleep.load_sleep_npz`)."""
