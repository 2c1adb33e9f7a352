"""Sleep stages: the five classes of paper App. 8.1 and how annotations become window labels.

AASM stages are kept; R&K stage 4 is merged into N3 (R&K 3 + 4 = AASM N3). Unscored epochs ("Sleep stage ?",
PhysioNet "undefined") and movement time are :data:`UNSCORED`. A window takes the stage that covers more than
half of it (:func:`label_windows`); windows without such a majority are unscored.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np

from ..errors import DatasetFormatError
from ..signal import PAPER_EEG, window_length

__all__ = ["STAGES", "UNSCORED", "parse_stage", "stage_annotations", "label_windows"]

STAGES: tuple[str, ...] = ("W", "N1", "N2", "N3", "REM")
"""Class names for labels ``0..4``."""

UNSCORED = -1
"""Internal code of unscored / movement epochs (never present in a returned ``y``)."""

_STAGE_CODES = {
    "W": 0, "WAKE": 0, "STAGE W": 0,
    "N1": 1, "1": 1, "S1": 1,
    "N2": 2, "2": 2, "S2": 2,
    "N3": 3, "3": 3, "S3": 3,
    "N4": 3, "4": 3, "S4": 3,  # R&K stage 4 is part of AASM N3
    "R": 4, "REM": 4,
}
_UNSCORED_TEXT = {"?", "U", "UNDEFINED", "UNSCORED", "UNKNOWN", "MOVEMENT TIME", "MOVEMENT", "MT"}


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


def stage_annotations(
    texts: Iterable[str | bytes], record: str, file: str, expected: str
) -> tuple[np.ndarray, np.ndarray]:
    """The stage annotations among a record's ``K`` annotation strings (:func:`parse_stage` of each).

    Returns ``(is_stage, codes)``: ``bool (K,)`` marks the stage annotations (unscored ones included),
    ``codes`` ``int64 (S,)`` their codes in order. Raises :class:`part.data.errors.DatasetFormatError`
    ``"record <record>: no sleep-stage annotations (<expected>) in <file>; ..."`` when none is a scored stage.
    """
    parsed = [parse_stage(t) for t in texts]
    if not any(c is not None and c >= 0 for c in parsed):
        raise DatasetFormatError(
            f"record {record}: no sleep-stage annotations ({expected}) in {file}; found {len(parsed)} other annotations"
        )
    is_stage = np.array([c is not None for c in parsed], dtype=bool)
    return is_stage, np.array([c for c in parsed if c is not None], dtype=np.int64)


def label_windows(
    starts: np.ndarray,
    ends: np.ndarray,
    codes: np.ndarray,
    n_samples: int,
    fs: float,
    window_s: float = PAPER_EEG.window_s,
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

