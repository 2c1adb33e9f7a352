"""CPU levers for the results protocol (issue 24 item 7): what makes a CPU training step faster, in ONE run.

The protocol (configs/results_fmnist.yaml, configs/results_blink.yaml) is CPU-bound. For each step it runs —
PART pretraining and supervised fine-tuning of the Fashion-MNIST protocol's ViT (width 96, depth 6, 3 heads,
patch 4 on 28 x 28, batch 256) and the 1D Blink PART step (vit1d_tiny, 4 x 510, windows of 17, batch 64) —
it times forward + backward + AdamW step under each lever against the fp32 default:

  fp32 t=1      the default of the protocol configs (train.threads 1, train.amp none)
  fp32 t=2      torch.set_num_threads(2)
  bf16 t=1      torch.autocast("cpu", bfloat16) (train.amp bf16)
  compile t=1   torch.compile of the model (train.compile true; compile time reported apart)
  chlast t=1    channels_last input (2D only: the patch-embedding convolution is the only conv)

Medians over ``--repeats`` steps after ``--warmup``, interleaved round-robin so a change of machine load hits
every lever alike; the load average is printed before and after. It also reports the loss after the same
``--check`` steps from the same seed under fp32 and bf16, to see whether a faster lever changes the numbers.

Data: the per-image cost of a training batch on one core (the protocols' ``num_workers: 0``), the trainer's own
``SeededItems`` over 28 x 28 images with the fine-tune augmentation, with each item seeded by
``seeded_cpu_rng`` (now) against ``torch.manual_seed`` inside ``fork_rng`` (before: it also seeds, or queues
with a formatted stack trace, every accelerator backend). Both give the same images (tests/data).

    python benchmarks/bench_cpu_levers.py            # the protocol shapes (~5-10 min on 2 idle cores)
    python benchmarks/bench_cpu_levers.py --quick    # small shapes, seconds
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from contextlib import nullcontext

import torch

try:
    import part  # noqa: F401
except ImportError:  # a checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from part.config import load_config
from part.data.transforms import FASHION_MNIST_MEAN, FASHION_MNIST_STD, build_transforms
from part.engine import build_objective
from part.engine.loader import SeededItems


def shapes(quick: bool) -> dict:
    """name -> (config overrides, batch builder). Configs are the protocols' own."""
    w = ["model.embed_dim=32", "model.depth=2", "model.num_heads=2"] if quick else []
    b2d = 32 if quick else 256
    return {
        "fmnist PART": (["model.arch=custom", "model.embed_dim=96", "model.depth=6", "model.num_heads=3",
                         "model.img_size=28", "model.patch_size=4", "model.in_chans=1", "objective.name=part",
                         "objective.num_pairs=1024", *w], lambda g: (torch.rand(b2d, 1, 28, 28, generator=g), None)),
        "fmnist supervised": (["model.arch=custom", "model.embed_dim=96", "model.depth=6", "model.num_heads=3",
                               "model.img_size=28", "model.patch_size=4", "model.in_chans=1",
                               "objective.name=supervised", "objective.options={num_classes: 10, pos_embed: true}",
                               *w],
                              lambda g: (torch.rand(b2d, 1, 28, 28, generator=g), torch.randint(0, 10, (b2d,), generator=g))),
        "blink PART (1D)": (["model.arch=vit1d_tiny", "model.img_size=510", "model.patch_size=17", "model.in_chans=4",
                             "objective.name=part", "objective.head=cross_attention", "objective.num_pairs=256",
                             "objective.num_patches=20", "data.kind=signal_npz"],
                            lambda g: (torch.randn(16 if quick else 64, 4, 510, generator=g), None)),
    }


def make_step(overrides, batch, lever: str, seed: int = 0):
    """A closure running one training step under ``lever``; returns (step, compile_seconds)."""
    torch.manual_seed(seed)
    cfg = load_config(None, overrides)
    model = build_objective(cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(seed)
    x, y = batch(g)
    if lever == "chlast" and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    fwd = torch.compile(model) if lever == "compile" else model
    bf16 = lever == "bf16"
    uses_labels = getattr(model, "uses_labels", False)
    gen = torch.Generator().manual_seed(seed)

    def step() -> float:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
        with ctx:
            out = fwd(x, y, generator=gen) if uses_labels else fwd(x, generator=gen)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        return float(out.loss.detach())

    t0 = time.perf_counter()
    if lever == "compile":
        step()  # compiles
    return step, time.perf_counter() - t0


class _Images(torch.utils.data.Dataset):
    """``n`` random ``(1, 28, 28)`` images in [0, 1] through ``transform``, label 0."""

    def __init__(self, n: int, transform):
        self.images = torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0))
        self.transform = transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.transform(self.images[i]), 0


def data_rates(items: int, rounds: int) -> dict:
    """Median ms per training item, seeded as the loaders do now and as they did before, round-robin."""
    tf = build_transforms(True, 28, FASHION_MNIST_MEAN, FASHION_MNIST_STD, rrc_scale=(0.5, 1.0), hflip=0.5)
    seeded = SeededItems(_Images(items, tf), seed=0)

    def before(i: int):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seeded.item_seed(i))
            return seeded.dataset[i]

    ways = {"seeded_cpu_rng (now)": seeded.__getitem__, "torch.manual_seed (before)": before}
    times = {k: [] for k in ways}
    for _ in range(rounds):
        for label, fn in ways.items():
            t0 = time.perf_counter()
            for i in range(items):
                fn(i)
            times[label].append((time.perf_counter() - t0) / items * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=6)
    ap.add_argument("--check", type=int, default=5, help="steps for the fp32 vs bf16 loss comparison")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile (needs a C compiler)")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} cores, load average before: {os.getloadavg()}")
    levers = [("fp32 t=1", "fp32", 1), ("fp32 t=2", "fp32", 2), ("bf16 t=1", "bf16", 1), ("chlast t=1", "chlast", 1)]
    if not args.no_compile:
        levers.append(("compile t=1", "compile", 1))
    for name, (overrides, batch) in shapes(args.quick).items():
        steps, compile_s = {}, {}
        for label, lever, threads in levers:
            if lever == "chlast" and "1D" in name:
                continue
            torch.set_num_threads(threads)
            try:
                steps[label], compile_s[label] = make_step(overrides, batch, lever)
            except Exception as exc:  # e.g. no C compiler for torch.compile: reported, not fatal
                print(f"{name}: {label} unavailable ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})")
        times = {k: [] for k in steps}
        for i in range(args.warmup + args.repeats):  # round-robin: load changes hit every lever alike
            for label, fn in steps.items():
                torch.set_num_threads(int(label.split("t=")[1]))
                t0 = time.perf_counter()
                fn()
                if i >= args.warmup:
                    times[label].append(time.perf_counter() - t0)
        base = statistics.median(times["fp32 t=1"])
        print(f"\n{name}: median s/step, ratio to fp32 t=1 (< 1 is faster)")
        for label, ts in times.items():
            extra = f"   (compile {compile_s[label]:.1f} s)" if label.startswith("compile") else ""
            print(f"  {label:12s} {statistics.median(ts):8.4f} s   x{statistics.median(ts) / base:5.2f}{extra}")
        torch.set_num_threads(1)
        losses = {}
        for lever in ("fp32", "bf16"):
            fn, _ = make_step(overrides, batch, lever, seed=1)
            losses[lever] = [fn() for _ in range(args.check)]
        print(f"  loss after {args.check} steps, same seed: fp32 {losses['fp32'][-1]:.4f}  bf16 {losses['bf16'][-1]:.4f}")
    torch.set_num_threads(1)
    ms = data_rates(32 if args.quick else 256, max(3, args.repeats // 2))
    now = ms["seeded_cpu_rng (now)"]
    print("\ndata, 28 x 28 fine-tune augmentation, one core: ms per item, and per batch of 256")
    for label, v in ms.items():
        print(f"  {label:28s} {v:7.3f} ms   {v * 256 / 1e3:6.3f} s per batch of 256   x{v / now:5.2f}")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
