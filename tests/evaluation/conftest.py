"""Tiny real-format data and tiny runs shared by the downstream-evaluation tests."""

from __future__ import annotations

import numpy as np
import pytest

import part

NUM_CLASSES = 4


def class_images(n: int, seed: int, size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """``(n, size, size)`` uint8 images of class c in 0..3: noise in [0, 50) plus a brightness level 60 c,
    and their labels ``(n,)``. The class is visible in every patch, so even tiny, briefly trained models
    separate it."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % NUM_CLASSES
    rng.shuffle(y)
    x = rng.integers(0, 50, (n, size, size)) + 60 * y[:, None, None]
    return x.astype(np.uint8), y.astype(np.int64)


def write_npz_splits(folder, n_train: int = 48, n_test: int = 24, bad_label: int | None = None):
    """``folder/train.npz`` and ``folder/test.npz`` (keys x, y), read by ``data.kind: npz`` with
    ``data.root: folder``. ``bad_label`` replaces the train label of sample 5."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, n, seed in (("train", n_train, 0), ("test", n_test, 1)):
        x, y = class_images(n, seed)
        if bad_label is not None and split == "train":
            y[5] = bad_label
        np.savez(folder / f"{split}.npz", x=x, y=y)
    return folder


def model_section(dim: int = 16, depth: int = 1) -> dict:
    return {"arch": "custom", "embed_dim": dim, "depth": depth, "num_heads": 2, "img_size": 8, "patch_size": 4,
            "in_chans": 1}


def train_section(**kw) -> dict:
    t = {"max_steps": 2, "batch_size": 8, "log_every": 1, "ckpt_every": 100, "seed": 0, "device": "cpu"}
    t.update(kw)
    return t


def pretrain_config(root, dim: int = 16, depth: int = 1) -> dict:
    return {"model": model_section(dim, depth), "objective": {"name": "part", "num_pairs": 6},
            "data": {"kind": "npz", "root": str(root), "rrc_scale": [0.5, 1.0]},
            "optim": {"lr": 1e-3, "warmup_steps": 1}, "train": train_section()}


def finetune_config(root, dim: int = 16, depth: int = 1, lr: float = 1e-3, steps: int = 3, **options) -> dict:
    opts = {"num_classes": NUM_CLASSES, "label_smoothing": 0.1}
    opts.update(options)
    return {"model": model_section(dim, depth), "objective": {"name": "supervised", "options": opts},
            "data": {"kind": "npz", "root": str(root), "rrc_scale": [0.8, 1.0]},
            "optim": {"lr": lr, "min_lr": 0.0, "warmup_steps": 1, "weight_decay": 0.0}, "train": train_section(max_steps=steps)}


@pytest.fixture(scope="module")
def npz_root(tmp_path_factory):
    return write_npz_splits(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory, npz_root):
    """A finished 2-step PART pretraining run folder of the tiny ViT (d=16, depth 1)."""
    out = tmp_path_factory.mktemp("runs") / "pretrain"
    return part.pretrain(pretrain_config(npz_root), out=out, progress=False).run_dir
