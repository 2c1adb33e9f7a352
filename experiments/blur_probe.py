"""The sub-pixel blur cue of continuous patch positions, measured (issue 18, item 4).

Bilinear resampling at a fractional offset blurs a patch by an amount that depends on the offset. Three
measurements, on Fashion-MNIST (28x28, P = D = 7 as ``configs/ablate_fmnist_cpu.yaml``) and on white noise:

1. ``noise std``: the std of a white-noise (std 1) patch cropped at fractional offset 0, 1/4, 1/2 (both axes).
2. ``offset probe``: a small MLP reads a patch's pixels and predicts its distance to the pixel grid,
   ``min(f, 1 - f)`` for the fractional part f of x and of y (0 .. 0.5). Patches come from the PART sampler
   (``OffGridSampler``) in each ``positions`` mode; R^2 on held-out images (0 = no information; 1 = exact).
   With ``positions="integer"`` every target is 0: nothing to read, by construction.
3. ``gap probe``: the same MLP separates pretraining patches (the sampler's) from fine-tuning patches (the
   exact P x P grid of the same images); held-out accuracy (0.5 = same distribution).

    python experiments/blur_probe.py                      # ~1.5 min on one idle core; writes runs/blur_probe.json
    python experiments/blur_probe.py --train-images 6000 --test-images 2000 --steps 800   # ~10 s

Every number is a held-out measurement with fixed seeds; rerunning gives the same numbers on the same machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from part.data.images import FASHION_MNIST_DIR, read_idx  # noqa: E402
from part.sampling import GridSampler, OffGridSampler, crop_patches  # noqa: E402


def load_images(root: Path, split: str, count: int) -> torch.Tensor:
    """``count`` Fashion-MNIST images ``(B, 1, 28, 28)`` in [0, 1], then standardised (dataset mean/std)."""
    name = "train" if split == "train" else "t10k"
    raw = torch.from_numpy(read_idx(root / f"{name}-images-idx3-ubyte.gz")[:count].copy()).float() / 255.0
    return ((raw - 0.2860) / 0.3530).unsqueeze(1)


def noise_std(patch: int, offsets=(0.0, 0.25, 0.5), n: int = 4000, seed: int = 0) -> dict[str, float]:
    """Std of white-noise patches cropped at a fractional offset (both axes) with the bilinear crop."""
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(n // 16, 1, 8 * patch, 8 * patch, generator=g)
    out = {}
    for f in offsets:
        x0 = torch.randint(0, 6 * patch, (images.shape[0], 16, 2), generator=g).float() + f
        boxes = torch.cat([x0 + patch / 2, torch.full_like(x0, float(patch))], dim=-1)
        out[f"{f:g}"] = crop_patches(images, boxes, patch).std().item()
    return out


def grid_distance(boxes: torch.Tensor, patch: int) -> torch.Tensor:
    """``min(f, 1 - f)`` of the fractional part f of each box's top-left x and y: ``(B, N, 4)`` -> ``(B, N, 2)``."""
    corner = boxes[..., :2] - boxes[..., 2:] / 2
    f = corner - corner.floor()
    return torch.minimum(f, 1 - f)


def fit_probe(x_tr, y_tr, x_te, y_te, classify: bool, steps: int, seed: int) -> float:
    """Two-layer MLP (128 hidden) with AdamW; returns held-out R^2 (regression) or accuracy (classification)."""
    torch.manual_seed(seed)
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    x_tr, x_te = (x_tr - mu) / sd, (x_te - mu) / sd
    out = 1 if classify else y_tr.shape[1]
    net = nn.Sequential(nn.Linear(x_tr.shape[1], 128), nn.GELU(), nn.Linear(128, 128), nn.GELU(), nn.Linear(128, out))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    g = torch.Generator().manual_seed(seed)
    loss_fn = nn.BCEWithLogitsLoss() if classify else nn.MSELoss()
    for _ in range(steps):
        idx = torch.randint(0, x_tr.shape[0], (512,), generator=g)
        pred = net(x_tr[idx])
        loss = loss_fn(pred.squeeze(-1), y_tr[idx]) if classify else loss_fn(pred, y_tr[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    with torch.no_grad():
        pred = net(x_te)
        if classify:
            return ((pred.squeeze(-1) > 0).float() == y_te).float().mean().item()
        return (1 - ((pred - y_te) ** 2).mean() / y_te.var(0).mean().clamp(min=1e-12)).item()


def patches_of(sampler, images: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    patches, boxes = sampler(images, torch.Generator().manual_seed(seed))
    return patches.flatten(2).flatten(0, 1), boxes.flatten(0, 1)


def measure(images_tr, images_te, patch: int, positions: str, steps: int, seed: int) -> dict[str, float]:
    sampler = OffGridSampler(patch, positions=positions)
    x_tr, b_tr = patches_of(sampler, images_tr, seed)
    x_te, b_te = patches_of(sampler, images_te, seed + 1)
    y_tr, y_te = grid_distance(b_tr, patch), grid_distance(b_te, patch)
    res = {}
    res["offset_r2"] = (float("nan") if y_tr.abs().max() == 0 else fit_probe(x_tr, y_tr, x_te, y_te, False, steps, seed))
    grid = GridSampler(patch)
    g_tr, _ = patches_of(grid, images_tr, seed)
    g_te, _ = patches_of(grid, images_te, seed)
    n_tr, n_te = min(len(x_tr), len(g_tr)), min(len(x_te), len(g_te))
    xs_tr = torch.cat([x_tr[:n_tr], g_tr[:n_tr]])
    ys_tr = torch.cat([torch.ones(n_tr), torch.zeros(n_tr)])
    xs_te = torch.cat([x_te[:n_te], g_te[:n_te]])
    ys_te = torch.cat([torch.ones(n_te), torch.zeros(n_te)])
    res["gap_accuracy"] = fit_probe(xs_tr, ys_tr, xs_te, ys_te, True, steps, seed)
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-root", default=FASHION_MNIST_DIR)
    ap.add_argument("--train-images", type=int, default=30000)
    ap.add_argument("--test-images", type=int, default=5000)
    ap.add_argument("--patch", type=int, default=7)
    ap.add_argument("--steps", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "runs" / "blur_probe.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0 = time.time()
    root = Path(args.data_root)
    data = {"fashion_mnist": (load_images(root, "train", args.train_images), load_images(root, "test", args.test_images))}
    g = torch.Generator().manual_seed(args.seed)
    data["white_noise"] = (torch.randn(args.train_images, 1, 28, 28, generator=g),
                           torch.randn(args.test_images, 1, 28, 28, generator=g))
    results = {"noise_std": noise_std(args.patch), "settings": vars(args), "probes": {}}
    print(f"white-noise patch std at fractional offset 0 / 0.25 / 0.5: "
          + " / ".join(f"{v:.3f}" for v in results["noise_std"].values()))
    print(f"{'data':<14} {'positions':<11} {'offset R^2':>10} {'gap acc':>8}")
    for name, (tr, te) in data.items():
        for positions in ("continuous", "integer"):
            r = measure(tr, te, args.patch, positions, args.steps, args.seed)
            results["probes"][f"{name}/{positions}"] = r
            print(f"{name:<14} {positions:<11} {r['offset_r2']:>10.3f} {r['gap_accuracy']:>8.3f}")
    results["seconds"] = round(time.time() - t0, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out} ({results['seconds']} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
