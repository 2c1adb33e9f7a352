"""Why PART's pretext is trivial on FingerMovements and transfers poorly on Blink: small measurements on the
converted ``signal_npz`` folders, no training (numpy only, seconds). Issue 16, item 5; docs/signals.md
"What the pretext reads".

1. **Fixed-position steps** (:func:`step_positions`): (channel, sample) places where the median over train
   trials of ``|x[t+1] - x[t]|`` is more than ``ratio`` times that channel's typical increment, i.e. a jump at
   the same sample in most trials: a time stamp written into the recording.
2. **Absolute position from one window** (:func:`window_position_readout`): a ridge regression from the
   samples of one window (length L, all channels, dataset-normalised with train statistics) to its start,
   fitted on every window of the train trials and scored on the test trials, in units of L^2 next to the
   score of predicting the mean start. A score near 0 means one window alone tells where it sits, so PART's
   relative positions need no comparison of content between windows. Also after :func:`remove_steps`.
3. **Recording shift** (:func:`level_and_scale`): per channel, the spread of the trials' mean level and
   their mean within-trial standard deviation, train vs test, in train-normalised units.

    python experiments/signals_diagnose.py --root fingermovements=data/fingermovements --root blink=data/blink

``--write-stepfree SET=FOLDER`` also writes a copy of that set with the steps removed (positions found on
train, removed from train and test trials alike; other arrays copied) for ``signals_compare.py --root``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

PATCH = {"fingermovements": 5, "blink": 17}  # model.patch_size of configs/<set>_part_cpu.yaml


def step_positions(x: np.ndarray, ratio: float = 3.0) -> np.ndarray:
    """``x (N, C, T)`` -> ``(K, 2)`` int array of ``(channel, t)``: a step between samples t and t+1 in most
    trials (median over trials of ``|diff|`` above ``ratio`` x the channel's median of those medians)."""
    m = np.median(np.abs(np.diff(x, axis=-1)), axis=0)  # (C, T-1)
    base = np.median(m, axis=-1, keepdims=True)
    return np.argwhere(m > ratio * np.maximum(base, 1e-12))


def remove_steps(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Remove the steps at ``positions`` ((channel, t) pairs) from every trial of ``x (N, C, T)``: the
    increment ``x[t+1] - x[t]`` is replaced by the median of the trial's neighbouring increments (t-2..t+2)
    and everything after t is shifted by the difference. Returns float64 ``(N, C, T)``."""
    x = np.asarray(x, dtype=np.float64)
    d = np.diff(x, axis=-1)
    corr = np.zeros_like(x)
    for c, t in positions:
        nb = [u for u in range(t - 2, t + 3) if u != t and 0 <= u < d.shape[-1]]
        corr[:, c, t + 1] = d[:, c, t] - np.median(d[:, c, nb], axis=-1)
    return x - np.cumsum(corr, axis=-1)


def _windows(x: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """All windows of ``length``: ``(N * S, C * length)`` features and their starts ``(N * S,)``."""
    n, c, t = x.shape
    s = t - length + 1
    w = np.stack([x[:, :, i:i + length] for i in range(s)], axis=1)
    return w.reshape(n * s, c * length), np.tile(np.arange(s), n)


def window_position_readout(train: np.ndarray, test: np.ndarray, length: int, ridge: float = 1.0,
                            max_windows: int = 60000, seed: int = 0) -> tuple[float, float]:
    """Ridge regression window -> start, fitted on ``train (N, C, T)``, scored on ``test``; both normalised
    per channel with the train mean/std. Returns ``(mse, mse_of_mean)`` in units of ``length^2``."""
    mu, sd = train.mean((0, 2), keepdims=True), train.std((0, 2), keepdims=True) + 1e-12
    a, ya = _windows((train - mu) / sd, length)
    b, yb = _windows((test - mu) / sd, length)
    if len(ya) > max_windows:
        keep = np.random.default_rng(seed).choice(len(ya), max_windows, replace=False)
        a, ya = a[keep], ya[keep]
    a1, b1 = np.c_[a, np.ones(len(a))], np.c_[b, np.ones(len(b))]
    w = np.linalg.solve(a1.T @ a1 + ridge * np.eye(a1.shape[1]), a1.T @ ya)
    return float(((b1 @ w - yb) ** 2).mean() / length**2), float(((yb - ya.mean()) ** 2).mean() / length**2)


def level_and_scale(train: np.ndarray, other: np.ndarray) -> dict:
    """Per channel, in units of the train split's per-channel std: the mean and spread (std) of the trials'
    mean levels, and the mean within-trial std, for ``train`` and ``other``."""
    mu, sd = train.mean((0, 2), keepdims=True), train.std((0, 2), keepdims=True) + 1e-12
    out = {}
    for name, x in (("train", train), ("other", other)):
        z = (x - mu) / sd
        level = z.mean(-1)
        out[name] = {"level_mean": level.mean(0), "level_std": level.std(0), "within_std": z.std(-1).mean(0)}
    return out


def _load(folder: str, split: str) -> tuple[np.ndarray, list[str] | None]:
    with np.load(f"{folder}/{split}.npz", allow_pickle=False) as f:
        names = [str(n) for n in f["channel_names"]] if "channel_names" in f.files else None
        return f["x"].astype(np.float64), names


def write_stepfree(folder: str, out: str) -> np.ndarray:
    """Copy ``folder``'s train/test npz to ``out`` with the train split's fixed-position steps removed from
    every trial (:func:`remove_steps`). Returns the positions."""
    from pathlib import Path

    train, _ = _load(folder, "train")
    pos = step_positions(train)
    Path(out).mkdir(parents=True, exist_ok=True)
    for split in ("train", "test"):
        with np.load(f"{folder}/{split}.npz", allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        arrays["x"] = remove_steps(arrays["x"], pos).astype(np.float32)
        np.savez(f"{out}/{split}.npz", **arrays)
    return pos


def report(name: str, folder: str) -> None:
    train, names = _load(folder, "train")
    test, _ = _load(folder, "test")
    names = names or [f"ch{c}" for c in range(train.shape[1])]
    length = PATCH.get(name, 5)
    fmt = lambda v: " ".join(f"{x:5.2f}" for x in v)  # noqa: E731
    print(f"== {name}: train {train.shape}, test {test.shape}, window L = {length}")
    pos = step_positions(train)
    d = np.abs(np.diff(train, axis=-1))
    typical = np.median(np.median(d, axis=0), axis=-1)
    for c, t in pos:
        share = float((d[:, c, t] > 5 * typical[c]).mean())
        print(f"  fixed-position step: {names[c]} between samples {t} and {t + 1} "
              f"({share:.0%} of train trials jump > 5x the channel's typical increment)")
    if not len(pos):
        print("  no fixed-position steps")
    mse, chance = window_position_readout(train, test, length)
    print(f"  absolute start of one window, linear read-out on test trials: MSE {mse:.2f} L^2 "
          f"(predicting the mean: {chance:.2f})")
    if len(pos):
        mse2, _ = window_position_readout(remove_steps(train, pos), remove_steps(test, pos), length)
        print(f"  ... after removing those steps: MSE {mse2:.2f} L^2")
    ls = level_and_scale(train, test)
    for key, label in (("level_mean", "mean trial level"), ("level_std", "spread of trial levels"),
                       ("within_std", "within-trial std")):
        print(f"  {label:24s} train [{fmt(ls['train'][key])}]  test [{fmt(ls['other'][key])}]")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", action="append", required=True, metavar="SET=FOLDER",
                   help="a converted set, e.g. fingermovements=data/fingermovements (train.npz and test.npz)")
    p.add_argument("--write-stepfree", action="append", default=[], metavar="SET=FOLDER",
                   help="write a copy of SET (one of --root) with its fixed-position steps removed to FOLDER")
    args = p.parse_args(argv)
    roots = {}
    for item in args.root:
        name, _, folder = item.partition("=")
        if not folder:
            p.error(f"--root wants SET=FOLDER, got {item!r}")
        roots[name] = folder
        report(name, folder)
    for item in args.write_stepfree:
        name, _, out = item.partition("=")
        if name not in roots or not out:
            p.error(f"--write-stepfree wants SET=FOLDER with SET one of --root, got {item!r}")
        pos = write_stepfree(roots[name], out)
        print(f"wrote {out}/train.npz, {out}/test.npz ({len(pos)} step positions removed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
