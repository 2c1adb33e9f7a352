"""Fine-tuning (paper §4 "Supervised finetuning"): backbone init from a pretrain run, fresh position
embeddings and head, training through the engine, test-split results, the DeiT recipe options, errors."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import part
from part.engine import build_objective, load_run
from part.evaluation import finetune, load_backbone_weights
from part.evaluation.commands import register
from part.objectives.supervised import SupervisedObjective
from part.config import config_from_dict

from .conftest import NUM_CLASSES, finetune_config, pretrain_config, write_npz_splits


def cli(argv):
    """Parse with the evaluation subcommands and run the handler (part.cli.main wraps this)."""
    parser = argparse.ArgumentParser(prog="part")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def _supervised(cfg_dict):
    torch.manual_seed(0)
    return build_objective(config_from_dict(cfg_dict))


# --- loading the pretrained encoder ----------------------------------------------------------------
def test_init_loads_every_backbone_tensor_and_adds_fresh_pos_embed(pretrain_run, npz_root):
    src = load_file(str(pretrain_run / "weights.safetensors"))
    obj = _supervised(finetune_config(npz_root))
    head_before = obj.backbone.head.weight.detach().clone()
    pos_before = obj.backbone.pos_embed.detach().clone()
    report = load_backbone_weights(obj.backbone, pretrain_run)
    own = obj.backbone.state_dict()
    backbone_keys = sorted(k[len("backbone."):] for k in src if k.startswith("backbone."))
    assert report["loaded"] == backbone_keys and "patch_embed.proj.weight" in backbone_keys
    for k in backbone_keys:
        assert torch.equal(own[k], src["backbone." + k]), k
    # PART has no position embeddings: they stay random (and learnable); the classifier stays fresh
    assert "backbone.pos_embed" not in src and report["fresh"] == ["head.bias", "head.weight", "pos_embed"]
    assert torch.equal(obj.backbone.pos_embed, pos_before) and obj.backbone.pos_embed.requires_grad
    assert obj.backbone.pos_embed.std() > 0.01
    assert torch.equal(obj.backbone.head.weight, head_before)
    # the relative encoder is dropped
    assert report["dropped"] == sorted(k for k in src if not k.startswith("backbone.")) and report["dropped"]
    assert all(k.startswith("head.") for k in report["dropped"])


def test_sincos_pos_embed_init_starts_from_the_grid_table_and_stays_learnable(pretrain_run, npz_root, tmp_path):
    """pos_embed_init='sincos': the position embeddings the fine-tune adds start as the sin-cos table of the patch
    grid (MAE's), survive loading PART's encoder (which has none), and train; 'random' is the paper's start."""
    from part.models.pos_embed import sincos_table

    obj = _supervised(finetune_config(npz_root, pos_embed_init="sincos"))
    bb = obj.backbone
    load_backbone_weights(bb, pretrain_run)
    table = sincos_table(bb.embed_dim, bb.grid_size, bb.num_prefix_tokens)
    assert bb.pos_embed.shape == (1, 1 + bb.num_patches, bb.embed_dim) and bb.pos_embed.requires_grad
    torch.testing.assert_close(bb.pos_embed[0], table)
    rand = _supervised(finetune_config(npz_root)).backbone.pos_embed[0]
    assert (rand - table).abs().max() > 0.5  # the default start is not the table
    # through a fine-tune run: one small step moves them a little from the table, not back to a random start
    res = finetune(finetune_config(npz_root, steps=1, lr=1e-4, pos_embed_init="sincos"), init=pretrain_run,
                   out=tmp_path / "sincos", progress=False)
    final = load_file(str(res.run_dir / "weights.safetensors"))["backbone.pos_embed"][0]
    assert not torch.equal(final, table) and (final - table).abs().max() < 0.01


def test_sincos_pos_embed_init_on_a_1d_backbone_is_the_windows_code():
    from part.models.pos_embed import sincos_1d
    from part.models.vit1d import vit1d_custom

    obj = SupervisedObjective(vit1d_custom(16, 1, 2, signal_len=40, patch_len=10, in_chans=2), num_classes=5,
                              pos_embed_init="sincos")
    pe = obj.backbone.pos_embed[0]
    assert pe.shape == (5, 16) and torch.equal(pe[0], torch.zeros(16))  # the CLS row is zero
    torch.testing.assert_close(pe[1:], sincos_1d(torch.arange(4.0), 16).float())


@pytest.mark.bad_input
def test_bad_pos_embed_init_is_refused_before_training(npz_root, tmp_path):
    with pytest.raises(ValueError, match=r"pos_embed_init must be one of \('random', 'sincos'\), got 'zeros'"):
        finetune(finetune_config(npz_root, pos_embed_init="zeros"), init="none", out=tmp_path / "bad",
                 progress=False)
    assert not (tmp_path / "bad").exists()


def test_init_from_export_file_equals_init_from_run(pretrain_run, npz_root):
    a, b = _supervised(finetune_config(npz_root)), _supervised(finetune_config(npz_root))
    load_backbone_weights(a.backbone, pretrain_run)
    load_backbone_weights(b.backbone, pretrain_run / "export" / "model.safetensors")
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k


def test_finetune_from_pretrain_run(pretrain_run, npz_root, tmp_path, capsys):
    # a tiny lr: after 3 steps the encoder is still the pretrained one, 100x closer to it than a fresh init
    # (same seed) is after the 2 pretraining steps
    res = finetune(finetune_config(npz_root, lr=1e-7), init=pretrain_run, out=tmp_path / "ft", progress=False)
    run = res.run_dir
    assert res.train.step == 3
    src = load_file(str(pretrain_run / "weights.safetensors"))
    final = load_file(str(run / "weights.safetensors"))
    w_pre, w_ft = src["backbone.patch_embed.proj.weight"], final["backbone.patch_embed.proj.weight"]
    torch.testing.assert_close(w_ft, w_pre, atol=1e-5, rtol=0)
    scratch = _supervised(finetune_config(npz_root)).backbone.patch_embed.proj.weight
    assert (scratch - w_pre).abs().max() > 1e-3
    assert final["backbone.pos_embed"].shape == (1, 1 + 4, 16)  # CLS + 2x2 grid
    assert final["backbone.head.weight"].shape == (NUM_CLASSES, 16)
    assert not any(k.startswith("head.") for k in final)  # no relative encoder left

    results = json.loads((run / "results.json").read_text())
    assert results["split"] == "test" and results["num_samples"] == 24 and results["init"].endswith("weights.safetensors")
    cm = np.array(results["confusion_matrix"])
    assert cm.shape == (NUM_CLASSES, NUM_CLASSES) and cm.sum() == 24
    assert results["top1"] == pytest.approx(np.trace(cm) / 24)
    assert len(results["per_class_f1"]) == NUM_CLASSES
    assert -1 <= results["kappa"] <= 1 and "top5" not in results  # 4 classes: top-5 would be every class
    assert results == res.results
    init = json.loads((run / "init.json").read_text())
    assert "patch_embed.proj.weight" in init["loaded"] and "pos_embed" in init["fresh"]
    out = capsys.readouterr()
    assert "top1" in out.out and "loaded 17 backbone tensors" in out.err
    # the run folder rebuilds the fine-tuned model, and its predictions give the same accuracy
    obj, cfg = load_run(run)
    from part.evaluation.heldout import evaluate_classifier
    from part.engine import build_dataset

    again = evaluate_classifier(obj, build_dataset(cfg, train=False, split="test"))
    assert again["top1"] == results["top1"] and again["confusion_matrix"] == results["confusion_matrix"]


@pytest.mark.parametrize("pos_embed", [True, False])
def test_finetune_from_scratch(npz_root, tmp_path, pos_embed):
    res = finetune(finetune_config(npz_root, pos_embed=pos_embed, global_pool="avg"), init="none",
                   out=tmp_path / "scratch", progress=False)
    final = load_file(str(res.run_dir / "weights.safetensors"))
    assert ("backbone.pos_embed" in final) == pos_embed
    assert res.init is None and json.loads((res.run_dir / "init.json").read_text())["from_scratch"] is True
    assert 0.0 <= res.results["top1"] <= 1.0 and res.results["init"] == "none"


@pytest.mark.slow
def test_finetune_learns_the_tiny_task(tmp_path):
    """Enough steps on the separable brightness task: the test accuracy is far above chance (0.25)."""
    root = write_npz_splits(tmp_path / "d", n_train=64, n_test=32)
    cfg = finetune_config(root, lr=3e-3, steps=40, label_smoothing=0.0, global_pool="avg")
    cfg["data"].update(augment=False)
    cfg["train"].update(batch_size=16, log_every=100)
    res = finetune(cfg, init="none", out=tmp_path / "ft", progress=False)
    assert res.results["top1"] >= 0.75, res.results


def test_finetune_resume_of_finished_run_is_read_only(npz_root, tmp_path):
    cfg = finetune_config(npz_root, steps=2)
    first = finetune(cfg, init="none", out=tmp_path / "r", progress=False)
    before = {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if p.is_file() and p.name != ".lock"}
    res = finetune(None, out=tmp_path / "r", resume=True, overrides=["train.max_steps=4"], progress=False)
    assert res.train.finished_before and res.train.step == 2 and res.results == first.results
    assert {p.name: p.read_bytes() for p in (tmp_path / "r").iterdir() if p.is_file() and p.name != ".lock"} == before
    # overwrite without evaluation leaves no stale results of the replaced run
    res = finetune(cfg, init="none", out=tmp_path / "r", overwrite=True, evaluate=False, progress=False)
    assert res.results == {} and not (tmp_path / "r" / "results.json").exists()
    assert (tmp_path / "r" / "init.json").exists()


def test_resume_auto_on_a_new_folder_starts_from_init_then_continues(pretrain_run, npz_root, tmp_path):
    # --resume auto with --init on a new folder is a new run from those weights (it once trained from scratch)
    cfg = finetune_config(npz_root, steps=2)
    res = finetune(cfg, init=pretrain_run, out=tmp_path / "auto", resume="auto", evaluate=False, progress=False)
    init = json.loads((tmp_path / "auto" / "init.json").read_text())
    assert res.init is not None and init["source"] == str(pretrain_run / "weights.safetensors")
    finetune(cfg, init=pretrain_run, out=tmp_path / "plain", evaluate=False, progress=False)
    auto = load_file(str(tmp_path / "auto" / "weights.safetensors"))
    plain = load_file(str(tmp_path / "plain" / "weights.safetensors"))
    assert auto.keys() == plain.keys() and all(torch.equal(auto[k], plain[k]) for k in plain)
    again = finetune(cfg, init=pretrain_run, out=tmp_path / "auto", resume="auto", evaluate=False, progress=False)
    assert again.train.finished_before


def test_finetune_cli(npz_root, tmp_path):
    import yaml

    cfg_path = tmp_path / "ft.yaml"
    cfg_path.write_text(yaml.safe_dump(finetune_config(npz_root, steps=1)))
    msg = cli(["finetune", "--config", str(cfg_path), "--init", "none", "--out", str(tmp_path / "c"), "--no-progress"])
    assert msg.startswith("wrote run and test results (top1 ") and msg.endswith(str(tmp_path / "c"))
    with pytest.raises(ValueError, match="--init.*RUN_OR_WEIGHTS"):
        cli(["finetune", "--config", str(cfg_path), "--out", str(tmp_path / "d")])
    with pytest.raises(ValueError, match="part finetune needs --config"):
        cli(["finetune", "--init", "none"])


# --- errors --------------------------------------------------------------------------------------------
def test_label_outside_range_is_named_before_training(tmp_path):
    root = write_npz_splits(tmp_path / "bad", bad_label=7)
    with pytest.raises(ValueError, match="label.*7.*sample.*5"):
        finetune(finetune_config(root), init="none", out=tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()  # nothing trained
    root = write_npz_splits(tmp_path / "unl", bad_label=-1)
    with pytest.raises(ValueError, match="label.*-1.*sample.*5"):
        finetune(finetune_config(root), init="none", out=tmp_path / "y", progress=False)


def test_missing_init_path(npz_root, tmp_path):
    with pytest.raises(ValueError, match="--init.*not found"):
        finetune(finetune_config(npz_root), init=tmp_path / "nowhere", out=tmp_path / "x", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="--init.*empty"):
        finetune(finetune_config(npz_root), init=tmp_path / "empty", out=tmp_path / "x", progress=False)


def test_backbone_of_another_size_names_the_sizes(pretrain_run, npz_root, tmp_path):
    with pytest.raises(ValueError, match=r"checkpoint \(16,\).*model \(32,\)"):
        finetune(finetune_config(npz_root, dim=32), init=pretrain_run, out=tmp_path / "x", progress=False)
    # same width, other depth: the extra / missing blocks are listed
    with pytest.raises(ValueError, match="keys.*'blocks.1.attn.proj.bias'"):
        finetune(finetune_config(npz_root, depth=2), init=pretrain_run, out=tmp_path / "x", progress=False)
    deep = part.pretrain(pretrain_config(npz_root, depth=2), out=tmp_path / "deep", progress=False).run_dir
    with pytest.raises(ValueError, match="keys.*'blocks.1.attn.proj.bias'"):
        finetune(finetune_config(npz_root), init=deep, out=tmp_path / "y", progress=False)


def test_checkpoint_with_missing_and_unexpected_keys_lists_them(pretrain_run, npz_root, tmp_path):
    state = load_file(str(pretrain_run / "weights.safetensors"))
    state.pop("backbone.norm.weight")
    state["backbone.extra.weight"] = torch.zeros(2)
    save_file(state, str(tmp_path / "w.safetensors"))
    obj = _supervised(finetune_config(npz_root))
    with pytest.raises(ValueError, match="keys.*'norm.weight'.*'extra.weight'"):
        load_backbone_weights(obj.backbone, tmp_path / "w.safetensors")


def test_config_errors(npz_root, tmp_path):
    cfg = finetune_config(npz_root)
    cfg["objective"] = {"name": "part"}
    with pytest.raises(ValueError, match="finetune.*objective.name.*'part'"):
        finetune(cfg, init="none", out=tmp_path / "x")
    cfg = finetune_config(npz_root)
    del cfg["objective"]["options"]["num_classes"]
    with pytest.raises(ValueError, match="finetune.*objective.options.num_classes"):
        finetune(cfg, init="none", out=tmp_path / "x")


# --- DeiT recipe options of the supervised objective ------------------------------------------------------
def _tiny_objective(**kw):
    torch.manual_seed(0)
    return SupervisedObjective(part.vit_custom(16, 2, 2, img_size=8, patch_size=4, in_chans=1), num_classes=4, **kw)


def test_mixup_mixes_with_the_reversed_batch_and_softens_the_loss():
    obj = _tiny_objective(mixup=0.8, label_smoothing=0.1)
    x, y = torch.rand(4, 1, 8, 8), torch.tensor([0, 1, 2, 3])
    mixed, lam = obj.mix(x, torch.Generator().manual_seed(3))
    assert 0.0 < lam < 1.0
    torch.testing.assert_close(mixed, lam * x + (1 - lam) * x.flip(0))
    # the same generator state gives the same mix; the loss is the lam-weighted soft-target CE
    out = obj(x, y, torch.Generator().manual_seed(3))
    logits = obj.logits(mixed)
    expect = lam * F.cross_entropy(logits, y, label_smoothing=0.1) + (1 - lam) * F.cross_entropy(
        logits, y.flip(0), label_smoothing=0.1)
    torch.testing.assert_close(out.loss, expect)
    obj.eval()  # no mixing at evaluation
    torch.testing.assert_close(obj(x, y).loss, F.cross_entropy(obj.logits(x), y, label_smoothing=0.1))


def test_cutmix_pastes_one_box_and_lam_is_its_area():
    obj = _tiny_objective(cutmix=1.0)
    x = torch.arange(4.0).reshape(4, 1, 1, 1).expand(4, 1, 8, 8).contiguous()  # image i is constant i
    seen = False
    for seed in range(20):
        mixed, lam = obj.mix(x, torch.Generator().manual_seed(seed))
        pasted = mixed != x  # pixels taken from the partner (images differ everywhere)
        area = pasted[0, 0].sum().item()
        assert lam == pytest.approx(1 - area / 64)
        assert torch.equal(mixed[pasted], x.flip(0)[pasted])
        if area:
            rows, cols = pasted[0, 0].any(1).nonzero(), pasted[0, 0].any(0).nonzero()
            assert area == len(rows) * len(cols)  # one axis-aligned box
            assert torch.equal(pasted, pasted[:1].expand_as(pasted))  # same box in every image
            seen = True
    assert seen


def test_mix_prob_zero_never_mixes():
    obj = _tiny_objective(mixup=0.8, cutmix=1.0, mix_prob=0.0)
    x = torch.rand(4, 1, 8, 8)
    mixed, lam = obj.mix(x, torch.Generator().manual_seed(0))
    assert lam == 1.0 and torch.equal(mixed, x)


def test_layer_decay_groups():
    obj = _tiny_objective(layer_decay=0.5)
    groups = obj.param_groups(0.05)
    scale = {}
    for g in groups:
        for p in g["params"]:
            scale[id(p)] = (g["lr_scale"], g["weight_decay"])
    named = dict(obj.named_parameters())
    assert sum(len(g["params"]) for g in groups) == len(named)
    # depth 2: layer 0 (patch embed, CLS, pos) 0.5^3, block i 0.5^(2 - i), norm/head 1
    assert scale[id(named["backbone.patch_embed.proj.weight"])] == (0.125, 0.05)
    assert scale[id(named["backbone.cls_token"])] == (0.125, 0.0)
    assert scale[id(named["backbone.pos_embed"])] == (0.125, 0.0)
    assert scale[id(named["backbone.blocks.0.attn.qkv.weight"])] == (0.25, 0.05)
    assert scale[id(named["backbone.blocks.1.mlp.fc1.bias"])] == (0.5, 0.0)
    assert scale[id(named["backbone.head.weight"])] == (1.0, 0.05)
    assert scale[id(named["backbone.norm.weight"])] == (1.0, 0.0)
    # without layer decay: the engine's two groups (decay / no decay), lr scale 1
    plain = _tiny_objective().param_groups(0.05)
    assert [(g["weight_decay"], g["lr_scale"]) for g in plain] == [(0.05, 1.0), (0.0, 1.0)]


def test_head_only_steps_groups():
    obj = _tiny_objective(head_only_steps=5)
    groups = obj.param_groups(0.05)
    named = {id(p): n for n, p in obj.named_parameters()}
    assert sum(len(g["params"]) for g in groups) == len(named)
    for g in groups:
        heads = {named[id(p)].startswith("backbone.head.") for p in g["params"]}
        assert len(heads) == 1  # the classifier has groups of its own
        assert g.get("frozen_until", 0) == (0 if heads == {True} else 5)


def test_head_only_steps_train_only_the_classifier_first(pretrain_run, npz_root, tmp_path):
    """LP-FT: for head_only_steps steps only backbone.head moves, then every parameter does."""
    # the weights the fine-tune starts from: seeded fresh head and position embeddings, pretrained backbone
    cfg = config_from_dict(finetune_config(npz_root, head_only_steps=2))
    torch.manual_seed(cfg.train.seed)
    obj = build_objective(cfg)
    load_backbone_weights(obj.backbone, pretrain_run)
    src = {k: v.detach().clone() for k, v in obj.state_dict().items()}
    for steps, backbone_moves in ((2, False), (3, True)):
        res = finetune(finetune_config(npz_root, steps=steps, head_only_steps=2), init=pretrain_run,
                       out=tmp_path / f"lpft{steps}", progress=False)
        final = load_file(str(res.run_dir / "weights.safetensors"))
        assert sorted(final) == sorted(src) and "backbone.pos_embed" in src
        moved = sorted(k for k in src if not torch.equal(final[k], src[k]))
        if backbone_moves:
            assert "backbone.blocks.0.attn.qkv.weight" in moved and "backbone.pos_embed" in moved
        else:
            assert moved == ["backbone.head.bias", "backbone.head.weight"]


def test_finetune_with_recipe_options_runs_through_the_engine(npz_root, tmp_path):
    res = finetune(finetune_config(npz_root, mixup=0.8, cutmix=1.0, layer_decay=0.65), init="none",
                   out=tmp_path / "deit", progress=False)
    assert res.train.step == 3 and "top1" in res.results


def test_recipe_option_errors():
    with pytest.raises(ValueError, match="mixup must be >= 0"):
        _tiny_objective(mixup=-1.0)
    with pytest.raises(ValueError, match="switch_prob"):
        _tiny_objective(switch_prob=2.0)
    with pytest.raises(ValueError, match="layer_decay"):
        _tiny_objective(layer_decay=0.0)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="head_only_steps must be an int >= 0"):
            _tiny_objective(head_only_steps=bad)


def test_supervised_on_1d_backbone():
    from part.models.vit1d import vit1d_custom

    torch.manual_seed(0)
    obj = SupervisedObjective(vit1d_custom(16, 1, 2, signal_len=40, patch_len=10, in_chans=2), num_classes=5,
                              cutmix=1.0)
    x, y = torch.randn(6, 2, 40), torch.tensor([0, 1, 2, 3, 4, 0])
    out = obj(x, y, torch.Generator().manual_seed(0))
    assert out.logits.shape == (6, 5) and torch.isfinite(out.loss)
    out.loss.backward()
    assert obj.backbone.pos_embed.grad is not None
    mixed, lam = obj.mix(x, torch.Generator().manual_seed(1))
    pasted = (mixed != x)[0, 0]  # one time interval
    idx = pasted.nonzero().flatten()
    assert lam == pytest.approx(1 - len(idx) / 40)
    if len(idx):
        assert idx.tolist() == list(range(int(idx[0]), int(idx[-1]) + 1))
    obj.eval()
    with pytest.raises(ValueError, match="signals.*T=30.*signal_len=40"):
        obj.logits(torch.randn(2, 2, 30))


@pytest.mark.parametrize("name", ["fmnist_finetune_cpu", "cifar100_vits_finetune", "in1k_vitb16_finetune",
                                  "fmnist_probe_cpu"])
def test_shipped_configs_build(name):
    from pathlib import Path

    from part.config import load_config
    from part.engine import build_backbone

    # ViT-B/16 is built one block deep: its widths and grid are the shipped ones, its 86M weights are not needed
    sets = ["model.depth=1"] if name.startswith("in1k") else []
    cfg = load_config(Path(__file__).resolve().parents[2] / "configs" / f"{name}.yaml", sets)
    if name == "fmnist_probe_cpu":  # the probe config describes a backbone and the data only
        assert build_backbone(cfg.model).embed_dim == 96 and cfg.data.augment is False
        return
    obj = build_objective(cfg)
    assert isinstance(obj, SupervisedObjective) and obj.backbone.pos_embed is not None
    assert obj.num_classes == {"cifar": 100, "in1k_": 1000}.get(name[:5], 10)
    if name.startswith(("cifar", "in1k")):  # the paper's epochs and lr (App. 8.1) and DeiT's recipe
        epochs, dim, patches = (400, 384, 64) if "cifar" in name else (300, 768, 196)
        assert (cfg.train.epochs, cfg.optim.lr, obj.mixup, obj.cutmix, obj.label_smoothing) == (epochs, 5e-4, 0.8, 1.0, 0.1)
        assert obj.backbone.embed_dim == dim and obj.backbone.num_patches == patches
        assert cfg.model.drop_path_rate == 0.1 and cfg.optim.weight_decay == 0.05 and cfg.data.rrc_scale == [0.08, 1.0]
        assert (cfg.data.randaugment, cfg.data.reprob, cfg.data.repeated_aug) == ("rand-m9-mstd0.5-inc1", 0.25, 3)
