"""``part export`` (backbone with timm names + architecture JSON) and ``part evaluate``."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from part.engine import build_dataset, load_run
from part.evaluation import evaluate, export_run, finetune, load_backbone
from part.evaluation.evaluate import evaluate_pretext

from .conftest import finetune_config
from .test_finetune import cli


@pytest.fixture(scope="module")
def finetune_run(tmp_path_factory, npz_root, pretrain_run):
    out = tmp_path_factory.mktemp("ft") / "ft"
    return finetune(finetune_config(npz_root), init=pretrain_run, out=out, progress=False).run_dir


def _images(n=5, seed=0):
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("which", ["pretrain", "finetune"])
def test_export_round_trip(which, pretrain_run, finetune_run, tmp_path):
    run = pretrain_run if which == "pretrain" else finetune_run
    weights, side = export_run(run, tmp_path / "out" / "backbone.safetensors")
    assert weights == tmp_path / "out" / "backbone.safetensors" and side == tmp_path / "out" / "backbone.json"
    assert sorted(p.name for p in weights.parent.iterdir()) == ["backbone.json", "backbone.safetensors"]
    objective, _ = load_run(run)
    state = load_file(str(weights))
    assert state.keys() == objective.backbone.state_dict().keys()  # timm names, no "backbone." prefix
    meta = json.loads(side.read_text())
    args = meta["model_args"]
    assert args["pos_embed"] == ("none" if which == "pretrain" else "learn")
    assert (args["embed_dim"], args["depth"], args["class_token"], args["fc_norm"]) == (16, 1, True, False)
    assert meta["pretrained_cfg"]["input_size"] == [1, 8, 8] and len(meta["pretrained_cfg"]["mean"]) == 1
    # our VisionTransformer reloads the export and gives the same features (and logits when fine-tuned)
    loaded, _ = load_backbone(weights)
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_features(x), objective.backbone.forward_features(x))
    if which == "finetune":
        assert state["head.weight"].shape == (4, 16) and "pos_embed" in state
        with torch.no_grad():
            torch.testing.assert_close(objective.backbone(x), objective.logits(x))


@pytest.mark.parametrize("which", ["pretrain", "finetune"])
def test_export_loads_into_timm(which, pretrain_run, finetune_run, tmp_path):
    timm_vit = pytest.importorskip("timm.models.vision_transformer")
    run = pretrain_run if which == "pretrain" else finetune_run
    weights, side = export_run(run, tmp_path / "b.safetensors")
    args = json.loads(side.read_text())["model_args"]
    net = timm_vit.VisionTransformer(**args).eval()
    net.load_state_dict(load_file(str(weights)), strict=True)
    objective, _ = load_run(run)
    x = _images()
    with torch.no_grad():
        ours = objective.backbone.forward_features(x)
        torch.testing.assert_close(net.forward_features(x), ours, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(net(x), objective.backbone(x), atol=1e-5, rtol=1e-5)


def test_export_cli_and_errors(pretrain_run, tmp_path):
    msg = cli(["export", "--run", str(pretrain_run), "--out", str(tmp_path / "e.safetensors")])
    assert msg == f"wrote backbone to {tmp_path / 'e.safetensors'} (architecture in {tmp_path / 'e.json'})"
    with pytest.raises(ValueError, match="--out must name a .safetensors file, got .*e.pt"):
        cli(["export", "--run", str(pretrain_run), "--out", str(tmp_path / "e.pt")])
    with pytest.raises(ValueError, match="run folder not found: .*nope"):
        export_run(tmp_path / "nope", tmp_path / "x.safetensors")


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
    with pytest.raises(ValueError, match="is not a part run folder \\(no config.yaml\\)"):
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
