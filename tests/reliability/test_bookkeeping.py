"""Honest bookkeeping (issue 25, item 3): a checkpoint is *good* only when its weights are finite and its
interval applied at least one step with a finite loss within the spike factor, and the exit-3 message names
no other; ``--resume`` on changed data is refused unless ``--allow-data-change`` says so, and then the
change is recorded with its step (``data_changes.jsonl``), never rewriting what the run recorded before."""

from __future__ import annotations

import torch
import pytest

from part.config import config_from_dict
from part.engine import checkpoint as ck
from part.engine.trainer import TrainingDiverged, train

from .helpers import tiny_raw

fault = pytest.mark.fault


class _Scripted(torch.nn.Module):
    """Wrap an objective: from step ``spike`` on its loss is huge (finite), from step ``nan`` on NaN."""

    def __init__(self, inner, spike, nan):
        super().__init__()
        self.inner, self.backbone, self.calls, self.spike, self.nan = inner, inner.backbone, 0, spike, nan

    def forward(self, x, generator=None):
        self.calls += 1
        out = self.inner(x, generator=generator)
        if self.calls >= self.spike:
            out.loss = out.loss * 1e21
        if self.calls >= self.nan:
            out.loss = out.loss * float("nan")
        return out

    def state_dict(self, *a, **k):
        return self.inner.state_dict(*a, **k)


@fault
def test_all_skipped_interval_is_not_good_and_exit_3_names_the_last_good(tmp_path, data):
    """nan_policy skip: steps 1-4 fine (checkpoints 2, 4 good), 5-6 spiked (6 not good), 7-9 skipped (8: an
    interval with no applied step), the 4th NaN stops at step 10. The message must name step 4, not 8."""
    from part.engine import build_objective

    cfg = config_from_dict(tiny_raw(data, max_steps=20, ckpt_every=2, keep_last=1, nan_policy="skip",
                                    max_nan_skips=3))
    obj = _Scripted(build_objective(cfg), spike=5, nan=7)
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
