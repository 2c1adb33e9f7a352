"""``benchmarks/signals_compare.py`` without training: the ``--select-on val`` carve of train.npz (stratified,
disjoint, fixed by its seed, test.npz never read) and the standard error of the PART - scratch difference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from part.data.signal_npz import read_signal_npz

from .scripts import load_script


@pytest.fixture(scope="module")
def compare():
    return load_script("signals_compare")


def write_train(folder: Path, y: np.ndarray) -> np.ndarray:
    folder.mkdir(parents=True, exist_ok=True)
    x = np.arange(len(y) * 2 * 4, dtype=np.float32).reshape(len(y), 2, 4)  # row i is unique: x[i, 0, 0] = 8 i
    np.savez(folder / "train.npz", x=x, y=y, class_names=np.array(["a", "b", "c"]), fs=np.float64(100.0),
             group=np.arange(len(y)) % 3)
    return x


def test_carve_is_stratified_disjoint_and_fixed_by_its_seed(compare, tmp_path):
    y = np.array([0] * 12 + [1] * 8 + [2] * 4)
    x = write_train(tmp_path / "src", y)  # no test.npz at all: the carve must not need it
    out = compare.carve_val(tmp_path / "src", tmp_path / "carve", 0.25, seed=0)
    tr, va = read_signal_npz(out / "train.npz"), read_signal_npz(out / "test.npz")
    assert np.bincount(va.y).tolist() == [3, 2, 1] and np.bincount(tr.y).tolist() == [9, 6, 3]
    rows_tr, rows_va = set((tr.x[:, 0, 0] // 8).astype(int)), set((va.x[:, 0, 0] // 8).astype(int))
    assert not rows_tr & rows_va and rows_tr | rows_va == set(range(len(y)))
    for a in (tr, va):  # each row keeps its own label and group; the per-set arrays are copied
        i = (a.x[:, 0, 0] // 8).astype(int)
        assert (a.y == y[i]).all() and (np.asarray(a.group).astype(int) == i % 3).all()
        assert a.class_names == ("a", "b", "c") and a.fs == 100.0 and np.array_equal(a.x, x[i])
    again = compare.carve_val(tmp_path / "src", tmp_path / "again", 0.25, seed=0)
    assert np.array_equal(read_signal_npz(again / "test.npz").x, va.x)
    other = compare.carve_val(tmp_path / "src", tmp_path / "other", 0.25, seed=1)
    assert not np.array_equal(read_signal_npz(other / "test.npz").x, va.x)


def test_carve_refuses_bad_fraction_and_unlabelled_train(compare, tmp_path):
    write_train(tmp_path / "src", np.array([0, 1] * 4))
    with pytest.raises(ValueError, match="val-fraction"):
        compare.carve_val(tmp_path / "src", tmp_path / "c", 1.0, seed=0)
    (tmp_path / "nolabels").mkdir()
    np.savez(tmp_path / "nolabels" / "train.npz", x=np.zeros((4, 1, 4), np.float32))
    with pytest.raises(ValueError, match="labels y"):
        compare.carve_val(tmp_path / "nolabels", tmp_path / "c", 0.25, seed=0)


def test_difference_and_its_standard_error(compare):
    runs = [{"part_ft": {"top1": a}, "scratch_ft": {"top1": b}} for a, b in ((0.8, 0.6), (0.9, 0.7), (0.7, 0.65))]
    d, se = compare.diff_se({"runs": runs})
    assert d == pytest.approx(0.8 - 0.65)
    assert se == pytest.approx(math.sqrt((0.01 + 0.0025) / 3))
    assert compare.diff_se({"runs": runs[:1]}) == (pytest.approx(0.2), 0.0)


def test_carve_by_groups_holds_out_whole_recordings(compare, tmp_path):
    y = np.array([0, 1] * 6)
    write_train(tmp_path / "src", y)  # group = row % 3
    out = compare.carve_val(tmp_path / "src", tmp_path / "g", 0.25, seed=0, groups=["2"])
    va, tr = read_signal_npz(out / "test.npz"), read_signal_npz(out / "train.npz")
    assert set(np.asarray(va.group).astype(str)) == {"2"} and "2" not in set(np.asarray(tr.group).astype(str))
    assert len(va.y) + len(tr.y) == len(y) and len(va.y) == 4
    with pytest.raises(ValueError, match="7"):
        compare.carve_val(tmp_path / "src", tmp_path / "g2", 0.25, seed=0, groups=["7"])
    with pytest.raises(ValueError, match="no train"):
        compare.carve_val(tmp_path / "src", tmp_path / "g3", 0.25, seed=0, groups=["0", "1", "2"])
