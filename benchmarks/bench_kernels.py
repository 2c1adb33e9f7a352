"""The two kernels behind the fixed rules of the PART step, timed in ONE run (issue 14).

  pick-pairs  fwd+bwd of :class:`part.models.fast_heads.PickPairs` on its ``"table"`` and ``"rows"`` paths
              for several #pairs M at N = 64, 196, 576 (batch 64, 16, 4): where one path overtakes the other,
              next to what the cost rule :func:`~part.models.fast_heads.choose_path` picks (``ROWS_COST``).
  copy        :func:`part.sampling.crop.copy_patches` (integer positions with D = P) with per-pixel indices vs
              whole windows of an ``unfold`` view, at P = 4 and 16: where ``UNFOLD_MIN_PATCH`` comes from.
  pairs       :func:`part.targets.sample_pairs`' two exact samplers of M distinct pairs per image: ranking
              N (N - 1) random keys vs drawing with replacement and keeping the first M distinct, at the
              batches and N above: where ``SPARSE_DRAW_RATIO`` comes from.

Times are per call, the fastest of ``--reps`` after one warm-up (CPU time of this thread with ``--clock cpu``).

    python benchmarks/bench_kernels.py --threads 1 --clock cpu
    python benchmarks/bench_kernels.py --threads 1 --clock cpu --only pairs   # one kernel
    python benchmarks/bench_kernels.py --quick          # smoke size, seconds (tests/benchmarks/)
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

import torch

try:
    import part  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from part.models.fast_heads import CHUNK_ELEMENTS, PickPairs, choose_path
from part.targets import SPARSE_DRAW_RATIO, max_pairs, subset_by_draws, subset_by_keys

crop = importlib.import_module("part.sampling.crop")  # the module (its UNFOLD_MIN_PATCH), not a name it exports

#: (batch, N, #pairs to time): the shapes of bench_decomposed (32/4, 224/16, 384/16)
PICK_SHAPES = [(64, 64, [256, 512, 1024, 2048]), (16, 196, [1024, 2048, 4096, 8192]),
               (4, 576, [2048, 8192, 16384, 32768])]
#: (batch, image size, P): N = 64, 196, 576 as above, plus small patches
COPY_SHAPES = [(64, 32, 4), (16, 224, 16), (4, 384, 16)]
#: (batch, N, #pairs): the batches bench_decomposed uses at N = 64, 196, 576
PAIR_SHAPES = [(64, 64, [512, 2048]), (16, 196, [2048, 4096]), (4, 576, [2048, 8192])]
SECTIONS = ("pick", "copy", "pairs")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--heads", type=int, default=3, help="attention heads of the encoder (groups = batch x heads)")
    p.add_argument("--reps", type=int, default=3, help="timed calls per item (the fastest counts)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--clock", default="wall", choices=["wall", "cpu"], help="cpu: this thread's CPU time")
    p.add_argument("--quick", action="store_true", help="smoke size: one small shape each, one rep")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS),
                   help="time only these kernels (default: all three)")
    args = p.parse_args(argv)
    if args.reps < 1 or args.heads < 1:
        p.error("--reps and --heads must be positive")
    return args


def best_time(fn, reps: int, clock) -> float:
    fn()
    best = float("inf")
    for _ in range(reps):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


def pick_pairs_rows(shapes, heads: int, reps: int, clock) -> list[dict]:
    """fwd+bwd ms of PickPairs' table and rows paths (k = 2 outputs, so c = 3 columns) per (N, M)."""
    rows = []
    budget = CHUNK_ELEMENTS.get("cpu")
    for batch, n, ms in shapes:
        g = batch * heads
        gen = torch.Generator().manual_seed(0)
        ea, eb = (torch.rand(g, n, n, generator=gen).requires_grad_() for _ in range(2))
        u1 = torch.randn(g, n, 3, generator=gen).requires_grad_()
        for m in ms:
            flat = torch.stack([torch.randperm(n * n, generator=gen)[:m] for _ in range(batch)])
            ia, ja = ((flat // n).repeat_interleave(heads, 0), (flat % n).repeat_interleave(heads, 0))
            cot = torch.randn(g, m, 3, generator=gen)
            times = {}
            for mode in ("table", "rows"):
                def step(mode=mode):
                    ea.grad = eb.grad = u1.grad = None
                    (PickPairs.apply(ea, eb, u1, ia, ja, mode, budget) * cot).sum().backward()
                times[mode] = best_time(step, reps, clock) * 1e3
            rows.append({"batch": batch, "N": n, "M": m, **times, "faster": min(times, key=times.get),
                         "rule": choose_path(n, m, 2)})
    return rows


def copy_rows(shapes, reps: int, clock) -> list[dict]:
    """ms of copy_patches with per-pixel indices and with unfold windows, same boxes, same bits."""
    rows = []
    for batch, size, p in shapes:
        n = (size // p) ** 2
        gen = torch.Generator().manual_seed(0)
        images = torch.rand(batch, 3, size, size, generator=gen)
        corner = torch.randint(0, size - p + 1, (batch, n, 2), generator=gen).float()
        boxes = torch.cat([corner + p / 2, torch.full_like(corner, float(p))], dim=-1)
        times, outs = {}, {}
        for name, threshold in (("pixels", 10**9), ("windows", 0)):
            def run(threshold=threshold, name=name):
                saved = crop.UNFOLD_MIN_PATCH
                crop.UNFOLD_MIN_PATCH = threshold  # force one gather
                try:
                    outs[name] = crop.copy_patches(images, boxes, p, check=False)
                finally:
                    crop.UNFOLD_MIN_PATCH = saved
            times[name] = best_time(run, reps, clock) * 1e3
        if not torch.equal(outs["pixels"], outs["windows"]):
            raise SystemExit(f"copy_patches: the two gathers differ at P={p}")
        rows.append({"batch": batch, "N": n, "P": p, **times, "faster": min(times, key=times.get),
                     "rule": "windows" if p >= crop.UNFOLD_MIN_PATCH else "pixels"})
    return rows


def pair_rows(shapes, reps: int, clock) -> list[dict]:
    """ms of drawing M distinct pair indices per image by ranking keys and by deduplicated draws."""
    rows = []
    for batch, n, ms in shapes:
        total = max_pairs(n)
        for m in ms:
            gen = torch.Generator().manual_seed(0)
            times = {"keys": best_time(lambda: subset_by_keys(batch, total, m, gen, "cpu"), reps, clock) * 1e3,
                     "draws": best_time(lambda: subset_by_draws(batch, total, m, gen, "cpu"), reps, clock) * 1e3}
            rows.append({"batch": batch, "N": n, "M": m, **times, "faster": min(times, key=times.get),
                         "rule": "draws" if m * SPARSE_DRAW_RATIO <= total else "keys"})
    return rows


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    clock = time.thread_time if args.clock == "cpu" else time.perf_counter
    pick = [(8, 16, [16, 64])] if args.quick else PICK_SHAPES
    copy = [(4, 32, 4), (2, 32, 8)] if args.quick else COPY_SHAPES
    reps = 1 if args.quick else args.reps
    print(f"kernels (issue 14): {torch.get_num_threads()} thread(s), {args.clock} clock, fastest of {reps}; "
          f"load average {'%.2f/%.2f/%.2f' % os.getloadavg()}")
    picks = copies = pair = []
    if "pick" in args.only:
        picks = pick_pairs_rows(pick, args.heads, reps, clock)
        print(f"\nPickPairs fwd+bwd ({args.heads} heads, k = 2), ms:")
        print(f"{'batch':>5} {'N':>4} {'M':>6} {'table':>9} {'rows':>9}  faster  rule (choose_path)")
        for r in picks:
            print(f"{r['batch']:>5} {r['N']:>4} {r['M']:>6} {r['table']:>9.1f} {r['rows']:>9.1f}  {r['faster']:<6}  "
                  f"{r['rule']}")
    if "copy" in args.only:
        copies = copy_rows(copy, reps, clock)
        print("\ncopy_patches (D = P, integer corners), ms:")
        print(f"{'batch':>5} {'N':>4} {'P':>3} {'pixels':>8} {'windows':>8}  faster   rule (UNFOLD_MIN_PATCH)")
        for r in copies:
            print(f"{r['batch']:>5} {r['N']:>4} {r['P']:>3} {r['pixels']:>8.2f} {r['windows']:>8.2f}  {r['faster']:<7}  "
                  f"{r['rule']}")
    if "pairs" in args.only:
        pair = pair_rows([(4, 16, [8, 64])] if args.quick else PAIR_SHAPES, reps, clock)
        print("\npair sampling (M distinct of N (N - 1) per image), ms:")
        print(f"{'batch':>5} {'N':>4} {'M':>6} {'keys':>8} {'draws':>8}  faster  rule (SPARSE_DRAW_RATIO)")
        for r in pair:
            print(f"{r['batch']:>5} {r['N']:>4} {r['M']:>6} {r['keys']:>8.2f} {r['draws']:>8.2f}  {r['faster']:<6}  "
                  f"{r['rule']}")
    print(f"\nload average at end {'%.2f/%.2f/%.2f' % os.getloadavg()}")
    return {"pick_pairs": picks, "copy": copies, "pairs": pair}


if __name__ == "__main__":
    main()
