"""``data.options.augment`` in training: checked when the config loads (one line, exit 2), applied to the
training batches of PART pretraining and fine-tuning (and recorded in ``config.yaml``), never to evaluation or
probing, and a resumed run equals the uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import part
from part.cli import main
from part.config import ConfigError, config_from_dict, load_config
from part.data.signal_augment import SignalAugment
from part.engine import build_objective, train
from part.engine import checkpoint as ck
from part.engine.builders import build_batch_augment
from part.engine.loader import augment_seed

C, T, L = 2, 16, 4
AUG = {"scale": 0.5, "offset": 0.5, "noise": 0.1, "shift": 0.1, "flip": 0.5, "channel_dropout": 0.2}


@pytest.fixture
def sig_root(tmp_path):
    rng = np.random.default_rng(0)
    root = tmp_path / "sig"
    root.mkdir()
    for split, n in (("train", 32), ("test", 8)):
        y = np.arange(n) % 2
        x = rng.normal(size=(n, C, T)) + 2.0 * y[:, None, None]
        np.savez(root / f"{split}.npz", x=x.astype(np.float32), y=y, class_names=np.array(["a", "b"]))
    return root


def raw_config(root, objective=None, augment=None, **train_kw) -> dict:
    t = {"max_steps": 5, "batch_size": 8, "log_every": 1, "ckpt_every": 2, "keep_last": 2, "seed": 0,
         "device": "cpu", "amp": "none"}
    t.update(train_kw)
    opts = {"augment": augment} if augment is not None else {}
    return {"model": {"arch": "vit1d_custom", "embed_dim": 16, "depth": 1, "num_heads": 2, "img_size": T,
                      "patch_size": L, "in_chans": C, "drop_path_rate": 0.1},
            "objective": objective or {"name": "part", "num_pairs": 6},
            "data": {"kind": "signal_npz", "root": str(root), "options": opts},
            "optim": {"lr": 1e-3, "warmup_steps": 1}, "train": t}


def losses(run) -> list[float]:
    return [json.loads(line)["loss"] for line in (Path(run) / "metrics.jsonl").read_text().splitlines()]


def test_bad_augment_fails_at_config_load_in_one_line(tmp_path, sig_root, capsys):
    cfg = tmp_path / "pre.yaml"
    cfg.write_text(yaml.safe_dump(raw_config(sig_root)))
    with pytest.raises(ConfigError, match=r"data\.options\.augment\.scale.*1\.5"):
        load_config(cfg, ["data.options.augment={scale: 1.5}"])
    code = main(["pretrain", "--config", str(cfg), "--set", "data.options.augment={wobble: 0.1}",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "data.options.augment" in err and "'wobble'" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_every_signal_npz_option_is_checked_at_config_load(tmp_path, sig_root):
    """Not only augment: config load reads data.options with the kind's one reader (signal_npz_options)."""
    cfg = tmp_path / "pre.yaml"
    cfg.write_text(yaml.safe_dump(raw_config(sig_root)))
    for override, message in (("data.options.normalize=zscore", r"data\.options\.normalize.*'zscore'"),
                              ("data.options.length_policy=stretch", r"data\.options\.length_policy.*'stretch'"),
                              ("data.options.wobble=1", r"unknown data\.options \['wobble'\]")):
        with pytest.raises(ConfigError, match=message):
            load_config(cfg, [override])


def test_batch_augment_only_for_signals_with_the_option_and_the_switch_on(sig_root):
    on = config_from_dict(raw_config(sig_root, augment=AUG))
    assert isinstance(build_batch_augment(on), SignalAugment) and dict(build_batch_augment(on).spec) == AUG
    assert build_batch_augment(config_from_dict(raw_config(sig_root))) is None
    on.data.augment = False  # data.augment switches every training augmentation off
    assert build_batch_augment(on) is None
    assert augment_seed(0, 3, 0, 0) != augment_seed(0, 4, 0, 0) != augment_seed(1, 3, 0, 0)
    assert 0 <= augment_seed(2**31, 10**9, 7, 3) < 2**63


def test_pretrain_and_finetune_augment_training_only(tmp_path, sig_root, monkeypatch):
    plain = part.pretrain(raw_config(sig_root), out=tmp_path / "plain", progress=False)
    aug = part.pretrain(raw_config(sig_root, augment=AUG), out=tmp_path / "aug", progress=False)
    again = part.pretrain(raw_config(sig_root, augment=AUG), out=tmp_path / "again", progress=False)
    assert losses(aug.run_dir) == losses(again.run_dir)  # seeded: the same run twice
    assert losses(aug.run_dir) != losses(plain.run_dir)  # and the batches are augmented
    assert load_config(aug.run_dir / "config.yaml").data.options["augment"] == AUG  # recorded in the run
    calls = []
    orig = SignalAugment.__call__
    monkeypatch.setattr(SignalAugment, "__call__", lambda self, x, g=None: calls.append(x.shape) or orig(self, x, g))
    sup = {"name": "supervised", "options": {"pos_embed": True}}
    ft = part.finetune(raw_config(sig_root, objective=sup, augment={"scale": 0.3}, max_steps=3), init=aug.run_dir,
                       out=tmp_path / "ft", progress=False)
    assert calls == [(8, C, T)] * 3  # one per training batch of the fine-tune; not in its test evaluation
    assert ft.results["num_samples"] == 8

    def refuse(self, x, g=None):
        raise AssertionError("an evaluation path augmented its input")

    monkeypatch.setattr(SignalAugment, "__call__", refuse)
    part.evaluate(ft.run_dir, split="test", out=tmp_path / "ev.json", verbose=False)
    part.evaluate(aug.run_dir, split="test", out=tmp_path / "pretext.json", verbose=False, seed=0)
    part.probe(aug.run_dir, out=tmp_path / "probe.json", epochs=3, verbose=False, seed=0)


class _Killed(Exception):
    pass


class _KillAt(torch.nn.Module):
    def __init__(self, inner, at):
        super().__init__()
        self.inner, self.backbone, self.calls, self.at = inner, inner.backbone, 0, at

    def forward(self, x, generator=None):
        self.calls += 1
        if self.calls >= self.at:
            raise _Killed(f"killed at call {self.calls}")
        return self.inner(x, generator=generator)

    def state_dict(self, *a, **k):
        return self.inner.state_dict(*a, **k)


@pytest.mark.slow
@pytest.mark.parametrize("accum", [1, 2])
def test_resume_with_augmentation_equals_uninterrupted(tmp_path, sig_root, accum):
    raw = raw_config(sig_root, augment=AUG, max_steps=6)
    raw["optim"]["accum_steps"] = accum
    full = part.pretrain(raw, out=tmp_path / "full", progress=False)
    cfg = config_from_dict(raw)
    torch.manual_seed(cfg.train.seed)
    with pytest.raises(_Killed):
        train(cfg, tmp_path / "cut", objective=_KillAt(build_objective(cfg), 4 * accum + 1), progress=False)
    resumed = part.pretrain(None, out=tmp_path / "cut", resume=True, progress=False)
    a, b = losses(full.run_dir), losses(resumed.run_dir)
    assert len(a) == len(b) == 6 and max(abs(u - v) for u, v in zip(a, b)) <= 1e-6, (a, b)
    wa = ck.load_weights(full.run_dir / "weights.safetensors")
    wb = ck.load_weights(resumed.run_dir / "weights.safetensors")
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=0, atol=1e-6)
