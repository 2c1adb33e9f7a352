"""Shared pieces of the reliability tests: a tiny run, subprocess CLI runs, run-folder snapshots."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import part
from part.engine.checkpointer import Checkpointer

from ..engine.conftest import tiny_config

SRC = Path(__file__).resolve().parents[2] / "src"


def write_data(folder: Path) -> Path:
    """64 random 8x8 grayscale images with labels, as a real .npz file."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    path = folder / "tiny.npz"
    np.savez(path, x=rng.integers(0, 256, (64, 8, 8), dtype=np.uint8), y=rng.integers(0, 4, 64))
    return path


def tiny_raw(data: Path, **train) -> dict:
    """The engine tests' tiny PART run (:func:`tests.engine.conftest.tiny_config`), 12 steps, a checkpoint every
    3, one thread (bit-identical end states need a fixed thread count)."""
    return tiny_config(data, **{"max_steps": 12, "ckpt_every": 3, "threads": 1, **train})


class Killed(BaseException):
    """Stands for kill -9 right after a checkpoint (tests that need a real kill use a subprocess)."""


def cut_run(tmp_path: Path, data: Path, monkeypatch, at: int) -> Path:
    """:func:`tiny_raw`'s run of ``data`` in ``tmp_path/cut``, killed right after its checkpoint at step ``at``
    (a run to resume)."""
    real = Checkpointer.save

    def save_then_die(self, state, *args, **kwargs):
        real(self, state, *args, **kwargs)
        if state.step == at:
            raise Killed()

    monkeypatch.setattr(Checkpointer, "save", save_then_die)
    run = tmp_path / "cut"
    with pytest.raises(Killed):
        part.pretrain(tiny_raw(data), out=run, progress=False)
    monkeypatch.setattr(Checkpointer, "save", real)
    return run


def write_config(path: Path, raw: dict) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", PART_PROGRESS="0",
                PYTHONPATH=os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]))


def part_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "part", *args]


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(part_cmd(*args), env=env(), capture_output=True, text=True, timeout=timeout)


def logged_lines(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.is_file() else 0


def wait_for_lines(run: Path, n: int, proc, timeout: float = 180, poll: float = 0.01) -> bool:
    """Wait until ``run/metrics.jsonl`` has ``n`` lines while ``proc`` runs; False if it ended first."""
    import time

    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if logged_lines(run) >= n:
            return True
        time.sleep(poll)
    return False


def snapshot(folder: Path) -> dict:
    """relative path -> sha256 of every file under ``folder`` (the lock file excluded: it names its holder)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def records(run: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock fields (throughput, data wait)."""
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        rec.pop("img_per_s", None), rec.pop("data_wait", None)
        out.append(rec)
    return out


def same_end_state(a: Path, b: Path) -> None:
    """Bit-identical final weights and metrics (wall-clock throughput aside)."""
    from safetensors.torch import load_file

    wa, wb = load_file(str(a / "weights.safetensors")), load_file(str(b / "weights.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert wa[k].dtype == wb[k].dtype and bool((wa[k] == wb[k]).all()), f"{k} differs"
    assert records(a) == records(b)
    sa, sb = (json.loads((r / "summary.json").read_text()) for r in (a, b))
    for s in (sa, sb):
        s["final"].pop("img_per_s", None), s["final"].pop("data_wait", None)
    assert sa == sb


def finished_run(tmp: Path, name: str = "run") -> tuple[Path, Path, Path]:
    """``(data, config, run)``: the tiny data and a 2-step config written under ``tmp``, and the finished
    pretraining of that config in ``tmp / name``."""
    import part

    data = write_data(tmp / "data")
    cfg = write_config(tmp / "good.yaml", tiny_raw(data, max_steps=2))
    part.pretrain(str(cfg), out=tmp / name, progress=False)
    return data, cfg, tmp / name


class WrappedObjective(torch.nn.Module):
    """An objective the trainer sees as ``inner`` (its backbone, whether it takes labels, its weights), counting
    the forward calls in ``calls``; subclasses change what a call does."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.backbone, self.calls = inner, inner.backbone, 0
        self.uses_labels = getattr(inner, "uses_labels", False)

    def state_dict(self, *a, **k):
        return self.inner.state_dict(*a, **k)


class ScriptedLoss(WrappedObjective):
    """Wrap an objective: from forward call ``spike`` on its loss is huge (finite), from call ``nan`` on NaN."""

    def __init__(self, inner, spike, nan):
        super().__init__(inner)
        self.spike, self.nan = spike, nan

    def forward(self, x, generator=None):
        self.calls += 1
        out = self.inner(x, generator=generator)
        if self.calls >= self.spike:
            out.loss = out.loss * 1e21
        if self.calls >= self.nan:
            out.loss = out.loss * float("nan")
        return out


class SigtermAt(WrappedObjective):
    """Wrap an objective: its forward call ``at`` sends this process a SIGTERM (a preemption mid-run)."""

    def __init__(self, inner, at):
        super().__init__(inner)
        self.at = at

    def forward(self, *a, **k):
        self.calls += 1
        if self.calls == self.at:
            os.kill(os.getpid(), signal.SIGTERM)
        return self.inner(*a, **k)
