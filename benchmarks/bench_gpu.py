"""img/s per GPU and MFU of the PART pretraining step against a plain ViT-B/16 step, bf16, eager and compiled
(issue 27, item 5): one command, ready for the first lent GPU.

    python benchmarks/bench_gpu.py                               # ViT-B/16 at 224 px, batch 128, both modes
    python benchmarks/bench_gpu.py --batch 256 --modes compiled --json gpu.json
    python benchmarks/bench_gpu.py --quick --device cpu          # smoke size (tests/benchmarks/), seconds

Steps timed (forward + backward + AdamW, median of ``--steps`` after ``--warmup``; compilation is in the
warm-up and reported apart):

  part    the objective of ``--config`` (default configs/in1k_vitb16.yaml: PART, ViT-B/16, 4802 pairs) built
          by ``part.engine.build_objective``, with the trainer's parameter groups, under bf16 autocast;
  plain   the benchmarks' yardstick (``yardstick.py``: a textbook ViT of the same width/depth/heads, learnt
          position embeddings, mean pool, a 1000-way head) on cross-entropy: the supervised step a GPU's
          throughput is usually quoted for, and the unit of ``bench_decomposed.py`` too.

FLOPs: one eager step of each is counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls,
convolutions, CUDA's attention kernels, forward + backward; elementwise ops are not counted, as in the usual
6ND accounting), and the plain step's count is checked against the closed form :func:`yardstick.plain_step_flops`
(printed beside it; equal on CPU without attention, which the counter does not see there). MFU = counted
FLOPs per step x steps per second / the device's dense bf16 peak (``--peak-tflops``, else a table of known
GPUs). Peak memory is ``torch.cuda.max_memory_allocated``. The device, its name and the load average are
printed with the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch

try:
    import part  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from part.config import load_config
from part.engine.builders import build_objective
from part.engine.trainer import param_groups

from yardstick import NUM_CLASSES, PlainViT, plain_step, plain_step_flops  # benchmarks/: the script's folder

ROOT = Path(__file__).resolve().parents[1]
# dense bf16 tensor-core peaks (TFLOP/s, no sparsity), by a substring of torch.cuda.get_device_name
PEAK_TFLOPS = {"H200": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0,
               "L4": 121.0}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default=str(ROOT / "configs" / "in1k_vitb16.yaml"), help="the PART run's config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="config override, e.g. --set objective.num_pairs=2048")
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--batch", type=int, default=128, help="images per step on this GPU (default 128)")
    p.add_argument("--steps", type=int, default=10, help="timed steps (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation included)")
    p.add_argument("--modes", default="eager,compiled", help="comma-separated: eager, compiled")
    p.add_argument("--which", default="part,plain", help="comma-separated: part, plain")
    p.add_argument("--no-bf16", action="store_true", help="fp32 instead of bf16 autocast")
    p.add_argument("--peak-tflops", type=float, help="the device's peak TFLOP/s for MFU (default: known GPUs)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--quick", action="store_true", help="tiny ViT at 32 px, batch 4, 2 steps, eager (smoke test)")
    args = p.parse_args(argv)
    if args.quick:
        args.overrides = ["model.arch=custom", "model.embed_dim=32", "model.depth=2", "model.num_heads=2",
                          "model.img_size=32", "model.patch_size=8", "objective.num_pairs=8", *args.overrides]
        args.batch, args.steps, args.warmup = 4, 2, 1
        if args.modes == "eager,compiled":
            args.modes = "eager"
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    args.which = [w.strip() for w in args.which.split(",") if w.strip()]
    if not args.modes or any(m not in ("eager", "compiled") for m in args.modes):
        p.error(f"--modes takes eager and/or compiled, got {args.modes}")
    if not args.which or any(w not in ("part", "plain") for w in args.which):
        p.error(f"--which takes part and/or plain, got {args.which}")
    if min(args.batch, args.steps) < 1 or args.warmup < 0:
        p.error("need --batch >= 1, --steps >= 1, --warmup >= 0")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("no CUDA device here; --device cpu runs the same steps on the CPU (no MFU without --peak-tflops)")
    return args


def mfu(flops_per_step: float, step_s: float, peak_tflops: float | None) -> float | None:
    """Model FLOP utilisation: achieved FLOP/s over the peak (None without a peak)."""
    if not peak_tflops:
        return None
    return flops_per_step / step_s / (peak_tflops * 1e12)


def count_flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def build_steps(args, device: torch.device) -> dict:
    """``{name: (module, step(module) -> None, closed-form FLOPs)}`` for ``args.which``."""
    cfg = load_config(args.config, args.overrides)
    m = cfg.model
    objective = build_objective(cfg).to(device)
    bb = objective.backbone
    img, patch = m.img_size if isinstance(m.img_size, int) else m.img_size[0], m.patch_size
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(args.batch, m.in_chans, img, img, device=device, generator=gen)
    labels = torch.randint(0, NUM_CLASSES, (args.batch,), device=device, generator=gen)
    amp = nullcontext if args.no_bf16 else (lambda: torch.autocast(device.type, dtype=torch.bfloat16))
    steps = {}
    if "part" in args.which:
        opt = torch.optim.AdamW(param_groups(objective, 0.05), lr=1e-4)

        def part_step(net, opt=opt):
            with amp():
                loss = net(x, generator=gen).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        steps["part"] = (objective, part_step, None)
    if "plain" in args.which:
        heads = bb.blocks[0].attn.num_heads
        plain = PlainViT(img, patch, bb.embed_dim, len(bb.blocks), heads, NUM_CLASSES, m.in_chans,
                         m.mlp_ratio).to(device)
        popt = torch.optim.AdamW(plain.parameters(), lr=1e-4, weight_decay=0.05)
        one = plain_step(plain, popt, x, labels, amp)

        def plain_step_(net, one=one):
            one(net)

        closed = plain_step_flops(args.batch, img, patch, bb.embed_dim, len(bb.blocks), m.mlp_ratio, m.in_chans,
                                  NUM_CLASSES, attention=device.type == "cuda")
        steps["plain"] = (plain, plain_step_, closed)
    return steps


def time_step(step, net, args, device) -> tuple[float, float]:
    """(median step seconds, warm-up seconds)."""
    t0 = time.perf_counter()
    for _ in range(args.warmup):
        step(net)
    sync(device)
    warm = time.perf_counter() - t0
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        step(net)
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), warm


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    results = {"device": name, "peak_tflops": peak, "batch": args.batch, "bf16": not args.no_bf16,
               "load_start": "/".join(f"{v:.2f}" for v in os.getloadavg()), "rows": []}
    for which, (module, step, closed) in build_steps(args, device).items():
        flops = count_flops(lambda: step(module))  # one eager step
        for mode in args.modes:
            net = torch.compile(module) if mode == "compiled" else module
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            step_s, warm = time_step(step, net, args, device)
            row = {"step": which, "mode": mode, "step_s": step_s, "warmup_s": warm,
                   "img_per_s": args.batch / step_s, "flops_per_step": flops, "closed_form_flops": closed,
                   "tflops_per_s": flops / step_s / 1e12, "mfu": mfu(flops, step_s, peak),
                   "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None}
            results["rows"].append(row)
            print(f"{which} {mode}: {row['img_per_s']:.1f} img/s", flush=True)
    results["load_end"] = "/".join(f"{v:.2f}" for v in os.getloadavg())
    report(args, results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return results


def report(args, results: dict) -> None:
    print(f"\n{results['device']} (peak {results['peak_tflops'] or '?'} TFLOP/s bf16 dense), batch {args.batch}, "
          f"{'bf16 autocast' if results['bf16'] else 'fp32'}; config {args.config} {' '.join(args.overrides)}; "
          f"load average at start {results['load_start']}, end {results['load_end']}")
    print(f"{'step':<6} {'mode':<9} {'img/s/GPU':>10} {'step ms':>9} {'GFLOP/img':>10} {'TFLOP/s':>8} {'MFU':>6} "
          f"{'mem GiB':>8} {'warm-up s':>10}")
    for r in results["rows"]:
        mfu_ = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
        mem = f"{r['peak_mem_gib']:.1f}" if r["peak_mem_gib"] is not None else "-"
        print(f"{r['step']:<6} {r['mode']:<9} {r['img_per_s']:>10.1f} {r['step_s'] * 1e3:>9.1f} "
              f"{r['flops_per_step'] / args.batch / 1e9:>10.2f} {r['tflops_per_s']:>8.2f} {mfu_:>6} {mem:>8} "
              f"{r['warmup_s']:>10.1f}")
    for r in results["rows"]:
        if r["closed_form_flops"] and r["mode"] == args.modes[0]:
            print(f"plain ViT FLOPs: counted {r['flops_per_step']:.3e}, closed form {r['closed_form_flops']:.3e} "
                  f"({r['flops_per_step'] / r['closed_form_flops']:.3f}x)")


if __name__ == "__main__":
    main()
