"""Linear probe, weighted kNN and frozen-feature extraction."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import part
from part.engine import export_backbone, load_run
from part.evaluation import extract_features, knn_scores, load_backbone, probe
from part.evaluation.knn import knn_predict
from part.evaluation.probing import linear_probe, standardize, train_logistic_regression

from .conftest import NUM_CLASSES, write_npz_splits
from .test_finetune import cli


# --- kNN ---------------------------------------------------------------------------------------------
def test_knn_weights_hand_computed():
    # unit vectors at angles 0, 90, 45, 180 degrees; labels 0, 1, 1, 2; the query is at 0 degrees
    r = 1 / math.sqrt(2)
    train = torch.tensor([[2.0, 0.0], [0.0, 3.0], [r, r], [-1.0, 0.0]])  # norms differ: cosine ignores them
    labels = torch.tensor([0, 1, 1, 2])
    query = torch.tensor([[5.0, 0.0]])
    # k=3 neighbours: cos = 1 (class 0), r (class 1), 0 (class 1); weights exp(cos / T)
    t = 0.5
    scores = knn_scores(train, labels, query, num_classes=3, k=3, temperature=t)
    expect = torch.tensor([[math.exp(1 / t), math.exp(r / t) + math.exp(0.0), 0.0]])
    torch.testing.assert_close(scores, expect)
    assert knn_predict(train, labels, query, 3, k=3, temperature=t).item() == 0
    # with a hot temperature the two class-1 votes outweigh the single closer class-0 vote
    assert knn_predict(train, labels, query, 3, k=3, temperature=10.0).item() == 1
    # k larger than the training set is clipped (all four vote; class 2 gets exp(-1 / T))
    scores = knn_scores(train, labels, query, num_classes=3, k=50, temperature=t)
    assert scores[0, 2].item() == pytest.approx(math.exp(-1 / t))


def test_knn_chunking_matches_one_block():
    g = torch.Generator().manual_seed(0)
    tr, te = torch.randn(50, 8, generator=g), torch.randn(23, 8, generator=g)
    y = torch.randint(0, 5, (50,), generator=g)
    torch.testing.assert_close(knn_scores(tr, y, te, 5, k=7, chunk_size=4), knn_scores(tr, y, te, 5, k=7))


def _blobs(n_per, d=16, k=NUM_CLASSES, sep=4.0, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(k, d, generator=g) * sep
    y = torch.arange(k).repeat_interleave(n_per)
    return centres[y] + torch.randn(len(y), d, generator=g), y


def test_knn_on_separable_features():
    tr_x, tr_y = _blobs(30, seed=0)
    te_x, te_y = _blobs(10, seed=0)  # same centres (seeded), fresh noise
    te_x = te_x + torch.randn(te_x.shape, generator=torch.Generator().manual_seed(9)) * 0.5
    acc = (knn_predict(tr_x, tr_y, te_x, NUM_CLASSES) == te_y).float().mean()
    assert acc >= 0.95


def test_knn_errors():
    with pytest.raises(ValueError, match="width.*4.*3"):
        knn_scores(torch.randn(5, 4), torch.zeros(5, dtype=torch.long), torch.randn(2, 3), 2)
    with pytest.raises(ValueError, match="train_labels.*label.*5"):
        knn_scores(torch.randn(2, 4), torch.tensor([0, 5]), torch.randn(2, 4), 2)
    with pytest.raises(ValueError, match="k.*positive"):
        knn_scores(torch.randn(2, 4), torch.tensor([0, 1]), torch.randn(2, 4), 2, k=0)


# --- linear probe ------------------------------------------------------------------------------------
def test_standardize_uses_train_statistics():
    g = torch.Generator().manual_seed(0)
    tr, te = torch.randn(100, 3, generator=g) * 5 + 2, torch.randn(10, 3, generator=g)
    tr2, te2 = standardize(tr, te)
    torch.testing.assert_close(tr2.mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(tr2.std(0, unbiased=False), torch.ones(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(te2, (te - tr.mean(0)) / tr.std(0, unbiased=False))


@pytest.mark.parametrize("optimizer", ["lbfgs", "adamw"])
def test_linear_probe_on_separable_features(optimizer):
    # linearly separable but not clustered: the class is the sign pattern of two coordinates
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 6, generator=g)
    y = (x[:, 0] > 0).long() * 2 + (x[:, 1] > 0).long()
    fit = dict(optimizer=optimizer, epochs=60, lr=5e-2 if optimizer == "adamw" else None, batch_size=32)
    res = linear_probe(x[:300], y[:300], x[300:], y[300:], NUM_CLASSES, **fit)
    assert res["top1"] >= 0.95 and res["num_samples"] == 100
    again = linear_probe(x[:300], y[:300], x[300:], y[300:], NUM_CLASSES, **fit)
    assert again["confusion_matrix"] == res["confusion_matrix"]  # seeded, deterministic


def test_logistic_regression_errors():
    with pytest.raises(ValueError, match="optimizer.*'lbfgs'.*'adamw'"):
        train_logistic_regression(torch.randn(4, 2), torch.tensor([0, 1, 0, 1]), 2, optimizer="sgd")
    with pytest.raises(ValueError, match="label.*3.*sample.*2"):
        train_logistic_regression(torch.randn(4, 2), torch.tensor([0, 1, 3, 1]), 2)


# --- frozen features ---------------------------------------------------------------------------------
def test_extract_features_is_frozen_eval_and_pools():
    torch.manual_seed(0)
    bb = part.vit_custom(16, 1, 2, img_size=8, patch_size=4, in_chans=1, drop_path_rate=0.5).train()
    x = torch.randn(10, 1, 8, 8)
    data = TensorDataset(x, torch.arange(10) % 3)
    feats, labels = extract_features(bb, data, pool="avg", batch_size=4)
    assert bb.training  # mode restored
    bb.eval()
    with torch.no_grad():
        tokens = bb.forward_features(x)
    torch.testing.assert_close(feats, tokens[:, 1:].mean(1))
    assert torch.equal(labels, torch.arange(10) % 3) and not feats.requires_grad
    cls, _ = extract_features(bb, data, pool="token", batch_size=3)
    torch.testing.assert_close(cls, tokens[:, 0])
    flat, _ = extract_features(bb, data, pool="flat", batch_size=4)  # (10, 4 patches * 16): patch 0's features first
    assert flat.shape == (10, 4 * 16)
    torch.testing.assert_close(flat.view(10, 4, 16), tokens[:, 1:])
    with pytest.raises(ValueError, match="pool.*'avg'.*'token'.*'flat'.*'max'"):
        extract_features(bb, data, pool="max")


# --- the probe command -------------------------------------------------------------------------------
def test_probe_of_a_pretrain_run(pretrain_run, tmp_path, capsys):
    res = probe(pretrain_run, out=tmp_path / "p.json", k=5)
    saved = json.loads((tmp_path / "p.json").read_text())
    assert saved["num_train"] == 48 and saved["num_test"] == 24 and saved["feature_dim"] == 16
    assert saved["knn"]["k"] == 5 and saved["knn"]["temperature"] == 0.07 and saved["pool"] == "avg"
    for rep in (saved["linear"], saved["knn"]):
        assert np.array(rep["confusion_matrix"]).sum() == 24 and 0 <= rep["top1"] <= 1
    assert res.linear["top1"] == saved["linear"]["top1"]
    # brightness classes are visible in every patch: even a 2-step encoder's features separate them linearly;
    # cosine kNN (which ignores feature norms) is above chance (0.25)
    assert res.linear["top1"] >= 0.75 and res.knn["top1"] >= 0.4, (res.linear["top1"], res.knn["top1"])
    out = capsys.readouterr().out
    assert "linear probe" in out and "kNN (k=5)" in out
    # the same features and results from the run's weights file (architecture from the run's config.yaml),
    # and from its export folder (architecture from config.json)
    for src in (pretrain_run / "weights.safetensors", pretrain_run / "export"):
        other = probe(src, config=pretrain_run / "config.yaml", out=tmp_path / "q.json", k=5, verbose=False)
        assert other.knn["confusion_matrix"] == res.knn["confusion_matrix"]
        assert other.linear["confusion_matrix"] == res.linear["confusion_matrix"]


def test_probe_token_pool_and_limits_via_cli(pretrain_run, tmp_path):
    msg = cli(["probe", "--run", str(pretrain_run), "--pool", "token", "--max-train", "20", "--max-test", "8",
               "--out", str(tmp_path)])
    assert msg == f"wrote probe results to {tmp_path / 'probe.json'}"
    saved = json.loads((tmp_path / "probe.json").read_text())
    assert (saved["pool"], saved["num_train"], saved["num_test"]) == ("token", 20, 8)


def test_probe_label_outside_range_is_named(pretrain_run, tmp_path):
    root = write_npz_splits(tmp_path / "bad", bad_label=9)
    with pytest.raises(ValueError, match="label.*9.*sample.*5"):
        probe(pretrain_run, overrides=[f"data.root={root}"], num_classes=4, out=tmp_path / "p.json")


def test_probe_errors(tmp_path, pretrain_run):
    with pytest.raises(ValueError, match="source path not found: .*missing"):
        probe(tmp_path / "missing")
    torch.manual_seed(0)
    bare = tmp_path / "bare" / "w.safetensors"
    bare.parent.mkdir()
    from safetensors.torch import save_file

    save_file(part.vit_custom(16, 1, 2, img_size=8, patch_size=4, in_chans=1).state_dict(), str(bare))
    with pytest.raises(ValueError, match="no architecture JSON beside it"):
        probe(bare)
    with pytest.raises(ValueError, match="train_data.*test_data"):
        probe(pretrain_run, train_data=TensorDataset(torch.zeros(2, 1, 8, 8), torch.zeros(2)))


def test_probe_of_any_objective_run(npz_root, tmp_path):
    from .conftest import pretrain_config

    cfg = pretrain_config(npz_root)
    cfg["objective"] = {"name": "mae", "options": {}}
    run = part.pretrain(cfg, out=tmp_path / "mae", progress=False).run_dir
    res = probe(run, k=5, verbose=False)
    assert res.info["feature_dim"] == 16 and res.path == run / "probe.json"


def test_probe_1d_backbone_with_datasets(tmp_path):
    """1D: an exported (random-init) 1D ViT, signals (C, T) whose class is a per-class offset."""
    from part.models.vit1d import vit1d_custom

    torch.manual_seed(0)
    bb = vit1d_custom(16, 1, 2, signal_len=40, patch_len=10, in_chans=2)
    export_backbone(bb, tmp_path / "exp")

    def signals(n, seed):
        g = torch.Generator().manual_seed(seed)
        y = torch.arange(n) % 3
        offset = torch.stack([y, -y], dim=1).float()[:, :, None]  # (n, 2, 1)
        return TensorDataset(offset + 0.3 * torch.randn(n, 2, 40, generator=g), y)

    res = probe(tmp_path / "exp" / "model.safetensors", train_data=signals(60, 0), test_data=signals(30, 1),
                num_classes=3, k=5, out=tmp_path / "p1d.json", device="cpu", verbose=False)
    assert res.info["feature_dim"] == 16 and res.info["num_test"] == 30
    assert res.linear["top1"] >= 0.9, res.linear["top1"]
    loaded, _ = load_backbone(tmp_path / "exp" / "model.safetensors")
    x = signals(4, 2).tensors[0]
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_features(x), bb.eval().forward_features(x))
