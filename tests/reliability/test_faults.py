"""Faults a multi-day run must survive with nothing lost: kills, corrupt checkpoints, a second writer,
preemption signals, a full disk, a torn log line, divergence. Each ends in a bit-identical final state
(weights and metrics, wall-clock throughput aside) or in a clear stop that loses no verified checkpoint."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import part
from part.cli import main
from part.config import config_from_dict
from part.engine import checkpoint as ck
from part.engine.runfolder import RunLock
from part.engine.signals import StopRequests
from part.engine.trainer import TrainingDiverged, train

from .helpers import (cut_run, ScriptedLoss, env, logged_lines, part_cmd, records, run_cli, same_end_state, snapshot, tiny_raw, wait_for_lines,
                      write_config)

fault = pytest.mark.fault


@pytest.fixture
def reference(tmp_path, data):
    """The uninterrupted run every faulty one must reproduce bit for bit."""
    return part.pretrain(tiny_raw(data), out=tmp_path / "reference", progress=False).run_dir


def _newest(run: Path) -> Path:
    return ck.verified_checkpoints(run / "checkpoints")[-1]


# --- corrupt newest checkpoint: fall back to the next older verified one ----------------------------
def _flip(p: Path):
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 0x40
    p.write_bytes(bytes(b))


CORRUPTIONS = {
    "bit flip in weights": lambda c: _flip(c.with_suffix(".safetensors")),
    "bit flip in state": lambda c: _flip(c),
    "truncated weights": lambda c: c.with_suffix(".safetensors").write_bytes(c.with_suffix(".safetensors").read_bytes()[:100]),
    "truncated state": lambda c: c.write_bytes(c.read_bytes()[:-50]),
    "empty state": lambda c: c.write_bytes(b""),
    "garbled safetensors header": lambda c: c.with_suffix(".safetensors").write_bytes(
        b"\xff" * 16 + c.with_suffix(".safetensors").read_bytes()[16:]),
    "manifest garbled": lambda c: c.with_suffix(".json").write_text("{not json"),
}


def test_digest_mismatch_names_the_file_and_what_differs(tmp_path):
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"0123456789")
    want = ck.file_digest(f)
    assert ck.digest_mismatch(f, want) is None
    _flip(f)
    assert "does not match its recorded SHA-256" in ck.digest_mismatch(f, want) and str(f) in ck.digest_mismatch(f, want)
    f.write_bytes(b"01234")
    assert ck.digest_mismatch(f, want) == f"{f} has 5 bytes, 10 recorded"
    f.unlink()
    assert ck.digest_mismatch(f, want) == f"{f} is missing"


@fault
@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corrupt_newest_checkpoint_falls_back(tmp_path, data, reference, kind, capsys, monkeypatch):
    run = cut_run(tmp_path, data, monkeypatch, at=9)
    newest = _newest(run)
    assert newest.name == "step_0000009.pt"
    CORRUPTIONS[kind](newest)
    capsys.readouterr()
    part.pretrain(None, out=run, resume=True, progress=False)
    err = capsys.readouterr().err
    assert "step_0000009" in err and "unusable" in err and "set aside" in err
    assert (run / "checkpoints" / "rejected" / "step_0000009.reason.txt").is_file()
    same_end_state(reference, run)


@fault
def test_all_checkpoints_corrupt_is_one_line_error(tmp_path, data, capsys, monkeypatch):
    run = cut_run(tmp_path, data, monkeypatch, at=9)
    for c in ck.verified_checkpoints(run / "checkpoints"):
        _flip(c)
    before = snapshot(run)
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "no usable checkpoint" in err[-1] and str(run / "checkpoints") in err[-1]
    # bad checkpoints are set aside, never deleted
    assert sorted(p.name for p in (run / "checkpoints" / "rejected").glob("*.pt")) == ["step_0000006.pt", "step_0000009.pt"]
    assert len(before) == len(snapshot(run)) - 2  # + two reason notes


@fault
def test_keep_last_never_deletes_before_successor_is_verified(tmp_path, monkeypatch):
    ckdir = tmp_path / "checkpoints"
    for s in (1, 2):
        ck.save_checkpoint(ckdir, s, {"w": torch.full((3,), float(s))}, {"step": s}, keep_last=1)
    assert [p.name for p in ck.verified_checkpoints(ckdir)] == ["step_0000002.pt"]
    real = ck.write_json

    def crash_on_manifest(path, data):
        if Path(path).name == "step_0000003.json":
            raise OSError(28, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(ck, "write_json", crash_on_manifest)
    with pytest.raises(OSError):
        ck.save_checkpoint(ckdir, 3, {"w": torch.zeros(3)}, {"step": 3}, keep_last=1)
    monkeypatch.undo()
    # step 3 has no manifest: step 2 stays, and is what a resume uses
    assert [p.name for p in ck.verified_checkpoints(ckdir)] == ["step_0000002.pt"]
    weights, state, path = ck.load_latest(ckdir)
    assert state["step"] == 2 and path.name == "step_0000002.pt"


@fault
def test_a_stops_interim_checkpoint_is_outside_keep_last_and_goes_once_a_later_one_is_verified(tmp_path):
    ckdir = tmp_path / "checkpoints"

    def save(step, interim=False):
        ck.save_checkpoint(ckdir, step, {"w": torch.full((3,), float(step))}, {"step": step}, keep_last=2,
                           info={"interim": True} if interim else None)
        return [ck.checkpoint_step(p) for p in ck.verified_checkpoints(ckdir)]

    assert save(2) == [2] and save(4) == [2, 4]
    assert save(5, interim=True) == [2, 4, 5]  # the stop's own state: the newest, what a resume reads
    assert save(6) == [4, 6]  # the regular ones a run never stopped keeps (a probe curve's points)
    assert save(7, interim=True) == [4, 6, 7] and save(7, interim=True) == [4, 6, 7]
    assert save(8) == [6, 8]


# --- disk full -------------------------------------------------------------------------------------
@fault
def test_disk_full_during_checkpoint(tmp_path, data, reference, monkeypatch, capsys):
    run = tmp_path / "run"
    cfg = write_config(tmp_path / "c.yaml", tiny_raw(data))
    real_save = torch.save

    def enospc(obj, f, *a, **k):
        if "step_0000009" in str(f):
            raise OSError(28, "No space left on device")
        return real_save(obj, f, *a, **k)

    monkeypatch.setattr(torch, "save", enospc)
    assert main(["pretrain", "--config", str(cfg), "--out", str(run), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "step_0000009.pt" in err[0] and "No space left on device" in err[0]
    assert "Traceback" not in err[0]
    monkeypatch.undo()
    # the older checkpoints are intact and verified; no temp file is left
    assert [p.name for p in ck.verified_checkpoints(run / "checkpoints")] == ["step_0000003.pt", "step_0000006.pt"]
    assert all(ck.verify_checkpoint(p) is None for p in ck.verified_checkpoints(run / "checkpoints"))
    assert not list((run / "checkpoints").glob("*.tmp"))
    assert main(["pretrain", "--out", str(run), "--resume", "--no-progress"]) == 0
    same_end_state(reference, run)


# --- one writer per folder ---------------------------------------------------------------------------
_HOLD = """
import sys, time
from part.engine.runfolder import RunLock
RunLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(120)
"""


@pytest.mark.slow
@fault
def test_second_writer_is_refused_and_first_is_intact(tmp_path, data, reference):
    run = tmp_path / "reference"  # a finished run, held by another process
    before = snapshot(run)
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(run)], env=env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        cfg = write_config(tmp_path / "c.yaml", tiny_raw(data))
        for args in (["--overwrite"], ["--resume"]):
            res = run_cli("pretrain", "--config", str(cfg), "--out", str(run), "--no-progress", *args) if args != ["--resume"] \
                else run_cli("pretrain", "--out", str(run), "--resume", "--no-progress")
            lines = res.stderr.strip().splitlines()
            assert res.returncode == 2 and len(lines) == 1, res.stderr
            assert "in use by another part process" in lines[0] and f"pid {holder.pid}" in lines[0]
        assert snapshot(run) == before
    finally:
        holder.kill()
        holder.wait()
    # the kernel frees the lock of a killed process: the folder is usable again at once
    with RunLock(run):
        pass


# --- kill -9 at random moments, some inside checkpoint writes; requeued with the same command -----------
@fault
@pytest.mark.slow
def test_random_kill_loop_resumes_bit_identical(tmp_path, data):
    raw = tiny_raw(data, max_steps=40, ckpt_every=1, keep_last=2)
    cfg = write_config(tmp_path / "c.yaml", raw)
    ref = run_cli("pretrain", "--config", str(cfg), "--out", str(tmp_path / "ref"), "--no-progress")
    assert ref.returncode == 0, ref.stderr
    run = tmp_path / "run"
    cmd = part_cmd("pretrain", "--config", str(cfg), "--out", str(run), "--resume", "auto", "--no-progress")
    rng = random.Random(0)
    kills = 0
    for attempt in range(12):
        proc = subprocess.Popen(cmd, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if kills < 4:
            target = rng.randint(2, 8)  # kill after a few more logged steps of this attempt
            start = logged_lines(run)
            if wait_for_lines(run, start + target, proc, poll=0.002):
                time.sleep(rng.random() * 0.02)  # land anywhere in the step, checkpoint writes included
                proc.kill()
                kills += 1
        rc = proc.wait(timeout=300)
        if rc == 0:
            break
        assert rc == -signal.SIGKILL, proc.stderr.read()
    assert kills == 4 and rc == 0
    same_end_state(tmp_path / "ref", run)


# --- SIGTERM (preemption) and Ctrl-C ----------------------------------------------------------------------
@fault
@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_checkpoints_at_the_stop_step_and_resumes_bit_identical(tmp_path, data, sig):
    raw = tiny_raw(data, max_steps=400, ckpt_every=1000, log_every=1)
    cfg = write_config(tmp_path / "c.yaml", raw)
    run = tmp_path / "run"
    proc = subprocess.Popen(part_cmd("pretrain", "--config", str(cfg), "--out", str(run), "--no-progress"),
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_lines(run, 5, proc)
    proc.send_signal(sig)
    rc = proc.wait(timeout=120)
    err = proc.stderr.read().strip().splitlines()
    assert rc == 128 + sig, err
    assert len(err) == 1 and "stopped at step" in err[0] and f"part pretrain --out {run} --resume" in err[0], err
    step = int(err[0].split("stopped at step ")[1].split()[0])
    assert 5 <= step < 400  # mid-interval: no regular checkpoint before step 1000
    assert [p.name for p in ck.verified_checkpoints(run / "checkpoints")] == [f"step_{step:07d}.pt"]
    assert ck.read_manifest(run / "checkpoints" / f"step_{step:07d}.pt")["interim"] is True  # off ckpt_every
    assert records(run)[-1]["step"] == step
    done = run_cli("pretrain", "--out", str(run), "--resume", "--no-progress")
    assert done.returncode == 0, done.stderr
    ref = run_cli("pretrain", "--config", str(cfg), "--out", str(tmp_path / "ref"), "--no-progress")
    assert ref.returncode == 0
    same_end_state(tmp_path / "ref", run)
    kept = [[p.name for p in ck.verified_checkpoints(r / "checkpoints")] for r in (run, tmp_path / "ref")]
    assert kept[0] == kept[1] == ["step_0000400.pt"]  # the stop's interim checkpoint went once 400 was verified


@fault
def test_second_signal_aborts_at_once():
    with StopRequests() as stops:
        os.kill(os.getpid(), signal.SIGINT)
        assert stops.requested and stops.signum == signal.SIGINT
        with pytest.raises(KeyboardInterrupt, match="second SIGINT"):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored


# --- finished runs, final writes, provenance, torn logs -------------------------------------------------
@fault
def test_resume_of_finished_run_changes_nothing(tmp_path, reference, capsys):
    before = snapshot(reference)
    assert main(["pretrain", "--out", str(reference), "--resume", "--no-progress"]) == 0
    assert "finished at step 12" in capsys.readouterr().err
    assert snapshot(reference) == before
    res = part.pretrain(None, out=reference, resume="auto", progress=False)
    assert res.finished_before and res.metrics["step"] == 12 and snapshot(reference) == before


@fault
def test_kill_during_final_write_is_finished_by_resume(tmp_path, data, reference):
    run = tmp_path / "run"
    part.pretrain(tiny_raw(data), out=run, progress=False)
    for rel in ("summary.json", "weights.safetensors"):  # a kill between the last checkpoint and summary.json
        (run / rel).unlink()
    part.pretrain(None, out=run, resume=True, progress=False)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["finished"] and summary["final"]["step"] == 12 and summary["final"]["loss"] > 0
    same_end_state(reference, run)


@fault
def test_finetune_provenance_is_written_before_training(tmp_path, data, reference):
    from part.engine import build_objective

    raw = tiny_raw(data, max_steps=4, ckpt_every=2)
    raw["objective"] = {"name": "supervised", "options": {"num_classes": 4}}
    raw["data"]["options"] = {}

    def killed_at_checkpoint(*a, **k):
        raise KeyboardInterrupt("killed")

    from part.engine.checkpointer import Checkpointer

    real = Checkpointer.save
    Checkpointer.save = killed_at_checkpoint
    try:
        with pytest.raises(KeyboardInterrupt):
            part.finetune(raw, init=reference, out=tmp_path / "ft", progress=False, evaluate=False)
    finally:
        Checkpointer.save = real
    prov = json.loads((tmp_path / "ft" / "init.json").read_text())
    assert prov["source"] == str(reference / "weights.safetensors") and prov["loaded"]


@fault
def test_torn_last_metrics_line_is_dropped_with_a_warning(tmp_path, data, reference, capsys, monkeypatch):
    run = cut_run(tmp_path, data, monkeypatch, at=9)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 10, "loss": 0.1')  # a kill in the middle of a write
    part.pretrain(None, out=run, resume=True, progress=False)
    assert f"{run / 'metrics.jsonl'}: dropped a torn last line" in capsys.readouterr().err
    same_end_state(reference, run)


@fault
def test_resume_auto_starts_then_continues(tmp_path, data, reference):
    run = tmp_path / "auto"
    raw = tiny_raw(data)
    part.pretrain(raw, out=run, resume="auto", progress=False)
    same_end_state(reference, run)
    with pytest.raises(ValueError, match=r"another config \(optim\.lr"):
        part.pretrain({**raw, "optim": {"lr": 5e-3, "warmup_steps": 2}}, out=run, resume="auto", progress=False)


# --- divergence ---------------------------------------------------------------------------------------------
@fault
def test_nan_after_a_spike_names_the_last_good_checkpoint(tmp_path, data):
    from part.engine import build_objective

    cfg = config_from_dict(tiny_raw(data, max_steps=20, ckpt_every=2, keep_last=1))
    obj = ScriptedLoss(build_objective(cfg), spike=5, nan=10)
    with pytest.raises(TrainingDiverged, match="step_0000004") as info:
        train(cfg, tmp_path / "run", objective=obj, progress=False)
    ckdir = tmp_path / "run" / "checkpoints"
    # keep_last=1 rotated the spiked checkpoints, never the good one; the spiked ones are set aside
    assert [p.name for p in ck.verified_checkpoints(ckdir)] == ["step_0000004.pt"]
    assert (ckdir / "rejected" / "step_0000008.pt").is_file()
    assert "--resume" in str(info.value)


@fault
def test_nan_before_any_checkpoint_says_none_exists(tmp_path, data, capsys):
    raw = tiny_raw(data, max_steps=20, ckpt_every=10)
    raw["optim"].update({"lr": 1e30, "clip_grad": None, "warmup_steps": 0, "weight_decay": 0.0})
    cfg = write_config(tmp_path / "c.yaml", raw)
    assert main(["pretrain", "--config", str(cfg), "--out", str(tmp_path / "r"), "--no-progress"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No good checkpoint exists" in err[0]


@fault
def test_nan_policy_skip_skips_a_bounded_number_of_steps(tmp_path, data, capsys):
    from part.engine import build_objective

    cfg = config_from_dict(tiny_raw(data, max_steps=8, nan_policy="skip", max_nan_skips=2))
    obj = ScriptedLoss(build_objective(cfg), spike=10**9, nan=4)  # NaN from the 4th step on
    with pytest.raises(TrainingDiverged, match="loss.*step.*5"):
        train(cfg, tmp_path / "run", objective=obj, progress=False)
    assert capsys.readouterr().err.count("step skipped") == 2


@pytest.mark.slow
@fault
def test_second_writer_refused_for_finetune_and_ablate(tmp_path, data):
    held = tmp_path / "held"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(held)], env=env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        ft = tiny_raw(data, max_steps=2)
        ft["objective"] = {"name": "supervised", "options": {"num_classes": 4}}
        ft_cfg = write_config(tmp_path / "ft.yaml", ft)
        ab_cfg = write_config(tmp_path / "ab.yaml", {
            "name": "held", "pretrain": tiny_raw(data, max_steps=2),
            "grid": {"objectives": ["part"], "num_pairs": [4], "seeds": [0]}})
        for argv in (["finetune", "--config", str(ft_cfg), "--init", "none", "--out", str(held), "--no-progress"],
                     ["ablate", "--config", str(ab_cfg), "--out", str(held)]):
            res = run_cli(*argv)
            lines = res.stderr.strip().splitlines()
            assert res.returncode == 2 and len(lines) == 1 and f"pid {holder.pid}" in lines[0], (argv[0], res.stderr)
        assert sorted(p.name for p in held.iterdir()) == [".lock"]
    finally:
        holder.kill()
        holder.wait()


_DDP_ENV = {"OMP_NUM_THREADS": "1"}


def _torchrun_cmd(*args: str) -> list[str]:
    # --standalone: the rendezvous store binds a free port itself (no port picked here and then raced for)
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "part", *args]


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(x) for x in (task / "children").read_text().split()]
    return kids


@fault
@pytest.mark.slow
def test_sigterm_to_one_ddp_rank_stops_all_ranks_at_the_same_step(tmp_path, data):
    raw = tiny_raw(data, max_steps=300, ckpt_every=1000, batch_size=8)
    raw["objective"].update({"name": "part_grid", "num_pairs": "all"})
    cfg = write_config(tmp_path / "ddp.yaml", raw)
    run = tmp_path / "run"
    agent = subprocess.Popen(_torchrun_cmd("pretrain", "--config", str(cfg), "--out", str(run), "--no-progress"),
                             env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_for_lines(run, 5, agent)
    workers = _children(agent.pid)
    assert len(workers) == 2
    os.kill(workers[1], signal.SIGTERM)  # one rank only: the other learns it through the stop flag
    agent.wait(timeout=180)
    err = agent.stderr.read()
    assert "stopped at step" in err, err[-3000:]
    step = int(err.split("stopped at step ")[1].split()[0])
    ckpts = ck.verified_checkpoints(run / "checkpoints")
    assert [p.name for p in ckpts] == [f"step_{step:07d}.pt"]
    state = torch.load(ckpts[0], weights_only=True)
    assert state["step"] == step and len(state["rng"]) == 2  # both ranks' RNG streams: both stopped here
    done = subprocess.run(_torchrun_cmd("pretrain", "--out", str(run), "--resume", "--no-progress"),
                          env=env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ref = subprocess.run(_torchrun_cmd("pretrain", "--config", str(cfg), "--out", str(tmp_path / "ref"),
                                       "--no-progress"), env=env(), capture_output=True, text=True, timeout=300)
    assert ref.returncode == 0, ref.stderr[-3000:]
    same_end_state(tmp_path / "ref", run)
