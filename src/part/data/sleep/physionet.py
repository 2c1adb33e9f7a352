"""PhysioNet/CinC 2018 "You Snooze You Win" records (WFDB format), the data of paper App. 8.1.

``wfdb`` is optional (the ``part[sleep]`` extra): it is imported when a record is read, and its absence
raises ``ImportError`` with the install hint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DatasetNotFoundError, require_extra
from ..signal import PAPER_EEG
from .recording import SleepRecording, select_channels
from .source import RecordFormat
from .stages import stage_annotations
from .windowing import windows_from_record

__all__ = ["PHYSIONET2018_EEG", "PHYSIONET2018_FORMAT", "load_physionet2018_record", "physionet2018_records",
           "record_base"]

PHYSIONET2018_EEG: tuple[str, ...] = ("F3-M2", "F4-M1", "C3-M2", "C4-M1", "O1-M2", "O2-M1")
"""The six scalp-EEG derivations of the PhysioNet 2018 challenge records (App. 8.1: "six channels of scalp
electroencephalography")."""


def record_base(path: str | Path) -> Path:
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
    fs: float = PAPER_EEG.fs,
    band: tuple[float, float] = PAPER_EEG.band,
    window_s: float = PAPER_EEG.window_s,
    normalize: bool = PAPER_EEG.normalize,
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
    wfdb = require_extra("wfdb", "reading PhysioNet 2018 (WFDB) records")
    base = record_base(path)
    name = base.name
    ann_file = base.with_suffix(".arousal")
    if not ann_file.exists():
        raise DatasetNotFoundError(f"record {name}: stage annotation file {ann_file} does not exist")
    header = wfdb.rdheader(str(base))
    idx = select_channels(header.sig_name, channels, f"record {name}")
    rec = wfdb.rdrecord(str(base), channels=idx, physical=True)
    sig = np.asarray(rec.p_signal, dtype=np.float64).T  # (C, T) at rec.fs
    rate = float(rec.fs)
    samples, notes = _read_aux_notes(wfdb, base, "arousal")
    is_stage, codes = stage_annotations(notes, name, ann_file.name, "W, N1, N2, N3, R")
    st = samples[is_stage]
    order = np.argsort(st, kind="stable")
    st, codes = st[order], codes[order]
    n_in = sig.shape[1]
    ends = np.append(st[1:], n_in)
    return windows_from_record(
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


def physionet2018_records(root: Path) -> list[Path]:
    """Every ``*.hea`` under ``root`` (recursively, sorted) with a sibling ``.arousal`` file: the challenge's
    unlabelled test records, which have none, are skipped."""
    heads = sorted(root.rglob("*.hea"))
    paths = [h for h in heads if h.with_suffix(".arousal").exists()]
    if not paths:
        raise DatasetNotFoundError(
            f"no PhysioNet 2018 records with .arousal stage annotations under {root} "
            f"({len(heads)} WFDB header(s) found)"
        )
    return paths


def _record_files(path: Path) -> list[Path]:
    """The files of the record whose header is ``path`` (``.hea``, signals, ``.arousal``)."""
    return sorted(p for p in path.parent.glob(path.stem + ".*") if p.is_file())


PHYSIONET2018_FORMAT = RecordFormat(physionet2018_records, load_physionet2018_record, _record_files,
                                    PHYSIONET2018_EEG)
"""WFDB records of the PhysioNet/CinC 2018 challenge."""
