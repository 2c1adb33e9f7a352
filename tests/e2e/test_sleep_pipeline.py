"""1D PART end to end on tiny SYNTHETIC sleep data (paper §5.2, App. 8.1): ``part.pretrain`` with the off-grid
window sampler and the 1D ViT, then ``part.finetune`` initialised from that run on the low-label split,
evaluated on held-out subjects (results.json with Cohen's kappa); the three splits never share a subject."""

import json

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import part
from part.config import load_config
from part.engine.builders import build_dataset

pytestmark = pytest.mark.slow  # end to end: several runs of the CLI or a benchmark script

DATA = {"kind": "sleep_synthetic", "options": {
    "n_subjects": 7, "epochs_per_subject": 6, "channels": 2, "fs": 50, "window_s": 4,
    "n_finetune": 3, "n_test": 2, "split_seed": 0,
}}
MODEL = {"arch": "vit1d_custom", "embed_dim": 16, "depth": 1, "num_heads": 2, "img_size": 200, "patch_size": 10,
         "in_chans": 2}
TRAIN = {"max_steps": 3, "batch_size": 6, "log_every": 1, "ckpt_every": 3, "keep_last": 1, "device": "cpu",
         "amp": "none"}


def pretrain_cfg() -> dict:
    return {"model": MODEL, "objective": {"name": "part", "num_patches": 8, "num_pairs": 20},
            "data": {**DATA, "split": "pretrain"}, "optim": {"lr": 1e-3, "warmup_steps": 1}, "train": TRAIN}


def finetune_cfg() -> dict:
    return {"model": MODEL,
            "objective": {"name": "supervised", "options": {"num_classes": 5, "pos_embed": True}},
            "data": {**DATA, "split": "finetune"}, "optim": {"lr": 1e-3, "warmup_steps": 1}, "train": TRAIN}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("sleep-runs")
    pre = part.pretrain(pretrain_cfg(), out=root / "pretrain", progress=False)
    ft = part.finetune(finetune_cfg(), init=pre.run_dir, out=root / "finetune", progress=False)
    return pre, ft


def test_pretrain_run_logs_the_dt_error(runs):
    pre, _ = runs
    assert pre.step == 3
    recs = [json.loads(x) for x in (pre.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recs] == [1, 2, 3]
    assert all(np.isfinite(r["loss"]) and "err_t" in r for r in recs)  # the 1D target dt
    weights = load_file(str(pre.run_dir / "weights.safetensors"))
    assert weights["backbone.patch_embed.proj.weight"].shape == (16, 2, 10)  # linear over C x L
    assert "backbone.pos_embed" not in weights  # no position embeddings in pretraining


def test_finetune_from_pretrain_reports_kappa(runs):
    pre, ft = runs
    results = json.loads((ft.run_dir / "results.json").read_text())
    test = build_dataset(load_config(ft.run_dir / "config.yaml"), train=False, split="test")
    assert results["num_samples"] == len(test) == 2 * 6
    assert -1.0 <= results["kappa"] <= 1.0 and 0.0 <= results["top1"] <= 1.0
    assert results["class_names"] == ["W", "N1", "N2", "N3", "REM"]
    cm = np.array(results["confusion_matrix"])
    assert cm.shape == (5, 5) and cm.sum() == len(test)
    np.testing.assert_array_equal(cm.sum(axis=1), test.stage_counts())  # rows = true stages of the test split
    assert len(results["per_class_f1"]) == 5
    assert str(pre.run_dir) in results["init"]
    # the encoder came from the pretraining run: the fine-tuned patch embedding started there
    init = json.loads((ft.run_dir / "init.json").read_text())
    assert "patch_embed.proj.weight" in init["loaded"] and "pos_embed" in init["fresh"]
    final = load_file(str(ft.run_dir / "weights.safetensors"))
    assert final["backbone.pos_embed"].shape == (1, 1 + 20, 16)  # CLS + T / L grid windows


def test_runs_never_share_a_subject(runs):
    pre, ft = runs
    cfg_pre = load_config(pre.run_dir / "config.yaml")
    cfg_ft = load_config(ft.run_dir / "config.yaml")
    pretrain = build_dataset(cfg_pre, split="pretrain")
    finetune = build_dataset(cfg_ft, split="finetune")
    test_pre = build_dataset(cfg_pre, split="test")
    test_ft = build_dataset(cfg_ft, split="test")
    assert test_pre.subjects == test_ft.subjects and len(test_ft.subjects) == 2
    assert not set(test_ft.subjects) & (set(pretrain.subjects) | set(finetune.subjects))
    assert len(finetune.subjects) == 3 and set(finetune.subjects) <= set(pretrain.subjects)
    assert len(pretrain) + len(test_pre) == 7 * 6
    # the saved run config keeps the split options, so a rebuilt run sees the same split
    saved = yaml.safe_load((ft.run_dir / "config.yaml").read_text())
    assert saved["data"]["split"] == "finetune" and saved["data"]["options"]["split_seed"] == 0


def test_finetune_from_scratch_differs_from_pretrained_init(runs, tmp_path):
    pre, ft = runs
    scratch = part.finetune(finetune_cfg(), init="none", out=tmp_path / "scratch", progress=False)
    res = json.loads((scratch.run_dir / "results.json").read_text())
    assert "kappa" in res and res["num_samples"] == 12
    a = load_file(str(scratch.run_dir / "weights.safetensors"))["backbone.patch_embed.proj.weight"]
    b = load_file(str(ft.run_dir / "weights.safetensors"))["backbone.patch_embed.proj.weight"]
    assert not torch.allclose(a, b)


def test_runs_record_their_subjects(runs):
    pre, ft = runs
    pre_rec = json.loads((pre.run_dir / "data.json").read_text())["splits"]["pretrain"]
    ft_rec = json.loads((ft.run_dir / "data.json").read_text())["splits"]
    held = set(pre_rec["test_subjects"])
    assert len(held) == 2 and not held & set(pre_rec["subjects"]) and not held & set(ft_rec["finetune"]["subjects"])
    assert set(ft_rec["test"]["subjects"]) == held and len(ft_rec["finetune"]["subjects"]) == 3
    assert sum(ft_rec["test"]["class_counts"].values()) == ft_rec["test"]["num_samples"]
