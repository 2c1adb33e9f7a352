"""Data pipeline throughput (issue 14, item 4): ImageFolder JPEGs -> augmented batches, against the model step.

Measured in ONE run, on this machine:

  loader   images/s delivered by the training loader (the trainer's own ``SeededItems`` + ``ResumableSampler``
           + ``DataLoader``) for ``--workers`` 0, 1, 2 ..., per augmentation recipe:
             * ``pretrain``: the default augmentation (JPEG decode, random resized crop to ``--img-size``,
               horizontal flip, normalise), what ``part pretrain`` runs;
             * ``finetune``: DeiT's fine-tuning pieces on top (RandAugment ``rand-m9-mstd0.5-inc1``, random
               erasing 0.25), what ``configs/in1k_vitb16_finetune.yaml`` runs.
  model    images/s of the PART training step (``PARTModel`` forward + backward + AdamW) at the same image size
           on this CPU, for ``--archs``.

Then, per recipe: images/s of ONE worker (one core: the 1-worker row), and how many workers keep each model step
fed here; the rows with more workers show how the rate scales on this machine's cores. For a GPU, divide the GPU's images/s (``bench_decomposed.py
--device cuda``) by the per-worker rate: workers scale with CPU cores until the cores or the disk run out.

The JPEGs are synthesised (``--root`` uses your own ImageFolder instead): smooth random colour fields plus
texture, sizes drawn around ImageNet's (shorter side 300-500 px, aspect 3:4 .. 4:3), JPEG quality 90; the mean
file size is printed, since decode time follows it. No timing here is a unit test: machines are noisy.

    python benchmarks/bench_loader.py                         # 0/1/2 workers, ViT-Ti and ViT-S steps at 224 px
    python benchmarks/bench_loader.py --root /data/imagenet --split train --workers 0,4,8,16
    python benchmarks/bench_loader.py --quick                 # smoke size, seconds (tests/benchmarks/)
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

try:
    import part  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from part.config import config_from_dict
from part.engine.builders import build_dataset, build_objective
from part.engine.loader import ResumableSampler, epoch_loader, training_items
from part.targets import parse_num_pairs

RECIPES = {
    "pretrain": {},
    "finetune": {"randaugment": "rand-m9-mstd0.5-inc1", "reprob": 0.25},
}
ARCHS = {"tiny": "vit_tiny", "small": "vit_small", "base": "vit_base"}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--root", default=None, help="an ImageFolder root (default: synthesise JPEGs in a temp folder)")
    p.add_argument("--split", default="train", help="sub-folder of --root holding the class folders (default train)")
    p.add_argument("--images", type=int, default=384, help="JPEGs to synthesise (default 384)")
    p.add_argument("--img-size", type=int, default=224, help="training image size (default 224)")
    p.add_argument("--patch-size", type=int, default=16)
    p.add_argument("--batch", type=int, default=32, help="loader batch size (default 32)")
    p.add_argument("--batches", type=int, default=8, help="timed batches per loader setting (default 8)")
    p.add_argument("--workers", default="0,1,2", help="comma-separated DataLoader worker counts")
    p.add_argument("--recipes", default="pretrain,finetune", help=f"comma-separated, of {', '.join(RECIPES)}")
    p.add_argument("--archs", default="tiny,small", help="ViT sizes for the model step ('' to skip)")
    p.add_argument("--model-batch", type=int, default=16, help="batch of the timed model step (default 16)")
    p.add_argument("--pairs", default="2048", help="#pairs of the PART step")
    p.add_argument("--threads", type=int, default=1, help="torch threads of the main process (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--wds", action="store_true",
                   help="also write the same JPEGs as tar shards (part shards) and time data.kind wds beside the "
                        "image folder (needs webdataset); prints wds / folder per setting")
    p.add_argument("--shard-size", type=int, default=64, help="samples per shard for --wds (default 64)")
    p.add_argument("--quick", action="store_true", help="smoke size: 24 small JPEGs, 64 px, tiny custom model")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.img_size, args.patch_size, args.batch, args.batches = 24, 64, 16, 4, 2
        args.workers, args.archs, args.model_batch, args.pairs = "0,1", "quick", 4, "16"
        args.shard_size = 8
    try:
        args.workers = [int(w) for w in str(args.workers).split(",") if w.strip()]
    except ValueError:
        p.error(f"--workers must be comma-separated integers, got {args.workers!r}")
    if not args.workers or min(args.workers) < 0:
        p.error(f"--workers needs counts >= 0, got {args.workers}")
    try:
        args.pairs = parse_num_pairs(args.pairs)
    except ValueError:
        p.error(f"--pairs takes a positive int or 'all', got {args.pairs!r}")
    args.recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    bad = [r for r in args.recipes if r not in RECIPES]
    if bad:
        p.error(f"unknown recipe {bad[0]!r}; valid: {', '.join(RECIPES)}")
    args.archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    bad = [a for a in args.archs if a not in ARCHS and a != "quick"]
    if bad:
        p.error(f"unknown arch {bad[0]!r}; valid: {', '.join(ARCHS)}")
    if args.batch < 1 or args.batches < 1 or args.images < args.batch:
        p.error("need --batch >= 1, --batches >= 1 and --images >= --batch")
    return args


def synthesise_jpegs(root: Path, count: int, seed: int, small: bool = False) -> float:
    """Write ``count`` JPEGs into ``root/train/class_{0,1}/``; returns the mean file size in KiB.

    Content: a smooth random colour field (bilinear upsampling of a coarse random grid) plus fine texture,
    so JPEG compresses it about as much as a photograph (not like white noise, not like a flat colour).
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    sizes = []
    for i in range(count):
        short = int(rng.integers(40, 64)) if small else int(rng.integers(300, 501))
        aspect = float(rng.uniform(3 / 4, 4 / 3))
        w, h = (int(short * aspect), short) if aspect >= 1 else (short, int(short / aspect))
        coarse = rng.uniform(0, 255, size=(6, 8, 3)).astype(np.uint8)
        field = np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR), dtype=np.float32)
        texture = rng.normal(0, 12, size=(h, w, 1)).astype(np.float32)
        img = Image.fromarray(np.clip(field + texture, 0, 255).astype(np.uint8))
        path = root / "train" / f"class_{i % 2}" / f"img_{i:05d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        img.save(path, quality=90)
        sizes.append(path.stat().st_size)
    return float(np.mean(sizes)) / 1024


def data_config(args, root: str, recipe: str, arch: str | None = None, kind: str = "imagefolder") -> dict:
    model = {"arch": ARCHS.get(arch, "vit_tiny"), "img_size": args.img_size, "patch_size": args.patch_size}
    if arch == "quick":
        model = {"arch": "custom", "embed_dim": 32, "depth": 1, "num_heads": 2, "img_size": args.img_size,
                 "patch_size": args.patch_size}
    return {
        "model": model,
        "objective": {"name": "part", "num_pairs": args.pairs},
        "data": {"kind": kind, "root": root, "split": args.split, **RECIPES[recipe]},
        "train": {"device": "cpu", "amp": "none"},
    }


def loader_rate(args, root: str, recipe: str, workers: int, kind: str = "imagefolder") -> dict:
    """Images/s of the trainer's loader (``training_items`` + ``epoch_loader``, as ``part pretrain`` builds it)
    over ``args.batches`` batches after the first (startup timed apart); ``kind`` imagefolder or wds."""
    cfg = config_from_dict(data_config(args, root, recipe, kind=kind))
    dataset = build_dataset(cfg, train=True)
    items = training_items(dataset, args.seed)
    sampler = ResumableSampler(len(dataset), args.batch, args.seed, True)
    loader = epoch_loader(items, sampler, 0, 0, args.batch, workers, False, args.seed)
    need = args.batches + 1
    if sampler.batches_per_epoch < need:
        raise SystemExit(f"need {need} batches of {args.batch}, the data has {sampler.batches_per_epoch}: "
                         f"raise --images or lower --batches")
    t0 = time.perf_counter()
    it = iter(loader)
    x, _ = next(it)
    t1 = time.perf_counter()
    for _ in range(args.batches):
        x, _ = next(it)
    t2 = time.perf_counter()
    del it
    return {"recipe": recipe, "kind": kind, "workers": workers, "startup_s": t1 - t0,
            "img_per_s": args.batches * args.batch / (t2 - t1), "shape": list(x.shape)}


def model_rate(args, root: str, arch: str, reps: int = 3) -> dict:
    """Images/s of the PART training step (forward + backward + AdamW) at ``args.img_size`` on the CPU."""
    cfg = config_from_dict(data_config(args, root, "pretrain", arch))
    torch.manual_seed(args.seed)
    model = build_objective(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(args.model_batch, 3, args.img_size, args.img_size)
    gen = torch.Generator().manual_seed(args.seed)
    times = []
    for rep in range(reps + 1):
        t0 = time.perf_counter()
        out = model(x, generator=gen)
        loss = out.loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if rep:
            times.append(time.perf_counter() - t0)
    step = sorted(times)[len(times) // 2]
    return {"arch": arch, "batch": args.model_batch, "step_s": step, "img_per_s": args.model_batch / step}


def per_worker_rate(rows: list[dict]) -> float:
    """Images/s one worker process (one core) delivers: the 1-worker row if measured, else the 0-worker row
    (the main process loading alone), else the largest count's rate divided by its workers."""
    by = {r["workers"]: r["img_per_s"] for r in rows}
    if 1 in by:
        return by[1]
    if 0 in by:
        return by[0]
    most = max(by)
    return by[most] / most


def report(args, results: dict) -> None:
    print(f"\nImageFolder JPEGs -> {args.img_size} px batches of {args.batch}; mean JPEG "
          f"{results['jpeg_kib']:.0f} KiB; {os.cpu_count()} CPUs; load average at start "
          f"{results['load_start']}, end {results['load_end']}")
    print(f"{'recipe':<10} {'workers':>7} {'img/s':>8} {'startup s':>10}")
    for r in results["loader"]:
        print(f"{r['recipe']:<10} {r['workers']:>7} {r['img_per_s']:>8.1f} {r['startup_s']:>10.2f}")
    if results["wds"]:
        print(f"\nthe same JPEGs as tar shards of {args.shard_size} (data.kind wds) against the image folder:")
        print(f"{'recipe':<10} {'workers':>7} {'img/s':>8} {'wds/folder':>11}")
        for r in results["wds"]:
            print(f"{r['recipe']:<10} {r['workers']:>7} {r['img_per_s']:>8.1f} {r['ratio']:>11.2f}")
    if results["model"]:
        print(f"\nPART step (fwd+bwd+AdamW, {args.threads} torch thread(s), batch {args.model_batch}, "
              f"#pairs {args.pairs}) on this CPU:")
        for m in results["model"]:
            print(f"  {m['arch']:<6} {m['img_per_s']:8.1f} img/s")
    print("\nworkers to keep the model step fed here (one worker = one core; its rate from the 1-worker row):")
    for recipe, per in results["per_worker"].items():
        line = f"  {recipe:<10} one worker ~ {per:.1f} img/s"
        for m in results["model"]:
            line += f"; {m['arch']}: {max(1, math.ceil(m['img_per_s'] / per))}"
        print(line + "   (a GPU: its img/s / the per-worker rate)")


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    results = {"load_start": "%.2f/%.2f/%.2f" % os.getloadavg(), "loader": [], "wds": [], "model": [], "per_worker": {}}
    with tempfile.TemporaryDirectory(prefix="part_bench_loader_") as tmp:
        root = args.root
        if root is None:
            root, args.split = tmp, "train"
            results["jpeg_kib"] = synthesise_jpegs(Path(tmp), args.images, args.seed, small=args.quick)
        else:
            folder = Path(root) / args.split
            files = [p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg")][:1000]
            results["jpeg_kib"] = float(np.mean([p.stat().st_size for p in files])) / 1024 if files else float("nan")
        if args.wds:
            from part.data.wds import write_shards

            shards = Path(tmp) / "shards"
            write_shards(Path(root) / args.split, shards, shard_size=args.shard_size, split=args.split)
        for recipe in args.recipes:
            for workers in args.workers:
                r = loader_rate(args, root, recipe, workers)
                results["loader"].append(r)
                print(f"{recipe} workers={workers}: {r['img_per_s']:.1f} img/s", flush=True)
                if args.wds:
                    w = loader_rate(args, str(shards), recipe, workers, kind="wds")
                    results["wds"].append({**w, "ratio": w["img_per_s"] / r["img_per_s"]})
                    print(f"{recipe} workers={workers} wds: {w['img_per_s']:.1f} img/s ({w['img_per_s'] / r['img_per_s']:.2f}"
                          " x the image folder)", flush=True)
            results["per_worker"][recipe] = per_worker_rate([r for r in results["loader"] if r["recipe"] == recipe])
        for arch in args.archs:
            results["model"].append(model_rate(args, root, arch))
    results["load_end"] = "%.2f/%.2f/%.2f" % os.getloadavg()
    report(args, results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
