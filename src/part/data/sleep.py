"""Sleep-staging data for 1D PART (paper §5.2 "Time-series prediction", Appendix 8.1 "1D time series
classification").

The paper pre-trains a 1D ViT on six scalp-EEG channels of the PhysioNet/CinC 2018 "You Snooze You Win"
challenge, fine-tunes on 10 subjects and tests on held-out subjects; the task is the five-class sleep stage
(Wake, N1, N2, N3, REM) of a 30-second window. This module turns recordings into that shape:

* :class:`SleepRecording` - windows ``X`` ``float32 (W, C, T)``, stages ``y`` ``int64 (W,)`` in
  ``0..4`` (:data:`STAGES`), and per window the ``subject``, ``record`` and ``onset`` (seconds from the
  record start), plus ``channels`` and ``fs``. Every loader returns one; :meth:`SleepRecording.concatenate`
  joins them.
* Readers: :func:`load_physionet2018_record` (WFDB ``.hea`` + signal files + ``.arousal`` annotations),
  :func:`load_sleep_edf_record` (Sleep-EDF ``*-PSG.edf`` + ``*-Hypnogram.edf``), :func:`load_sleep_npz`
  (already windowed arrays), and :func:`load_sleep_folder` to scan a directory for any of the three.
* :func:`subject_split` - pretrain / finetune / test window indices split by subject as in App. 8.1.
* :class:`SleepWindowDataset` - a torch ``Dataset`` yielding ``(x (C, T) float tensor, label int)``.

Raw records go through :func:`part.data.signal.preprocess` (0.1-30 Hz zero-phase band-pass, re-sampling to
100 Hz), 30-s windowing aligned to the first scored epoch, and per-window instance normalisation.

Labels. AASM stages are kept; R&K stage 4 is merged into N3 (R&K 3 + 4 = AASM N3). Unscored epochs
("Sleep stage ?", PhysioNet "undefined"), movement time and epochs before the first stage annotation are
dropped. A window takes the stage that covers more than half of it; windows without such a majority (only
possible when the annotations are not aligned to 30-s epochs) are dropped.

Errors: a missing file or folder raises :class:`part.data.images.DatasetNotFoundError` (a
``FileNotFoundError``), a malformed one :class:`part.data.images.DatasetFormatError` (a ``ValueError``),
a bad argument a plain ``ValueError``; every message names the record or file.

``wfdb`` (PhysioNet) and ``pyedflib`` (EDF) are optional: they are imported inside the readers, which raise
``ImportError`` with the install hint ``pip install 'part[sleep]'`` when they are missing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from .images import DatasetFormatError, DatasetNotFoundError
from .signal import instance_normalize, make_windows, preprocess, window_length

__all__ = [
    "STAGES",
    "UNSCORED",
    "PHYSIONET2018_EEG",
    "SLEEP_EDF_EEG",
    "SleepRecording",
    "SubjectSplit",
    "SleepWindowDataset",
    "parse_stage",
    "label_windows",
    "load_physionet2018_record",
    "load_sleep_edf_record",
    "load_sleep_npz",
    "load_sleep_folder",
    "subject_split",
]

STAGES: tuple[str, ...] = ("W", "N1", "N2", "N3", "REM")
"""Class names for labels ``0..4``."""

UNSCORED = -1
"""Internal code of unscored / movement epochs (never present in a returned ``y``)."""

PHYSIONET2018_EEG: tuple[str, ...] = ("F3-M2", "F4-M1", "C3-M2", "C4-M1", "O1-M2", "O2-M1")
"""The six scalp-EEG derivations of the PhysioNet 2018 challenge records (App. 8.1: "six channels of scalp
electroencephalography")."""

SLEEP_EDF_EEG: tuple[str, ...] = ("EEG Fpz-Cz", "EEG Pz-Oz")
"""The two EEG derivations of Sleep-EDF (sleep-cassette and sleep-telemetry) PSG files."""

_STAGE_CODES = {
    "W": 0, "WAKE": 0, "STAGE W": 0,
    "N1": 1, "1": 1, "S1": 1,
    "N2": 2, "2": 2, "S2": 2,
    "N3": 3, "3": 3, "S3": 3,
    "N4": 3, "4": 3, "S4": 3,  # R&K stage 4 is part of AASM N3
    "R": 4, "REM": 4,
}
_UNSCORED_TEXT = {"?", "U", "UNDEFINED", "UNSCORED", "UNKNOWN", "MOVEMENT TIME", "MOVEMENT", "MT"}

_INSTALL_HINT = "pip install 'part[sleep]'"


def _require(module: str, what: str):
    try:
        return __import__(module)
    except ImportError as err:
        raise ImportError(
            f"{what} needs the optional package '{module}', part of the sleep extra: {_INSTALL_HINT}"
        ) from err


# --------------------------------------------------------------------------------------------- labels


def parse_stage(text: str | bytes) -> int | None:
    """Sleep-stage code of an annotation string, or ``None`` when it is not a stage annotation.

    ``0..4`` for W, N1, N2, N3 (also R&K stage 3 and 4), REM; :data:`UNSCORED` (-1) for unscored or
    movement epochs. Accepts PhysioNet 2018 ``aux_note`` strings (``"W"``, ``"N1"``, ``"N2"``, ``"N3"``,
    ``"R"``) and Sleep-EDF descriptions (``"Sleep stage W/1/2/3/4/R/?"``, ``"Movement time"``). Arousal and
    respiratory event markers such as ``"(arousal_rera"`` / ``"arousal_rera)"`` return ``None``.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    s = " ".join(str(text).replace("\x00", "").split()).upper()
    if s.startswith("(") or s.endswith(")"):
        return None  # event start / end markers
    if s.startswith("SLEEP STAGE "):
        s = s[len("SLEEP STAGE ") :]
    elif s.startswith("SLEEP_STAGE_"):
        s = s[len("SLEEP_STAGE_") :]
    if s in _STAGE_CODES:
        return _STAGE_CODES[s]
    if s in _UNSCORED_TEXT:
        return UNSCORED
    return None


def label_windows(
    starts: np.ndarray,
    ends: np.ndarray,
    codes: np.ndarray,
    n_samples: int,
    fs: float,
    window_s: float = 30.0,
    origin: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Stage of every window of a record from stage intervals.

    Args:
        starts, ends, codes: ``(K,)`` intervals ``[start, end)`` in samples at ``fs`` and their codes from
            :func:`parse_stage` (``-1`` marks unscored time). Later intervals overwrite earlier ones.
        n_samples: record length in samples at ``fs``.
        origin: sample where window 0 starts (the first scored epoch, so windows follow the scoring grid).

    Returns:
        ``(y, keep)``: ``y`` ``int64 (W,)`` with the majority stage of each of the ``W = (n_samples -
        origin) // T_w`` windows (``-1`` when no stage covers more than half of it) and ``keep`` ``bool
        (W,)`` = ``y >= 0``.
    """
    t_w = window_length(fs, window_s)
    n_win = max(0, (n_samples - origin) // t_w)
    per_sample = np.full(n_samples, UNSCORED, dtype=np.int8)
    for a, b, c in zip(np.asarray(starts), np.asarray(ends), np.asarray(codes)):
        per_sample[max(int(a), 0) : max(min(int(b), n_samples), 0)] = c
    lab = per_sample[origin : origin + n_win * t_w].reshape(n_win, t_w)
    counts = np.stack([(lab == k).sum(axis=1) for k in range(len(STAGES))], axis=1)  # (W, 5)
    best = counts.argmax(axis=1) if n_win else np.zeros(0, dtype=np.int64)
    major = counts[np.arange(n_win), best] * 2 > t_w
    y = np.where(major, best, UNSCORED).astype(np.int64)
    return y, y >= 0


# ---------------------------------------------------------------------------------------- containers


@dataclass
class SleepRecording:
    """Windows of one or more sleep recordings, ready for a model (App. 8.1).

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
    fs: float = 100.0

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

    @classmethod
    def concatenate(cls, parts: Sequence["SleepRecording"]) -> "SleepRecording":
        """Join recordings that share channels, ``fs`` and window length."""
        parts = list(parts)
        if not parts:
            raise ValueError("concatenate needs at least one SleepRecording")
        ref = parts[0]
        for p in parts[1:]:
            if p.channels != ref.channels:
                raise ValueError(f"cannot concatenate recordings with channels {ref.channels} and {p.channels}")
            if p.fs != ref.fs or p.X.shape[2] != ref.X.shape[2]:
                raise ValueError(
                    f"cannot concatenate windows of {ref.X.shape[2]} samples at {ref.fs:g} Hz with "
                    f"{p.X.shape[2]} samples at {p.fs:g} Hz"
                )
        return cls(
            np.concatenate([p.X for p in parts]),
            np.concatenate([p.y for p in parts]),
            np.concatenate([p.subject for p in parts]),
            np.concatenate([p.record for p in parts]),
            np.concatenate([p.onset for p in parts]),
            ref.channels,
            ref.fs,
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


@dataclass(frozen=True)
class SubjectSplit:
    """Window indices (``int64``, sorted) of the three sets of App. 8.1, and their subjects."""

    pretrain: np.ndarray
    finetune: np.ndarray
    test: np.ndarray
    pretrain_subjects: tuple[str, ...]
    finetune_subjects: tuple[str, ...]
    test_subjects: tuple[str, ...]


class SleepWindowDataset(Dataset):
    """Torch view of a :class:`SleepRecording`: item ``i`` is ``(x, label)`` with ``x`` a ``float32``
    tensor ``(C, T)`` (sharing memory with ``data.X``) and ``label`` an ``int`` in ``0..4``.

    ``indices`` restricts the view (e.g. ``SubjectSplit.finetune``); ``transform`` maps ``x`` to ``x``.
    """

    def __init__(
        self,
        data: SleepRecording,
        indices: Iterable[int] | np.ndarray | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.data = data
        idx = np.arange(len(data)) if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -len(data) or idx.max() >= len(data)):
            raise IndexError(f"indices out of range for {len(data)} windows")
        self.indices = idx
        self.transform = transform

    def __len__(self) -> int:
        return int(self.indices.size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        j = self.indices[i]
        x = torch.from_numpy(self.data.X[j])
        if self.transform is not None:
            x = self.transform(x)
        return x, int(self.data.y[j])

    @property
    def labels(self) -> np.ndarray:
        """``int64 (len(self),)`` labels of the viewed windows."""
        return self.data.y[self.indices]


# ---------------------------------------------------------------------------------------- helpers


def _select_channels(available: Sequence[str], wanted: Sequence[str], source: str) -> list[int]:
    """Indices of ``wanted`` in ``available``: exact match first, then case/space-insensitive."""
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


def _windows_from_record(
    signals: list[np.ndarray],
    rates: list[float],
    intervals_s: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    name: str,
    subject: str,
    channels: Sequence[str],
    fs: float,
    band: tuple[float, float],
    window_s: float,
    normalize: bool,
    wake_edge_min: float | None,
    backend: str,
) -> SleepRecording:
    """Shared tail of the raw-record readers: preprocess every channel at its own rate, cut windows on the
    scoring grid, keep scored windows. ``intervals_s``: ``(start_s, end_s, code)`` arrays in seconds."""
    processed: list[np.ndarray | None] = [None] * len(signals)
    for rate in dict.fromkeys(rates):  # channels sharing a rate are filtered together
        group = [i for i, r in enumerate(rates) if r == rate]
        length = min(signals[i].shape[0] for i in group)
        try:
            out = preprocess(np.stack([signals[i][:length] for i in group]), rate, fs, band[0], band[1], backend=backend)
        except ValueError as err:
            raise ValueError(f"record {name}: {err}") from None
        for i, row in zip(group, out):
            processed[i] = row
    n = min(p.shape[0] for p in processed)
    x = np.stack([p[:n] for p in processed])  # (C, n) at fs
    start_s, end_s, codes = intervals_s
    scored = codes >= 0
    if not scored.any():
        raise DatasetFormatError(f"record {name}: no sleep-stage annotations (W, N1, N2, N3, R) found")
    origin = int(round(float(start_s[scored].min()) * fs))
    t_w = window_length(fs, window_s)
    if n - origin < t_w:
        raise ValueError(
            f"record {name}: window of {window_s:g} s is longer than the scored part of the record "
            f"({max(n - origin, 0) / fs:g} s)"
        )
    y, keep = label_windows(
        np.round(start_s * fs).astype(np.int64), np.round(end_s * fs).astype(np.int64), codes, n, fs, window_s, origin
    )
    onset = (origin + np.arange(y.size) * t_w) / fs
    if wake_edge_min is not None:
        keep &= _wake_edge_mask(y, onset, wake_edge_min * 60.0)
    if not keep.any():
        raise ValueError(f"record {name}: no {window_s:g}-s window carries a scored sleep stage")
    windows = make_windows(x, fs, window_s, start=origin)[keep]
    if normalize:
        windows = instance_normalize(windows)
    w = int(keep.sum())
    return SleepRecording(
        windows, y[keep], np.full(w, subject), np.full(w, name), onset[keep], tuple(channels), fs
    )


def _wake_edge_mask(y: np.ndarray, onset: np.ndarray, edge_s: float) -> np.ndarray:
    """Keep at most ``edge_s`` seconds of wake before the first and after the last sleep window."""
    if edge_s < 0:
        raise ValueError(f"wake_edge_min must be >= 0, got {edge_s / 60:g}")
    sleep = (y > 0).nonzero()[0]
    if sleep.size == 0:
        return np.ones(y.shape, dtype=bool)
    first, last = onset[sleep[0]], onset[sleep[-1]]
    return (onset >= first - edge_s - 1e-9) & (onset <= last + edge_s + 1e-9)


def _record_base(path: str | Path) -> Path:
    """PhysioNet record base path (no extension) from a base path, a ``.hea`` file or a record folder."""
    p = Path(path)
    if p.is_dir():
        cand = p / p.name
        if cand.with_suffix(".hea").exists():
            return cand
        heads = sorted(p.glob("*.hea"))
        if len(heads) == 1:
            return heads[0].with_suffix("")
        raise DatasetNotFoundError(f"{p}: expected exactly one WFDB header (*.hea), found {len(heads)}")
    if p.suffix in (".hea", ".mat", ".dat", ".arousal"):
        p = p.with_suffix("")
    if not p.with_suffix(".hea").exists():
        raise DatasetNotFoundError(f"WFDB header {p.with_suffix('.hea')} does not exist")
    return p


# ------------------------------------------------------------------------------------------ readers


def _read_aux_notes(wfdb, base: Path, extension: str) -> tuple[np.ndarray, list[str]]:
    """``(sample (K,), aux_note (K,))`` of a WFDB annotation file, keeping a note at sample 0.

    ``wfdb.rdann`` discards every NOTE annotation at sample 0 (WFDB stores file-level definitions such as
    ``"## time resolution: 200"`` there), which would lose a sleep stage scored from the first sample. So the
    annotation bytes are decoded with wfdb's own parser and only ``"## "`` definition notes are dropped;
    if that internal API is unavailable, ``rdann`` is used (losing only such a sample-0 stage).
    """
    try:
        from wfdb.io.annotation import load_byte_pairs, proc_ann_bytes

        raw = proc_ann_bytes(load_byte_pairs(str(base), extension, None), None)
        sample, aux = np.asarray(raw[0], dtype=np.int64), list(raw[5])
    except (ImportError, AttributeError, TypeError, ValueError, IndexError):  # pragma: no cover - other wfdb
        ann = wfdb.rdann(str(base), extension)
        sample = np.asarray(ann.sample, dtype=np.int64)
        aux = list(ann.aux_note) if ann.aux_note is not None else [None] * sample.size
    keep = [i for i, a in enumerate(aux) if a is not None and not str(a).startswith("## ")]
    return sample[keep], [str(aux[i]) for i in keep]



def load_physionet2018_record(
    path: str | Path,
    channels: Sequence[str] = PHYSIONET2018_EEG,
    fs: float = 100.0,
    band: tuple[float, float] = (0.1, 30.0),
    window_s: float = 30.0,
    normalize: bool = True,
    wake_edge_min: float | None = None,
    backend: str = "auto",
) -> SleepRecording:
    """Read one PhysioNet/CinC 2018 "You Snooze You Win" record (paper App. 8.1).

    A record ``tr03-0005`` is ``tr03-0005.hea`` (WFDB header), its signal file (``.mat`` in the challenge
    release, any WFDB format works) and ``tr03-0005.arousal``, a WFDB annotation file whose ``aux_note``
    strings mark sleep-stage *changes* (``W``, ``N1``, ``N2``, ``N3``, ``R``; each stage lasts until the
    next stage annotation or the end of the record) interleaved with event markers (``(arousal_rera`` ...
    ``arousal_rera)``, ``(resp_hypopnea`` ...), which are ignored. The challenge records are 200 Hz.

    Args:
        path: the record base path, its ``.hea`` file, or the record's folder.
        channels: signal names to keep (default: the six EEG derivations :data:`PHYSIONET2018_EEG`).
        fs: output rate (100 Hz in the paper); a record sampled below it is refused.
        band: band-pass cut-offs in Hz (0.1-30 Hz in the paper).
        window_s: window length in seconds (30 s).
        normalize: instance-normalise every window (paper: yes).
        wake_edge_min: if set, keep at most this many minutes of wake before the first / after the last
            sleep window (``None`` keeps all).
        backend: filtering backend of :mod:`part.data.signal`.

    Returns:
        :class:`SleepRecording` with ``subject == record ==`` the record name.

    Raises:
        ImportError: ``wfdb`` is not installed.
        DatasetNotFoundError (a ``FileNotFoundError``): no header / no ``.arousal`` file.
        DatasetFormatError (a ``ValueError``): the ``.arousal`` file has no stage annotations.
        ValueError: a requested channel is missing (the message lists the available ones), the record's
            rate is below ``fs``, or it is shorter than one window.
    """
    wfdb = _require("wfdb", "reading PhysioNet 2018 (WFDB) records")
    base = _record_base(path)
    name = base.name
    ann_file = base.with_suffix(".arousal")
    if not ann_file.exists():
        raise DatasetNotFoundError(f"record {name}: stage annotation file {ann_file} does not exist")
    header = wfdb.rdheader(str(base))
    idx = _select_channels(header.sig_name, channels, f"record {name}")
    rec = wfdb.rdrecord(str(base), channels=idx, physical=True)
    sig = np.asarray(rec.p_signal, dtype=np.float64).T  # (C, T) at rec.fs
    rate = float(rec.fs)
    samples, notes = _read_aux_notes(wfdb, base, "arousal")
    codes_all = [parse_stage(a) for a in notes]
    is_stage = np.array([c is not None for c in codes_all], dtype=bool)
    if not any(c is not None and c >= 0 for c in codes_all):
        raise DatasetFormatError(
            f"record {name}: no sleep-stage annotations (W, N1, N2, N3, R) in {ann_file.name}; "
            f"found {len(notes)} other annotations"
        )
    st = samples[is_stage]
    codes = np.array([c for c in codes_all if c is not None], dtype=np.int64)
    order = np.argsort(st, kind="stable")
    st, codes = st[order], codes[order]
    n_in = sig.shape[1]
    ends = np.append(st[1:], n_in)
    return _windows_from_record(
        list(sig),
        [rate] * sig.shape[0],
        (st / rate, ends / rate, codes),
        name=name,
        subject=name,
        channels=[header.sig_name[i] for i in idx],
        fs=fs,
        band=band,
        window_s=window_s,
        normalize=normalize,
        wake_edge_min=wake_edge_min,
        backend=backend,
    )


_SLEEP_EDF_NAME = re.compile(r"^(S[CT]\d{3})(\d)")


def _sleep_edf_ids(psg: Path) -> tuple[str, str]:
    """``(subject, record)`` from a Sleep-EDF file name: ``SC4ssN...`` -> subject ``SC4ss``, record ``SC4ssN``."""
    stem = psg.name.split("-PSG")[0] if "-PSG" in psg.name else psg.stem
    m = _SLEEP_EDF_NAME.match(stem)
    if m:
        return m.group(1), m.group(1) + m.group(2)
    return stem, stem


def _find_hypnogram(psg: Path) -> Path:
    stem = psg.name.split("-PSG")[0] if "-PSG" in psg.name else psg.stem
    m = _SLEEP_EDF_NAME.match(stem)
    # Sleep-EDF pairs SC4001E0-PSG.edf with SC4001EC-Hypnogram.edf: match on the subject+night prefix
    prefix = m.group(0) if m else stem
    cands = sorted(psg.parent.glob(f"{prefix}*-Hypnogram.edf"))
    if not cands:
        raise DatasetNotFoundError(f"{psg}: no hypnogram file matching {psg.parent / (prefix + '*-Hypnogram.edf')}")
    if len(cands) > 1:
        raise ValueError(f"{psg}: several hypnograms match, pass hypnogram= explicitly: {[c.name for c in cands]}")
    return cands[0]


def _edf_start(reader) -> datetime | None:
    try:
        return reader.getStartdatetime()
    except Exception:  # pragma: no cover - malformed header dates
        return None


def load_sleep_edf_record(
    psg_path: str | Path,
    hypnogram_path: str | Path | None = None,
    channels: Sequence[str] = SLEEP_EDF_EEG,
    fs: float = 100.0,
    band: tuple[float, float] = (0.1, 30.0),
    window_s: float = 30.0,
    normalize: bool = True,
    wake_edge_min: float | None = None,
    backend: str = "auto",
) -> SleepRecording:
    """Read one Sleep-EDF night: ``*-PSG.edf`` signals + ``*-Hypnogram.edf`` EDF+ annotations.

    Hypnogram annotations are ``(onset, duration, "Sleep stage W/1/2/3/4/R/?")`` or ``"Movement time"``;
    stage 4 becomes N3, ``?`` and movement are dropped. Onsets are shifted by the difference of the two
    files' start times. Each channel is filtered at its own rate and re-sampled to ``fs``. The subject id
    is ``SC4ss`` / ``ST7ss`` (two nights of one person share it), the record id adds the night digit.

    Args:
        psg_path: the ``*-PSG.edf`` file.
        hypnogram_path: its hypnogram; default: the one ``*-Hypnogram.edf`` in the same folder whose name
            starts with the same subject+night prefix (``SC4001``).
        channels: signal labels to keep (default :data:`SLEEP_EDF_EEG`).
        fs, band, window_s, normalize, wake_edge_min, backend: as in :func:`load_physionet2018_record`
            (``wake_edge_min=30`` reproduces the common "30 minutes of wake around sleep" trimming).

    Raises:
        ImportError: ``pyedflib`` is not installed.
        DatasetNotFoundError (a ``FileNotFoundError``): the PSG or hypnogram file is missing.
        DatasetFormatError (a ``ValueError``): the hypnogram has no stage annotations.
        ValueError: a missing channel (message lists the available ones), a rate below ``fs``, or a record
            shorter than one window.
    """
    pyedflib = _require("pyedflib", "reading Sleep-EDF (EDF/EDF+) files")
    psg = Path(psg_path)
    if not psg.exists():
        raise DatasetNotFoundError(f"PSG file {psg} does not exist")
    hyp = Path(hypnogram_path) if hypnogram_path is not None else _find_hypnogram(psg)
    if not hyp.exists():
        raise DatasetNotFoundError(f"hypnogram file {hyp} does not exist")
    subject, name = _sleep_edf_ids(psg)

    reader = pyedflib.EdfReader(str(psg))
    try:
        labels = [str(s).strip() for s in reader.getSignalLabels()]
        idx = _select_channels(labels, channels, f"record {name} ({psg.name})")
        signals = [np.asarray(reader.readSignal(i), dtype=np.float64) for i in idx]
        rates = [float(reader.getSampleFrequency(i)) for i in idx]
        psg_start = _edf_start(reader)
    finally:
        reader.close()

    hreader = pyedflib.EdfReader(str(hyp))
    try:
        onsets, durations, descriptions = hreader.readAnnotations()
        hyp_start = _edf_start(hreader)
    finally:
        hreader.close()
    shift = (hyp_start - psg_start).total_seconds() if hyp_start and psg_start else 0.0
    codes_all = [parse_stage(d) for d in descriptions]
    is_stage = np.array([c is not None for c in codes_all], dtype=bool)
    if not any(c is not None and c >= 0 for c in codes_all):
        raise DatasetFormatError(
            f"record {name}: no sleep-stage annotations ('Sleep stage W/1/2/3/4/R') in {hyp.name}; "
            f"found {len(codes_all)} other annotations"
        )
    start_s = np.asarray(onsets, dtype=np.float64)[is_stage] + shift
    end_s = start_s + np.asarray(durations, dtype=np.float64)[is_stage]
    codes = np.array([c for c in codes_all if c is not None], dtype=np.int64)
    return _windows_from_record(
        signals,
        rates,
        (start_s, end_s, codes),
        name=name,
        subject=subject,
        channels=[labels[i] for i in idx],
        fs=fs,
        band=band,
        window_s=window_s,
        normalize=normalize,
        wake_edge_min=wake_edge_min,
        backend=backend,
    )


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
        fs: rate of ``X``; default the file's ``fs``, else 100 Hz. A given value must match the file's.
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
    rate = file_fs if file_fs is not None else (100.0 if fs is None else fs)
    if channels is not None:
        if names is None:
            raise ValueError(f"{path}: channels={list(channels)} requested but the file stores no channel names")
        idx = _select_channels(names, channels, str(path))
        X, names = X[:, idx], tuple(names[i] for i in idx)
    if normalize:
        X = instance_normalize(X)
    return SleepRecording(X, y, subject, record, onset, names or (), rate)


_FORMATS = ("physionet2018", "sleep_edf", "npz")


def record_paths(root: Path, format: str) -> list[Path]:
    """Sorted record files of one format under ``root`` (see :func:`load_sleep_folder` for the rules);
    a format with no records raises :class:`DatasetNotFoundError` naming the folder."""
    if format == "physionet2018":
        heads = sorted(root.rglob("*.hea"))
        paths = [h for h in heads if h.with_suffix(".arousal").exists()]
        if not paths:
            raise DatasetNotFoundError(
                f"no PhysioNet 2018 records with .arousal stage annotations under {root} "
                f"({len(heads)} WFDB header(s) found)"
            )
        return paths
    if format == "sleep_edf":
        paths = sorted(root.rglob("*-PSG.edf"))
        if not paths:
            raise DatasetNotFoundError(f"no Sleep-EDF PSG files (*-PSG.edf) under {root}")
        return paths
    paths = sorted(root.rglob("*.npz"))
    if not paths:
        raise DatasetNotFoundError(f"no .npz files under {root}")
    return paths


def load_sleep_folder(
    root: str | Path,
    format: str = "physionet2018",
    channels: Sequence[str] | None = None,
    max_records: int | None = None,
    **kwargs,
) -> SleepRecording:
    """Scan ``root`` recursively and load every record of one format into a single :class:`SleepRecording`.

    * ``"physionet2018"``: every ``*.hea`` with a sibling ``.arousal`` file (the challenge's unlabelled
      test records, which have none, are skipped).
    * ``"sleep_edf"``: every ``*-PSG.edf`` (each paired with its ``*-Hypnogram.edf``).
    * ``"npz"``: every ``*.npz``.

    Records are taken in sorted path order; ``max_records`` keeps the first ones. ``channels=None`` uses the
    format's default (:data:`PHYSIONET2018_EEG`, :data:`SLEEP_EDF_EEG`, all channels of the npz).
    ``kwargs`` go to the per-record reader (``fs``, ``band``, ``window_s``, ``normalize``, ...).
    """
    root = Path(root)
    if format not in _FORMATS:
        raise ValueError(f"format must be one of {_FORMATS}, got {format!r}")
    if not root.is_dir():
        raise DatasetNotFoundError(f"data folder {root} does not exist")
    if max_records is not None and max_records < 1:
        raise ValueError(f"max_records must be >= 1, got {max_records}")
    paths = record_paths(root, format)
    if format == "physionet2018":
        load, default = load_physionet2018_record, PHYSIONET2018_EEG
    elif format == "sleep_edf":
        load, default = load_sleep_edf_record, SLEEP_EDF_EEG
    else:
        load, default = load_sleep_npz, None
    if max_records is not None:
        paths = paths[:max_records]
    chosen = default if channels is None else channels
    parts = [load(p, channels=chosen, **kwargs) for p in paths]
    return SleepRecording.concatenate(parts)


# -------------------------------------------------------------------------------------------- split


def subject_split(
    subjects,
    n_finetune: int = 10,
    n_test: int | float = 0.2,
    seed: int = 0,
    finetune_in_pretrain: bool = True,
) -> SubjectSplit:
    """Split windows by subject into the pretrain / finetune / test sets of App. 8.1.

    The paper pre-trains on all training subjects (labels unused), fine-tunes on recordings of 10 subjects
    ("to simulate a low-labeled data regime") and tests on subjects "held out from both pretraining and
    finetuning stages". Here:

    * ``test``: ``n_test`` subjects drawn at random (an ``int`` count, or a ``float`` fraction in (0, 1) of
      the subjects, rounded, at least 1);
    * ``finetune``: ``n_finetune`` other subjects drawn at random;
    * ``pretrain``: every non-test subject. Pretrain and finetune *may overlap* (the finetune subjects are a
      subset of the pretrain subjects, as in the paper, where pretraining uses no labels); pass
      ``finetune_in_pretrain=False`` to make them disjoint.
    * The test subjects are disjoint from both pretrain and finetune, always.

    Args:
        subjects: ``(W,)`` subject id of every window (e.g. ``SleepRecording.subject``).
        seed: the draw is a permutation of the sorted distinct ids by ``numpy.random.default_rng(seed)``.

    Returns:
        :class:`SubjectSplit` with sorted ``int64`` window indices per set and the subject ids.
    """
    subj = np.asarray(subjects).astype(str).reshape(-1)
    uniq = np.unique(subj)
    n_subj = uniq.size
    if isinstance(n_test, (float, np.floating)):
        if not 0 < n_test < 1:
            raise ValueError(f"n_test given as a float is a fraction of the subjects and must be in (0, 1), got {n_test}")
        n_test = max(1, int(round(n_test * n_subj)))
    n_test = int(n_test)
    if n_test < 1:
        raise ValueError(f"n_test must be >= 1, got {n_test}")
    if n_finetune < 1:
        raise ValueError(f"n_finetune must be >= 1, got {n_finetune}")
    if n_test + n_finetune > n_subj:
        raise ValueError(
            f"n_finetune={n_finetune} + n_test={n_test} subjects exceed the {n_subj} distinct subjects"
        )
    if not finetune_in_pretrain and n_test + n_finetune == n_subj:
        raise ValueError(
            f"finetune_in_pretrain=False leaves no pretraining subject: n_finetune={n_finetune} + "
            f"n_test={n_test} == {n_subj} subjects"
        )
    perm = uniq[np.random.default_rng(seed).permutation(n_subj)]
    test_s = np.sort(perm[:n_test])
    fine_s = np.sort(perm[n_test : n_test + n_finetune])
    pre_s = np.sort(perm[n_test:] if finetune_in_pretrain else perm[n_test + n_finetune :])

    def where(ids: np.ndarray) -> np.ndarray:
        return np.flatnonzero(np.isin(subj, ids)).astype(np.int64)

    return SubjectSplit(
        where(pre_s), where(fine_s), where(test_s),
        tuple(pre_s.tolist()), tuple(fine_s.tolist()), tuple(test_s.tolist()),
    )


def build_sleep_dataset(d, split: str = "pretrain", seed: int | None = None):
    """Re-export of :func:`part.data.sleep_datasets.build_sleep_dataset` (imported lazily: no import cycle)."""
    from .sleep_datasets import build_sleep_dataset as build

    return build(d, split=split, seed=seed)
