"""DDP on CPU: 2 gloo processes launched by torchrun, as users launch it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from part.engine import checkpoint as ck

from .conftest import tiny_config
from .ddp_grads import grads_for_rank

HERE = Path(__file__).parent


def _torchrun(args, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(HERE.parents[1] / "src"), os.environ.get("PYTHONPATH", "")]))
    # --standalone: the rendezvous store binds a free port itself (no port picked here and then raced for)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    return res


def _deterministic_config(npz, tmp_path, **train):
    raw = tiny_config(npz, **train)
    raw["model"]["drop_path_rate"] = 0.0
    raw["objective"].update({"name": "part_grid", "num_pairs": "all"})  # no sampling randomness
    raw["data"]["augment"] = False
    p = tmp_path / "ddp.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


@pytest.mark.slow
def test_ddp_gradients_equal_single_process(tmp_path, npz_data):
    cfg = _deterministic_config(npz_data, tmp_path)
    _torchrun([str(HERE / "ddp_grads.py"), str(cfg), str(tmp_path / "g.pt")])
    ddp = torch.load(tmp_path / "g.pt", weights_only=True)
    # one process on the same global batch (the union of both ranks' shards)
    objective, x = grads_for_rank(cfg, 0, 1)
    objective(x).loss.backward()
    single = {k: p.grad for k, p in objective.named_parameters() if p.grad is not None}
    assert set(ddp) == set(single)
    for k in single:
        torch.testing.assert_close(ddp[k], single[k], rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_torchrun_pretrain_end_to_end(tmp_path, npz_data):
    cfg = _deterministic_config(npz_data, tmp_path, max_steps=3, ckpt_every=3)
    _torchrun(["-m", "part", "pretrain", "--config", str(cfg), "--out", str(tmp_path / "ddp"), "--no-progress"])
    from part.api import pretrain

    single = pretrain(cfg, out=tmp_path / "one", progress=False)
    a = [json.loads(l)["loss"] for l in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    b = [r["loss"] for r in single.history]
    # logged values are all-reduced: the global batch's loss, as one process computes it
    assert len(a) == len(b) == 3
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4, (a, b)
    wa = ck.load_weights(tmp_path / "ddp" / "weights.safetensors")
    wb = ck.load_weights(tmp_path / "one" / "weights.safetensors")
    for k in wb:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-3, atol=1e-4)
