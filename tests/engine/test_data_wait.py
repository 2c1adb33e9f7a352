"""The data-wait share: the part of each logged interval the loop spent blocked on the loader."""

import json
import time

import torch

from part.config import config_from_dict
from part.engine import train

from .conftest import tiny_config


class _Slow(torch.utils.data.Dataset):
    """8x8 grayscale items that take ``delay`` seconds each to load."""

    def __init__(self, n=32, delay=0.0):
        self.n, self.delay = n, delay

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        time.sleep(self.delay)
        return torch.rand(1, 8, 8), 0


def _records(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_slow_loader_shows_a_large_wait_share(tmp_path, npz_data, capsys):
    cfg = config_from_dict(tiny_config(npz_data, max_steps=3))
    # 8 items x 50 ms = 400 ms of loading per step against a few ms of compute on a 1-block ViT
    train(cfg, tmp_path / "slow", dataset=_Slow(delay=0.05), progress=False)
    recs = _records(tmp_path / "slow")
    assert all(0.0 <= r["data_wait"] <= 1.0 for r in recs)
    assert min(r["data_wait"] for r in recs) > 0.5, recs
    assert "data wait" in capsys.readouterr().out  # the printed line when no bar is drawn


def test_slow_step_shows_a_small_wait_share(tmp_path, npz_data):
    from part.engine.builders import build_objective

    cfg = config_from_dict(tiny_config(npz_data, max_steps=4, ckpt_every=100))
    objective = build_objective(cfg)
    inner = objective.forward

    def slow_forward(*args, **kwargs):  # 200 ms of "compute" per step against instant items
        time.sleep(0.2)
        return inner(*args, **kwargs)

    objective.forward = slow_forward
    train(cfg, tmp_path / "fast", objective=objective, dataset=_Slow(delay=0.0), progress=False)
    recs = _records(tmp_path / "fast")
    assert all(0.0 <= r["data_wait"] < 0.3 for r in recs), recs


def test_data_wait_reaches_the_trackers_and_the_bar(tmp_path, npz_data, monkeypatch):
    from part.engine import hooks
    from part.engine.trackers import scalars

    assert scalars({"step": 1, "loss": 1.0, "data_wait": 0.25})["train/data_wait"] == 0.25
    seen = []
    monkeypatch.setenv("PART_PROGRESS", "1")
    real = hooks.Logger.tick

    def tick(self, rec):
        real(self, rec)
        if self.bar is not None and rec:
            seen.append(self.bar.postfix)

    monkeypatch.setattr(hooks.Logger, "tick", tick)
    cfg = config_from_dict(tiny_config(npz_data, max_steps=2))
    train(cfg, tmp_path / "bar", dataset=_Slow(), progress=True)
    assert seen and all("wait=" in p for p in seen), seen
