"""Honest bookkeeping (issue 25, item 3): a checkpoint is *good* only when its weights are finite and its
interval applied at least one step with a finite loss within the spike factor, and the exit-3 message names
no other; ``--resume`` on changed data is refused unless ``--allow-data-change`` says so, and then the
change is recorded with its step (``data_changes.jsonl``), never rewriting what the run recorded before."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import part
from part.cli import main
from part.config import config_from_dict
from part.engine import checkpoint as ck
from part.engine.trainer import TrainingDiverged, train

from .helpers import cut_run, ScriptedLoss, SigtermAt, snapshot, tiny_raw

fault = pytest.mark.fault


@fault
def test_all_skipped_interval_is_not_good_and_exit_3_names_the_last_good(tmp_path, data):
    """nan_policy skip: steps 1-4 fine (checkpoints 2, 4 good), 5-6 spiked (6 not good), 7-9 skipped (8: an
    interval with no applied step), the 4th NaN stops at step 10. The message must name step 4, not 8."""
    from part.engine import build_objective

    cfg = config_from_dict(tiny_raw(data, max_steps=20, ckpt_every=2, keep_last=1, nan_policy="skip",
                                    max_nan_skips=3))
    obj = ScriptedLoss(build_objective(cfg), spike=5, nan=7)
    with pytest.raises(TrainingDiverged) as info:
        train(cfg, tmp_path / "run", objective=obj, progress=False)
    assert "step_0000004" in str(info.value), str(info.value)
    ckdir = tmp_path / "run" / "checkpoints"
    assert [p.name for p in ck.verified_checkpoints(ckdir)] == ["step_0000004.pt"]
    skipped = ck.read_manifest(ckdir / "rejected" / "step_0000008.pt")
    assert skipped["good"] is False and skipped["applied_steps"] == 0 and skipped["loss"] is None


@fault
def test_checkpoint_with_non_finite_weights_is_not_good(tmp_path, data):
    """A finite loss does not make a checkpoint good when a weight is infinite (a buffer no loss reads)."""
    from part.engine import build_objective

    cfg = config_from_dict(tiny_raw(data, max_steps=4, ckpt_every=2))
    obj = build_objective(cfg)
    obj.register_buffer("unused_stat", torch.zeros(2))

    calls = {"n": 0}
    real_forward = obj.forward

    def forward(x, generator=None):
        calls["n"] += 1
        if calls["n"] == 3:
            obj.unused_stat.fill_(float("inf"))
        return real_forward(x, generator=generator)

    obj.forward = forward
    train(cfg, tmp_path / "run", objective=obj, progress=False)
    ckdir = tmp_path / "run" / "checkpoints"
    manifests = {p.name: ck.read_manifest(p) for p in ck.verified_checkpoints(ckdir)}
    assert manifests["step_0000002.pt"]["good"] is True
    assert manifests["step_0000004.pt"]["good"] is False
    assert manifests["step_0000004.pt"]["finite_weights"] is False


# --- the data a run trained on --------------------------------------------------------------------------
def _other_data(folder: Path, n: int = 64, seed: int = 1) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    path = folder / "tiny.npz"
    np.savez(path, x=rng.integers(0, 256, (n, 8, 8), dtype=np.uint8), y=rng.integers(0, 4, n))
    return path


@fault
@pytest.mark.parametrize("n", [64, 48], ids=["same size, other content", "other number of samples"])
def test_resume_on_other_data_is_refused_then_recorded_with_allow_data_change(tmp_path, data, monkeypatch,
                                                                               capsys, n):
    run = cut_run(tmp_path, data, monkeypatch, at=6)
    other = _other_data(tmp_path / "other", n=n)
    before = snapshot(run)
    capsys.readouterr()
    rc = main(["pretrain", "--out", str(run), "--resume", "--no-progress", "--set", f"data.root={other}"])
    err = [ln for ln in capsys.readouterr().err.strip().splitlines() if not ln.startswith(("warning:", "note:"))]
    assert rc == 2 and len(err) == 1, err
    assert "data differs" in err[0] and "step 6" in err[0] and "--allow-data-change" in err[0], err
    assert ("number of samples: 64 -> 48" in err[0]) if n == 48 else ("content" in err[0] or "labels" in err[0])
    assert snapshot(run) == before  # nothing changed, the recorded config included
    assert yaml.safe_load((run / "config.yaml").read_text())["data"]["root"] == str(data)

    rc = main(["pretrain", "--out", str(run), "--resume", "--no-progress", "--allow-data-change",
               "--set", f"data.root={other}"])
    assert rc == 0
    lines = (run / "data_changes.jsonl").read_text().splitlines()
    assert len(lines) == 1
    rec = json.loads(lines[0])
    assert rec["step"] == 6 and rec["before"]["root"] == str(data) and rec["after"]["root"] == str(other)
    assert any("data.root" in c for c in rec["changes"])
    from part.engine.info import format_info, info

    assert "data from  step 6" in format_info(info(run))


@fault
def test_resume_on_the_same_data_moved_elsewhere_continues_and_records_the_move(tmp_path, data, monkeypatch):
    import shutil

    run = cut_run(tmp_path, data, monkeypatch, at=6)
    moved = tmp_path / "mnt" / "tiny.npz"
    moved.parent.mkdir()
    shutil.copy(data, moved)
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress", "--set", f"data.root={moved}"]) == 0
    rec = json.loads((run / "data_changes.jsonl").read_text())
    assert rec["step"] == 6 and "moved" in rec["changes"][0]
    assert rec["before"]["content"] == rec["after"]["content"]


@pytest.mark.bad_input
def test_allow_data_change_without_resume_is_one_line(tmp_path, config, capsys):
    rc = main(["pretrain", "--config", str(config), "--out", str(tmp_path / "r"), "--allow-data-change"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--allow-data-change" in err[0], err
    assert not (tmp_path / "r").exists()


@fault
@pytest.mark.parametrize("objective,command", [("part", "pretrain"), ("supervised", "finetune")])
def test_a_stop_names_the_command_that_continues_the_run(tmp_path, data, objective, command):
    from part.engine import TrainingStopped, build_objective

    raw = tiny_raw(data, max_steps=8)
    if objective == "supervised":
        raw["objective"] = {"name": "supervised", "options": {"num_classes": 4}}
    cfg = config_from_dict(raw)
    with pytest.raises(TrainingStopped) as info:
        train(cfg, tmp_path / "run", objective=SigtermAt(build_objective(cfg), at=2), progress=False)
    assert info.value.step == 2 and info.value.exit_code == 143
    assert str(info.value).endswith(f"; continue with: part {command} --out {tmp_path / 'run'} --resume")
    assert [p.name for p in ck.verified_checkpoints(tmp_path / "run" / "checkpoints")] == ["step_0000002.pt"]


@fault
def test_a_stop_inside_an_ablation_says_to_rerun_the_ablation(tmp_path, monkeypatch):
    from part.ablation import run as ablation_run
    from part.engine import TrainingStopped
    from tests.ablation.golden import tiny, write_splits

    def stopped(*a, **k):
        raise TrainingStopped("stopped at step 1 of 2 by SIGTERM; checkpoint c.pt", 1, 15, "part pretrain --out x --resume")

    monkeypatch.setattr(ablation_run, "pretrain", stopped)
    with pytest.raises(TrainingStopped) as info:
        part.ablate(tiny(write_splits(tmp_path / "data")), out=tmp_path / "abl", verbose=False, progress=False)
    assert info.value.exit_code == 143 and info.value.step == 1
    assert str(info.value).startswith("stopped at step 1 of 2 by SIGTERM; checkpoint c.pt; continue with: the same "
                                      f"part ablate command on --out {tmp_path / 'abl'}")
    assert "part pretrain" not in str(info.value)
