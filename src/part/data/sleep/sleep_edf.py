"""Sleep-EDF (Expanded) nights: a ``*-PSG.edf`` signal file and its ``*-Hypnogram.edf`` EDF+ annotations.

``pyedflib`` is optional (the ``part[sleep]`` extra): it is imported when a night is read, and its absence
raises ``ImportError`` with the install hint.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DatasetNotFoundError, require_extra
from ..signal import PAPER_EEG
from .recording import SleepRecording, select_channels
from .source import RecordFormat
from .stages import stage_annotations
from .windowing import windows_from_record

__all__ = ["SLEEP_EDF_EEG", "SLEEP_EDF_FORMAT", "load_sleep_edf_record", "find_hypnogram", "sleep_edf_ids",
           "sleep_edf_records"]

SLEEP_EDF_EEG: tuple[str, ...] = ("EEG Fpz-Cz", "EEG Pz-Oz")
"""The two EEG derivations of Sleep-EDF (sleep-cassette and sleep-telemetry) PSG files."""


_SLEEP_EDF_NAME = re.compile(r"^(S[CT]\d{3})(\d)")


def sleep_edf_ids(psg: Path) -> tuple[str, str]:
    """``(subject, record)`` from a Sleep-EDF file name: ``SC4ssN...`` -> subject ``SC4ss``, record ``SC4ssN``."""
    stem = psg.name.split("-PSG")[0] if "-PSG" in psg.name else psg.stem
    m = _SLEEP_EDF_NAME.match(stem)
    if m:
        return m.group(1), m.group(1) + m.group(2)
    return stem, stem


def find_hypnogram(psg: Path) -> Path:
    """The one ``*-Hypnogram.edf`` beside ``psg`` that shares its subject+night prefix (``SC4001``)."""
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
    fs: float = PAPER_EEG.fs,
    band: tuple[float, float] = PAPER_EEG.band,
    window_s: float = PAPER_EEG.window_s,
    normalize: bool = PAPER_EEG.normalize,
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
    pyedflib = require_extra("pyedflib", "reading Sleep-EDF (EDF/EDF+) files")
    psg = Path(psg_path)
    if not psg.exists():
        raise DatasetNotFoundError(f"PSG file {psg} does not exist")
    hyp = Path(hypnogram_path) if hypnogram_path is not None else find_hypnogram(psg)
    if not hyp.exists():
        raise DatasetNotFoundError(f"hypnogram file {hyp} does not exist")
    subject, name = sleep_edf_ids(psg)

    reader = pyedflib.EdfReader(str(psg))
    try:
        labels = [str(s).strip() for s in reader.getSignalLabels()]
        idx = select_channels(labels, channels, f"record {name} ({psg.name})")
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
    is_stage, codes = stage_annotations(descriptions, name, hyp.name, "'Sleep stage W/1/2/3/4/R'")
    start_s = np.asarray(onsets, dtype=np.float64)[is_stage] + shift
    end_s = start_s + np.asarray(durations, dtype=np.float64)[is_stage]
    return windows_from_record(
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


def sleep_edf_records(root: Path) -> list[Path]:
    """Every ``*-PSG.edf`` under ``root`` (recursively, sorted); each is paired with its hypnogram when read."""
    paths = sorted(root.rglob("*-PSG.edf"))
    if not paths:
        raise DatasetNotFoundError(f"no Sleep-EDF PSG files (*-PSG.edf) under {root}")
    return paths


SLEEP_EDF_FORMAT = RecordFormat(sleep_edf_records, load_sleep_edf_record, lambda psg: [psg, find_hypnogram(psg)],
                                SLEEP_EDF_EEG)
"""Sleep-EDF nights: a ``*-PSG.edf`` and its ``*-Hypnogram.edf``."""
