"""``experiments/signals_compare.py`` end to end on 24 real FingerMovements trials (tests/fixtures): PART
pretraining, fine-tuning from PART and from scratch, linear probes, pretext loss on train and test trials; the
transductive protocol and its folds."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from part.config import load_config
from part.data.signal_npz import channel_stats, read_signal_npz

from .scripts import load_script

pytestmark = pytest.mark.slow  # end to end: several runs of an experiment script

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "fingermovements_small"


def test_signals_compare_end_to_end_on_real_trials(tmp_path, capsys):
    compare = load_script("signals_compare")
    summary = compare.main(["--sets", "fingermovements", "--root", f"fingermovements={FIXTURE}", "--quick",
                            "--seeds", "0", "--out", str(tmp_path), "--threads", "1"])
    runs = summary["results"]["fingermovements"]["runs"]
    assert len(runs) == 1
    r = runs[0]
    for key in ("part_ft", "scratch_ft", "part_probe", "random_probe"):
        assert 0.0 <= r[key]["top1"] <= 1.0 and r[key]["num_samples"] == 8
    assert all(np.isfinite(v) and v > 0 for v in r["pretext_loss"].values())
    data = json.loads((tmp_path / "fingermovements" / "seed0" / "part_ft" / "data.json").read_text())
    assert data["splits"]["test"]["sha256"] == read_signal_npz(FIXTURE / "test.npz").sha256
    out = capsys.readouterr().out
    assert "PART -> fine-tune" in out and "+-" in out and (tmp_path / "summary.json").is_file()


def test_signals_compare_transductive_pretraining_sees_eval_signals_never_their_labels(tmp_path, capsys):
    compare = load_script("signals_compare")
    summary = compare.main(["--sets", "fingermovements", "--root", f"fingermovements={FIXTURE}", "--quick",
                            "--seeds", "0", "--out", str(tmp_path), "--threads", "1", "--pretrain-on", "train+eval"])
    res = summary["results"]["fingermovements"]
    assert res["pretrain_on"] == "train+eval" and res["pretrain_data"]["train"] == 16
    assert res["pretrain_data"]["eval"] == 8 and "train split" in res["pretrain_data"]["normalization"]
    tr, te = read_signal_npz(FIXTURE / "train.npz"), read_signal_npz(FIXTURE / "test.npz")
    pre = tmp_path / "fingermovements" / "pretrain_data"
    for name in ("train.npz", "test.npz"):  # signals only: no label array was written
        with np.load(pre / name) as z:
            assert "y" not in z.files and "class_names" not in z.files
    assert np.array_equal(read_signal_npz(pre / "train.npz").x, np.concatenate([tr.x, te.x]))
    run = tmp_path / "fingermovements" / "seed0"
    data = json.loads((run / "part" / "data.json").read_text())  # PART read the label-free folder only
    assert set(data["splits"]) == {"train"}
    assert data["splits"]["train"]["sha256"] == read_signal_npz(pre / "train.npz").sha256
    assert "class_counts" not in data["splits"]["train"] and data["splits"]["train"]["num_samples"] == 24
    cfg = load_config(run / "part" / "config.yaml")  # dataset normalisation: the labelled train split's numbers
    mean, std = channel_stats(tr.x)
    assert np.allclose(cfg.data.mean, mean) and np.allclose(cfg.data.std, std)
    pretext = json.loads((run / "part" / "pretext_test.json").read_text())
    assert pretext["data"]["sha256"] == read_signal_npz(pre / "test.npz").sha256  # the eval split's x, label-free
    assert "class_counts" not in pretext["data"]
    pretext_train = json.loads((run / "part" / "pretext_train.json").read_text())  # the labelled train trials only
    assert pretext_train["data"]["sha256"] == tr.sha256
    ft = json.loads((run / "part_ft" / "data.json").read_text())  # fine-tuning: the labelled train split only
    assert ft["splits"]["train"]["sha256"] == tr.sha256 and ft["splits"]["test"]["sha256"] == te.sha256
    assert all(r["num_samples"] == 8 for k, r in res["runs"][0].items() if k.endswith(("_ft", "_probe")))
    out = capsys.readouterr().out
    assert "unlabelled test signals (transductive)" in out


def test_transductive_folds_pretrain_on_each_folds_own_held_out_signals(tmp_path, capsys):
    """--val-folds with --pretrain-on train+eval: each fold's PART sees its training trials and the signals
    (never the labels) of its own held-out recordings; fine-tuning sees the fold's labelled training trials."""
    compare = load_script("signals_compare")
    src = tmp_path / "src"
    src.mkdir()
    with np.load(FIXTURE / "train.npz") as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(src / "train.npz", group=np.array([f"r{i}" for i in (np.arange(16) // 2) % 4]), **arrays)
    summary = compare.main(["--sets", "fingermovements", "--root", f"fingermovements={src}", "--quick",
                            "--seeds", "0", "--out", str(tmp_path / "out"), "--threads", "1", "--select-on", "val",
                            "--val-folds", "r0", "r1,r2", "--pretrain-on", "train+eval"])
    res = summary["results"]["fingermovements"]
    assert res["pretrain_on"] == "train+eval" and res["pooled"]["n"] == 2
    for i, held in enumerate((4, 8)):
        fold = res["folds"][i]
        assert fold["pretrain_on"] == "train+eval"
        assert (fold["pretrain_data"]["train"], fold["pretrain_data"]["eval"]) == (16 - held, held)
        pre = tmp_path / "out" / f"fold{i}" / "fingermovements" / "pretrain_data"
        carve = read_signal_npz(tmp_path / "out" / f"fold{i}" / "fingermovements" / "val_split" / "train.npz")
        held_out = read_signal_npz(tmp_path / "out" / f"fold{i}" / "fingermovements" / "val_split" / "test.npz")
        assert np.array_equal(read_signal_npz(pre / "train.npz").x, np.concatenate([carve.x, held_out.x]))
        with np.load(pre / "train.npz") as z:
            assert "y" not in z.files
        run = tmp_path / "out" / f"fold{i}" / "fingermovements" / "seed0"
        data = json.loads((run / "part" / "data.json").read_text())
        assert data["splits"]["train"]["sha256"] == read_signal_npz(pre / "train.npz").sha256
        ft = json.loads((run / "part_ft" / "data.json").read_text())
        assert ft["splits"]["train"]["sha256"] == carve.sha256 and ft["splits"]["train"]["num_samples"] == 16 - held
    assert read_signal_npz(src / "train.npz").x.shape == (16, 28, 50)  # the user's folder is untouched
    assert "held-out signals (transductive)" in capsys.readouterr().out
