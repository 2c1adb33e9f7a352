"""``data.kind: signal_npz``: the reader's arrays and their one-line errors, the two split forms (folder of
split files; one file + explicit held-out groups), dataset / window / no normalisation, the length policy,
and the record of what a split holds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from part.config import DataConfig
from part.data.errors import DatasetFormatError, DatasetNotFoundError
from part.data.signal_npz import (
    SignalDataset, SignalNpzData, build_signal_dataset, channel_stats, fit_length, normalize_signals,
    read_signal_npz, signal_npz_options,
)

C, T = 3, 20


def signals(n: int, seed: int, k: int = 3, offset: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """``x (n, C, T)`` float32 whose level encodes the class, and ``y (n,)`` in ``0..k-1``."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.normal(size=(n, C, T)) + offset + 2.0 * y[:, None, None] + np.arange(C)[None, :, None]
    return x.astype(np.float32), y.astype(np.int64)


def write(path, **arrays):
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return path


def folder(tmp_path, n_train=12, n_test=6, names=("low", "mid", "high"), val=False):
    root = tmp_path / "sig"
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)) + ((("val", 4, 2),) if val else ()):
        x, y = signals(n, seed)
        extra = {"class_names": np.array(names)} if names else {}
        write(root / f"{split}.npz", x=x, y=y, channel_names=np.array(["a", "b", "c"]), fs=np.array(100.0), **extra)
    return root


def grouped(tmp_path, n=24):
    x, y = signals(n, 0)
    group = np.array([f"s{i % 4}" for i in range(n)])
    return write(tmp_path / "all.npz", x=x, y=y, group=group)


def data_cfg(root, **kw) -> DataConfig:
    d = DataConfig(kind="signal_npz", root=str(root), image_size=T, channels=C)
    for k, v in kw.items():
        setattr(d, k, v)
    return d


# --- reading one file ----------------------------------------------------------------------------
def test_read_keeps_arrays_and_names(tmp_path):
    root = folder(tmp_path)
    a = read_signal_npz(root / "train.npz")
    assert a.x.shape == (12, C, T) and a.x.dtype == np.float32 and a.y.dtype == np.int64
    assert a.class_names == ("low", "mid", "high") and a.channel_names == ("a", "b", "c") and a.fs == 100.0
    assert len(a.sha256) == 64 and a.group is None


@pytest.mark.parametrize("arrays, words", [
    (dict(x=np.zeros((4, T), np.float32)), ["'x'", "(N, C, T)", "x[:, None, :]"]),
    (dict(x=np.zeros((4, 1, 2, T), np.float32)), ["'x'", "(N, C, T)", "(4, 1, 2, 20)"]),
    (dict(X=np.zeros((4, C, T), np.float32)), ["no array 'x'", "rename 'X'"]),
    (dict(x=np.array([[["a"] * T] * C] * 2)), ["'x'", "numbers"]),
    (dict(x=np.zeros((0, C, T), np.float32)), ["'x'", "empty"]),
    (dict(x=np.full((4, C, T), np.nan, np.float32)), ["'x'", "NaN", "sample 0"]),
    (dict(x=np.zeros((4, C, T), np.float32), y=np.zeros(5, np.int64)), ["'y'", "(4,)", "(5,)"]),
    (dict(x=np.zeros((4, C, T), np.float32), y=np.zeros(4, np.float32)), ["'y'", "integer", "float32"]),
    (dict(x=np.zeros((4, C, T), np.float32), y=np.array([0, -1, 0, 1])), ["'y'", "negative", "-1", "sample 1"]),
    (dict(x=np.zeros((4, C, T), np.float32), y=np.array([0, 1, 2, 1]), class_names=np.array(["a", "b"])),
     ["'y'", "label 2", "'class_names'", "2 classes"]),
    (dict(x=np.zeros((4, C, T), np.float32), channel_names=np.array(["a", "b"])), ["'channel_names'", "C=3"]),
    (dict(x=np.zeros((4, C, T), np.float32), fs=np.array(-5.0)), ["'fs'", "positive"]),
    (dict(x=np.zeros((4, C, T), np.float32), group=np.zeros(3)), ["'group'", "(4,)"]),
    (dict(x=np.zeros((4, C, T), np.float32), labels=np.zeros(4, np.int64)), ["unknown array", "'labels'"]),
])
def test_bad_arrays_fail_in_one_line_naming_the_array(tmp_path, arrays, words):
    path = write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetFormatError) as err:
        read_signal_npz(path)
    msg = str(err.value)
    assert "\n" not in msg and str(path) in msg
    for w in words:
        assert w in msg, (w, msg)


def test_object_arrays_and_non_npz_files_are_format_errors(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, x=np.zeros((2, C, T), np.float32), class_names=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(DatasetFormatError, match="object"):
        read_signal_npz(path)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(DatasetFormatError, match="cannot read npz"):
        read_signal_npz(junk)
    with pytest.raises(DatasetNotFoundError, match="missing.npz"):
        read_signal_npz(tmp_path / "missing.npz")


def test_rewritten_file_is_read_again(tmp_path):
    path = write(tmp_path / "a.npz", x=np.zeros((2, C, T), np.float32))
    assert read_signal_npz(path).x.shape[0] == 2
    write(path, x=np.zeros((5, C, T), np.float32))
    assert read_signal_npz(path).x.shape[0] == 5


# --- options -------------------------------------------------------------------------------------
@pytest.mark.parametrize("opts, words", [
    ({"normalise": "dataset"}, ["unknown data.options", "normalise", "normalize"]),
    ({"normalize": "zscore"}, ["data.options.normalize", "zscore", "dataset"]),
    ({"length_policy": "trim"}, ["data.options.length_policy", "trim", "crop"]),
    ({"split_by": "subject"}, ["data.options.split_by", "subject"]),
    ({"split_by": "group"}, ["test_groups"]),
    ({"test_groups": ["s1"]}, ["data.options.test_groups", "split_by: group"]),
    ({"split_by": "group", "test_groups": ["s1"], "val_groups": ["s1"]}, ["share", "s1"]),
    ({"split_by": "group", "test_groups": {"a": 1}}, ["data.options.test_groups", "list"]),
])
def test_bad_options_name_the_option(opts, words):
    with pytest.raises(ValueError) as err:
        signal_npz_options(opts)
    for w in words:
        assert w in str(err.value), (w, str(err.value))


# --- splits --------------------------------------------------------------------------------------
def test_folder_splits_and_missing_files(tmp_path):
    root = folder(tmp_path)
    data = SignalNpzData(root, {})
    assert data.num_channels == C and data.length == T and data.num_classes == 3 and data.fs == 100.0
    assert data.has_split("test") and not data.has_split("val")
    test = SignalDataset(data, "test", length=T, channels=C)
    assert len(test) == 6 and test.classes == ("low", "mid", "high")
    with pytest.raises(DatasetNotFoundError, match="val.npz"):
        SignalDataset(data, "val")
    (root / "test.npz").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"test\.npz.*--no-eval"):
        SignalDataset(data, "test")
    with pytest.raises(ValueError, match="data.split='finetune'"):
        SignalDataset(data, "finetune")
    with pytest.raises(DatasetNotFoundError, match="train.npz"):
        SignalNpzData(tmp_path / "empty_dir_does_not_exist", {})
    (tmp_path / "e").mkdir()
    with pytest.raises(DatasetNotFoundError, match="train.npz"):
        SignalNpzData(tmp_path / "e", {})


def test_split_files_must_agree(tmp_path):
    root = folder(tmp_path)
    x, y = signals(4, 5)
    write(root / "test.npz", x=x[:, :2], y=y)
    with pytest.raises(DatasetFormatError, match=r"test\.npz.*2.*train\.npz"):
        SignalNpzData(root, {}).split_rows("test")
    write(root / "test.npz", x=x, y=y, class_names=np.array(["p", "q", "r"]))
    with pytest.raises(DatasetFormatError, match="class_names"):
        SignalNpzData(root, {}).split_rows("test")


def test_num_classes_without_names_is_largest_label_over_splits(tmp_path):
    root = folder(tmp_path, names=None)
    x, y = signals(5, 3, k=5)
    write(root / "test.npz", x=x, y=y)
    assert SignalNpzData(root, {}).num_classes == 5
    write(root / "train.npz", x=x)  # unlabelled train (pretraining): labels of test still count
    data = SignalNpzData(root, {})
    assert data.num_classes == 5
    assert (SignalDataset(data, "train", length=T).labels == -1).all()


def test_group_split_uses_the_explicit_held_out_list(tmp_path):
    path = grouped(tmp_path)
    opts = {"split_by": "group", "test_groups": ["s3"], "val_groups": ["s0"]}
    data = SignalNpzData(path, opts)
    sets = {s: SignalDataset(data, s, length=T, channels=C) for s in ("train", "val", "test")}
    assert set(sets["test"].groups) == {"s3"} and set(sets["val"].groups) == {"s0"}
    assert set(sets["train"].groups) == {"s1", "s2"} and len(sets["train"]) == 12
    rows = np.concatenate([d.rows for d in sets.values()])
    assert np.array_equal(np.sort(rows), np.arange(24))  # disjoint and complete
    rec = sets["test"].record()
    assert rec["groups"] == ["s3"] and rec["test_groups"] == ["s3"] and rec["rows"] == "groups in test_groups"
    # integer groups in the file compare with YAML integers in the list
    x, y = signals(8, 1)
    path2 = write(tmp_path / "int.npz", x=x, y=y, group=np.arange(8) % 2)
    assert len(SignalDataset(SignalNpzData(path2, {"split_by": "group", "test_groups": [1]}), "test")) == 4


@pytest.mark.parametrize("opts, words", [
    ({"split_by": "group", "test_groups": ["s9"]}, ["test_groups", "'s9'", "s0"]),
    ({"split_by": "group", "test_groups": ["s0", "s1", "s2", "s3"]}, ["no train samples"]),
])
def test_group_split_errors(tmp_path, opts, words):
    with pytest.raises(ValueError) as err:
        SignalNpzData(grouped(tmp_path), opts)
    for w in words:
        assert w in str(err.value)


def test_one_file_without_groups(tmp_path):
    x, y = signals(6, 0)
    path = write(tmp_path / "one.npz", x=x, y=y)
    data = SignalNpzData(path, {})
    assert len(SignalDataset(data, "train")) == 6
    with pytest.raises(ValueError, match="split_by"):
        data.split_rows("test")
    with pytest.raises(DatasetFormatError, match="'group' array"):
        SignalNpzData(path, {"split_by": "group", "test_groups": ["a"]})
    with pytest.raises(ValueError, match="one .npz file"):
        SignalNpzData(folder(tmp_path), {"split_by": "group", "test_groups": ["a"]})


# --- normalisation and length ----------------------------------------------------------------------
def test_channel_stats_match_numpy_and_flat_channels_get_std_one():
    x = np.random.default_rng(0).normal(3.0, 2.0, size=(7, 2, 11)).astype(np.float32)
    x[:, 1] = 5.0
    mean, std = channel_stats(x)
    np.testing.assert_allclose(mean, [x[:, 0].mean(), 5.0], rtol=1e-5)
    np.testing.assert_allclose(std, [x[:, 0].std(), 1.0], rtol=1e-5)


def test_normalize_modes_against_a_plain_loop():
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(4, 2, 9)).astype(np.float32)
    w = normalize_signals(x, "window")
    for i in range(4):
        for c in range(2):
            ref = (x[i, c] - x[i, c].mean()) / (x[i, c].std() + 1e-6)
            np.testing.assert_allclose(w[i, c], ref, rtol=1e-4, atol=1e-5)
    d = normalize_signals(x, "dataset", [1.0, -1.0], [2.0, 4.0])
    np.testing.assert_allclose(d[:, 1], (x[:, 1] + 1.0) / 4.0, rtol=1e-5)
    assert normalize_signals(x, "none") is not None and np.array_equal(normalize_signals(x, "none"), x)


def test_dataset_normalisation_uses_train_statistics_for_every_split(tmp_path):
    root = folder(tmp_path)
    train = build_signal_dataset(data_cfg(root), "train")
    test = build_signal_dataset(data_cfg(root), "test")
    raw = read_signal_npz(root / "train.npz").x
    torch.testing.assert_close(train.x.mean(dim=(0, 2)), torch.zeros(C), atol=1e-5, rtol=0)
    torch.testing.assert_close(train.x.std(dim=(0, 2), unbiased=False), torch.ones(C), atol=1e-4, rtol=0)
    assert test.mean == train.mean == pytest.approx(raw.mean(axis=(0, 2)).tolist(), rel=1e-5)
    # the class level survives dataset normalisation (window normalisation removes it)
    assert float(train.x[train.labels == 2].mean()) > float(train.x[train.labels == 0].mean()) + 1.0
    win = build_signal_dataset(data_cfg(root, options={"normalize": "window"}), "train")
    assert abs(float(win.x[win.labels == 2].mean()) - float(win.x[win.labels == 0].mean())) < 1e-4
    # given statistics are used as they are
    given = build_signal_dataset(data_cfg(root, mean=[0.0] * C, std=[2.0] * C), "train")
    torch.testing.assert_close(given.x, torch.from_numpy(raw) / 2.0)


def test_statistics_errors(tmp_path):
    root = folder(tmp_path)
    with pytest.raises(ValueError, match=r"data\.mean.*channel.*3"):
        build_signal_dataset(data_cfg(root, mean=[0.0], std=[1.0]), "train")
    with pytest.raises(ValueError, match="data.mean.*data.std.*'window'"):
        build_signal_dataset(data_cfg(root, mean=[0.0] * C, std=[1.0] * C, options={"normalize": "window"}), "train")
    with pytest.raises(ValueError, match="C=3.*model.in_chans.*4"):
        build_signal_dataset(data_cfg(root, channels=4), "train")


def test_length_policy():
    x = np.arange(2 * 7, dtype=np.float32).reshape(1, 2, 7)
    np.testing.assert_array_equal(fit_length(x, 5, "crop"), x[..., :5])
    padded = fit_length(x, 9, "pad")
    np.testing.assert_array_equal(padded[..., :7], x)
    np.testing.assert_array_equal(padded[..., 7:], np.repeat(x[..., -1:], 2, axis=-1))
    assert fit_length(x, 7, "none") is x
    with pytest.raises(ValueError, match="T=7.*model.img_size.*5.*7"):
        fit_length(x, 5, "none")
    with pytest.raises(ValueError, match="T=7.*model.img_size.*9.*length_policy"):
        fit_length(x, 9, "crop")
    with pytest.raises(ValueError, match="T=7.*model.img_size.*5.*length_policy"):
        fit_length(x, 5, "pad")


def test_dataset_length_and_max_samples_and_record(tmp_path):
    root = folder(tmp_path)
    ds = build_signal_dataset(data_cfg(root, image_size=16, max_samples=5, options={"length_policy": "crop"}), "train")
    x, label = ds[3]
    assert x.shape == (C, 16) and x.dtype == torch.float32 and label == 0
    rec = ds.record()
    assert rec["rows"] == "first 5" and rec["num_samples"] == 5 and rec["shape"] == [5, C, 16]
    assert rec["class_counts"] == {"low": 2, "mid": 2, "high": 1} and len(rec["mean"]) == C
    with pytest.raises(ValueError, match="T=20.*model.img_size.*16"):
        build_signal_dataset(data_cfg(root, image_size=16), "train")
    assert build_signal_dataset(data_cfg(root), "test").record()["rows"] == "all"
