"""Speed of one PART training step against the plain backbone step, measured in ONE run on ONE batch.

Times (median over ``--repeats`` after ``--warmup``; the measurements are interleaved round-robin so a
change in machine load hits every item alike):

  (a) backbone  plain ViT forward+backward on grid tokens (``forward_features`` + mean as a trivial loss)
  (b) PART      full PART step forward+backward (``PARTModel``: sampler, ViT, pairs, default head, MSE)
  (c) sampler   the off-grid patch sampler alone (boxes + one batched crop/resize)
  head          the relative encoder alone, forward+backward on fixed tokens, for the reference
                (``cross_attention_reference``) and the fused (``cross_attention``) implementation at
                several #pairs; also the PART step with each implementation.

Prints the ratios against the goals of issue 2 (b/a <= 1.10, a/c >= 20) and issue 10 (fused head <= 10%
of the backbone step at every #pairs; PART step <= 1.10x backbone step), every number measured here.

    python benchmarks/bench_step.py                      # ViT-Tiny, 32x32, patch 4, batch 128, 2048 pairs
    python benchmarks/bench_step.py --quick              # tiny smoke size, seconds
    python benchmarks/bench_step.py --device cuda --bf16 # GPU, bf16 autocast
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
    import part
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    import part

from part.models.vit import vit, vit_custom
from part.targets import parse_num_pairs, resolve_num_pairs, sample_pairs

GOAL_PART_OVER_BACKBONE = 1.10  # issue 2 and issue 10: PART step <= 1.10x the plain backbone step
GOAL_BACKBONE_OVER_SAMPLER = 20.0  # issue 2: the sampler costs <= 1/20 of the backbone step
GOAL_HEAD_FRACTION = 0.10  # issue 10: fused head fwd+bwd <= 10% of the backbone step


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="tiny", choices=["tiny", "small", "base"], help="ViT size (default: tiny)")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--patch-size", type=int, default=4)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--pairs", default="2048", help="#pairs of the PART step: an int or 'all' (default 2048)")
    p.add_argument("--head-pairs", default="256,2048,all", help="comma-separated #pairs for the head timings")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per item (median reported)")
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--bf16", action="store_true", help="run steps under bf16 autocast")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true", help="tiny smoke size: 2-block ViT d=64, 16x16, batch 8")
    args = p.parse_args(argv)
    if args.quick:
        args.img_size, args.batch, args.pairs, args.head_pairs = 16, 8, "64", "16,64,all"
        args.repeats, args.warmup = 2, 1
    for name in ("batch", "repeats", "img_size", "patch_size"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    args.pairs = parse_pairs(p, args.pairs, "--pairs")
    args.head_pairs = [parse_pairs(p, s, "--head-pairs") for s in args.head_pairs.split(",") if s.strip()]
    return args


def parse_pairs(p: argparse.ArgumentParser, text: str, flag: str) -> int | str:
    try:
        return parse_num_pairs(text)
    except ValueError:
        p.error(f"{flag} takes positive ints or 'all', got {text.strip()!r}")


def build_backbone(args) -> torch.nn.Module:
    if args.quick:
        return vit_custom(64, 2, 2, img_size=args.img_size, patch_size=args.patch_size)
    return vit(args.size, img_size=args.img_size, patch_size=args.patch_size)


class Timer:
    """Round-robin timing of named callables; ``sync`` makes asynchronous devices finish."""

    def __init__(self, device: torch.device):
        self.device = device
        self.items: dict[str, callable] = {}
        self.times: dict[str, list[float]] = {}

    def add(self, name: str, fn) -> None:
        self.items[name] = fn
        self.times[name] = []

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def run(self, warmup: int, repeats: int, log=print) -> dict[str, float]:
        for r in range(warmup + repeats):
            for name, fn in self.items.items():
                self.sync()
                t0 = time.perf_counter()
                fn()
                self.sync()
                dt = time.perf_counter() - t0
                if r >= warmup:
                    self.times[name].append(dt)
            log(f"  round {r + 1}/{warmup + repeats} done{' (warmup)' if r < warmup else ''}")
        return {name: statistics.median(ts) for name, ts in self.times.items()}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda requested but CUDA is not available")
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.bf16 else nullcontext

    torch.manual_seed(args.seed)
    backbone = build_backbone(args).to(device)
    models = {
        impl: part.PARTModel(backbone, head=head, num_pairs=args.pairs).to(device)
        for impl, head in (("fused", "cross_attention"), ("reference", "cross_attention_reference"))
    }
    models["reference"].head.load_state_dict(models["fused"].head.state_dict())  # same head weights
    model = models["fused"]
    gen = torch.Generator(device=device).manual_seed(args.seed)
    images = torch.rand(args.batch, 3, args.img_size, args.img_size, generator=gen, device=device)
    n = model.sampler.num_patches_for(args.img_size, args.img_size)
    d = backbone.embed_dim
    tokens = torch.randn(args.batch, n, d, generator=gen, device=device)
    head_pairs = {m: sample_pairs(args.batch, n, m, gen, device=device) for m in args.head_pairs}

    def backbone_step():
        backbone.zero_grad(set_to_none=True)
        with amp():
            loss = backbone.forward_features(images).float().mean()
        loss.backward()

    def part_step(m):
        def step():
            m.zero_grad(set_to_none=True)
            with amp():
                out = m(images, generator=gen)
            out.loss.backward()
        return step

    def sampler_only():
        with torch.no_grad():
            model.sample(images, gen)

    def pair_sampler_only():
        sample_pairs(args.batch, n, args.pairs, gen, device=device)

    def head_step(head, pairs):
        def step():
            head.zero_grad(set_to_none=True)
            x = tokens.detach().requires_grad_(True)
            with amp():
                pred = head(x, pairs)
            pred.float().square().mean().backward()
        return step

    timer = Timer(device)
    timer.add("backbone", backbone_step)
    timer.add("part:fused", part_step(models["fused"]))
    timer.add("part:reference", part_step(models["reference"]))
    timer.add("sampler", sampler_only)
    timer.add("pairs", pair_sampler_only)
    for impl in ("reference", "fused"):
        for m, pairs in head_pairs.items():
            timer.add(f"head:{impl}:{m}", head_step(models[impl].head, pairs))

    threads = torch.get_num_threads() if device.type == "cpu" else "-"
    print(f"PART step benchmark: {'quick smoke config' if args.quick else 'ViT-' + args.size.capitalize()}, "
          f"d={d}, {args.img_size}x{args.img_size}, patch {args.patch_size}, N={n} patches, batch {args.batch}, "
          f"#pairs {args.pairs} ({resolve_num_pairs(args.pairs, n)}), head {backbone.num_heads} heads")
    print(f"device {device}{' (' + torch.cuda.get_device_name(device) + ')' if device.type == 'cuda' else ''}, "
          f"threads {threads}, bf16 autocast {'on' if args.bf16 else 'off'}, torch {torch.__version__}, "
          f"median of {args.repeats} after {args.warmup} warmup, interleaved")
    t = timer.run(args.warmup, args.repeats)

    a, b, c = t["backbone"], t["part:fused"], t["sampler"]
    rows = [
        ("(a) backbone fwd+bwd (grid tokens)", a, f"{args.batch / a:,.0f} img/s"),
        ("(b) PART step fwd+bwd (fused head)", b, f"{args.batch / b:,.0f} img/s"),
        ("    PART step fwd+bwd (reference head)", t["part:reference"], f"{args.batch / t['part:reference']:,.0f} img/s"),
        ("(c) patch sampler", c, ""),
        ("    pair sampler", t["pairs"], ""),
    ]
    print()
    print(f"{'step':<42}{'time':>12}{'':>4}{'throughput':<16}")
    for name, sec, extra in rows:
        print(f"{name:<42}{sec * 1e3:>10.1f}ms{'':>4}{extra:<16}")

    print()
    print(f"{'head fwd+bwd / backbone step':<32}" + "".join(f"{'#pairs ' + str(m):>16}" for m in args.head_pairs))
    fractions = {}
    for impl in ("reference", "fused"):
        cells = []
        for m in args.head_pairs:
            th = t[f"head:{impl}:{m}"]
            fractions[(impl, m)] = th / a
            cells.append(f"{th * 1e3:8.1f}ms {th / a:5.1%}")
        print(f"{impl:<32}" + "".join(f"{cell:>16}" for cell in cells))
    speedups = "".join(f"{t[f'head:reference:{m}'] / t[f'head:fused:{m}']:>15.1f}x" for m in args.head_pairs)
    print(f"{'speed-up fused vs reference':<32}" + speedups)

    ratio_ba = b / a
    ratio_ac = a / c
    ratio_ref = t["part:reference"] / a
    print()
    print("ratios (measured in this run)")
    print(f"  b/a  PART step (fused) / backbone step      = {ratio_ba:6.3f}   goal <= {GOAL_PART_OVER_BACKBONE:.2f}")
    print(f"       PART step (reference) / backbone step  = {ratio_ref:6.3f}")
    print(f"  a/c  backbone step / sampler                = {ratio_ac:6.1f}   goal >= {GOAL_BACKBONE_OVER_SAMPLER:.0f}")
    print(f"       backbone step / (patch + pair sampler) = {a / (c + t['pairs']):6.1f}")
    worst = max(fractions[("fused", m)] for m in args.head_pairs)
    print(f"       fused head / backbone step, worst      = {worst:6.1%}   goal <= {GOAL_HEAD_FRACTION:.0%}")

    goals = {
        "b/a": ratio_ba <= GOAL_PART_OVER_BACKBONE,
        "a/c": ratio_ac >= GOAL_BACKBONE_OVER_SAMPLER,
        "fused head": worst <= GOAL_HEAD_FRACTION,
    }
    missed = [k for k, ok in goals.items() if not ok]
    print()
    if args.quick:
        print("note: --quick is a smoke size; the goals are stated for ViT-Tiny, 32x32, patch 4, batch 128")
    if missed:
        print(f"GOALS NOT MET: {', '.join(missed)} (met: {', '.join(k for k in goals if goals[k]) or 'none'})")
    else:
        print("ALL GOALS MET: b/a <= 1.10, a/c >= 20, fused head <= 10% of the backbone step at every #pairs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
