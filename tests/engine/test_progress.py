"""Progress bars: on for a terminal or PART_PROGRESS=1, off in logs and on DDP ranks other than 0; the probe's
feature extraction and the evaluation loops show one."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

import part
from part.engine.progress import progress, progress_enabled
from part.evaluation.features import extract_features


def _data(n=10):
    return TensorDataset(torch.rand(n, 1, 8, 8), torch.arange(n) % 2)


def test_switch(monkeypatch):
    monkeypatch.delenv("PART_PROGRESS", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    assert progress_enabled() is False  # pytest's stderr is not a terminal
    items = [1, 2]
    assert progress(items, "x") is items
    monkeypatch.setenv("PART_PROGRESS", "1")
    assert progress_enabled() is True and list(progress(items, "x")) == items
    assert progress(items, "x", enabled=False) is items
    monkeypatch.setenv("RANK", "1")
    assert progress_enabled() is False
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("PART_PROGRESS", "0")
    assert progress_enabled() is False


def test_feature_extraction_and_evaluation_show_bars(monkeypatch, capsys):
    torch.manual_seed(0)
    bb = part.vit_custom(16, 1, 2, img_size=8, patch_size=4, in_chans=1)
    monkeypatch.setenv("PART_PROGRESS", "1")
    monkeypatch.delenv("RANK", raising=False)
    feats, labels = extract_features(bb, _data(), batch_size=4)
    assert feats.shape == (10, 16) and labels.tolist() == [i % 2 for i in range(10)]
    err = capsys.readouterr().err
    assert "features" in err and "/3 " in err  # 10 items in batches of 4: a bar of 3
    from part.evaluation.heldout import predict
    from part.objectives.supervised import SupervisedObjective

    obj = SupervisedObjective(part.vit_custom(16, 1, 2, img_size=8, patch_size=4, in_chans=1), num_classes=2)
    predict(obj, _data(), batch_size=5)
    assert "evaluate" in capsys.readouterr().err
    monkeypatch.setenv("PART_PROGRESS", "0")
    extract_features(bb, _data(), batch_size=4)
    assert capsys.readouterr().err == ""
