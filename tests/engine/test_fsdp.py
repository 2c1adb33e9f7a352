"""train.strategy fsdp (FSDP2) against ddp on CPU: 2 gloo processes under torchrun, as users launch it; full
state-dict checkpoints that resume across strategies and world sizes; activation checkpointing."""

import json
import shutil

import pytest
import torch
import yaml

from part.cli import main
from part.config import config_from_dict
from part.engine import checkpoint as ck
from part.engine import train
from part.engine.strategy import blocks_of, checkpointed_blocks, named_optim_state, plain_optim_state

from .conftest import tiny_config
from .test_ddp import _deterministic_config, _torchrun


def _losses(run):
    return [json.loads(line)["loss"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def _close(a, b, rtol=1e-4, atol=1e-5):
    wa, wb = ck.load_weights(a / "weights.safetensors"), ck.load_weights(b / "weights.safetensors")
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=rtol, atol=atol, msg=k)
    assert max(abs(x - y) for x, y in zip(_losses(a), _losses(b))) < 1e-4


def _pretrain(cfg, out, *sets, procs=2):
    args = ["-m", "part", "pretrain", "--config", str(cfg), "--out", str(out), "--no-progress", "--resume", "auto"]
    for s in sets:
        args += ["--set", s]
    if procs == 2:
        _torchrun(args)
    else:
        assert main(args[2:]) == 0


def _interrupted_copy(run, dst, at):
    """``run`` as a kill right after its checkpoint of step ``at`` would have left it."""
    shutil.copytree(run, dst)
    for p in ("summary.json", "weights.safetensors", "export", "plots"):
        shutil.rmtree(dst / p, ignore_errors=True) if (dst / p).is_dir() else (dst / p).unlink(missing_ok=True)
    for p in (dst / "checkpoints").glob("step_*"):
        if int(p.name[5:12]) > at:
            p.unlink()
    return dst


@pytest.mark.slow
def test_fsdp_equals_ddp_and_checkpoints_cross_strategies_and_world_sizes(tmp_path, npz_data):
    cfg = _deterministic_config(npz_data, tmp_path, max_steps=4, ckpt_every=2, keep_last=3, threads=1)
    raw = yaml.safe_load(cfg.read_text())
    raw["model"]["depth"] = 2
    cfg.write_text(yaml.safe_dump(raw))
    _pretrain(cfg, tmp_path / "ddp")
    # FSDP2 with activation checkpointing: the same losses and weights as DDP
    _pretrain(cfg, tmp_path / "fsdp", "train.strategy=fsdp", "train.activation_checkpointing=true")
    _close(tmp_path / "ddp", tmp_path / "fsdp")
    weights, state = ck.load_checkpoint(ck.list_checkpoints(tmp_path / "fsdp" / "checkpoints")[0])
    assert all(isinstance(k, int) for k in state["optimizer"]["state"])  # one checkpoint format for both
    # an fsdp checkpoint resumes under ddp, and a ddp one under fsdp, to the same end
    _pretrain(cfg, _interrupted_copy(tmp_path / "fsdp", tmp_path / "f2d", 2), "train.strategy=ddp")
    _close(tmp_path / "fsdp", tmp_path / "f2d")
    _pretrain(cfg, _interrupted_copy(tmp_path / "ddp", tmp_path / "d2f", 2), "train.strategy=fsdp",
              "train.fsdp_reshard=false")  # blocks kept gathered from forward to backward: same result
    _close(tmp_path / "ddp", tmp_path / "d2f")
    # and on another world size (one process continues the 2-rank fsdp run)
    one = _interrupted_copy(tmp_path / "fsdp", tmp_path / "f2one", 2)
    assert main(["pretrain", "--out", str(one), "--resume", "--no-progress", "--set", "train.strategy=ddp"]) == 0
    assert json.loads((one / "summary.json").read_text())["step"] == 4 and len(_losses(one)) == 4


def test_activation_checkpointing_leaves_the_loss_unchanged(tmp_path, npz_data):
    raw = tiny_config(npz_data, max_steps=3)
    raw["model"].update({"depth": 2, "drop_path_rate": 0.2})  # random drop-path: replayed in the recompute
    a = train(config_from_dict(raw), tmp_path / "plain", progress=False)
    raw["train"]["activation_checkpointing"] = True
    b = train(config_from_dict(raw), tmp_path / "ac", progress=False)
    assert [r["loss"] for r in a.history] == [r["loss"] for r in b.history]
    wa, wb = ck.load_weights(tmp_path / "plain" / "weights.safetensors"), ck.load_weights(tmp_path / "ac" / "weights.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_selective_checkpointing_wraps_every_kth_block():
    from part.engine.builders import build_objective

    raw = tiny_config("unused.npz")
    raw["model"]["depth"] = 4
    objective = build_objective(config_from_dict(raw))
    assert len(blocks_of(objective)) == 4
    chosen = checkpointed_blocks(objective, 2)
    assert chosen == blocks_of(objective)[1::2]
    assert set(objective.state_dict()) == set(build_objective(config_from_dict(raw)).state_dict())  # names kept


def test_optimizer_state_converts_both_ways():
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    opt = torch.optim.AdamW([{"params": [model[0].weight, model[1].weight]},
                             {"params": [model[0].bias, model[1].bias], "weight_decay": 0.0}])
    model(torch.randn(5, 3)).sum().backward()
    opt.step()
    plain = opt.state_dict()
    named = named_optim_state(plain, opt, model)
    assert named["param_groups"][1]["params"] == ["0.bias", "1.bias"]
    again = plain_optim_state(named)
    assert again["param_groups"] == plain["param_groups"]
    assert all(torch.equal(again["state"][i]["exp_avg"], plain["state"][i]["exp_avg"]) for i in plain["state"])


@pytest.mark.bad_input
@pytest.mark.parametrize("override,expected", [
    ("train.strategy=zero3", "train.strategy must be one of ddp, fsdp, got 'zero3'"),
    ("train.amp=fp16", "train.amp must be auto, bf16 or none with train.strategy fsdp"),
    ("train.activation_checkpointing=-1", "train.activation_checkpointing must be true (every block)"),
    ("train.activation_checkpointing=often", "train.activation_checkpointing must be true (every block)"),
])
def test_bad_strategy_inputs(tmp_path, npz_data, capsys, override, expected):
    cfg = tmp_path / "c.yaml"
    raw = tiny_config(npz_data)
    raw["train"]["strategy"] = "fsdp"
    cfg.write_text(yaml.safe_dump(raw))
    rc = main(["pretrain", "--config", str(cfg), "--out", str(tmp_path / "r"), "--set", override])
    err = capsys.readouterr().err
    assert rc == 2 and expected in err and len(err.strip().splitlines()) == 1, err
