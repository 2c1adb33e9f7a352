"""The PART training step taken apart, at the shapes users pretrain at, against a textbook plain ViT step
of the same size (issue 14). One run, one process; every number is a ratio measured here.

For each ViT (``--archs``: tiny, small) and shape (``--shapes`` IMG/PATCH: 32/4 -> N 64, 224/16 -> N 196,
384/16 -> N 576) it times, interleaved round-robin (so a change in machine load hits every item alike),
median over ``--reps`` after ``--warmup`` rounds:

  plain ViT step          the benchmarks' yardstick (``yardstick.py``: a textbook pre-norm ViT, linear
                          embedding of unfolded grid patches, learnt position embedding, fused QKV + SDPA,
                          mean pool, linear 1000-way head, cross-entropy) of the same width/depth/heads:
                          forward + backward + AdamW. The unit.
  PART step               ``PARTModel`` (off-grid sampler, the project's ViT without position embeddings,
                          ``--head``, MSE): forward + backward + AdamW, for each ``--pairs`` value.
  its parts               patch sampling + crop; pair sampling; backbone fwd+bwd (on fixed patches, fixed
                          cotangent of the tokens); relative encoder fwd+bwd (fixed tokens and pairs);
                          targets + loss + metrics fwd+bwd; the AdamW step. "other" = PART step minus the
                          parts (glue, the CLS token, allocator).
  reference encoder       with ``--reference``: the plain implementation of the encoder (``<head>_reference``,
                          the test oracle of the fast head) fwd+bwd on the same tokens and pairs, and the
                          fast head's speed-up over it at each #pairs.

Memory: peak bytes allocated during one step above what was allocated before it (parameters, optimiser
state; gradients are freed by ``zero_grad``), PART step and plain step alike. CUDA: ``max_memory_allocated``.
CPU: the running sum of the allocator's alloc/free events recorded by ``torch.profiler`` with
``profile_memory=True`` (``tracemalloc`` does not see torch's allocator).

Throughput: img/s of both steps and model FLOP/s from the FLOPs of one eager step counted by
``torch.utils.flop_counter`` (matmuls, SDPA, convolutions; forward + backward); MFU = FLOP/s over
``--peak-tflops`` (default: the bf16 dense peak of a known CUDA device, else not printed).

The load average is printed at the start and the end: on a shared machine the ratios are noisy.

    python benchmarks/bench_decomposed.py --threads 1                          # full matrix (minutes)
    python benchmarks/bench_decomposed.py --threads 1 --archs tiny --shapes 224/16 --reps 3
    python benchmarks/bench_decomposed.py --quick                              # smoke size, seconds
    python benchmarks/bench_decomposed.py --device cuda --bf16 --compile --batch 256
    python benchmarks/bench_decomposed.py --plot scaling.png --pairs 256,2048,8192,all
    python benchmarks/bench_decomposed.py --threads 1 --archs tiny --shapes 32/4 --pairs 256,2048,all --reference
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from contextlib import nullcontext

import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    import part
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    import part

from part.models.fast_heads import choose_path
from part.models.registry import HEADS, build_head, head_options
from part.models.vit import VIT_SIZES, vit_custom
from part.objectives.part import translation_metrics
from part.objectives.registry import part_defaults
from part.targets import parse_num_pairs, relative_targets, resolve_num_pairs, sample_pairs

from yardstick import NUM_CLASSES, PlainViT, plain_step  # benchmarks/: the script's folder, on sys.path

ARCHS = {name: (cfg["embed_dim"], cfg["depth"], cfg["num_heads"]) for name, cfg in VIT_SIZES.items()}
ARCHS["quick"] = (64, 2, 2)  # the smoke size of --quick
SHAPES = ("32/4", "224/16", "384/16")
#: batch per shape when --batch is not given: about the same number of tokens per step (N B ~ 2-4k)
DEFAULT_BATCH = {64: 64, 196: 16, 576: 4}
#: dense bf16 peak TFLOP/s of known accelerators (vendor data sheets), for MFU
PEAK_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0}

# goals of issue 14
GOAL_STEP = 1.10  # PART step / plain step at every N with 2048 pairs
GOAL_STEP_ALL = 1.20  # ... with all pairs at N = 196
GOAL_ENCODER = 0.10  # relative encoder fwd+bwd / plain step
GOAL_MEMORY = 1.15  # peak memory PART / plain


# --- arguments -----------------------------------------------------------------------------------------
def parse_list(p: argparse.ArgumentParser, text: str, flag: str, parse) -> list:
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        p.error(f"{flag} needs at least one value, got {text!r}")
    return [parse(s) for s in items]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--archs", default="tiny,small", help="comma-separated ViT sizes (tiny, small, base)")
    p.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated IMG/PATCH, e.g. 224/16")
    p.add_argument("--pairs", default="2048,all", help="comma-separated #pairs (ints or 'all')")
    p.add_argument("--batch", type=int, default=None, help="batch for every shape (default: per N, "
                   + ", ".join(f"N {n}: {b}" for n, b in DEFAULT_BATCH.items()) + ")")
    p.add_argument("--head", default=part_defaults()["head"],
                   help="relative encoder (registry name; default: the library's, %(default)s)")
    p.add_argument("--positions", default=None, choices=["continuous", "integer"], help="off-grid box positions")
    p.add_argument("--reps", type=int, default=3, help="timed rounds (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--bf16", action="store_true", help="bf16 autocast for the forward passes")
    p.add_argument("--compile", action="store_true", help="torch.compile the plain and PART steps' models "
                   "(at least one warm-up round then, so compilation is not timed)")
    p.add_argument("--compile-backend", default="inductor", help="torch.compile backend (aot_eager: trace only)")
    p.add_argument("--reference", action="store_true",
                   help="also time the plain reference implementation of the encoder (<head>_reference) and print "
                        "the fast head's speed-up over it")
    p.add_argument("--head-path", default=None, help="path option of a fused attention head: auto, tune, table, "
                   "rows, gather (default: the head's own, auto)")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"],
                   help="wall: perf_counter; cpu: this thread's CPU time (with --threads 1 on a CPU: robust to "
                   "other processes taking the cores, not to their cache traffic)")
    p.add_argument("--peak-tflops", type=float, default=None, help="device peak for MFU (default: known GPUs)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--plot", default=None, help="write a scaling plot (PNG): step time vs N and vs #pairs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="smoke size: 2-block ViT d=64, 32/8 (N 16), batch 4, pairs 64,all, 1 rep, no warmup")
    args = p.parse_args(argv)
    if args.quick:
        args.archs, args.shapes, args.pairs = "quick", "32/8", "64,all"
        args.batch, args.reps, args.warmup = args.batch or 4, 1, 0
    args.archs = parse_list(p, args.archs, "--archs", lambda s: s if s in ARCHS else p.error(
        f"--archs takes {sorted(ARCHS)}, got {s!r}"))
    args.shapes = parse_list(p, args.shapes, "--shapes", lambda s: parse_shape(p, s))
    args.pairs = parse_list(p, args.pairs, "--pairs", lambda s: parse_pairs(p, s))
    for name in ("reps", "batch", "threads"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            p.error(f"--{name} must be positive, got {value}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.compile:
        args.warmup = max(args.warmup, 1)
    if args.clock == "cpu" and (args.device != "cpu" or args.threads != 1):
        p.error("--clock cpu measures one thread's CPU time: it needs --device cpu --threads 1")
    return args


def parse_shape(p: argparse.ArgumentParser, text: str) -> tuple[int, int]:
    try:
        img, patch = (int(v) for v in text.split("/"))
    except ValueError:
        p.error(f"--shapes takes IMG/PATCH like 224/16, got {text!r}")
    if img <= 0 or patch <= 0 or img % patch:
        p.error(f"--shapes: image size must be a positive multiple of the patch size, got {text!r}")
    return img, patch


def parse_pairs(p: argparse.ArgumentParser, text: str) -> int | str:
    try:
        return parse_num_pairs(text)
    except ValueError:
        p.error(f"--pairs takes positive ints or 'all', got {text!r}")


# --- measuring -----------------------------------------------------------------------------------------
def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(items: dict, device: torch.device, warmup: int, reps: int, clock=time.perf_counter
                ) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Median seconds of each callable in ``items``, measured round-robin (one call of each per round), and
    every timed round's seconds (round r of two items ran back to back: their ratio is a paired sample)."""
    times = {name: [] for name in items}
    for r in range(warmup + reps):
        for name, fn in items.items():
            sync(device)
            t0 = clock()
            fn()
            sync(device)
            if r >= warmup:
                times[name].append(clock() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}, times


def cpu_peak_bytes(fn) -> int:
    """Peak of (allocated - freed) bytes of torch's CPU allocator during ``fn()``, from profiler events."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    cur = peak = 0
    for e in events:
        cur += e.nbytes()
        peak = max(peak, cur)
    return peak


def peak_bytes(fn, device: torch.device, optimizer: torch.optim.Optimizer) -> int:
    """Peak bytes a step ``fn`` allocates on ``device`` above what was allocated before it; the gradients of
    ``optimizer``'s parameters are freed first, so they count inside the step (as the step allocates them)."""
    optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        fn()
        sync(device)
        return torch.cuda.max_memory_allocated(device) - before
    return cpu_peak_bytes(fn)


def count_flops(fn) -> int:
    """FLOPs of one call of ``fn`` (forward + backward) counted by ``torch.utils.flop_counter``."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def load_average() -> str:
    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg()) + " (1/5/15 min)"
    except OSError:
        return "n/a"


def device_peak_tflops(args, device: torch.device) -> float | None:
    if args.peak_tflops is not None:
        return args.peak_tflops
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_TFLOPS.items() if k in name), None)


def head_path_of(head: nn.Module, n: int, m: int, k: int) -> str:
    """The path a fused attention head takes at this shape ("-" for heads without paths)."""
    path = getattr(head, "path", None)
    if path is None or not hasattr(head, "token_tables"):
        return "-"
    return choose_path(n, m, k) + " (auto)" if path == "auto" else path


# --- one configuration ---------------------------------------------------------------------------------
def measure(arch: str, shape: tuple[int, int], args, device: torch.device) -> dict:
    """Time, memory and FLOPs of the plain step, the PART steps and the PART step's parts for one
    (arch, shape); returns a JSON-able dict."""
    dim, depth, heads = ARCHS[arch]
    img, patch = shape
    n = (img // patch) ** 2
    batch = args.batch or DEFAULT_BATCH.get(n, max(1, 4096 // n))
    # pair counts beyond this N's universe of N (N - 1) pairs are skipped at this shape (e.g. 8192 at N 64)
    pairs = [m for m in args.pairs if m == "all" or m <= n * (n - 1)]
    if len(pairs) < len(args.pairs):
        print(f"N={n}: skipping #pairs {[m for m in args.pairs if m not in pairs]} (more than its {n * (n - 1)} pairs)")
    if not pairs:
        raise SystemExit(f"no --pairs value fits N={n} ({n * (n - 1)} pairs); add 'all'")
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.bf16 else nullcontext
    torch.manual_seed(args.seed)
    gen = torch.Generator(device=device).manual_seed(args.seed)
    images = torch.rand(batch, 3, img, img, generator=gen, device=device)
    labels = torch.randint(0, NUM_CLASSES, (batch,), generator=gen, device=device)

    plain = PlainViT(img, patch, dim, depth, heads, NUM_CLASSES).to(device)
    backbone = vit_custom(dim, depth, heads, img_size=img, patch_size=patch).to(device)
    head = args.head
    if args.head_path is not None:
        multi = "num_heads" in head_options(args.head)  # the multi-head encoder takes the backbone's heads
        head = build_head(args.head, dim, out_dim=2, num_heads=heads if multi else None, path=args.head_path)
    parts = {m: part.PARTModel(backbone, head=head, num_pairs=m, positions=args.positions).to(device)
             for m in pairs[:1]}
    head = parts[pairs[0]].head
    for m in pairs[1:]:  # same backbone, same head module: one set of parameters
        parts[m] = part.PARTModel(backbone, head=head, num_pairs=m, positions=args.positions).to(device)
    model = parts[pairs[0]]
    opt_plain = torch.optim.AdamW(plain.parameters(), lr=1e-4, weight_decay=0.05)
    opt_part = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
    compile_ = lambda mod: torch.compile(mod, backend=args.compile_backend) if args.compile else mod  # noqa: E731
    run_plain = compile_(plain)
    run_parts = {m: compile_(pm) for m, pm in parts.items()}

    plain_one = plain_step(plain, opt_plain, images, labels, amp)

    def plain_step_(net=None):
        plain_one(run_plain if net is None else net)

    def part_step(m, net=None):
        def step():
            opt_part.zero_grad(set_to_none=True)
            with amp():
                out = (net or run_parts[m])(images, generator=gen)
            out.loss.backward()
            opt_part.step()
        return step

    # fixed inputs of the parts
    with torch.no_grad():
        patches, boxes = model.sample(images, gen)
        tokens = backbone.patch_tokens(backbone.forward_patches(patches, pos_embed=False))
    token_grad = torch.randn(tokens.shape, generator=gen, device=device)
    pair_sets = {m: sample_pairs(batch, n, m, gen, device=device) for m in pairs}
    pair_count = {m: resolve_num_pairs(m, n) for m in pairs}
    preds = {m: torch.randn(batch, pair_count[m], model.target_dim, generator=gen, device=device)
             for m in pairs}

    def sampling():
        with torch.no_grad():
            model.sample(images, gen)

    def pair_sampling(m):
        return lambda: sample_pairs(batch, n, m, gen, device=device)

    def backbone_fwd_bwd():
        backbone.zero_grad(set_to_none=True)
        with amp():
            out = backbone.patch_tokens(backbone.forward_patches(patches, pos_embed=False))
        out.backward(token_grad.to(out.dtype))

    def encoder_fwd_bwd(m, enc=None):
        enc = enc or head

        def step():
            enc.zero_grad(set_to_none=True)
            x = tokens.detach().requires_grad_(True)
            with amp():
                pred = enc(x, pair_sets[m])
            pred.backward(preds[m].to(pred.dtype))
        return step

    reference = None
    if args.reference:
        name = args.head if isinstance(args.head, str) else None
        if name is None or f"{name}_reference" not in HEADS:
            raise SystemExit(f"--reference: the head {args.head!r} has no plain reference (<head>_reference)")
        multi = "num_heads" in head_options(f"{name}_reference")
        reference = build_head(f"{name}_reference", dim, out_dim=model.target_dim,
                               **({"num_heads": heads} if multi else {})).to(device)

    def targets_loss(m):
        def step():
            pred = preds[m].detach().requires_grad_(True)
            target = relative_targets(boxes, pair_sets[m], with_scale=model.target_dim == 4)
            loss = F.mse_loss(pred.float(), target)
            translation_metrics(pred, target)
            loss.backward()
        return step

    items = {"plain": plain_step_}
    for m in pairs:
        items[f"part:{m}"] = part_step(m)
    items["sampling"] = sampling
    items["backbone"] = backbone_fwd_bwd
    for m in pairs:
        items[f"pairs:{m}"] = pair_sampling(m)
        items[f"encoder:{m}"] = encoder_fwd_bwd(m)
        if reference is not None:
            items[f"reference:{m}"] = encoder_fwd_bwd(m, reference)
        items[f"loss:{m}"] = targets_loss(m)
    part_step(pairs[0])()  # create the optimiser state before timing "optimizer"
    items["optimizer"] = opt_part.step

    flops = {"plain": count_flops(lambda: plain_step_(plain))}
    for m in pairs:
        flops[f"part:{m}"] = count_flops(part_step(m, parts[m]))

    load_start = load_average()
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    t, rounds = interleaved(items, device, args.warmup, args.reps, clock)
    load_end = load_average()

    memory = {}
    if not args.no_memory:
        memory["plain"] = peak_bytes(plain_step_, device, opt_plain)
        for m in pairs:
            memory[f"part:{m}"] = peak_bytes(part_step(m), device, opt_part)

    unit = t["plain"]
    columns = {}
    for m in pairs:
        col = {
            "pairs": pair_count[m],
            "sampling": t["sampling"] / unit,
            "pair_sampling": t[f"pairs:{m}"] / unit,
            "backbone": t["backbone"] / unit,
            "encoder": t[f"encoder:{m}"] / unit,
            "targets_loss": t[f"loss:{m}"] / unit,
            "optimizer": t["optimizer"] / unit,
        }
        col["other"] = t[f"part:{m}"] / unit - sum(v for k, v in col.items() if k != "pairs")
        if reference is not None:  # not a part of the PART step: left out of "other"
            col["reference_encoder"] = t[f"reference:{m}"] / unit
            col["reference_speedup"] = t[f"reference:{m}"] / t[f"encoder:{m}"]
        col["part_step"] = t[f"part:{m}"] / unit
        # the same ratio round by round (PART and plain steps of one round ran back to back): its spread is
        # what the noise of this machine does to the median above
        paired = [a / b for a, b in zip(rounds[f"part:{m}"], rounds["plain"])]
        col["part_step_rounds"] = [min(paired), max(paired)]
        col["head_path"] = head_path_of(head, n, pair_count[m], model.target_dim)
        col["part_ms"] = t[f"part:{m}"] * 1e3
        col["part_img_s"] = batch / t[f"part:{m}"]
        col["part_gflop"] = flops[f"part:{m}"] / 1e9
        if memory:
            col["memory"] = memory[f"part:{m}"] / max(memory["plain"], 1)
            col["part_bytes"] = memory[f"part:{m}"]
        columns[str(m)] = col
    return {
        "arch": arch, "img_size": img, "patch_size": patch, "N": n, "batch": batch, "dim": dim, "depth": depth,
        "heads": heads, "plain_ms": unit * 1e3, "plain_img_s": batch / unit, "plain_gflop": flops["plain"] / 1e9,
        "plain_bytes": memory.get("plain"), "columns": columns, "load_start": load_start, "load_end": load_end,
        "times_s": t,
    }


# --- printing ------------------------------------------------------------------------------------------
ROWS = [
    ("sampling", "patch sampling + crop"),
    ("pair_sampling", "pair sampling"),
    ("backbone", "backbone fwd+bwd"),
    ("encoder", "relative encoder fwd+bwd"),
    ("targets_loss", "targets + loss"),
    ("optimizer", "optimizer (AdamW)"),
    ("other", "other (step - parts)"),
]


def fmt_bytes(b) -> str:
    return "n/a" if b is None else f"{b / 2**20:,.1f} MiB"


def print_result(res: dict, peak: float | None, args) -> None:
    cols = res["columns"]
    name = f"ViT-{res['arch'].capitalize()}" if res["arch"] != "quick" else "quick ViT"
    print(f"\n{name} (d={res['dim']}, depth {res['depth']}, {res['heads']} heads), {res['img_size']}/"
          f"{res['patch_size']} (N={res['N']}), batch {res['batch']}, head {args.head}")
    print(f"load average: start {res['load_start']}, end {res['load_end']}")
    width = 28
    print(f"{'fraction of the plain ViT step':<{width}}" + "".join(f"{'#pairs ' + k + ' (' + str(c['pairs']) + ')':>24}"
                                                                 for k, c in cols.items()))
    for key, label in ROWS:
        print(f"{label:<{width}}" + "".join(f"{c[key]:>24.1%}" for c in cols.values()))
    print(f"{'relative encoder path':<{width}}" + "".join(f"{c['head_path']:>24}" for c in cols.values()))
    if all("reference_encoder" in c for c in cols.values()):
        print(f"{'reference encoder fwd+bwd':<{width}}" + "".join(f"{c['reference_encoder']:>24.1%}" for c in cols.values()))
        print(f"{'  fast encoder speed-up':<{width}}" + "".join(f"{c['reference_speedup']:>23.1f}x" for c in cols.values()))
    print(f"{'PART step / plain step':<{width}}" + "".join(f"{c['part_step']:>23.3f}x" for c in cols.values()))
    print(f"{'  per round, min - max':<{width}}" + "".join(f"{'%.3f - %.3fx' % tuple(c['part_step_rounds']):>24}"
                                                          for c in cols.values()))
    if res["plain_bytes"] is not None:
        print(f"{'peak memory PART / plain':<{width}}" + "".join(f"{c['memory']:>23.3f}x" for c in cols.values()))
    print(f"{'PART img/s':<{width}}" + "".join(f"{c['part_img_s']:>24,.1f}" for c in cols.values()))
    print(f"{'PART GFLOP/step':<{width}}" + "".join(f"{c['part_gflop']:>24,.3g}" for c in cols.values()))
    if res["plain_bytes"] is not None:
        print(f"{'PART peak memory':<{width}}" + "".join(f"{fmt_bytes(c['part_bytes']):>24}" for c in cols.values()))
    plain_tflops = res["plain_gflop"] / res["plain_ms"]
    line = (f"plain step {res['plain_ms']:,.1f} ms, {res['plain_img_s']:,.1f} img/s, {res['plain_gflop']:,.3g} "
            f"GFLOP/step, {plain_tflops:.3f} TFLOP/s")
    if peak:
        line += f", MFU {plain_tflops / peak:.1%}"
        line += "; PART MFU " + ", ".join(f"{k}: {c['part_gflop'] / c['part_ms'] / peak:.1%}" for k, c in cols.items())
    print(line + f"; peak memory plain {fmt_bytes(res['plain_bytes'])}")


def goal_lines(results: list[dict]) -> list[str]:
    """Where each goal of issue 14 stands, from the measured columns."""
    lines = []
    for res in results:
        for key, col in res["columns"].items():
            tag = f"{res['arch']} {res['img_size']}/{res['patch_size']} N={res['N']} #pairs {key}"
            checks = [("encoder", col["encoder"], GOAL_ENCODER, "<= {:.0%}", "{:.1%}")]
            if key == "2048":
                checks.append(("step", col["part_step"], GOAL_STEP, "<= {:.2f}x", "{:.3f}x"))
            if key == "all" and res["N"] == 196:
                checks.append(("step", col["part_step"], GOAL_STEP_ALL, "<= {:.2f}x", "{:.3f}x"))
            if "memory" in col:
                checks.append(("memory", col["memory"], GOAL_MEMORY, "<= {:.2f}x", "{:.3f}x"))
            cells = [f"{what} {fv.format(v)} ({'met' if v <= goal else 'MISSED'}, goal {fg.format(goal)})"
                     for what, v, goal, fg, fv in checks]
            if key == "2048" or (key == "all" and res["N"] == 196):
                lo, hi = col["part_step_rounds"]
                goal = GOAL_STEP if key == "2048" else GOAL_STEP_ALL
                cells.append(f"step per round {lo:.3f}-{hi:.3f}x ("
                             + ("met in every round" if hi <= goal else "not met in every round") + ")")
            lines.append(f"  {tag}: " + "; ".join(cells))
    return lines


def write_plot(results: list[dict], path: str) -> None:
    """Two panels: ms per image vs N (plain and PART per #pairs), and PART/plain vs #pairs per shape."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    for arch in dict.fromkeys(r["arch"] for r in results):
        rs = sorted((r for r in results if r["arch"] == arch), key=lambda r: r["N"])
        ns = [r["N"] for r in rs]
        ax1.plot(ns, [r["plain_ms"] / r["batch"] for r in rs], "k--o", label=f"{arch}: plain ViT")
        for key in dict.fromkeys(k for r in rs for k in r["columns"]):  # a count may not fit the smaller N
            sub = [r for r in rs if key in r["columns"]]
            ax1.plot([r["N"] for r in sub], [r["columns"][key]["part_ms"] / r["batch"] for r in sub], "-o",
                     label=f"{arch}: PART #pairs {key}")
        for r in rs:
            cols = list(r["columns"].values())
            ax2.plot([c["pairs"] for c in cols], [c["part_step"] for c in cols], "-o", label=f"{arch} N={r['N']}")
    ax1.set(xscale="log", yscale="log", xlabel="N patches", ylabel="ms per image (step)", title="step time vs N")
    ax2.axhline(GOAL_STEP, color="grey", lw=0.8, ls=":")
    ax2.set(xscale="log", xlabel="#pairs per image", ylabel="PART step / plain step", title="cost vs #pairs")
    for ax in (ax1, ax2):
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    peak = device_peak_tflops(args, device)
    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    devname = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    print(f"PART step, decomposed (issue 14): device {device}{devname}, threads {threads}, bf16 autocast "
          f"{'on' if args.bf16 else 'off'}, compile {args.compile_backend if args.compile else 'off'}, torch "
          f"{torch.__version__}, median of {args.reps} after {args.warmup} warmup, interleaved, {args.clock} clock")
    print(f"load average at start: {load_average()}  (a shared machine makes every ratio noisy)")
    results = []
    for arch in args.archs:
        for shape in args.shapes:
            res = measure(arch, shape, args, device)
            print_result(res, peak, args)
            results.append(res)
    print("\ngoals of issue 14 (measured in this run):")
    for line in goal_lines(results):
        print(line)
    end = load_average()
    print(f"load average at end: {end}")
    out = {"config": {k: v for k, v in vars(args).items() if k not in ("archs", "shapes", "pairs")}
           | {"archs": args.archs, "shapes": [f"{i}/{p}" for i, p in args.shapes], "pairs": args.pairs,
              "torch": torch.__version__, "threads": threads, "peak_tflops": peak},
           "results": results, "load_end": end}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1, default=str)
        print(f"wrote {args.json}")
    if args.plot:
        write_plot(results, args.plot)
        print(f"wrote {args.plot}")
    return out


if __name__ == "__main__":
    main()
    sys.exit(0)
