"""``part evaluate``: test-split metrics of fine-tuned runs, pretext errors of pretraining runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from part.engine import build_dataset, load_run
from part.evaluation import evaluate, finetune
from part.evaluation.heldout import evaluate_pretext

from .conftest import finetune_config
from .test_finetune import cli


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory, npz_root, pretrain_run):
    out = tmp_path_factory.mktemp("ft") / "ft"
    return finetune(finetune_config(npz_root), init=pretrain_run, out=out, progress=False).run_dir


def test_evaluate_finetune_run(finetune_run, tmp_path, capsys):
    res = evaluate(finetune_run, out=tmp_path / "r.json")
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["task"] == "classification" and saved["split"] == "test"
    fin = json.loads((finetune_run / "results.json").read_text())  # written by finetune() after training
    for key in ("top1", "kappa", "macro_f1", "confusion_matrix", "per_class_f1"):
        assert saved[key] == fin[key], key
    assert "top5" not in saved and "top5" not in fin  # 4 classes: top-5 would be 1.0 by construction
    assert res["path"] == str(tmp_path / "r.json") and "top1" in capsys.readouterr().out
    # overrides and limits
    res = evaluate(finetune_run, out=tmp_path / "r2.json", max_samples=10, overrides=["train.device=cpu"])
    assert res["num_samples"] == 10 and np.array(res["confusion_matrix"]).sum() == 10


def test_evaluate_pretext_errors_of_a_part_run(pretrain_run, tmp_path):
    a = evaluate(pretrain_run, out=tmp_path / "a.json", verbose=False)
    b = evaluate(pretrain_run, out=tmp_path / "b.json", verbose=False)
    assert a["task"] == "pretext" and a["num_samples"] == 24
    for key in ("err_x", "err_y", "err_euclid", "mse", "loss"):
        assert a[key] == b[key], key  # fixed sampling seed
    # mse = mean of the two component MSEs (= the loss); the Euclidean error lies between sqrt bounds
    assert a["mse"] == pytest.approx((a["err_x"] + a["err_y"]) / 2)
    assert a["loss"] == pytest.approx(a["mse"], rel=1e-5)
    assert a["err_euclid"] <= np.sqrt(a["err_x"] + a["err_y"]) + 1e-9  # Jensen
    # equals one pass over the whole split as a single batch
    objective, cfg = load_run(pretrain_run)
    data = build_dataset(cfg, train=False, split="test")
    torch.manual_seed(0)
    one = evaluate_pretext(objective, data, batch_size=24, seed=0)
    gen = torch.Generator().manual_seed(0)
    x = torch.stack([data[i][0] for i in range(24)])
    with torch.no_grad():
        out = objective.eval()(x, generator=gen)
    from part.evaluation.metrics import translation_errors

    ref = translation_errors(out.pred, out.target)
    for key in ("err_x", "err_y", "err_euclid"):
        assert one[key] == pytest.approx(ref[key], rel=1e-9)


def test_evaluate_cli(pretrain_run, tmp_path):
    msg = cli(["evaluate", "--run", str(pretrain_run), "--out", str(tmp_path / "e.json"), "--max-samples", "8"])
    assert msg == f"wrote pretext results to {tmp_path / 'e.json'}"
    assert json.loads((tmp_path / "e.json").read_text())["num_samples"] == 8
    with pytest.raises(ValueError, match=r"not a part run folder.*config\.yaml"):
        cli(["evaluate", "--run", str(tmp_path)])


def test_evaluate_pretext_of_mae_reports_its_own_metrics(tmp_path, npz_data):
    """MAE's pixel pred/target must not be read as relative translations (k = patch pixels)."""
    from part.api import pretrain
    from part.evaluation import evaluate

    from ..engine.conftest import tiny_config

    raw = tiny_config(npz_data, max_steps=1)
    raw["objective"] = {"name": "mae"}
    run = pretrain(raw, out=tmp_path / "mae", progress=False).run_dir
    res = evaluate(run, split="train", verbose=False)
    assert res["task"] == "pretext" and "loss" in res and "err_x" not in res


def test_evaluate_finetune_run_at_another_image_size(finetune_run, tmp_path):
    """Evaluating at 16x16 a model fine-tuned at 8x8: its 2x2 position table is resampled to 4x4."""
    from part.config import apply_overrides, config_from_dict
    from part.evaluation.heldout import predict

    res = evaluate(finetune_run, out=tmp_path / "r16.json", overrides=["data.image_size=16"], verbose=False)
    objective, cfg = load_run(finetune_run)
    data = build_dataset(config_from_dict(apply_overrides(cfg.to_dict(), ["data.image_size=16"])), train=False,
                         split="test")
    x = torch.stack([data[i][0] for i in range(len(data))])
    assert x.shape[-2:] == (16, 16)
    bb = objective.backbone
    bb.resize_grid(16)  # the table resampled once, as a parameter, instead of on the fly
    with torch.no_grad():
        ref = bb(x)
    objective2, _ = load_run(finetune_run)
    logits, _ = predict(objective2, data)
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=1e-5)
    labels = torch.tensor([int(data[i][1]) for i in range(len(data))])
    assert res["num_samples"] == 24
    assert res["top1"] == pytest.approx(float((ref.argmax(1) == labels).float().mean()))
