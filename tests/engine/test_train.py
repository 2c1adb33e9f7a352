import json
import os
from pathlib import Path

import pytest
import torch

import part
from part.cli import main
from part.engine import checkpoint as ck
from part.engine import load_run
from part.engine import RunFolderError, TrainingDiverged, train
from part.config import config_from_dict

from .conftest import tiny_config


def _losses(run):
    return [json.loads(l) for l in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def test_pretrain_writes_run_folder(tmp_path, npz_data, capsys):
    res = part.pretrain(tiny_config(npz_data), out=tmp_path / "run", progress=False)
    run = res.run_dir
    for rel in ["config.yaml", "metrics.jsonl", "weights.safetensors", "export/model.safetensors",
                "export/config.json", "plots/loss.png", "summary.json"]:
        assert (run / rel).is_file(), rel
    assert list((run / "tb").iterdir())
    recs = _losses(run)
    assert [r["step"] for r in recs] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "err_x", "err_y", "err_euclid", "lr", "img_per_s"} <= set(recs[0])
    # last-k checkpoints only
    assert [p.name for p in ck.list_checkpoints(run / "checkpoints")] == ["step_0000004.pt", "step_0000006.pt"]
    model, cfg = load_run(run)
    assert cfg.objective.num_pairs == 6 and not model.training
    export = json.loads((run / "export/config.json").read_text())
    assert export["model_args"]["pos_embed"] == "none" and export["model_args"]["embed_dim"] == 16


class _Killed(Exception):
    pass


class _FailAt(torch.nn.Module):
    """Wrap an objective; at forward call ``bad_call`` either make the loss NaN or raise (a 'kill')."""

    def __init__(self, inner, bad_call, kill=False):
        super().__init__()
        self.inner, self.backbone, self.calls, self.bad_call, self.kill = inner, inner.backbone, 0, bad_call, kill

    def forward(self, x, generator=None):
        self.calls += 1
        if self.kill and self.calls >= self.bad_call:
            raise _Killed(f"killed at call {self.calls}")
        out = self.inner(x, generator=generator)
        if self.calls >= self.bad_call:
            out.loss = out.loss * float("nan")
        return out

    def state_dict(self, *a, **k):  # checkpoints hold the real objective's keys
        return self.inner.state_dict(*a, **k)


def _kill_and_resume(tmp_path, raw_cfg, kill_call):
    from part.engine import build_objective

    cfg = config_from_dict(raw_cfg)
    torch.manual_seed(cfg.train.seed)  # the same initial weights as train() builds
    with pytest.raises(_Killed):
        train(cfg, tmp_path / "cut", objective=_FailAt(build_objective(cfg), kill_call, kill=True), progress=False)
    assert not (tmp_path / "cut" / "weights.safetensors").exists()
    return part.pretrain(None, out=tmp_path / "cut", resume=True, progress=False)


@pytest.mark.slow
@pytest.mark.parametrize("accum,kill_call,deit", [(1, 6, False), (2, 10, False), (2, 10, True)])
def test_resume_equals_uninterrupted(tmp_path, npz_data, accum, kill_call, deit):
    # 64 items / batch 8 = 8 batches per epoch; with accum 2 an epoch is 4 steps, so the kill lands mid-epoch-2
    raw = tiny_config(npz_data, max_steps=7, ckpt_every=2)
    raw["optim"]["accum_steps"] = accum
    if deit:  # DeiT's fine-tuning augmentations (RandAugment, random erasing, repeated augmentation)
        raw["data"].update(randaugment="rand-m9-mstd0.5-inc1", reprob=0.25, repeated_aug=3)
    full = part.pretrain(raw, out=tmp_path / "full", progress=False)
    resumed = _kill_and_resume(tmp_path, raw, kill_call)
    a = [r["loss"] for r in _losses(full.run_dir)]
    b = [r["loss"] for r in _losses(resumed.run_dir)]
    assert len(a) == len(b) == 7
    assert max(abs(x - y) for x, y in zip(a, b)) <= 1e-6, (a, b)
    wa = ck.load_weights(full.run_dir / "weights.safetensors")
    wb = ck.load_weights(resumed.run_dir / "weights.safetensors")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6)


def test_atomic_checkpoint_survives_crash(tmp_path, monkeypatch):
    ckdir = tmp_path / "checkpoints"
    ck.save_checkpoint(ckdir, 1, {"w": torch.ones(3)}, {"step": 1}, keep_last=2)

    def crash(obj, f, *a, **k):
        Path(f).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        ck.save_checkpoint(ckdir, 2, {"w": torch.zeros(3)}, {"step": 2}, keep_last=2)
    monkeypatch.undo()
    ckpts = ck.list_checkpoints(ckdir)
    assert [p.name for p in ckpts] == ["step_0000001.pt"]
    weights, state = ck.load_checkpoint(ckpts[-1])
    assert state["step"] == 1 and torch.equal(weights["w"], torch.ones(3))
    assert not list(ckdir.glob("*.tmp"))


def test_refuses_to_overwrite_finished_run(tmp_path, npz_data):
    part.pretrain(tiny_config(npz_data, max_steps=2), out=tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "weights.safetensors").read_bytes()
    with pytest.raises(RunFolderError, match="--resume.*--overwrite"):
        part.pretrain(tiny_config(npz_data, max_steps=2), out=tmp_path / "run", progress=False)
    assert (tmp_path / "run" / "weights.safetensors").read_bytes() == before
    part.pretrain(tiny_config(npz_data, max_steps=2), out=tmp_path / "run", overwrite=True, progress=False)


def test_cli_errors_are_one_line(tmp_path, npz_data, capsys):
    cfg = tmp_path / "c.yaml"
    import yaml

    bad = tiny_config(tmp_path / "missing.npz")
    cfg.write_text(yaml.safe_dump(bad))
    assert main(["pretrain", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.npz" in err and len(err.splitlines()) == 1
    empty = tmp_path / "empty.npz"
    import numpy as np

    np.savez(empty, x=np.zeros((0, 8, 8), np.uint8), y=np.zeros(0, np.int64))
    cfg.write_text(yaml.safe_dump(tiny_config(empty)))
    assert main(["pretrain", "--config", str(cfg), "--out", str(tmp_path / "r2"), "--no-progress"]) == 2
    assert "empty" in capsys.readouterr().err


def test_cli_pretrain_prints_where_it_wrote(tmp_path, npz_data, capsys):
    import yaml

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(npz_data, max_steps=2)))
    assert main(["pretrain", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress",
                 "--set", "optim.lr=2e-3"]) == 0
    out = capsys.readouterr().out
    assert out.strip().splitlines()[-1] == f"wrote run to {tmp_path / 'r'}"
    assert "lr: 0.002" in (tmp_path / "r" / "config.yaml").read_text()


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path, npz_data):
    from part.engine import build_objective

    cfg = config_from_dict(tiny_config(npz_data, max_steps=10, ckpt_every=2))
    obj = _FailAt(build_objective(cfg), bad_call=5)
    with pytest.raises(TrainingDiverged, match="loss.*step.*4.*step_0000004"):
        train(cfg, tmp_path / "run", objective=obj, progress=False)
    ckpts = ck.list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [p.name for p in ckpts] == ["step_0000002.pt", "step_0000004.pt"]
    assert not (tmp_path / "run" / "weights.safetensors").exists()


def test_cli_nan_exit_code(tmp_path, npz_data, capsys):
    import yaml

    cfg = tiny_config(npz_data, max_steps=30)
    cfg["optim"].update({"lr": 1e30, "clip_grad": None, "warmup_steps": 0, "weight_decay": 0.0})
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(cfg))
    assert main(["pretrain", "--config", str(p), "--out", str(tmp_path / "r"), "--no-progress"]) == 3
    assert "training diverged" in capsys.readouterr().err


def test_init_loads_weights_into_new_run(tmp_path, npz_data):
    a = part.pretrain(tiny_config(npz_data, max_steps=2), out=tmp_path / "a", progress=False)
    b = part.pretrain(tiny_config(npz_data, max_steps=1), out=tmp_path / "b", init=a.run_dir, progress=False)
    assert [r["step"] for r in _losses(b.run_dir)] == [1]  # a new run: step counter starts at 0
    with pytest.raises(ValueError, match="do not fit this model"):
        cfg = tiny_config(npz_data, max_steps=1)
        cfg["model"]["embed_dim"] = 32
        part.pretrain(cfg, out=tmp_path / "c", init=a.run_dir / "weights.safetensors", progress=False)


def _imagefolder(root, corrupt=True):
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in ("a", "b"):
        (root / "train" / c).mkdir(parents=True, exist_ok=True)
        for i in range(10):
            Image.fromarray(rng.integers(0, 256, (8, 8), dtype=np.uint8)).save(root / "train" / c / f"{i}.png")
    if corrupt:
        (root / "train" / "a" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return root


def test_corrupt_image_named_or_skipped(tmp_path, capsys):
    import yaml

    root = _imagefolder(tmp_path / "imgs")
    raw = tiny_config(root, max_steps=2)
    raw["data"].update({"kind": "imagefolder", "root": str(root)})
    p = tmp_path / "c.yaml"
    p.write_text(yaml.safe_dump(raw))
    assert main(["pretrain", "--config", str(p), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "broken.png" in capsys.readouterr().err
    with pytest.warns(UserWarning, match="skipped 1"):
        res = part.pretrain(raw, out=tmp_path / "r2", overrides=["data.skip_corrupt=true"], progress=False)
    assert res.step == 2


def test_validation_curve_leaves_training_unchanged(tmp_path, npz_data):
    """train(validate=...) logs val_<metric> every train.val_every epochs and at the last step, in eval mode with
    the RNG state kept: the trained weights equal those of the same run without validation (drop-path on)."""
    from part.engine import build_dataset
    from part.evaluation.heldout import evaluate_classifier

    def cfg(val_every):
        c = tiny_config(npz_data, max_steps=10, val_every=val_every)
        c["objective"] = {"name": "supervised", "options": {"num_classes": 4, "pos_embed": True}}
        c["data"]["val_carve"] = 8
        return config_from_dict(c)

    modes = []

    def validate(objective):
        modes.append(objective.training)
        return {"top1": evaluate_classifier(objective, val_data)["top1"]}

    val_data = build_dataset(cfg(None), train=False, split="val")
    with_val = train(cfg(1.0), tmp_path / "a", progress=False, validate=validate)
    plain = train(cfg(1.0), tmp_path / "b", progress=False)  # no validate: val_every alone does nothing
    recs = [r for r in _losses(with_val.run_dir) if "val_top1" in r]
    per_epoch = len(build_dataset(cfg(None), train=True)) // 8
    assert [r["step"] for r in recs] == sorted(set(range(per_epoch, 11, per_epoch)) | {10})
    assert modes and not any(modes) and all("val_top1" not in r for r in _losses(plain.run_dir))
    a, b = ck.load_weights(with_val.run_dir / "weights.safetensors"), ck.load_weights(plain.run_dir / "weights.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.bad_input
def test_bad_val_every_fails_at_load(npz_data):
    with pytest.raises(ValueError, match="train.val_every"):
        from part.config import load_config

        load_config(None, (), base=tiny_config(npz_data, val_every=0))
