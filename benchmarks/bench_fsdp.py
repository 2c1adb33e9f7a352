"""FSDP2 against DDP on CPU (gloo), measured in ONE run (issue 27: "fsdp step within 1.3x DDP's at ViT-S,
memory per rank lower").

Launches ``--nproc`` processes with torchrun. Each builds the same PART objective three times from the same
config (``--arch``, ``--img``/``--patch``, ``--pairs``), wraps them with ``train.strategy=ddp``, ``fsdp`` and
``fsdp`` with ``train.fsdp_reshard=false`` through the trainer's own :mod:`part.engine.strategy`, and times full
training steps (forward, backward, AdamW) round-robin, so load changes hit all alike; median over ``--steps`` after
``--warmup``. Memory per rank: the bytes this rank holds of parameters, gradients and AdamW state (FSDP:
its shards), which is what sharding saves; activations are the same under both. The load average is printed
at the start and the end: on a shared machine the ratio is noisy.

    python benchmarks/bench_fsdp.py                       # ViT-S, 2 processes, 32 px / patch 4
    python benchmarks/bench_fsdp.py --arch base --nproc 4 --json out.json
    python benchmarks/bench_fsdp.py --quick               # a tiny model, seconds (tests/benchmarks/)
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

VARIANTS = ("ddp", "fsdp", "fsdp-keep")  # fsdp-keep: train.fsdp_reshard false
SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--nproc", type=int, default=2, help="processes (gloo ranks; default 2)")
    p.add_argument("--arch", default="small", choices=["tiny", "small", "base"], help="ViT size (default small)")
    p.add_argument("--img", type=int, default=32)
    p.add_argument("--patch", type=int, default=4)
    p.add_argument("--pairs", type=int, default=256, help="PART pairs per image (default 256)")
    p.add_argument("--batch", type=int, default=8, help="images per rank (default 8)")
    p.add_argument("--steps", type=int, default=5, help="timed steps per strategy (default 5)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process (default 1)")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--quick", action="store_true", help="tiny custom model, 2 steps (smoke test)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.nproc < 2:
        p.error("--nproc must be >= 2 (one process has nothing to shard)")
    if min(args.steps, args.batch) < 1 or args.warmup < 0:
        p.error("need --steps >= 1, --batch >= 1, --warmup >= 0")
    return args


def config(args) -> dict:
    model = {"arch": f"vit_{args.arch}", "img_size": args.img, "patch_size": args.patch, "in_chans": 3}
    if args.quick:
        model = {"arch": "custom", "embed_dim": 32, "depth": 2, "num_heads": 2, "img_size": 16, "patch_size": 4,
                 "in_chans": 3}
    return {"model": model, "objective": {"name": "part", "num_pairs": 16 if args.quick else args.pairs},
            "train": {"device": "cpu", "amp": "none", "seed": 0}}


def held_bytes(model, opt) -> int:
    """Bytes of parameters, gradients and optimiser state held by this rank (local shards under FSDP)."""
    import torch

    def local(t):
        t = t.to_local() if hasattr(t, "to_local") else t
        return t.numel() * t.element_size()

    total = sum(local(p) + (local(p.grad) if p.grad is not None else 0) for p in model.parameters())
    for state in opt.state.values():
        total += sum(local(v) for v in state.values() if isinstance(v, torch.Tensor) and v.ndim > 0)
    return total


def worker(args) -> None:
    sys.path.insert(0, SRC)
    import torch
    import torch.distributed as dist

    from part.config import config_from_dict
    from part.engine.builders import build_objective
    from part.engine.distributed import init_distributed
    from part.engine.strategy import build_strategy
    from part.engine.trainer import param_groups

    torch.set_num_threads(args.threads)
    di = init_distributed("cpu")
    cfg = config_from_dict(config(args))
    runs = {}
    for name in VARIANTS:
        torch.manual_seed(0)
        objective = build_objective(cfg)
        model = build_strategy(name.split("-")[0], di, fsdp_reshard=name == "fsdp").wrap(objective, None)
        opt = torch.optim.AdamW(param_groups(objective, 0.05), lr=1e-4)
        runs[name] = (model, opt, torch.Generator().manual_seed(di.rank))
    size = cfg.model.img_size
    x = torch.rand(args.batch, 3, size, size, generator=torch.Generator().manual_seed(di.rank))
    times = {name: [] for name in runs}
    for rep in range(args.warmup + args.steps):
        for name, (model, opt, gen) in runs.items():
            dist.barrier()
            t0 = time.perf_counter()
            model(x, generator=gen).loss.backward()
            opt.step()
            if rep == args.warmup + args.steps - 1:
                held = held_bytes(model, opt)  # gradients still there
                runs[name] = (model, opt, gen, held)
            opt.zero_grad(set_to_none=True)
            dist.barrier()
            if rep >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    res = {name: {"step_s": statistics.median(times[name]), "held_mb": runs[name][3] / 2**20} for name in runs}
    gathered = [None] * di.world_size
    dist.all_gather_object(gathered, res)
    if di.is_main:
        print("RESULT " + json.dumps(gathered), flush=True)
    del runs, model, opt  # free DDP's reducer and FSDP's state before the process group goes
    gc.collect()
    dist.barrier()
    dist.destroy_process_group()


def load_average() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return {}
    load_start = load_average()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads),
               PYTHONPATH=os.pathsep.join([os.path.abspath(SRC), os.environ.get("PYTHONPATH", "")]))
    fwd = [a for a in (argv if argv is not None else sys.argv[1:]) if a != "--json" and not a.endswith(".json")]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={args.nproc}",
           os.path.abspath(__file__), "--worker", *fwd]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"bench_fsdp: the torchrun workers failed:\n{proc.stderr[-3000:]}")
    if proc.returncode != 0:  # measured, then a worker failed on its way out
        print(f"note: a worker exited with an error after the measurement (torchrun exit {proc.returncode})")
    ranks = json.loads(line[len("RESULT "):])
    ddp = statistics.mean(r["ddp"]["step_s"] for r in ranks)
    fsdp = statistics.mean(r["fsdp"]["step_s"] for r in ranks)
    results = {"arch": "quick" if args.quick else args.arch, "nproc": args.nproc, "batch_per_rank": args.batch,
               "ranks": ranks, "ddp_step_s": ddp, "fsdp_step_s": fsdp, "ratio": fsdp / ddp,
               "load_start": load_start, "load_end": load_average(), "cpus": os.cpu_count()}
    print(f"FSDP2 vs DDP on CPU gloo: {results['arch']} ViT, {args.nproc} processes x {args.threads} thread(s), "
          f"batch {args.batch} per rank; {os.cpu_count()} CPUs; load average (1/5/15 min) at start {load_start}, "
          f"end {results['load_end']}")
    keep = statistics.mean(r["fsdp-keep"]["step_s"] for r in ranks)
    results.update({"fsdp_keep_step_s": keep, "ratio_keep": keep / ddp})
    print(f"{'strategy':<26} {'step s':>8} {'x ddp':>6} {'held MB/rank':>13}")
    for name, label, step in (("ddp", "ddp", ddp), ("fsdp", "fsdp", fsdp),
                              ("fsdp-keep", "fsdp, fsdp_reshard false", keep)):
        held = statistics.mean(r[name]["held_mb"] for r in ranks)
        results[f"{name.replace('-', '_')}_held_mb"] = held
        print(f"{label:<26} {step:>8.3f} {step / ddp:>6.2f} {held:>13.1f}")
    print(f"fsdp / ddp step time: {results['ratio']:.2f}x ({results['ratio_keep']:.2f}x with fsdp_reshard false); "
          f"memory held per rank: {results['fsdp_held_mb'] / results['ddp_held_mb']:.2f}x (parameters, gradients, "
          "AdamW state between steps)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        print(f"wrote {args.json}")
    return results


if __name__ == "__main__":
    main()
