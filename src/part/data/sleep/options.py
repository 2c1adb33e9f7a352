"""``data.options`` of the sleep kinds, typed: the subject split's settings (every kind, :class:`SplitOptions`)
and each reader's own, with their defaults written here once (the EEG numbers come from
:data:`part.data.signal.PAPER_EEG`). :func:`sleep_options` reads a mapping into them and is what a config's
check and the dataset builder both call."""

from __future__ import annotations

from dataclasses import dataclass

from ..signal import PAPER_EEG
from ..signal_options import normalize_mode, typed_options
from .split import SplitOptions

__all__ = ["PAPER_NORMALIZE", "SyntheticSleepOptions", "RecordSleepOptions", "SleepNpzOptions", "sleep_options"]

PAPER_NORMALIZE = normalize_mode(PAPER_EEG.normalize, "eeg")
"""``window``: the paper's instance normalisation of every 30-s window (App. 8.1)."""

_WINDOWED = ("none", "window")  # a sleep source is read window by window (no train-split statistics)


@dataclass(frozen=True)
class SyntheticSleepOptions(SplitOptions):
    """``sleep_synthetic``: :func:`part.data.sleep.make_synthetic_sleep`'s arguments."""

    NORMALIZE = _WINDOWED
    n_subjects: int = 24
    epochs_per_subject: int = 120
    channels: int | tuple[str, ...] | None = None  # a count or names; default data.channels (model.in_chans)
    seed: int = 0
    fs: float = PAPER_EEG.fs
    window_s: float = PAPER_EEG.window_s
    noise: float = 1.0
    normalize: str = PAPER_NORMALIZE


@dataclass(frozen=True)
class RecordSleepOptions(SplitOptions):
    """``physionet2018`` / ``sleep_edf``: raw records read, filtered, windowed (and cached) by their reader."""

    NORMALIZE = _WINDOWED
    channels: tuple[str, ...] | None = None  # default: the format's EEG derivations
    max_records: int | None = None
    fs: float = PAPER_EEG.fs
    band: tuple[float, ...] = PAPER_EEG.band
    window_s: float = PAPER_EEG.window_s
    wake_edge_min: float | None = None
    normalize: str = PAPER_NORMALIZE
    backend: str = "auto"
    cache: bool = True
    cache_dir: str | None = None


@dataclass(frozen=True)
class SleepNpzOptions(SplitOptions):
    """``sleep_npz``: already-windowed files (usually preprocessed, so not normalised again by default)."""

    NORMALIZE = _WINDOWED
    channels: tuple[str, ...] | None = None
    fs: float | None = None
    normalize: str = "none"
    max_records: int | None = None


def sleep_options(cls, given, kind: str):
    """``data.options`` of a sleep kind as ``cls`` (one of this module's dataclasses): unknown names, values of
    the wrong type and ``max_records`` < 1 raise ``ValueError`` naming ``data.options.<field>`` and the value
    (the split's counts are checked against the subjects when it is drawn)."""
    o = typed_options(cls, given, kind, sort_valid=True)
    m = getattr(o, "max_records", None)
    if m is not None and m < 1:
        raise ValueError(f"data.options.max_records must be a positive int, got {m!r}")
    return o
