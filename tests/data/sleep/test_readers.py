"""Sleep readers on real file formats written by the tests: PhysioNet 2018 WFDB records (``wfdb.wrsamp`` +
``wfdb.wrann`` with extension ``arousal``), Sleep-EDF PSG + hypnogram EDF+ files (``pyedflib``), npz; folder
scans into a :class:`SleepSource`, the subject split of paper App. 8.1 and the torch Dataset view."""

import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from part.data.errors import DatasetFormatError, DatasetNotFoundError
from part.data.signal import instance_normalize
from part.data.sleep import (
    PHYSIONET2018_EEG,
    SLEEP_EDF_EEG,
    UNSCORED,
    SleepRecording,
    SleepSource,
    SleepSplitDataset,
    label_windows,
    load_physionet2018_record,
    load_sleep_edf_record,
    load_sleep_npz,
    load_sleep_source,
    parse_stage,
    subject_split,
)
from part.data.sleep.stages import stage_annotations

# wfdb 4.3 calls pandas with the deprecated inplace= keyword; that is wfdb's business, not this module's
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:Warning")

PN_CHANNELS = ["F3-M2", "F4-M1", "C3-M2", "C4-M1", "O1-M2", "O2-M1", "E1-M2", "Chin1-Chin2", "ECG"]
# a distinct frequency per channel, to check that the right channels come back in the right order
PN_FREQS = [3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0, 17.0, 19.0]


# ------------------------------------------------------------------------------------------- writers


def write_physionet_record(
    folder: Path, name: str, stages: list[tuple[float, str]], seconds: float, fs: int = 200, channels=PN_CHANNELS
) -> Path:
    """A challenge-style record folder ``folder/name/`` with ``name.hea``, ``name.dat`` and ``name.arousal``.

    ``stages``: ``(time_s, aux_note)`` annotations (stage changes and event markers)."""
    wfdb = pytest.importorskip("wfdb")
    rec_dir = folder / name
    rec_dir.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * fs)) / fs
    sig = np.stack([40.0 * np.sin(2 * np.pi * PN_FREQS[i % len(PN_FREQS)] * t) for i in range(len(channels))], 1)
    wfdb.wrsamp(name, fs=fs, units=["uV"] * len(channels), sig_name=list(channels), p_signal=sig,
                fmt=["16"] * len(channels), write_dir=str(rec_dir))
    if stages:
        samples = np.array([int(round(s * fs)) for s, _ in stages])
        wfdb.wrann(name, "arousal", samples, symbol=['"'] * len(stages), aux_note=[a for _, a in stages],
                   fs=fs, write_dir=str(rec_dir))
    return rec_dir


EDF_LABELS = ["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal", "Resp oro-nasal"]
EDF_START = datetime(1989, 4, 24, 16, 13, 0)


def write_sleep_edf(
    folder: Path,
    psg_name: str,
    hyp_name: str,
    annotations: list[tuple[float, float, str]],
    seconds: int,
    rates=(100, 200, 100, 1),
    hyp_offset_s: int = 0,
) -> Path:
    """A Sleep-EDF-style pair: ``psg_name`` (EDF+ signals) and ``hyp_name`` (EDF+ annotations only)."""
    pyedflib = pytest.importorskip("pyedflib")
    folder.mkdir(parents=True, exist_ok=True)
    psg = folder / psg_name
    writer = pyedflib.EdfWriter(str(psg), len(EDF_LABELS), file_type=pyedflib.FILETYPE_EDFPLUS)
    writer.setSignalHeaders([
        dict(label=lab, dimension="uV", sample_frequency=r, physical_min=-500.0, physical_max=500.0,
             digital_min=-32768, digital_max=32767)
        for lab, r in zip(EDF_LABELS, rates)
    ])
    writer.setStartdatetime(EDF_START)
    data = []
    for i, r in enumerate(rates):
        t = np.arange(seconds * r) / r
        data.append(100.0 * np.sin(2 * np.pi * (4.0 + 6.0 * i) * t) if r >= 60 else np.zeros_like(t))
    writer.writeSamples(data)
    writer.close()
    hyp = pyedflib.EdfWriter(str(folder / hyp_name), 0, file_type=pyedflib.FILETYPE_EDFPLUS)
    hyp.setStartdatetime(EDF_START + timedelta(seconds=hyp_offset_s))
    for onset, duration, text in annotations:
        hyp.writeAnnotation(onset, duration, text)
    hyp.close()
    return psg


def dominant_freq(x: np.ndarray, fs: float) -> float:
    spec = np.abs(np.fft.rfft(x - x.mean()))
    return float(np.fft.rfftfreq(x.size, 1.0 / fs)[spec.argmax()])


# -------------------------------------------------------------------------------------------- labels


def test_parse_stage():
    assert [parse_stage(s) for s in ["W", "N1", "N2", "N3", "R"]] == [0, 1, 2, 3, 4]
    assert [parse_stage(f"Sleep stage {s}") for s in "W1234R"] == [0, 1, 2, 3, 3, 4]  # stage 4 -> N3
    assert parse_stage("Sleep stage ?") == UNSCORED
    assert parse_stage("Movement time") == UNSCORED
    assert parse_stage(b"Sleep stage 2") == 2
    for marker in ["(arousal_rera", "arousal_rera)", "(resp_hypopnea", "resp_centralapnea)", "Lights off"]:
        assert parse_stage(marker) is None


def test_stage_annotations_keep_stages_in_order_and_name_the_file():
    is_stage, codes = stage_annotations(["W", "(arousal_rera", "Sleep stage ?", "arousal_rera)", "R"], "r1", "r1.x", "W..R")
    np.testing.assert_array_equal(is_stage, [True, False, True, False, True])
    np.testing.assert_array_equal(codes, [0, UNSCORED, 4])
    with pytest.raises(DatasetFormatError, match=r"r2.*r2\.x.*2"):
        stage_annotations(["Sleep stage ?", "Lights off"], "r2", "r2.x", "W..R")


def test_label_windows_majority_and_unscored():
    fs, ws = 10.0, 3.0  # 30-sample windows
    starts = np.array([0, 30, 75, 90, 120])
    ends = np.array([30, 75, 90, 120, 150])
    codes = np.array([0, 2, UNSCORED, 3, 4])
    y, keep = label_windows(starts, ends, codes, n_samples=155, fs=fs, window_s=ws)
    # windows [0,30) W; [30,60) N2; [60,90) 15 N2 + 15 unscored: no majority; [90,120) N3; [120,150) REM
    np.testing.assert_array_equal(y, [0, 2, UNSCORED, 3, 4])
    np.testing.assert_array_equal(keep, [True, True, False, True, True])
    y2, _ = label_windows(starts, ends, codes, n_samples=155, fs=fs, window_s=ws, origin=10)
    # [10,40) 20 W + 10 N2; [40,70) N2; [70,100) 5 N2 + 15 unscored + 10 N3: none; [100,130) 20 N3 + 10 REM
    np.testing.assert_array_equal(y2, [0, 2, UNSCORED, 3])


# --------------------------------------------------------------------------------------- PhysioNet 2018


def test_physionet2018_record_reads_stages_and_ignores_arousal_markers(tmp_path):
    ann = [
        (0.0, "W"),  # at sample 0: wfdb.rdann alone would drop it
        (5.0, "(arousal_rera"),
        (30.0, "N1"),
        (33.0, "arousal_rera)"),
        (50.0, "(resp_hypopnea"),
        (60.0, "N2"),
        (70.0, "resp_hypopnea)"),
        (120.0, "N3"),
        (150.0, "R"),
    ]
    rec_dir = write_physionet_record(tmp_path, "tr00-0001", ann, seconds=200)
    data = load_physionet2018_record(rec_dir)
    assert data.X.shape == (6, 6, 3000) and data.X.dtype == np.float32  # 200 s -> 6 full windows
    np.testing.assert_array_equal(data.y, [0, 1, 2, 2, 3, 4])
    assert data.y.dtype == np.int64
    assert set(data.subject) == {"tr00-0001"} and set(data.record) == {"tr00-0001"}
    np.testing.assert_allclose(data.onset, [0, 30, 60, 90, 120, 150])
    assert data.channels == PHYSIONET2018_EEG and data.fs == 100.0
    np.testing.assert_allclose(data.X.mean(-1), 0.0, atol=1e-4)  # instance-normalised
    np.testing.assert_allclose(data.X.std(-1), 1.0, atol=1e-3)
    # every output channel is the requested one: its sine frequency survives the 0.1-30 Hz band-pass
    for c, name in enumerate(data.channels):
        assert dominant_freq(data.X[2, c], 100.0) == pytest.approx(PN_FREQS[PN_CHANNELS.index(name)], abs=0.05)


def test_physionet2018_channel_subset_order_and_raw_amplitude(tmp_path):
    rec_dir = write_physionet_record(tmp_path, "tr00-0002", [(0.0, "N2")], seconds=95)
    base = rec_dir / "tr00-0002"
    data = load_physionet2018_record(str(base) + ".hea", channels=["O2-M1", "F3-M2"], normalize=False)
    assert data.channels == ("O2-M1", "F3-M2") and data.X.shape == (3, 2, 3000)
    assert dominant_freq(data.X[1, 0], 100.0) == pytest.approx(13.0, abs=0.05)
    assert dominant_freq(data.X[1, 1], 100.0) == pytest.approx(3.0, abs=0.05)
    # in-band 40 uV sines keep their amplitude through band-pass + 200 -> 100 Hz re-sampling (middle window)
    assert np.sqrt(2) * data.X[1, 0].std() == pytest.approx(40.0, rel=0.05)


def test_physionet2018_windows_follow_the_first_scored_epoch(tmp_path):
    # scoring starts at 10 s; the annotation grid, not the file start, decides the window edges
    rec_dir = write_physionet_record(tmp_path, "tr00-0003", [(10.0, "W"), (40.0, "N1"), (70.0, "R")], seconds=130)
    data = load_physionet2018_record(rec_dir, channels=["C3-M2"])
    np.testing.assert_allclose(data.onset, [10, 40, 70, 100])
    np.testing.assert_array_equal(data.y, [0, 1, 4, 4])


def test_physionet2018_without_stage_annotations_names_the_record(tmp_path):
    rec_dir = write_physionet_record(
        tmp_path, "tr00-0009", [(5.0, "(arousal_rera"), (20.0, "arousal_rera)")], seconds=100
    )
    with pytest.raises(DatasetFormatError, match="tr00-0009.*annotation"):
        load_physionet2018_record(rec_dir)


def test_physionet2018_missing_annotation_file(tmp_path):
    rec_dir = write_physionet_record(tmp_path, "tr00-0010", [], seconds=100)
    with pytest.raises(DatasetNotFoundError, match="tr00-0010.*annotation"):
        load_physionet2018_record(rec_dir)


def test_physionet2018_missing_channel_lists_available(tmp_path):
    rec_dir = write_physionet_record(tmp_path, "tr00-0004", [(0.0, "W")], seconds=60)
    with pytest.raises(ValueError, match="channel.*'Fz-M2'.*channels.*'F3-M2'"):
        load_physionet2018_record(rec_dir, channels=["F3-M2", "Fz-M2"])


def test_physionet2018_rate_below_target_and_too_short(tmp_path):
    low = write_physionet_record(tmp_path, "tr00-0005", [(0.0, "W")], seconds=90, fs=50)
    with pytest.raises(ValueError, match="tr00-0005.*rate.*50.*target"):
        load_physionet2018_record(low)
    short = write_physionet_record(tmp_path, "tr00-0006", [(0.0, "W")], seconds=20)
    with pytest.raises(ValueError, match="tr00-0006.*30"):
        load_physionet2018_record(short)


def test_physionet2018_wake_edge_trimming(tmp_path):
    ann = [(0.0, "W"), (150.0, "N2"), (210.0, "W")]
    rec_dir = write_physionet_record(tmp_path, "tr00-0007", ann, seconds=360, channels=PN_CHANNELS[:2])
    full = load_physionet2018_record(rec_dir, channels=["F3-M2"])
    np.testing.assert_array_equal(full.y, [0] * 5 + [2] * 2 + [0] * 5)
    trimmed = load_physionet2018_record(rec_dir, channels=["F3-M2"], wake_edge_min=1.0)
    np.testing.assert_allclose(trimmed.onset, [90, 120, 150, 180, 210, 240])  # 2 wake windows either side
    np.testing.assert_array_equal(trimmed.y, [0, 0, 2, 2, 0, 0])


def test_missing_wfdb_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wfdb", None)
    with pytest.raises(ImportError, match=r"pip install 'part\[sleep\]'"):
        load_physionet2018_record(tmp_path / "tr00-0001")


# -------------------------------------------------------------------------------------------- Sleep-EDF


SLEEP_EDF_HYP = [
    (0.0, 60.0, "Sleep stage W"),
    (60.0, 30.0, "Sleep stage 1"),
    (90.0, 30.0, "Sleep stage 2"),
    (120.0, 30.0, "Sleep stage 3"),
    (150.0, 60.0, "Sleep stage 4"),
    (210.0, 30.0, "Movement time"),
    (240.0, 30.0, "Sleep stage R"),
    (270.0, 30.0, "Sleep stage ?"),
]


def test_sleep_edf_record_merges_n4_and_drops_unscored(tmp_path):
    psg = write_sleep_edf(tmp_path, "SC4011E0-PSG.edf", "SC4011EH-Hypnogram.edf", SLEEP_EDF_HYP, seconds=300)
    data = load_sleep_edf_record(psg)
    # W W N1 N2 N3 N4->N3 N4->N3 (movement dropped) REM (? dropped)
    np.testing.assert_array_equal(data.y, [0, 0, 1, 2, 3, 3, 3, 4])
    np.testing.assert_allclose(data.onset, [0, 30, 60, 90, 120, 150, 180, 240])
    assert data.X.shape == (8, 2, 3000) and data.X.dtype == np.float32
    assert data.channels == SLEEP_EDF_EEG
    assert set(data.subject) == {"SC401"} and set(data.record) == {"SC4011"}
    # Fpz-Cz at 100 Hz carries 4 Hz, Pz-Oz at 200 Hz carries 10 Hz and is re-sampled to 100 Hz
    assert dominant_freq(data.X[3, 0], 100.0) == pytest.approx(4.0, abs=0.05)
    assert dominant_freq(data.X[3, 1], 100.0) == pytest.approx(10.0, abs=0.05)


def test_sleep_edf_hypnogram_start_offset_shifts_stages(tmp_path):
    hyp = [(0.0, 60.0, "Sleep stage W"), (60.0, 60.0, "Sleep stage 2")]
    psg = write_sleep_edf(tmp_path, "SC4021E0-PSG.edf", "SC4021EJ-Hypnogram.edf", hyp, seconds=180, hyp_offset_s=30)
    data = load_sleep_edf_record(psg, channels=["EEG Fpz-Cz"])
    np.testing.assert_allclose(data.onset, [30, 60, 90, 120])
    np.testing.assert_array_equal(data.y, [0, 0, 2, 2])


def test_sleep_edf_errors(tmp_path):
    psg = write_sleep_edf(tmp_path / "a", "SC4031E0-PSG.edf", "SC4031EC-Hypnogram.edf", [(0.0, 300.0, "Lights off")], 300)
    with pytest.raises(DatasetFormatError, match="SC4031.*annotation"):
        load_sleep_edf_record(psg)
    with pytest.raises(ValueError, match="channels.*'EEG Fpz-Cz'.*'EEG Pz-Oz'.*'EOG horizontal'"):
        load_sleep_edf_record(psg, channels=["EEG C3-A2"])
    lonely = write_sleep_edf(tmp_path / "b", "SC4041E0-PSG.edf", "other-Hypnogram.edf", SLEEP_EDF_HYP, 300)
    with pytest.raises(FileNotFoundError, match=r"SC4041E0-PSG\.edf.*hypnogram"):
        load_sleep_edf_record(lonely)
    with pytest.raises(FileNotFoundError, match="PSG file .* does not exist"):
        load_sleep_edf_record(tmp_path / "nope-PSG.edf")


def test_missing_pyedflib_gives_install_hint(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyedflib", None)
    with pytest.raises(ImportError, match=r"pip install 'part\[sleep\]'"):
        load_sleep_edf_record(tmp_path / "SC4001E0-PSG.edf")


# ------------------------------------------------------------------------------------ npz + containers


def small_recording(n_subjects=3, per_subject=4, channels=("a", "b"), t=50, seed=0) -> SleepRecording:
    rng = np.random.default_rng(seed)
    w = n_subjects * per_subject
    return SleepRecording(
        instance_normalize(rng.normal(size=(w, len(channels), t))),
        rng.integers(0, 5, w),
        np.repeat([f"s{i}" for i in range(n_subjects)], per_subject),
        channels=channels,
        fs=10.0,
    )


def test_npz_round_trip_and_channel_selection(tmp_path):
    data = small_recording()
    path = data.save_npz(tmp_path / "part.npz")
    back = load_sleep_npz(path)
    np.testing.assert_array_equal(back.X, data.X)
    np.testing.assert_array_equal(back.y, data.y)
    np.testing.assert_array_equal(back.subject, data.subject)
    assert back.channels == data.channels and back.fs == 10.0
    only_b = load_sleep_npz(path, channels=["b"])
    np.testing.assert_array_equal(only_b.X[:, 0], data.X[:, 1])
    with pytest.raises(ValueError, match="channel.*'c'.*channels.*'a'"):
        load_sleep_npz(path, channels=["c"])
    with pytest.raises(ValueError, match="fs=100.*10"):
        load_sleep_npz(path, fs=100.0)


def test_npz_minimal_and_bad_files(tmp_path):
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "min.npz", X=rng.normal(size=(5, 3, 20)), y=np.arange(5), subject=np.array(list("aabbc")))
    data = load_sleep_npz(tmp_path / "min.npz", normalize=True)
    assert data.X.dtype == np.float32 and data.channels == ("ch0", "ch1", "ch2") and data.fs == 100.0
    np.testing.assert_allclose(data.X.std(-1), 1.0, atol=1e-3)
    with pytest.raises(ValueError, match="stores no channel names"):
        load_sleep_npz(tmp_path / "min.npz", channels=["ch0"])
    np.savez(tmp_path / "nolabel.npz", X=rng.normal(size=(5, 3, 20)), subject=np.array(list("aabbc")))
    with pytest.raises(DatasetFormatError, match="nolabel.npz.*array.*'y'"):
        load_sleep_npz(tmp_path / "nolabel.npz")
    np.savez(tmp_path / "badlabel.npz", X=rng.normal(size=(2, 1, 20)), y=np.array([0, 5]), subject=np.array(["a", "b"]))
    with pytest.raises(ValueError, match=r"badlabel\.npz.*stages"):
        load_sleep_npz(tmp_path / "badlabel.npz")


def test_recording_validation_and_joining():
    a, b = small_recording(seed=1), small_recording(seed=2)
    both = SleepSource.from_recordings([a, b])
    assert len(both) == len(a) + len(b)
    np.testing.assert_array_equal(both.window(len(a) + 3), b.X[3])
    np.testing.assert_array_equal(both.y, np.concatenate([a.y, b.y]))
    assert SleepSplitDataset(both).stage_counts().sum() == len(both)
    with pytest.raises(DatasetFormatError, match=r"channels \('a', 'c'\)"):
        SleepSource.from_recordings([a, small_recording(channels=("a", "c"))])
    with pytest.raises(DatasetFormatError, match=r"20 samples"):
        SleepSource.from_recordings([a, small_recording(t=20)])
    with pytest.raises(ValueError, match="y.*stages"):
        SleepRecording(np.zeros((2, 1, 10)), [0, 7], ["s", "s"])
    with pytest.raises(ValueError, match=r"subject must have shape \(2,\)"):
        SleepRecording(np.zeros((2, 1, 10)), [0, 1], ["s"])


def test_dataset_yields_float_tensor_and_int_label():
    data = small_recording()
    source = SleepSource.from_recordings([data])
    ds = SleepSplitDataset(source, indices=[5, 2], transform=lambda x: x * 2)
    assert len(ds) == 2 and ds.split is None and ds.split_info is None
    x, label = ds[0]
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.shape == (2, 50)
    assert isinstance(label, int) and label == int(data.y[5])
    torch.testing.assert_close(x, torch.from_numpy(data.X[5]) * 2)
    x[0, 0] = 1e6  # items are copies: the source windows stay as they were
    assert data.X[5, 0, 0] != 1e6
    xb, yb = next(iter(torch.utils.data.DataLoader(SleepSplitDataset(source), batch_size=4)))
    assert xb.shape == (4, 2, 50) and yb.dtype == torch.int64
    np.testing.assert_array_equal(ds.labels, data.y[[5, 2]])
    assert ds.subjects == tuple(sorted(set(data.subject[[5, 2]])))
    with pytest.raises(IndexError, match=f"out of range for {len(data)} windows"):
        SleepSplitDataset(source, indices=[len(data)])


# ---------------------------------------------------------------------------------------- folder scan


def test_folder_source_physionet_skips_unlabelled_and_limits(tmp_path):
    write_physionet_record(tmp_path / "training", "tr00-0001", [(0.0, "W"), (30.0, "N2")], 60)
    write_physionet_record(tmp_path / "training", "tr00-0002", [(0.0, "R")], 90)
    write_physionet_record(tmp_path / "test", "te00-0001", [], 60)  # no .arousal: unlabelled, skipped
    data = load_sleep_source("physionet2018", tmp_path, {"channels": ["C4-M1"], "cache": False})
    assert sorted(set(data.subject)) == ["tr00-0001", "tr00-0002"] and len(data) == 5
    np.testing.assert_array_equal(data.y, [0, 2, 4, 4, 4])
    assert data.channels == ("C4-M1",)
    first = load_sleep_source("physionet2018", tmp_path, {"max_records": 1, "cache": False})
    assert set(first.subject) == {"tr00-0001"} and first.channels == PHYSIONET2018_EEG


def test_folder_source_sleep_edf_and_npz(tmp_path):
    for night, hyp in (("SC4001E0", "SC4001EC"), ("SC4002E0", "SC4002EC"), ("SC4011E0", "SC4011EH")):
        write_sleep_edf(tmp_path / "edf", f"{night}-PSG.edf", f"{hyp}-Hypnogram.edf", SLEEP_EDF_HYP, 300)
    data = load_sleep_source("sleep_edf", tmp_path / "edf", {"wake_edge_min": None, "cache": False})
    assert sorted(set(data.subject)) == ["SC400", "SC401"]  # two nights of SC400 share one subject id
    assert sorted(set(data.record)) == ["SC4001", "SC4002", "SC4011"] and len(data) == 24
    assert data.channels == SLEEP_EDF_EEG
    (tmp_path / "npz").mkdir()
    small_recording(seed=3).save_npz(tmp_path / "npz" / "a.npz")
    small_recording(seed=4).save_npz(tmp_path / "npz" / "b.npz")
    both = load_sleep_source("sleep_npz", tmp_path / "npz")
    assert len(both) == 24
    np.testing.assert_array_equal(both.window(12), small_recording(seed=4).X[0])


def test_folder_source_errors(tmp_path):
    with pytest.raises(ValueError, match="data.kind='edf'"):
        load_sleep_source("edf", tmp_path)
    with pytest.raises(FileNotFoundError, match="PhysioNet 2018.*arousal"):
        load_sleep_source("physionet2018", tmp_path, {"cache": False})
    with pytest.raises(FileNotFoundError, match="PSG.edf"):
        load_sleep_source("sleep_edf", tmp_path, {"cache": False})
    with pytest.raises(FileNotFoundError, match="data.root.*does not exist"):
        load_sleep_source("sleep_npz", tmp_path / "missing")
    with pytest.raises(ValueError, match="max_records.*0"):
        load_sleep_source("sleep_npz", tmp_path, {"max_records": 0})


# ---------------------------------------------------------------------------------------------- split


def check_split(subjects: np.ndarray, split, n_finetune: int, n_test: int, finetune_in_pretrain: bool) -> None:
    test_s = set(subjects[split.test])
    fine_s = set(subjects[split.finetune])
    pre_s = set(subjects[split.pretrain])
    assert len(test_s) == n_test and len(fine_s) == n_finetune
    assert not test_s & fine_s and not test_s & pre_s  # test subjects never trained on
    if finetune_in_pretrain:
        assert fine_s <= pre_s
        assert pre_s | test_s == set(subjects)
        np.testing.assert_array_equal(np.sort(np.concatenate([split.pretrain, split.test])), np.arange(subjects.size))
    else:
        assert not fine_s & pre_s and pre_s | fine_s | test_s == set(subjects)
    # indices hold every window of a chosen subject
    for idx, ids in ((split.test, test_s), (split.finetune, fine_s), (split.pretrain, pre_s)):
        np.testing.assert_array_equal(idx, np.flatnonzero(np.isin(subjects, list(ids))))
    assert split.test_subjects == tuple(sorted(test_s))


def test_subject_split_paper_setting():
    subjects = np.repeat([f"tr{i:02d}" for i in range(30)], 3)
    split = subject_split(subjects, n_finetune=10, n_test=5, seed=0)
    check_split(subjects, split, 10, 5, True)
    again = subject_split(subjects, n_finetune=10, n_test=5, seed=0)
    assert again.test_subjects == split.test_subjects and again.finetune_subjects == split.finetune_subjects
    other = subject_split(subjects, n_finetune=10, n_test=5, seed=1)
    assert other.test_subjects != split.test_subjects
    frac = subject_split(subjects, n_finetune=2, n_test=0.2, seed=0)
    assert len(frac.test_subjects) == 6


@settings(max_examples=40, deadline=None)
@given(
    n_subjects=st.integers(2, 12),
    reps=st.integers(1, 3),
    data=st.data(),
    seed=st.integers(0, 10_000),
    inside=st.booleans(),
)
def test_subject_split_never_shares_a_test_subject(n_subjects, reps, data, seed, inside):
    n_test = data.draw(st.integers(1, n_subjects - 1))
    n_finetune = data.draw(st.integers(1, n_subjects - n_test - (0 if inside else 1) or 1))
    if not inside and n_finetune + n_test >= n_subjects:
        return
    subjects = np.random.default_rng(seed).permutation(np.repeat([f"s{i}" for i in range(n_subjects)], reps))
    split = subject_split(subjects, n_finetune=n_finetune, n_test=n_test, seed=seed, finetune_in_pretrain=inside)
    check_split(subjects, split, n_finetune, n_test, inside)


def test_subject_split_errors():
    subjects = np.repeat(["a", "b", "c"], 2)
    with pytest.raises(ValueError, match="n_finetune=2.*n_test=2.*3"):
        subject_split(subjects, n_finetune=2, n_test=2)
    with pytest.raises(ValueError, match=r"fraction of the subjects and must be in \(0, 1\)"):
        subject_split(subjects, n_finetune=1, n_test=1.5)
    with pytest.raises(ValueError, match="n_test must be >= 1"):
        subject_split(subjects, n_finetune=1, n_test=0)
    with pytest.raises(ValueError, match="leaves no pretraining subject"):
        subject_split(subjects, n_finetune=2, n_test=1, finetune_in_pretrain=False)
