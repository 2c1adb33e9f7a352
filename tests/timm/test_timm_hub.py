"""Exports load with timm's own loaders and give part's numbers (``make test-timm``; skipped without timm).

timm needs torchvision, which does not import beside the CPU torch wheel of ``.venv``: ``make test-timm``
builds ``.venv-timm`` (torch/torchvision pair + timm + huggingface-hub) and runs this folder there. Each test
prints its loading path and the largest difference it saw (``pytest -s`` shows them).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

timm = pytest.importorskip("timm")
pytest.importorskip("torchvision")

from PIL import Image  # noqa: E402

import part  # noqa: E402
from part.engine import build_dataset, load_run  # noqa: E402
from part.engine.export import TIMM_VITS, export_run  # noqa: E402
from part.evaluation import finetune  # noqa: E402
from part.models.pos_embed import resample_abs_pos_embed  # noqa: E402

from ..conftest import load_fixture_images  # noqa: E402

TOL = 1e-5


def _model_section():
    return {"arch": "custom", "embed_dim": 24, "depth": 2, "num_heads": 2, "img_size": 28, "patch_size": 7,
            "in_chans": 1}


def _train(**kw):
    t = {"max_steps": 3, "batch_size": 8, "log_every": 1, "ckpt_every": 100, "seed": 0, "device": "cpu"}
    t.update(kw)
    return t


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    """16 real Fashion-MNIST images as an npz split pair and as PNG files (an imagefolder)."""
    images, labels = load_fixture_images()
    labels = labels.astype(np.int64) % 4
    root = tmp_path_factory.mktemp("fmnist")
    np.savez(root / "train.npz", x=images, y=labels)
    np.savez(root / "test.npz", x=images, y=labels)
    folder = root / "pngs"
    for i, (img, y) in enumerate(zip(images, labels)):
        (folder / "test" / f"c{y}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).resize((56, 56), Image.BILINEAR).save(folder / "test" / f"c{y}" / f"{i:02d}.png")
    return {"root": root, "pngs": folder}


@pytest.fixture(scope="module")
def runs(tmp_path_factory, real):
    base = tmp_path_factory.mktemp("runs")
    data = {"kind": "npz", "root": str(real["root"]), "rrc_scale": [0.5, 1.0]}
    pre = part.pretrain({"model": _model_section(), "objective": {"name": "part", "num_pairs": 12},
                         "data": data, "optim": {"lr": 1e-3, "warmup_steps": 1}, "train": _train()},
                        out=base / "pre", progress=False).run_dir
    ft_cfg = {"model": _model_section(), "data": data,
              "objective": {"name": "supervised", "options": {"num_classes": 4}},
              "optim": {"lr": 1e-3, "warmup_steps": 1, "weight_decay": 0.0}, "train": _train()}
    ft = finetune(ft_cfg, init=pre, out=base / "ft", progress=False).run_dir
    return {"pretrain": pre, "finetune": ft}


def _eval_images(run):
    """The run's test split through part's own eval transform: ``(16, 1, 28, 28)`` normalised."""
    _, cfg = load_run(run)
    data = build_dataset(cfg, train=False, split="test")
    return torch.stack([data[i][0] for i in range(len(data))])


def _load(how: str, export):
    cfg = json.loads((export / "config.json").read_text())
    if how == "local-dir":
        return timm.create_model(f"local-dir:{export}", pretrained=True).eval()
    if how == "pretrained_cfg_overlay":
        return timm.create_model(
            cfg["architecture"], pretrained=True, **cfg["model_args"],
            pretrained_cfg_overlay=dict(file=str(export / "model.safetensors"), num_classes=cfg["num_classes"]),
        ).eval()
    return timm.create_model(cfg["architecture"], checkpoint_path=str(export / "model.safetensors"),
                             **cfg["model_args"]).eval()


@pytest.mark.parametrize("how", ["local-dir", "pretrained_cfg_overlay", "checkpoint_path"])
@pytest.mark.parametrize("which", ["pretrain", "finetune"])
def test_timm_loads_export_with_equal_features(which, how, runs):
    run = runs[which]
    export = run / "export"
    net = _load(how, export)
    objective, _ = load_run(run)
    x = _eval_images(run)
    with torch.no_grad():
        ours = objective.backbone.forward_features(x)
        theirs = net.forward_features(x)
        diff = (theirs - ours).abs().max().item()
        print(f"\n[timm {how}] {which}: max |feature difference| = {diff:.3g} on {len(x)} real images")
        assert diff <= TOL
        if which == "finetune":
            logit_diff = (net(x) - objective.logits(x)).abs().max().item()
            print(f"[timm {how}] finetune: max |logit difference| = {logit_diff:.3g}")
            assert logit_diff <= TOL and net.num_classes == 4


def test_resolve_data_config_reproduces_part_eval_transform(runs, real):
    run = runs["finetune"]
    net = timm.create_model(f"local-dir:{run / 'export'}", pretrained=True).eval()
    dc = timm.data.resolve_data_config(model=net)
    _, cfg = load_run(run)
    from part.engine import data_defaults

    d = data_defaults(cfg)
    assert tuple(dc["input_size"]) == (1, 28, 28) and dc["crop_pct"] == 1.0 and dc["interpolation"] == "bilinear"
    assert dc["mean"] == pytest.approx(tuple(d.mean)) and dc["std"] == pytest.approx(tuple(d.std))
    # end to end on image files: timm's eval transform on PIL images = part's imagefolder eval pipeline
    tf = timm.data.create_transform(**dc, is_training=False)
    ours = build_dataset(part.config.config_from_dict({**cfg.to_dict(), "data": {
        **cfg.to_dict()["data"], "kind": "imagefolder", "root": str(real["pngs"]), "max_samples": None}}),
        train=False, split="test")
    diffs = []
    for i in range(len(ours)):
        path = ours.samples[i][0] if hasattr(ours, "samples") else None
        img = Image.open(path).convert("L")
        diffs.append((tf(img) - ours[i][0]).abs().max().item())
    print(f"\n[timm resolve_data_config] max |pixel difference| after normalisation = {max(diffs):.3g} "
          f"(56x56 PNGs resized to 28: PIL uint8 vs part float bilinear)")
    assert max(diffs) <= 2.5 / 255 / d.std[0]  # the same pipeline; PIL rounds to uint8 (1-2 levels)


def test_our_resampling_equals_timms():
    from timm.layers import resample_abs_pos_embed as timm_resample

    g = torch.Generator().manual_seed(0)
    for old, new, prefix in (((4, 4), (8, 8), 1), ((4, 4), (3, 5), 1), ((6, 4), (6, 4), 1), ((5, 5), (2, 9), 0)):
        pe = torch.randn(1, prefix + old[0] * old[1], 8, generator=g)
        ours = resample_abs_pos_embed(pe, new, old, num_prefix_tokens=prefix)
        theirs = timm_resample(pe, new_size=list(new), old_size=list(old), num_prefix_tokens=prefix)
        torch.testing.assert_close(ours, theirs, atol=0, rtol=0)


def test_other_resolution_matches_timm(runs):
    """A fine-tuned export at 56x56: timm resamples the 4x4 table to 8x8 on load (img_size=56) or on the fly
    (dynamic_img_size); part does the same, on the fly or with resize_grid."""
    run = runs["finetune"]
    objective, _ = load_run(run)
    x = torch.nn.functional.interpolate(_eval_images(run), size=(56, 56), mode="bilinear")
    with torch.no_grad():
        ours = objective.backbone.forward_features(x)
        dynamic = _load("local-dir", run / "export")
        d1 = (dynamic.forward_features(x) - ours).abs().max().item()
        at56 = timm.create_model(f"local-dir:{run / 'export'}", pretrained=True, img_size=56).eval()
        d2 = (at56.forward_features(x) - ours).abs().max().item()
        bb = objective.backbone
        bb.resize_grid(56)
        torch.testing.assert_close(bb.pos_embed, at56.pos_embed, atol=1e-6, rtol=0)
    print(f"\n[timm resolution 28->56] dynamic_img_size: max diff {d1:.3g}; img_size=56 on load: {d2:.3g}")
    assert d1 <= TOL and d2 <= TOL


def test_registered_architecture_names_have_the_dims():
    for (d, depth, heads, patch), name in TIMM_VITS.items():
        assert timm.is_model(name), name
        with torch.device("meta"):
            net = timm.create_model(name, pretrained=False)
        assert (net.embed_dim, len(net.blocks), net.blocks[0].attn.num_heads,
                net.patch_embed.patch_size[0]) == (d, depth, heads, patch), name


def test_export_command_output_loads(runs, tmp_path):
    out = export_run(runs["pretrain"], tmp_path / "hub")
    net = timm.create_model(f"local-dir:{out}", pretrained=True).eval()
    assert net.num_classes == 0 and net.pos_embed is None and net.dynamic_img_size


def test_the_committed_reference_model_loads_in_timm_with_part_s_features():
    """``assets/reference/fmnist_part`` (issue 24): ``timm.create_model("local-dir:...")`` builds it with every
    tensor and gives the features of ``part.load`` on real Fashion-MNIST images, timm's eval transform included."""
    ref = Path(__file__).resolve().parents[2] / "assets" / "reference" / "fmnist_part"
    net = timm.create_model(f"local-dir:{ref}", pretrained=True).eval()
    ours = part.load(ref)
    images, _ = load_fixture_images()
    x = ours.normalize(torch.from_numpy(images.copy()).float().div(255).unsqueeze(1))
    dc = timm.data.resolve_data_config(model=net)
    tf = timm.data.create_transform(**dc, is_training=False)
    x_timm = torch.stack([tf(Image.fromarray(img)) for img in images])
    with torch.no_grad():
        diff = (net.forward_features(x) - ours.backbone.forward_features(x)).abs().max().item()
        pooled = (net.forward_head(net.forward_features(x_timm), pre_logits=True) - ours.features(x)).abs().max().item()
    print(f"\n[timm local-dir] reference: max |feature difference| = {diff:.3g}, pooled through timm's transform "
          f"{pooled:.3g} on {len(x)} real images")
    assert diff <= TOL and pooled <= TOL
