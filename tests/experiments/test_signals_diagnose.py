"""``experiments/signals_diagnose.py`` on synthetic trials: a step written at the same sample of every trial is
found, removed, and is what makes one window's absolute position readable."""

from __future__ import annotations


import numpy as np
import pytest

from .scripts import load_script


@pytest.fixture(scope="module")
def diag():
    return load_script("signals_diagnose")


def trials(n: int, seed: int, step: bool) -> np.ndarray:
    """(n, 3, 40) smooth noise; with ``step``, channel 1 jumps by a random amount between samples 12 and 13."""
    rng = np.random.default_rng(seed)
    x = np.cumsum(rng.standard_normal((n, 3, 40)), axis=-1) * 0.2 + rng.standard_normal((n, 3, 40))
    if step:
        x[:, 1, 13:] += rng.choice([-1.0, 1.0], (n, 1)) * rng.uniform(20, 40, (n, 1))
    return x


def test_step_found_removed_and_it_is_the_position_cue(diag):
    tr, te = trials(200, 0, True), trials(60, 1, True)
    assert diag.step_positions(tr).tolist() == [[1, 12]]
    assert diag.step_positions(trials(200, 0, False)).tolist() == []
    clean_tr, clean_te = diag.remove_steps(tr, [(1, 12)]), diag.remove_steps(te, [(1, 12)])
    assert diag.step_positions(clean_tr).tolist() == []
    assert np.abs(np.diff(clean_tr[:, 1], axis=-1)).max() < 10  # no jump left anywhere
    mse, chance = diag.window_position_readout(tr, te, 5)
    mse_clean, chance_clean = diag.window_position_readout(clean_tr, clean_te, 5)
    assert chance == pytest.approx(chance_clean) and chance > 3
    assert mse < mse_clean  # the step tells where a window sits; without it the read-out is worse


def test_level_and_scale_sees_a_shifted_recording(diag):
    tr = trials(100, 0, False)
    other = 0.5 * trials(100, 1, False) + 3.0
    ls = diag.level_and_scale(tr, other)
    assert np.allclose(ls["train"]["level_mean"], 0, atol=1e-9)
    assert (ls["other"]["level_mean"] > 1).all() and (ls["other"]["within_std"] < ls["train"]["within_std"]).all()


def test_write_stepfree_copies_the_set_without_its_steps(diag, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for split, seed, n in (("train", 0, 120), ("test", 1, 30)):
        np.savez(src / f"{split}.npz", x=trials(n, seed, True).astype(np.float32), y=np.arange(n) % 2,
                 class_names=np.array(["a", "b"]))
    pos = diag.write_stepfree(str(src), str(tmp_path / "out"))
    assert pos.tolist() == [[1, 12]]
    for split in ("train", "test"):
        f = np.load(tmp_path / "out" / f"{split}.npz")
        assert f["x"].dtype == np.float32 and diag.step_positions(f["x"].astype(np.float64)).tolist() == []
        assert f["class_names"].tolist() == ["a", "b"] and len(f["y"]) == len(f["x"])
