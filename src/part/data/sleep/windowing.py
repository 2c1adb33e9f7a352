"""From a continuous multichannel record and its stage intervals to labelled windows (paper App. 8.1): the
shared tail of the raw-record readers (:mod:`.physionet`, :mod:`.sleep_edf`).

Each channel is band-pass filtered and re-sampled at its own rate (:func:`part.data.signal.preprocess`), the
record is cut into windows on the scoring grid (window 0 starts at the first scored epoch), every window takes
its majority stage (:func:`part.data.sleep.stages.label_windows`), unscored windows are dropped and the rest
are instance-normalised.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import DatasetFormatError
from ..signal import instance_normalize, make_windows, preprocess, window_length
from .recording import SleepRecording
from .stages import label_windows

__all__ = ["windows_from_record", "wake_edge_mask"]


def windows_from_record(
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
    """Labelled windows of one raw record.

    Args:
        signals: per channel, the ``float64 (T_c,)`` samples at ``rates[c]`` Hz (channels sharing a rate are
            filtered together, cut to their common length).
        intervals_s: ``(start_s, end_s, code)`` ``(K,)`` arrays: stage intervals in seconds from the record
            start and their :func:`part.data.sleep.stages.parse_stage` codes (``-1`` = unscored).
        name, subject: record and subject id (``name`` prefixes every error message).
        channels: ``C`` names of the kept channels, in order.
        fs, band, window_s, normalize, wake_edge_min, backend: as in
            :func:`part.data.sleep.load_physionet2018_record`.

    Returns:
        :class:`SleepRecording` of the scored windows, ``X`` ``float32 (W, C, fs * window_s)``.
    """
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
        keep &= wake_edge_mask(y, onset, wake_edge_min * 60.0)
    if not keep.any():
        raise ValueError(f"record {name}: no {window_s:g}-s window carries a scored sleep stage")
    windows = make_windows(x, fs, window_s, start=origin)[keep]
    if normalize:
        windows = instance_normalize(windows)
    w = int(keep.sum())
    return SleepRecording(
        windows, y[keep], np.full(w, subject), np.full(w, name), onset[keep], tuple(channels), fs
    )


def wake_edge_mask(y: np.ndarray, onset: np.ndarray, edge_s: float) -> np.ndarray:
    """Keep at most ``edge_s`` seconds of wake before the first and after the last sleep window."""
    if edge_s < 0:
        raise ValueError(f"wake_edge_min must be >= 0, got {edge_s / 60:g}")
    sleep = (y > 0).nonzero()[0]
    if sleep.size == 0:
        return np.ones(y.shape, dtype=bool)
    first, last = onset[sleep[0]], onset[sleep[-1]]
    return (onset >= first - edge_s - 1e-9) & (onset <= last + edge_s + 1e-9)
