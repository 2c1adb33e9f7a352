"""``part ablate`` on real-format signals (the 24 real FingerMovements trials of tests/fixtures, given by path):
cross-validation folds over held-out groups, paired PART - scratch differences, transductive pretraining.

The folds, the paired differences and the transductive protocol replace ``experiments/signals_compare.py``'s
for any ``signal_npz`` set (it knew two named sets)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

import part
from part.ablation import plan_cells
from part.ablation.folds import fold_data, parse_folds, parse_pretrain_on, write_pretrain_data
from part.ablation.paired import PairedSettings, format_paired, paired_differences, parse_paired
from part.ablation.plan import Cell, FinetuneRun
from part.ablation.settings import load_ablation_config
from part.config import load_config
from part.data.signal_npz import channel_stats, read_signal_npz

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "fingermovements_small"


@pytest.fixture(scope="module")
def grouped(tmp_path_factory) -> Path:
    """The fixture's folder with a ``group`` array in ``train.npz``: four recordings r0..r3 of 4 trials each
    (both classes in each), and its ``test.npz`` as it is."""
    folder = tmp_path_factory.mktemp("signals")
    with np.load(FIXTURE / "train.npz") as f:
        arrays = {k: f[k] for k in f.files}
    np.savez(folder / "train.npz", group=np.array([f"r{i}" for i in (np.arange(16) // 2) % 4]), **arrays)
    (folder / "test.npz").write_bytes((FIXTURE / "test.npz").read_bytes())
    return folder


def signals_ablation(root, **top) -> dict:
    """PART vs scratch on 1D signals at smoke size: 2-step runs of a one-block 1D ViT."""
    cfg = {
        "name": "signals",
        "pretrain": {
            "model": {"arch": "vit1d_custom", "embed_dim": 16, "depth": 1, "num_heads": 2, "img_size": 50,
                      "patch_size": 5, "in_chans": 28},
            "objective": {"name": "part", "head": "cross_attention", "num_pairs": 16, "num_patches": 10},
            "data": {"kind": "signal_npz", "root": str(root), "options": {"normalize": "dataset"}},
            "optim": {"lr": 1e-3, "warmup_steps": 1},
            "train": {"max_steps": 2, "batch_size": 4, "log_every": 1, "ckpt_every": 100, "device": "cpu"},
        },
        "grid": {"objectives": ["part", "supervised"], "seeds": [0, 1]},
        "pretext": {"max_samples": 8},
        "probe": {"epochs": 5},
        "finetune": {"num_classes": 2, "options": {"label_smoothing": 0.1}, "train": {"max_steps": 2}},
        "paired": {"baseline": "supervised", "metrics": ["finetune_top1", "probe_top1"]},
    }
    cfg.update(top)
    return cfg


# ---------------------------------------------------------------------------------------- the config


def test_folds_pretrain_on_and_paired_are_checked_at_load(grouped):
    assert parse_folds([["a", "b"], "c"]) == [["a", "b"], ["c"]]
    assert parse_pretrain_on(None) == "train"
    assert parse_paired("supervised") == PairedSettings("supervised")
    cases = [({"folds": []}, "folds must be a list"), ({"folds": [["a", "a"]]}, "folds[0] lists a group twice"),
             ({"folds": [["a"], ["a"]]}, "same fold twice"), ({"pretrain_on": "test"}, "pretrain_on must be one of"),
             ({"paired": {"baseline": "supervised", "metrics": ["top1"]}}, "paired.metrics: 'top1'"),
             ({"paired": {"row": "part"}}, "paired must be a row name")]
    for top, message in cases:
        with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
            load_ablation_config(signals_ablation(grouped, **top))
    images = signals_ablation(grouped, folds=[["r0"]])
    images["pretrain"]["data"] = {"kind": "npz", "root": str(grouped)}
    with pytest.raises(ValueError, match="folds needs pretrain.data.kind: signal_npz"):
        load_ablation_config(images)
    with pytest.raises(ValueError, match=r"paired.baseline: 'scratch' is not a row.*--set paired=null"):
        part.ablate(signals_ablation(grouped, paired="scratch"), dry_run=True, verbose=False)


def test_a_fold_holds_its_groups_out_of_the_train_file(grouped):
    d = fold_data({"kind": "signal_npz", "root": str(grouped), "options": {"normalize": "window"}}, ["r1", "r2"])
    assert d["root"] == str(grouped / "train.npz")
    assert d["options"] == {"normalize": "window", "split_by": "group", "test_groups": ["r1", "r2"]}
    cells = plan_cells(load_ablation_config(signals_ablation(grouped, folds=[["r0"], ["r1", "r2"]])))
    assert [c.name for c in cells] == ["part-cross_attention-p16-k0-s0", "supervised-k0-s0",
                                      "part-cross_attention-p16-k1-s0", "supervised-k1-s0",
                                      "part-cross_attention-p16-k0-s1", "supervised-k0-s1",
                                      "part-cross_attention-p16-k1-s1", "supervised-k1-s1"]
    k1 = cells[2]
    assert k1.fold == 1 and k1.pretrain.data.options["test_groups"] == ["r1", "r2"]
    assert k1.finetune.data.root == str(grouped / "train.npz")
    assert k1.finetune.data.options["test_groups"] == ["r1", "r2"]
    # without folds nothing changes: the names and configs of a plain grid
    plain = plan_cells(load_ablation_config(signals_ablation(grouped)))
    assert [c.name for c in plain] == ["part-cross_attention-p16-s0", "supervised-s0", "part-cross_attention-p16-s1",
                                       "supervised-s1"]
    assert plain[0].fold is None and plain[0].pretrain.data.root == str(grouped)


# ---------------------------------------------------------------------------------------- paired


def _cell(label, seed, fold, values, pretrain=True, fraction=None):
    cfg = object() if pretrain else None
    runs = [FinetuneRun(f"finetune-s{s}" if fraction else "finetune", fraction, s, None) for s in values]
    return Cell(f"{label}-k{fold}-s{seed}", label, label, None, None, seed, cfg, runs, fold=fold), \
        {r.key: {"metrics": {"finetune_top1": v}} for r, v in zip(runs, values.values())}


def test_paired_differences_pair_runs_by_fold_and_seed(tmp_path):
    # PART seeds 0, 1 on folds 0, 1; scratch (no pretraining) likewise: its fine-tune seed is the cell's
    table = {("part", 0, 0): 0.9, ("part", 1, 0): 0.7, ("part", 0, 1): 0.6, ("part", 1, 1): 0.8,
             ("supervised", 0, 0): 0.8, ("supervised", 1, 0): 0.7, ("supervised", 0, 1): 0.5, ("supervised", 1, 1): 0.5}
    cells = []
    for (label, seed, fold), v in table.items():
        cell, stages = _cell(label, seed, fold, {seed: v}, pretrain=label == "part")
        (tmp_path / "cells" / cell.name).mkdir(parents=True)
        (tmp_path / "cells" / cell.name / "stages.json").write_text(json.dumps(stages))
        cells.append(cell)
    res = paired_differences(cells, PairedSettings("supervised"), tmp_path)
    assert len(res) == 1
    r = res[0]
    d = [0.1, 0.0, 0.1, 0.3]
    assert r["n"] == 4 and r["diff"] == pytest.approx(0.125)
    assert r["row_mean"] == pytest.approx(0.75) and r["baseline_mean"] == pytest.approx(0.625)
    se = np.std(d, ddof=1) / 2
    assert r["se"] == pytest.approx(se) and r["half"] == pytest.approx(3.182 * se)  # t(3) = 3.182
    assert r["folds"] == {0: pytest.approx(0.05), 1: pytest.approx(0.2)}
    assert "| part | supervised | finetune_top1 | 4 | 75.00 | 62.50 | +12.50 ±" in format_paired(res)
    # a stage whose spec is not today's is left out
    res = paired_differences(cells, PairedSettings("supervised"), tmp_path,
                             valid=lambda c, stage, spec: c.seed == 0)
    assert res[0]["n"] == 2 and res[0]["diff"] == pytest.approx(0.1)


def test_one_pair_has_no_interval(tmp_path):
    cells = []
    for label in ("part", "supervised"):
        cell, stages = _cell(label, 0, None, {0: 0.5 if label == "part" else 0.4}, pretrain=label == "part")
        (tmp_path / "cells" / cell.name).mkdir(parents=True)
        (tmp_path / "cells" / cell.name / "stages.json").write_text(json.dumps(stages))
        cells.append(cell)
    (r,) = paired_differences(cells, PairedSettings("supervised"), tmp_path)
    assert r["n"] == 1 and r["diff"] == pytest.approx(0.1) and math.isnan(r["half"]) and r["folds"] == {}


# ---------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_folds_and_paired_end_to_end_on_real_trials(grouped, tmp_path):
    res = part.ablate(signals_ablation(grouped, folds=[["r0"], ["r1", "r2"]]), out=tmp_path / "abl", verbose=False)
    assert len(res.rows) == 8 and all(r["status"] == "ok" for r in res.rows)
    for fold, held in ((0, 4), (1, 8)):  # the fold's held-out recordings are its test split; test.npz is unread
        data = json.loads((tmp_path / "abl" / "cells" / f"part-cross_attention-p16-k{fold}-s0" / "finetune"
                           / "data.json").read_text())
        assert data["splits"]["test"]["num_samples"] == held and data["splits"]["train"]["num_samples"] == 16 - held
        assert data["splits"]["test"]["file"] == str(grouped / "train.npz")
    (ft,) = res.paired  # the baseline (scratch) has no probe: probe_top1 pairs with nothing
    assert (ft["metric"], ft["n"]) == ("finetune_top1", 4)
    assert set(ft["folds"]) == {0, 1} and "finetune_top1" in (tmp_path / "abl" / "paired.md").read_text()
    groups = {g["objective"]: g for g in res.groups}  # 2 folds x 2 seeds pooled in one row each
    assert groups["part"]["seeds"] == 4 and groups["supervised"]["seeds"] == 4 and len(res.groups) == 2


@pytest.mark.slow
def test_transductive_pretraining_sees_test_signals_never_their_labels(grouped, tmp_path):
    """pretrain_on: train+test on the published split: PART pretrains on train.npz and test.npz signals
    (written label-free), normalised with the labelled train split's statistics; probe and fine-tunes read the
    labelled splits."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.npz").write_bytes((FIXTURE / "train.npz").read_bytes())
    with np.load(FIXTURE / "test.npz") as f:  # a test file whose labels cannot be read
        arrays = {k: f[k] for k in f.files if k != "y"}
    np.savez(src / "test.npz", **arrays)
    import zipfile

    with zipfile.ZipFile(src / "test.npz", "a") as zf:
        zf.writestr("y.npy", b"\x93NUMPY\x01\x00garbage")
    cfg = signals_ablation(src, pretrain_on="train+test", grid={"objectives": ["part"], "seeds": [0]},
                           finetune=False, paired=None)
    res = part.ablate(cfg, out=tmp_path / "abl", verbose=False, overrides=["probe=false"])  # the probe reads y
    assert res.rows[0]["status"] == "ok" and res.rows[0]["pretext_loss"] is not None
    folder = tmp_path / "abl" / "pretrain_data" / "all"
    assert res.cells[0].pretrain_data.folder == str(folder)
    tr, te = read_signal_npz(FIXTURE / "train.npz"), read_signal_npz(FIXTURE / "test.npz")
    pre = read_signal_npz(folder / "train.npz")
    assert np.array_equal(pre.x, np.concatenate([tr.x, te.x])) and pre.y is None and pre.class_names is None
    assert np.array_equal(read_signal_npz(folder / "test.npz").x, te.x)
    before = (folder / "train.npz").stat().st_mtime_ns
    write_pretrain_data(res.cells[0].pretrain_data)  # unchanged: not rewritten (a resumed run reads the same bytes)
    assert (folder / "train.npz").stat().st_mtime_ns == before
    run = tmp_path / "abl" / "cells" / "part-cross_attention-p16-s0" / "pretrain"
    data = json.loads((run / "data.json").read_text())
    assert data["splits"]["train"]["num_samples"] == 24 and "class_counts" not in data["splits"]["train"]
    mean, std = channel_stats(tr.x)
    rcfg = load_config(run / "config.yaml")
    assert np.allclose(rcfg.data.mean, mean) and np.allclose(rcfg.data.std, std)


@pytest.mark.slow
def test_transductive_folds_probe_and_fine_tune_the_labelled_fold(grouped, tmp_path):
    cfg = signals_ablation(grouped, folds=[["r1"]], pretrain_on="train+test", grid={"objectives": ["part",
                           "supervised"], "seeds": [0]})
    res = part.ablate(cfg, out=tmp_path / "abl", verbose=False)
    assert all(r["status"] == "ok" for r in res.rows) and res.rows[0]["probe_top1"] is not None
    cell = tmp_path / "abl" / "cells" / "part-cross_attention-p16-k0-s0"
    pre = json.loads((cell / "pretrain" / "data.json").read_text())
    assert pre["splits"]["train"]["num_samples"] == 16  # 12 training trials + the 4 held-out ones, label-free
    held = read_signal_npz(tmp_path / "abl" / "pretrain_data" / "fold0" / "test.npz")
    assert held.y is None and list(np.asarray(held.group).astype(str)) == ["r1"] * 4
    probe = json.loads((cell / "probe.json").read_text())
    assert probe["data"]["test"]["num_samples"] == 4 and probe["data"]["train"]["num_samples"] == 12
    ft = json.loads((cell / "finetune" / "data.json").read_text())
    assert ft["splits"]["train"]["num_samples"] == 12 and ft["splits"]["test"]["num_samples"] == 4
    assert res.paired and res.paired[0]["n"] == 1
