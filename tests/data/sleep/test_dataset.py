"""Sleep datasets from configs (paper App. 8.1): subject-wise pretrain / finetune / test splits, the window
cache for raw PhysioNet 2018 (WFDB) and Sleep-EDF (EDF+) records written here in their real formats, npz
sources, and the error messages of bad inputs."""

import os
import pickle
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import part.data.sleep.dataset as sleep_dataset
from part.config import DataConfig, load_config
from part.data.errors import DatasetFormatError, DatasetNotFoundError
from part.data.sleep import (
    SleepRecording,
    build_sleep_dataset,
    load_physionet2018_record,
    load_sleep_edf_record,
    make_synthetic_sleep,
)
from part.engine.builders import build_dataset

pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword:Warning")  # wfdb 4.3 + pandas

SYN = dict(n_subjects=8, epochs_per_subject=6, channels=2, fs=50.0, window_s=4.0, n_finetune=3, n_test=2)


def syn_cfg(**over) -> DataConfig:
    opts = {**SYN, **over.pop("options", {})}
    return DataConfig(**{"kind": "sleep_synthetic", "options": opts, "image_size": 200, "channels": 2, **over})


# ------------------------------------------------------------------------------------------ writers

PN_CHANNELS = ["F3-M2", "F4-M1", "C3-M2", "C4-M1", "O1-M2", "O2-M1", "ECG"]


def write_wfdb(folder: Path, name: str, stages, seconds: float, fs: int = 200, channels=PN_CHANNELS) -> Path:
    """``folder/name/{name.hea, name.dat, name.arousal}``; ``stages``: ``(time_s, aux_note)`` changes."""
    wfdb = pytest.importorskip("wfdb")
    d = folder / name
    d.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * fs)) / fs
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    sig = np.stack([30 * np.sin(2 * np.pi * (2 + 2 * i) * t) + rng.normal(0, 5, t.size) for i in range(len(channels))], 1)
    wfdb.wrsamp(name, fs=fs, units=["uV"] * len(channels), sig_name=list(channels), p_signal=sig,
                fmt=["16"] * len(channels), write_dir=str(d))
    wfdb.wrann(name, "arousal", np.array([int(round(s * fs)) for s, _ in stages]), symbol=['"'] * len(stages),
               aux_note=[a for _, a in stages], fs=fs, write_dir=str(d))
    return d


STAGE_SEQ = [(0, "W"), (60, "N1"), (90, "(arousal_rera"), (100, "arousal_rera)"), (120, "N2"), (180, "N3"),
             (240, "R")]  # 30-s windows: W W N1 N1 N2 N2 N3 N3 R (270 s record)


def physionet_folder(tmp_path: Path, n: int = 4) -> Path:
    root = tmp_path / "training"
    for i in range(n):
        write_wfdb(root, f"tr0{i}-000{i}", STAGE_SEQ, 270)
    return root


def pn_cfg(root: Path, cache_dir: Path, **opts) -> DataConfig:
    options = {"n_finetune": 2, "n_test": 1, "cache_dir": str(cache_dir), **opts}
    return DataConfig(kind="physionet2018", root=str(root), options=options, image_size=3000, channels=6)


def write_edf_pair(folder: Path, stem: str, hyp_letter: str, stages, seconds: int) -> Path:
    """Sleep-EDF style ``{stem}E0-PSG.edf`` (Fpz-Cz, Pz-Oz at 100 Hz, EOG) + ``{stem}E{X}-Hypnogram.edf``."""
    pyedflib = pytest.importorskip("pyedflib")
    folder.mkdir(parents=True, exist_ok=True)
    labels = ["EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal"]
    psg = folder / f"{stem}E0-PSG.edf"
    w = pyedflib.EdfWriter(str(psg), len(labels), file_type=pyedflib.FILETYPE_EDFPLUS)
    w.setSignalHeaders([dict(label=lab, dimension="uV", sample_frequency=100, physical_min=-500.0,
                             physical_max=500.0, digital_min=-32768, digital_max=32767) for lab in labels])
    w.setStartdatetime(datetime(1989, 4, 24, 16, 13, 0))
    t = np.arange(seconds * 100) / 100
    w.writeSamples([80 * np.sin(2 * np.pi * (3 + 4 * i) * t) for i in range(len(labels))])
    w.close()
    h = pyedflib.EdfWriter(str(folder / f"{stem}E{hyp_letter}-Hypnogram.edf"), 0, file_type=pyedflib.FILETYPE_EDFPLUS)
    h.setStartdatetime(datetime(1989, 4, 24, 16, 13, 0))
    for onset, dur, text in stages:
        h.writeAnnotation(onset, dur, text)
    h.close()
    return psg


# ------------------------------------------------------------------------------------ synthetic splits


def test_synthetic_splits_are_subject_disjoint_and_complete():
    pre, fine, test = (build_sleep_dataset(syn_cfg(), split=s) for s in ("pretrain", "finetune", "test"))
    assert len(pre.subjects) == 6 and len(fine.subjects) == 3 and len(test.subjects) == 2
    assert not set(test.subjects) & set(pre.subjects) and not set(test.subjects) & set(fine.subjects)
    assert set(fine.subjects) <= set(pre.subjects)  # the low-label subset of the pretraining subjects
    assert len(pre) + len(test) == 8 * 6 and len(fine) == 3 * 6
    # every window of a subject goes to that subject's split
    src = pre.source
    for ds in (pre, fine, test):
        assert set(src.subject[ds.indices]) == set(ds.subjects)
        assert np.isin(src.subject, ds.subjects).sum() == len(ds)


def test_items_match_the_generator():
    ds = build_sleep_dataset(syn_cfg(), split="test")
    ref = make_synthetic_sleep(8, 6, channels=2, fs=50.0, window_s=4.0, seed=0)
    x, y = ds[3]
    g = ds.indices[3]
    assert x.shape == (2, 200) and x.dtype == torch.float32 and isinstance(y, int)
    np.testing.assert_array_equal(x.numpy(), ref.X[g])
    assert y == ref.y[g] and ds.subject[3] == ref.subject[g]
    np.testing.assert_array_equal(ds.labels, ref.y[ds.indices])
    np.testing.assert_array_equal(ds.stage_counts(), np.bincount(ref.y[ds.indices], minlength=5))
    assert ds.channels == ("F3-M2", "F4-M1") and ds.fs == 50.0
    assert ds.classes == ("W", "N1", "N2", "N3", "REM")


def test_split_ignores_train_seed_and_follows_split_seed():
    a = build_sleep_dataset(syn_cfg(), split="test", seed=0)
    b = build_sleep_dataset(syn_cfg(), split="test", seed=123)
    assert a.subjects == b.subjects and np.array_equal(a.indices, b.indices)
    others = {build_sleep_dataset(syn_cfg(options=dict(split_seed=s)), split="test").subjects for s in range(1, 6)}
    assert len(others | {a.subjects}) > 1  # another split seed draws other test subjects


def test_train_alias_disjoint_option_and_max_samples():
    pre = build_sleep_dataset(syn_cfg(), split="pretrain")
    assert np.array_equal(build_sleep_dataset(syn_cfg(), split="train").indices, pre.indices)
    dis = build_sleep_dataset(syn_cfg(options=dict(finetune_in_pretrain=False)), split="pretrain")
    fine = build_sleep_dataset(syn_cfg(options=dict(finetune_in_pretrain=False)), split="finetune")
    assert not set(dis.subjects) & set(fine.subjects) and len(dis.subjects) == 3
    sub = build_sleep_dataset(syn_cfg(max_samples=7), split="pretrain")
    assert len(sub) == 7 and set(sub.indices) <= set(pre.indices)
    assert np.array_equal(sub.indices, np.sort(sub.indices))
    assert np.array_equal(sub.indices, build_sleep_dataset(syn_cfg(max_samples=7), split="pretrain").indices)


def test_engine_builder_and_loader():
    cfg = load_config(None, [
        "model.arch=vit1d_tiny", "model.img_size=200", "model.patch_size=10", "model.in_chans=2",
        "data.kind=sleep_synthetic", "data.split=finetune",
        "data.options={n_subjects: 8, epochs_per_subject: 6, fs: 50, window_s: 4, n_finetune: 3, n_test: 2}",
    ])
    ds = build_dataset(cfg)
    assert ds.split == "finetune" and len(ds) == 18
    x, y = next(iter(DataLoader(ds, batch_size=4)))
    assert x.shape == (4, 2, 200) and y.dtype == torch.int64
    assert build_dataset(cfg, train=False, split="test").split == "test"


# ----------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "cfg, split, err, match",
    [
        (syn_cfg(), "validation", ValueError, "data.split='validation'.*one of"),
        (syn_cfg(options=dict(n_subject=3)), "pretrain", ValueError,
         "data.options.*'n_subject'.*data.kind='sleep_synthetic'.*n_subjects"),
        (DataConfig(kind="sleep_foo", image_size=200, channels=2), "pretrain", ValueError,
         "data.kind='sleep_foo'.*one of"),
        (syn_cfg(channels=3), "pretrain", ValueError,
         "2.*channels.*'F3-M2'.*'F4-M1'"),
        (syn_cfg(image_size=3000), "pretrain", ValueError,
         "T=200.*model.img_size.*3000.*200"),
        (syn_cfg(options=dict(n_finetune=7)), "pretrain", ValueError,
         "n_finetune=7.*n_test=2.*8"),
        (syn_cfg(options=dict(n_finetune=2.5)), "pretrain", ValueError, "n_finetune.*2.5"),
        (syn_cfg(options=dict(n_test="all")), "pretrain", ValueError, "n_test.*count.*fraction"),
        (syn_cfg(max_samples=0), "pretrain", ValueError, "data.max_samples.*1"),
        (DataConfig(kind="physionet2018", image_size=3000, channels=6), "pretrain", ValueError,
         "data.kind='physionet2018'.*data.root"),
        (DataConfig(kind="sleep_edf", root="/nonexistent/sleep-edf", image_size=3000, channels=2), "pretrain",
         DatasetNotFoundError, r"data\.root.*sleep-edf"),
        (DataConfig(kind="sleep_npz", root="/nonexistent/x.npz", image_size=3000, channels=2), "pretrain",
         DatasetNotFoundError, "data.root.*x.npz"),
        (DataConfig(kind="physionet2018", root="/tmp", options=dict(max_records=0), image_size=3000, channels=6),
         "pretrain", ValueError, "data.options.max_records.*0"),
    ],
)
def test_bad_config_messages(cfg, split, err, match):
    with pytest.raises(err, match=match):
        build_sleep_dataset(cfg, split=split)


# ----------------------------------------------------------------------------------- PhysioNet 2018


@pytest.mark.slow
def test_physionet_folder_cache_and_splits(tmp_path, monkeypatch):
    root = physionet_folder(tmp_path, n=4)
    cache = tmp_path / "cache"
    cfg = pn_cfg(root, cache)
    test = build_sleep_dataset(cfg, split="test")
    pre = build_sleep_dataset(cfg, split="pretrain")
    assert len(test.subjects) == 1 and len(pre.subjects) == 3 and not set(test.subjects) & set(pre.subjects)
    assert len(test) == 9 and len(pre) == 27  # 9 scored 30-s windows per 270-s record
    np.testing.assert_array_equal(test.labels, [0, 0, 1, 1, 2, 2, 3, 3, 4])
    x, y = test[2]
    assert x.shape == (6, 3000) and x.dtype == torch.float32 and y == 1
    direct = load_physionet2018_record(root / test.subjects[0])
    np.testing.assert_allclose(np.stack([test[i][0].numpy() for i in range(len(test))]), direct.X, atol=1e-6)
    assert test.channels == ("F3-M2", "F4-M1", "C3-M2", "C4-M1", "O1-M2", "O2-M1")

    (folder,) = cache.glob("physionet2018-*")
    assert len(list(folder.glob("*.X.npy"))) == 4 and len(list(folder.glob("*.meta.npz"))) == 4

    # second build: served from the cache, no record is read
    def boom(*a, **k):
        raise AssertionError("record re-read although cached")

    pn = sleep_dataset.SLEEP_KINDS["physionet2018"]
    monkeypatch.setitem(sleep_dataset.SLEEP_KINDS, "physionet2018", replace(pn, format=replace(pn.format, read=boom)))
    again = build_sleep_dataset(cfg, split="test")
    assert torch.equal(again[5][0], test[5][0]) and again.subjects == test.subjects
    assert isinstance(again.source.parts[0], Path)  # memory-mapped from the cache
    # a changed source file invalidates its record only
    hea = root / "tr01-0001" / "tr01-0001.arousal"
    st = hea.stat()
    os.utime(hea, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="re-read although cached"):
        build_sleep_dataset(cfg, split="test")


def test_physionet_options_change_the_cache_key_and_cache_off(tmp_path):
    root = physionet_folder(tmp_path, n=3)
    cache = tmp_path / "cache"
    opts = dict(n_finetune=1, n_test=1)
    a = build_sleep_dataset(pn_cfg(root, cache, **opts), "test")
    b2 = pn_cfg(root, cache, channels=["C3-M2", "O2-M1"], window_s=20, **opts)
    b2.channels, b2.image_size = 2, 2000
    b = build_sleep_dataset(b2, "test")
    assert len(list(cache.glob("physionet2018-*"))) == 2
    assert b.channels == ("C3-M2", "O2-M1") and b[0][0].shape == (2, 2000) and len(b) == 13
    nocache = tmp_path / "nocache"
    c = build_sleep_dataset(pn_cfg(root, nocache, cache=False, **opts), "test")
    assert not nocache.exists() and torch.equal(c[4][0], a[4][0])
    assert len(build_sleep_dataset(pn_cfg(root, cache, max_records=2, **opts), "pretrain").subjects) == 1


def test_dataset_pickles_without_the_windows(tmp_path):
    root = physionet_folder(tmp_path, n=3)
    ds = build_sleep_dataset(pn_cfg(root, tmp_path / "c", n_finetune=1), "pretrain")
    ds[0]  # opens a memory map
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000 < len(ds) * 6 * 3000 * 4
    back = pickle.loads(blob)
    assert torch.equal(back[3][0], ds[3][0])
    x, _ = next(iter(DataLoader(ds, batch_size=2, num_workers=1)))
    assert torch.equal(x[1], ds[1][0])


def test_physionet_bad_records(tmp_path):
    # a record whose annotation file has no sleep stage
    root = physionet_folder(tmp_path, n=3)
    write_wfdb(root, "tr09-0009", [(10, "(arousal_rera"), (20, "arousal_rera)")], 120)
    with pytest.raises(DatasetFormatError, match="tr09-0009.*annotation"):
        build_sleep_dataset(pn_cfg(root, tmp_path / "c"), "test")
    # a channel missing: the message lists the available ones
    root2 = tmp_path / "other"
    write_wfdb(root2, "tr05-0005", STAGE_SEQ, 270, channels=["F3-M2", "C3-M2", "ECG"])
    with pytest.raises(ValueError, match="tr05-0005.*channel.*'F4-M1'.*'C4-M1'"):
        build_sleep_dataset(pn_cfg(root2, tmp_path / "c"), "test")
    # sampling rate below the 100-Hz target
    root3 = tmp_path / "slow"
    write_wfdb(root3, "tr06-0006", STAGE_SEQ, 270, fs=50)
    with pytest.raises(ValueError, match="tr06-0006.*rate.*50.*target"):
        build_sleep_dataset(pn_cfg(root3, tmp_path / "c"), "test")
    # window longer than the record
    root4 = tmp_path / "short"
    write_wfdb(root4, "tr07-0007", [(0, "W")], 20)
    with pytest.raises(ValueError, match="tr07-0007.*30"):
        build_sleep_dataset(pn_cfg(root4, tmp_path / "c"), "test")
    # a folder without any labelled record
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="PhysioNet 2018.*arousal"):
        build_sleep_dataset(pn_cfg(tmp_path / "empty", tmp_path / "c"), "test")


# ---------------------------------------------------------------------------------------- Sleep-EDF


def test_sleep_edf_subjects_and_nights(tmp_path):
    root = tmp_path / "sleep-cassette"
    hyp = [(0, 60, "Sleep stage W"), (60, 30, "Sleep stage 1"), (90, 60, "Sleep stage 2"),
           (150, 30, "Sleep stage 4"), (180, 30, "Sleep stage R"), (210, 30, "Sleep stage ?")]
    # subjects 00 (two nights), 01, 02
    for stem, letter in [("SC4001", "C"), ("SC4002", "C"), ("SC4011", "H"), ("SC4021", "E")]:
        write_edf_pair(root, stem, letter, hyp, 240)
    cfg = DataConfig(kind="sleep_edf", root=str(root), image_size=3000, channels=2,
                     options=dict(n_finetune=1, n_test=1, cache_dir=str(tmp_path / "cache")))
    pre, test = build_sleep_dataset(cfg, "pretrain"), build_sleep_dataset(cfg, "test")
    assert set(pre.subjects) | set(test.subjects) == {"SC400", "SC401", "SC402"}
    assert not set(pre.subjects) & set(test.subjects)
    both = len(pre) + len(test)
    assert both == 4 * 7  # 7 scored windows per night ('?' dropped)
    assert set(pre.source.record) == {"SC4001", "SC4002", "SC4011", "SC4021"}
    direct = load_sleep_edf_record(root / "SC4011E0-PSG.edf")
    i = int(np.flatnonzero(pre.source.record == "SC4011")[0])
    np.testing.assert_allclose(pre.source.window(i), direct.X[0], atol=1e-6)
    np.testing.assert_array_equal(pre.source.y[pre.source.record == "SC4011"], [0, 0, 1, 2, 2, 3, 4])
    assert pre.channels == ("EEG Fpz-Cz", "EEG Pz-Oz")


# --------------------------------------------------------------------------------------------- npz


def test_npz_file_and_folder(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(2):
        rec = SleepRecording(rng.normal(size=(10, 3, 50)).astype(np.float32), rng.integers(0, 5, 10),
                             np.repeat([f"s{k}a", f"s{k}b"], 5), channels=("a", "b", "c"), fs=10.0)
        rec.save_npz(tmp_path / f"part{k}.npz")
    cfg = DataConfig(kind="sleep_npz", root=str(tmp_path), image_size=50, channels=2,
                     options=dict(channels=["c", "a"], n_finetune=1, n_test=1))
    pre, test = build_sleep_dataset(cfg, "pretrain"), build_sleep_dataset(cfg, "test")
    assert len(pre) + len(test) == 20 and len(test.subjects) == 1
    one = DataConfig(kind="sleep_npz", root=str(tmp_path / "part1.npz"), image_size=50, channels=3,
                     options=dict(n_finetune=1, n_test=1))
    ds = build_sleep_dataset(one, "test")
    with np.load(tmp_path / "part1.npz") as z:
        np.testing.assert_array_equal(ds[0][0].numpy(), z["X"][ds.indices[0]])
        assert ds[0][1] == z["y"][ds.indices[0]]
    x, _ = pre[0]
    with np.load(tmp_path / f"part{0 if pre.indices[0] < 10 else 1}.npz") as z:
        np.testing.assert_array_equal(x.numpy(), z["X"][pre.indices[0] % 10][[2, 0]])
