"""Preemption as clusters do it (issue 25, item 6): ``scancel`` and most schedulers send SIGTERM to the whole
process group, DataLoader workers included. The run must end as it does when only the main process gets the
signal: a verified checkpoint, one line, exit 143, and a resume that reaches the uninterrupted end state."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from part.engine import checkpoint as ck

from .helpers import env, part_cmd, records, run_cli, same_end_state, tiny_raw, wait_for_lines, write_config


def _group_sigterm(cfg, run, delay: float):
    """Start ``part pretrain`` in its own process group (as a batch job is), SIGTERM the whole group
    ``delay`` seconds after its third log line, as ``scancel`` does; return (exit code, stderr lines)."""
    proc = subprocess.Popen(part_cmd("pretrain", "--config", str(cfg), "--out", str(run), "--no-progress"),
                            env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    assert wait_for_lines(run, 3, proc, poll=0.002), proc.stderr.read()
    time.sleep(delay)
    os.killpg(proc.pid, signal.SIGTERM)  # the main process and its DataLoader workers
    rc = proc.wait(timeout=120)
    return rc, proc.stderr.read().strip().splitlines()


@pytest.mark.fault
@pytest.mark.slow
@pytest.mark.parametrize("accum", [1, 2])
def test_sigterm_to_the_process_group_with_workers_checkpoints_and_exits_143(tmp_path, data, accum):
    raw = tiny_raw(data, max_steps=100, ckpt_every=1000, log_every=1)
    raw["data"]["num_workers"] = 2
    raw["optim"]["accum_steps"] = accum
    cfg = write_config(tmp_path / "c.yaml", raw)
    for i, delay in enumerate((0.0, 0.15, 0.35)):  # mid-step, waiting for a batch, at an epoch's start ...
        run = tmp_path / f"run{i}"
        rc, err = _group_sigterm(cfg, run, delay)
        assert rc == 143, (delay, err)
        assert len(err) == 1 and "stopped at step" in err[0] and "by SIGTERM" in err[0], err
        step = int(err[0].split("stopped at step ")[1].split()[0])
        assert [p.name for p in ck.verified_checkpoints(run / "checkpoints")] == [f"step_{step:07d}.pt"]
        assert records(run)[-1]["step"] == step
    done = run_cli("pretrain", "--out", str(run), "--resume", "--no-progress")
    assert done.returncode == 0, done.stderr
    ref = run_cli("pretrain", "--config", str(cfg), "--out", str(tmp_path / "ref"), "--no-progress")
    assert ref.returncode == 0, ref.stderr
    same_end_state(tmp_path / "ref", run)
