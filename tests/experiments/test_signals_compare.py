"""``experiments/signals_compare.py`` without training: the ``--select-on val`` carve of train.npz (stratified,
disjoint, fixed by its seed, test.npz never read) and the standard error of the PART - scratch difference."""

from __future__ import annotations

import json
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


def write_npz_with_unreadable_y(path: Path, x: np.ndarray, **arrays) -> None:
    """An npz whose ``y`` member is garbage: any read of the labels raises, so a helper that succeeds on it
    provably never read them."""
    np.savez(path, x=x, **arrays)
    import zipfile

    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("y.npy", b"\x93NUMPY\x01\x00garbage")  # an npy magic with a broken header


def test_pretrain_folder_holds_eval_signals_and_never_reads_or_writes_eval_labels(compare, tmp_path):
    src = tmp_path / "src"
    x_tr = write_train(src, np.array([0, 1, 2, 0, 1, 2]))
    x_ev = -np.arange(4 * 2 * 4, dtype=np.float32).reshape(4, 2, 4)
    write_npz_with_unreadable_y(src / "test.npz", x_ev, fs=np.float64(100.0))
    with np.load(src / "test.npz") as f, pytest.raises(ValueError):
        f["y"]  # the labels really are unreadable
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    info = compare.pretrain_folder(src, tmp_path / "pre")
    assert info == {"folder": str(tmp_path / "pre"), "train": 6, "eval": 4}
    tr, ev = read_signal_npz(tmp_path / "pre" / "train.npz"), read_signal_npz(tmp_path / "pre" / "test.npz")
    assert np.array_equal(tr.x, np.concatenate([x_tr, x_ev])) and np.array_equal(ev.x, x_ev)
    assert tr.y is None and ev.y is None and tr.class_names is None and tr.fs == 100.0
    for f in ("train.npz", "test.npz"):
        with np.load(tmp_path / "pre" / f) as z:
            assert "y" not in z.files and "class_names" not in z.files
    assert list(np.asarray(tr.group).astype(str)) == ["train"] * 6 + ["eval"] * 4
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # the user's folder is not modified
    np.savez(src / "test.npz", x=np.zeros((2, 3, 4), np.float32))
    with pytest.raises(ValueError, match="same C, T"):
        compare.pretrain_folder(src, tmp_path / "pre2")


def test_train_stats_overrides_only_for_dataset_normalisation(compare, tmp_path):
    x = write_train(tmp_path / "src", np.array([0, 1, 2, 0]))
    cfg = compare.SETS["fingermovements"][0]  # normalize: dataset
    over = compare.train_stats_overrides(tmp_path / "src", cfg, [])
    mean = x.mean(axis=(0, 2), dtype=np.float64)
    assert over[0].startswith("data.mean=") and over[1].startswith("data.std=")
    assert np.allclose(json.loads(over[0].split("=", 1)[1]), mean)
    assert compare.train_stats_overrides(tmp_path / "src", cfg, ["data.options.normalize=window"]) == []
    assert compare.train_stats_overrides(tmp_path / "src", cfg, ["data.mean=[0, 0]", "data.std=[1, 1]"]) == []


def test_pretrain_on_refuses_an_unknown_value(compare, capsys):
    with pytest.raises(SystemExit) as exc:
        compare.main(["--pretrain-on", "test", "--quick"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--pretrain-on" in err and "'test'" in err


def test_pretrain_on_train_eval_without_a_test_file_is_one_line(compare, tmp_path, capsys):
    write_train(tmp_path / "src", np.array([0, 1, 2, 0]))
    with pytest.raises(SystemExit) as exc:
        compare.main(["--sets", "fingermovements", "--root", f"fingermovements={tmp_path / 'src'}", "--quick",
                      "--pretrain-on", "train+eval", "--out", str(tmp_path / "out")])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "--pretrain-on train+eval" in err and "test.npz" in err


def test_folds_pool_paired_over_runs(compare):
    def fold(pairs):
        return {"runs": [{"part_ft": {"top1": a}, "scratch_ft": {"top1": b}} for a, b in pairs]}

    folds = [fold([(0.9, 0.8), (0.7, 0.7)]), fold([(0.6, 0.5), (0.8, 0.5)])]
    p = compare.pooled(folds)
    d = [0.1, 0.0, 0.1, 0.3]
    assert p["n"] == 4 and p["part"] == pytest.approx(0.75) and p["scratch"] == pytest.approx(0.625)
    assert p["diff"] == pytest.approx(0.125)
    assert p["se"] == pytest.approx(np.std(d, ddof=1) / 2)
    assert p["folds"] == [pytest.approx((0.8, 0.75)), pytest.approx((0.7, 0.5))]
    text = compare.pooled_table("blink", [["g0", "g5"], ["g1", "g6"]], folds)
    assert "| g0 g5 | 0.800 | 0.750 |" in text and "| pooled | 0.750 | 0.625 |" in text and "+0.125" in text


def test_folds_need_select_on_val_and_known_groups(compare, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        compare.main(["--sets", "blink", "--val-folds", "train-0,train-5"])
    assert exc.value.code == 2 and "--val-folds needs --select-on val" in capsys.readouterr().err
    write_train(tmp_path / "src", np.array([0, 1] * 6))  # groups 0, 1, 2
    with pytest.raises(SystemExit) as exc:
        compare.main(["--sets", "fingermovements", "--root", f"fingermovements={tmp_path / 'src'}", "--quick",
                      "--select-on", "val", "--val-folds", "0", "7,1", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert exc.value.code == 2 and "'7'" in err and "--val-groups" in err
    assert not (tmp_path / "out" / "fold0" / "fingermovements" / "seed0").exists()  # nothing trained


def _summary(path, runs_by_fold, select_on="val"):
    """A summary.json of signals_compare with folds ``{groups: [(part_ft, scratch_ft), ...]}`` (seed = index)."""
    folds = [{"val_groups": groups.split(), "runs": [
        {"seed": s, "pretext_loss": {"train": 10.0 + s, "test": 20.0 + s},
         **{m: {"top1": v} for m, v in zip(("part_ft", "scratch_ft", "part_probe", "random_probe"),
                                                         (a, b, a - 0.1, b - 0.1))}}
        for s, (a, b) in enumerate(pairs)]} for groups, pairs in runs_by_fold.items()]
    path.write_text(json.dumps({"results": {"blink": {"set": "blink", "select_on": select_on, "folds": folds}}}))
    return path


def test_paired_compares_two_summaries_run_by_run(compare, tmp_path, capsys):
    base = _summary(tmp_path / "base.json", {"g0 g5": [(0.8, 0.7), (0.6, 0.6)], "g1 g6": [(0.9, 0.9)]})
    # the other setting lacks one run (g1 g6 seed 0) and has one the base lacks (g2 g7): only 2 pair up
    other = _summary(tmp_path / "other.json", {"g0 g5": [(0.9, 0.7), (0.9, 0.5)], "g2 g7": [(0.1, 0.1)]})
    res = compare.main(["--paired", str(base), str(other)])["blink"]
    assert res["n"] == 2 and res["runs"] == ["g0 g5 seed 0", "g0 g5 seed 1"]
    assert res["part_ft"]["diff"] == pytest.approx(0.2) and res["scratch_ft"]["diff"] == pytest.approx(-0.05)
    assert res["part_ft"]["se"] == pytest.approx(np.std([0.1, 0.3], ddof=1) / math.sqrt(2))
    assert res["part_probe"]["diff"] == pytest.approx(0.2)
    assert res["part_ft"]["base"] == pytest.approx(0.7) and res["part_ft"]["other"] == pytest.approx(0.9)
    assert res["pretext"]["base"] == {"train": 10.5, "test": 20.5}
    out = capsys.readouterr().out
    assert "| part_ft | 0.700 | 0.900 | +0.200 | 0.100 |" in out and "BASE 10.5 / 20.5" in out


def test_paired_refuses_files_that_do_not_pair(compare, tmp_path, capsys):
    base = _summary(tmp_path / "base.json", {"g0 g5": [(0.8, 0.7)]})
    cases = [(_summary(tmp_path / "test.json", {"g0 g5": [(0.8, 0.7)]}, select_on="test"), "select_on"),
             (_summary(tmp_path / "apart.json", {"g1 g6": [(0.8, 0.7)]}), "no (held-out split, seed) run in common"),
             (tmp_path / "missing.json", "missing.json: not a summary.json")]
    (tmp_path / "bad.json").write_text("{not json")
    cases.append((tmp_path / "bad.json", "bad.json: not a summary.json"))
    for other, message in cases:
        with pytest.raises(SystemExit) as exc:
            compare.main(["--paired", str(base), str(other)])
        err = capsys.readouterr().err.strip().splitlines()
        assert exc.value.code == 2 and message in err[-1], err
