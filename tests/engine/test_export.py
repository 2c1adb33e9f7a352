"""Exports in timm's hub layout (engine/export.py): folder contents, config.json fields, model card, the run's
``export/`` equal to ``part export``, reloading with ``part``, errors. The timm side is tests/timm/."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

import part
from part.engine import data_defaults, load_run
from part.engine.export import (EXPORT_FILES, TIMM_BASE_ARCH, export_run, model_card, timm_architecture,
                                timm_config)
from part.evaluation import finetune, load_backbone

from ..evaluation.conftest import finetune_config, pretrain_config, write_npz_splits
from ..evaluation.test_finetune import cli


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = write_npz_splits(tmp_path_factory.mktemp("data"))
    base = tmp_path_factory.mktemp("runs")
    pre = part.pretrain(pretrain_config(root), out=base / "pre", progress=False).run_dir
    ft = finetune(finetune_config(root), init=pre, out=base / "ft", progress=False).run_dir
    return {"pretrain": pre, "finetune": ft}


def _images(n=5, seed=0):
    return torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("which", ["pretrain", "finetune"])
def test_export_folder_in_timm_hub_layout(which, runs, tmp_path):
    run = runs[which]
    out = export_run(run, tmp_path / "hub")
    assert out == tmp_path / "hub" and sorted(p.name for p in out.iterdir()) == sorted(
        [*EXPORT_FILES, ".part-export.json"])  # + the marker: part made this folder (part.engine.folders)
    objective, cfg = load_run(run)
    state = load_file(str(out / "model.safetensors"))
    assert state.keys() == objective.backbone.state_dict().keys()  # timm names, no "backbone." prefix
    c = json.loads((out / "config.json").read_text())
    args, pc = c["model_args"], c["pretrained_cfg"]
    assert c["architecture"] == TIMM_BASE_ARCH  # d=16, depth 1: no timm ViT of these dims; model_args rule
    assert (args["embed_dim"], args["depth"], args["num_heads"], args["patch_size"], args["img_size"],
            args["in_chans"]) == (16, 1, 2, 4, 8, 1)
    assert args["pos_embed"] == ("none" if which == "pretrain" else "learn") and args["dynamic_img_size"] is True
    assert c["num_classes"] == args["num_classes"] == pc["num_classes"] == (0 if which == "pretrain" else 4)
    assert c["global_pool"] == "token" and c["num_features"] == 16
    d = data_defaults(cfg)
    assert pc["mean"] == pytest.approx(d.mean) and pc["std"] == pytest.approx(d.std) and len(pc["mean"]) == 1
    assert pc["input_size"] == [1, 8, 8] and pc["crop_pct"] == 1.0 and pc["interpolation"] == "bilinear"
    assert pc["first_conv"] == "patch_embed.proj" and pc["classifier"] == "head" and pc["fixed_input_size"] is False
    assert c["part"]["method"] == ("part" if which == "pretrain" else "supervised")
    assert c["part"]["steps"] == (2 if which == "pretrain" else 3)
    # part reloads it (architecture from config.json) with the same features
    loaded, _ = load_backbone(out / "model.safetensors")
    x = _images()
    with torch.no_grad():
        torch.testing.assert_close(loaded.forward_features(x), objective.backbone.forward_features(x))
    if which == "finetune":
        assert state["head.weight"].shape == (4, 16) and "pos_embed" in state
        assert "test/top1" in (out / "README.md").read_text()


@pytest.mark.parametrize("which", ["pretrain", "finetune"])
def test_run_export_equals_part_export(which, runs, tmp_path):
    """The run's export/ (written when training finishes; for fine-tuning refreshed after the test split)
    and `part export` write the same folder."""
    run = runs[which]
    msg = cli(["export", "--run", str(run), "--out", str(tmp_path / "e")])
    assert msg == f"wrote export (config.json, model.safetensors, README.md) to {tmp_path / 'e'}"
    for name in ("config.json", "README.md"):
        assert (tmp_path / "e" / name).read_text() == (run / "export" / name).read_text(), name
    a, b = load_file(str(tmp_path / "e" / "model.safetensors")), load_file(str(run / "export" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_model_card(runs, tmp_path):
    out = export_run(runs["pretrain"], tmp_path / "card")
    text = (out / "README.md").read_text()
    c = json.loads((out / "config.json").read_text())
    assert text.startswith("---\ntags:\n") and "library_name: timm" in text
    for words in ("`part` objective", "relative encoder `cross_attention_paper`", "`npz`", "2 steps", "train/loss",
                  'timm.create_model("local-dir:', "checkpoint_path=", "resolve_data_config", "part.load("):
        assert words in text, words
    assert f"| train/loss | {c['part']['train_metrics']['loss']:.4g} |" in text
    # a probe of the run shows up in the card of a later export
    (runs["pretrain"] / "probe.json").write_text(json.dumps({"linear": {"top1": 0.75}, "knn": {"top1": 0.5}}))
    try:
        text = (export_run(runs["pretrain"], tmp_path / "card") / "README.md").read_text()
    finally:
        (runs["pretrain"] / "probe.json").unlink()
    assert "| probe linear/top1 | 0.75 |" in text and "| probe knn/top1 | 0.5 |" in text


def test_timm_architecture_names():
    def args(d, depth, heads, patch):
        return {"embed_dim": d, "depth": depth, "num_heads": heads, "patch_size": patch}

    assert timm_architecture(args(192, 12, 3, 16)) == "vit_tiny_patch16_224"
    assert timm_architecture(args(192, 12, 3, 4)) == "vit_tiny_patch16_224"  # dims match, patch in model_args
    assert timm_architecture(args(384, 12, 6, 32)) == "vit_small_patch32_224"
    assert timm_architecture(args(768, 12, 12, 8)) == "vit_base_patch8_224"
    assert timm_architecture(args(64, 3, 4, 4)) == TIMM_BASE_ARCH


def test_export_of_paper_tiny_names_vit_tiny():
    bb = part.vit_tiny(img_size=32, patch_size=4, in_chans=3)
    c = timm_config(bb, mean=[0.5, 0.4, 0.3], std=[0.2, 0.2, 0.2])
    assert c["architecture"] == "vit_tiny_patch16_224" and c["model_args"]["patch_size"] == 4
    assert c["pretrained_cfg"]["input_size"] == [3, 32, 32] and c["pretrained_cfg"]["mean"] == [0.5, 0.4, 0.3]
    with pytest.raises(ValueError, match="mean.*1.*in_chans=3"):
        timm_config(bb, mean=[0.5], std=[0.2])
    assert "vit_tiny_patch16_224" in model_card(c, {})


@pytest.mark.slow
def test_export_errors(runs, tmp_path):
    with pytest.raises(ValueError, match="e.safetensors"):
        cli(["export", "--run", str(runs["pretrain"]), "--out", str(tmp_path / "e.safetensors")])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match=r"busy holds files part did not make \(notes.txt\)"):
        export_run(runs["pretrain"], tmp_path / "busy")
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"
    with pytest.raises(ValueError, match="run folder not found: .*nope"):
        export_run(tmp_path / "nope", tmp_path / "x")
    # an earlier export is replaced; the default place is <run>/export, written under the run's lock
    from part.engine import RunFolderError, RunLock

    assert export_run(runs["pretrain"]) == runs["pretrain"] / "export"
    import subprocess
    import sys

    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from part.engine import RunLock; "
                               f"RunLock({str(runs['pretrain'])!r}).acquire(); print('held', flush=True); "
                               "time.sleep(30)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderError, match="is in use by another part process"):
            export_run(runs["pretrain"])
        assert export_run(runs["pretrain"], tmp_path / "outside").is_dir()  # elsewhere: no lock needed
    finally:
        holder.kill()
        holder.wait()
    with RunLock(runs["pretrain"]):  # re-entrant within one process
        assert export_run(runs["pretrain"]) == runs["pretrain"] / "export"
