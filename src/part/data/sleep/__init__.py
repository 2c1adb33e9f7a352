"""Sleep-staging data for 1D PART (paper §5.2 "Time-series prediction", Appendix 8.1 "1D time series
classification").

The paper pre-trains a 1D ViT on six scalp-EEG channels of the PhysioNet/CinC 2018 "You Snooze You Win"
challenge, fine-tunes on 10 subjects and tests on held-out subjects; the task is the five-class sleep stage
(Wake, N1, N2, N3, REM) of a 30-second window. One stack turns recordings into that shape, in this order:

=====================  ==================================================================================
module                 idea
=====================  ==================================================================================
:mod:`.stages`         the five classes (:data:`STAGES`), annotation text -> stage, stage of a window
:mod:`.recording`      :class:`SleepRecording`: windows ``float32 (W, C, T)`` + stage, subject, record,
                       onset of each; its ``.npz`` form (``save_npz`` / :func:`load_sleep_npz`)
:mod:`.windowing`      a continuous record + stage intervals -> labelled windows (App. 8.1 preprocessing)
:mod:`.physionet`      reader of PhysioNet 2018 WFDB records (:func:`load_physionet2018_record`)
:mod:`.sleep_edf`      reader of Sleep-EDF PSG + hypnogram EDF files (:func:`load_sleep_edf_record`)
:mod:`.synthetic`      a SYNTHETIC sleep-like generator for demos and tests (:func:`make_synthetic_sleep`)
:mod:`.source`         :class:`SleepSource`: every window of a source, records kept apart (memory-mapped);
                       :class:`RecordFormat`: how a format's record files are found, read and cached
:mod:`.cache`          the window cache of raw records
:mod:`.split`          :func:`subject_split`: train (pretrain) / finetune / test by subject
:mod:`.options`        the typed ``data.options`` of each sleep kind, defaults written once
:mod:`.dataset`        the sleep kinds (:data:`SLEEP_KINDS`) and ``data.kind`` + ``data.options`` ->
                       :class:`SleepSplitDataset` (what the engine uses)
=====================  ==================================================================================

The preprocessing numbers (100 Hz, 0.1-30 Hz band-pass, 30-s windows, instance normalisation) live in
:data:`part.data.signal.PAPER_EEG`, the split defaults in :data:`part.data.sleep.split.PAPER_SPLIT`.

Errors: a missing file or folder raises :class:`part.data.errors.DatasetNotFoundError` (a
``FileNotFoundError``), a malformed one :class:`part.data.errors.DatasetFormatError` (a ``ValueError``), a bad
argument a plain ``ValueError``; every message names the record, file or option. ``wfdb`` and ``pyedflib``
are optional (``pip install 'part[sleep]'``).
"""

from .cache import sleep_cache_dir
from .dataset import (
    SLEEP_KINDS,
    SLEEP_SPLITS,
    SleepKind,
    SleepSplitDataset,
    build_sleep_dataset,
    load_sleep_source,
    record_paths,
    sleep_kind,
)
from .options import RecordSleepOptions, SleepNpzOptions, SyntheticSleepOptions, sleep_options
from .physionet import PHYSIONET2018_EEG, PHYSIONET2018_FORMAT, load_physionet2018_record
from .recording import SleepRecording, load_sleep_npz
from .sleep_edf import SLEEP_EDF_EEG, SLEEP_EDF_FORMAT, load_sleep_edf_record
from .source import SLEEP_NPZ_FORMAT, RecordFormat, SleepSource
from .split import PAPER_SPLIT, SplitOptions, SubjectSplit, subject_split
from .stages import STAGES, UNSCORED, label_windows, parse_stage
from .synthetic import make_synthetic_sleep

__all__ = [
    "STAGES", "UNSCORED", "PHYSIONET2018_EEG", "SLEEP_EDF_EEG", "SLEEP_KINDS", "SLEEP_SPLITS", "PAPER_SPLIT",
    "PHYSIONET2018_FORMAT", "SLEEP_EDF_FORMAT", "SLEEP_NPZ_FORMAT", "RecordFormat", "SleepKind", "sleep_kind",
    "SyntheticSleepOptions", "RecordSleepOptions", "SleepNpzOptions", "sleep_options",
    "SleepRecording", "SleepSource", "SleepSplitDataset", "SplitOptions", "SubjectSplit",
    "parse_stage", "label_windows", "load_physionet2018_record", "load_sleep_edf_record", "load_sleep_npz",
    "record_paths", "make_synthetic_sleep", "subject_split", "sleep_cache_dir", "load_sleep_source",
    "build_sleep_dataset",
]
