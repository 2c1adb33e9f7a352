"""Step time and memory of every pretext objective on the same backbone and batch, in ONE run, as ratios
to the plain backbone step (issue 7: "apples to apples" costs for the paper's comparisons).

Items (each built on a fresh copy of the same ViT, same seed, same images):

  backbone         plain ViT forward+backward on all N grid tokens (``forward_features``, mean-square of
                   the tokens as a trivial loss): the unit every ratio is taken against
  part             PART, off-grid, cross-attention head, ``--pairs`` pairs
  part_grid        PART-grid (same head and #pairs)
  part_scale       PART with scale/aspect boxes (4-d targets)
  mp3              MP3, masked keys via the gather path (mask ratio 0.75)
  mp3[mask]        MP3 with the boolean-mask reference attention (same maths, full N x N scores)
  droppos          DropPos defaults (mask 0.75, pos-mask 0.75, smoothing, attentive reconstruction)
  droppos[-attn]   DropPos without attentive reconstruction (no extra full-image forward)
  mae              MAE (mask 0.75, 2-block decoder of the backbone's width, norm-pix loss)
  supervised       from scratch, learnable position embeddings, CLS + linear head, 10 classes

Step time: forward+backward (no optimiser step) with gradients cleared in between; median over
``--repeats`` after ``--warmup`` rounds; the items are measured round-robin so load changes on a shared
machine hit all of them alike.

Memory:
  * CUDA: ``torch.cuda.max_memory_allocated`` during one step minus the memory allocated just before it
    (parameters, no gradients): the step's activations, temporaries and gradients.
  * CPU: ``tracemalloc`` does not see torch's allocator, so we report the bytes of the tensors autograd
    saves for backward, collected with ``torch.autograd.graph.saved_tensors_hooks`` during one forward:
    unique storages only (a tensor saved by several ops, or views of one storage, count once), parameters
    and buffers excluded. This is the activation memory the step must hold until backward; it ignores
    short-lived temporaries and gradients.

    python benchmarks/bench_objectives.py --quick          # seconds: 4-block ViT d=64, 32x32 / patch 4
    python benchmarks/bench_objectives.py                  # ViT-Tiny, 224x224 / patch 16, batch 32
    python benchmarks/bench_objectives.py --device cuda --bf16
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import time
from contextlib import nullcontext

import torch

try:
    import part  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from part.models.vit import vit, vit_custom
from part.objectives.registry import build_objective
from part.targets import max_pairs

NUM_CLASSES = 10
FULL = dict(img_size=224, patch_size=16, batch=32, repeats=5, warmup=2)
QUICK = dict(img_size=32, patch_size=4, batch=16, repeats=3, warmup=1)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="tiny", choices=["tiny", "small", "base"], help="ViT size (default: tiny)")
    p.add_argument("--img-size", type=int, default=None, help="default 224 (--quick: 32)")
    p.add_argument("--patch-size", type=int, default=None, help="default 16 (--quick: 4)")
    p.add_argument("--in-chans", type=int, default=3)
    p.add_argument("--batch", type=int, default=None, help="default 32 (--quick: 16)")
    p.add_argument("--pairs", type=int, default=2048, help="#pairs of the PART items (capped at N(N-1))")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds, median reported (default 5; --quick: 3)")
    p.add_argument("--warmup", type=int, default=None, help="untimed rounds first (default 2; --quick: 1)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    p.add_argument("--bf16", action="store_true", help="run steps under bf16 autocast")
    p.add_argument("--only", default=None, help="comma-separated subset of items (backbone is always run)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="smoke size: 4-block ViT d=64 (4 heads), 32x32 images, patch 4 (N=64), batch 16")
    args = p.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():  # explicit flags win over the preset
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("batch", "repeats", "img_size", "patch_size", "pairs", "in_chans"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.warmup < 0:
        p.error(f"--warmup must be >= 0, got {args.warmup}")
    if args.img_size % args.patch_size:
        p.error(f"--img-size {args.img_size} must be a multiple of --patch-size {args.patch_size} (grid baselines)")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda requested but CUDA is not available")
    return args


def make_backbone(args):
    kw = dict(img_size=args.img_size, patch_size=args.patch_size, in_chans=args.in_chans)
    if args.quick:
        return vit_custom(64, 4, 4, **kw)
    return vit(args.size, **kw)


def item_specs(args, num_patches: int) -> dict[str, tuple[str, dict]]:
    """item name -> (registry name, options)."""
    pairs = min(args.pairs, max_pairs(num_patches))
    return {
        "part": ("part", {"num_pairs": pairs}),
        "part_grid": ("part_grid", {"num_pairs": pairs}),
        "part_scale": ("part_scale", {"num_pairs": pairs}),
        "mp3": ("mp3", {}),
        "mp3[mask]": ("mp3", {"attention": "mask"}),
        "droppos": ("droppos", {}),
        "droppos[-attn]": ("droppos", {"attentive": False}),
        "mae": ("mae", {}),
        "supervised": ("supervised", {"num_classes": NUM_CLASSES}),
    }


class PlainBackbone(torch.nn.Module):
    """The unit of every ratio: the ViT on all grid tokens, a trivial loss."""

    def __init__(self, backbone):
        super().__init__()
        self.backbone = backbone

    def forward(self, images, generator=None):
        return self.backbone.forward_features(images).float().pow(2).mean()


def step_fn(obj, images, labels, autocast):
    """Closure running one forward+backward (gradients cleared first)."""
    gen = torch.Generator(device="cpu")

    def run(seed: int):
        gen.manual_seed(seed)
        for p in obj.parameters():
            p.grad = None
        with autocast():
            if isinstance(obj, PlainBackbone):
                loss = obj(images)
            elif getattr(obj, "uses_labels", False):
                loss = obj(images, labels, gen).loss
            else:
                loss = obj(images, gen).loss
        loss.backward()

    return run


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def saved_activation_bytes(obj, run) -> int:
    """Bytes of the unique non-parameter storages autograd saves for backward during one step."""
    exclude = {t.untyped_storage().data_ptr() for t in list(obj.parameters()) + list(obj.buffers())}
    seen: dict[int, int] = {}

    def pack(t):
        if isinstance(t, torch.Tensor) and t.layout == torch.strided:
            s = t.untyped_storage()
            ptr = s.data_ptr()
            if ptr and ptr not in exclude:
                seen[ptr] = max(seen.get(ptr, 0), s.nbytes())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        run(10_000)
    return sum(seen.values())


def cuda_step_bytes(obj, run, device) -> int:
    for p in obj.parameters():
        p.grad = None
    sync(device)
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    run(10_001)
    sync(device)
    return torch.cuda.max_memory_allocated(device) - before


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    template = make_backbone(args)
    n = template.num_patches
    gen = torch.Generator().manual_seed(args.seed)
    images = torch.rand(args.batch, args.in_chans, args.img_size, args.img_size, generator=gen).to(device)
    labels = torch.randint(0, NUM_CLASSES, (args.batch,), generator=gen).to(device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if args.bf16 else nullcontext

    specs = item_specs(args, n)
    if args.only:
        wanted = [s.strip() for s in args.only.split(",") if s.strip()]
        bad = [w for w in wanted if w not in specs]
        if bad:
            raise SystemExit(f"--only: unknown item(s) {bad}; choose from {list(specs)}")
        specs = {k: specs[k] for k in wanted}
    objs = {"backbone": PlainBackbone(copy.deepcopy(template))}
    for name, (reg, cfg) in specs.items():
        objs[name] = build_objective(reg, copy.deepcopy(template), **cfg)
    runs = {}
    for name, obj in objs.items():
        obj.to(device).train()
        runs[name] = step_fn(obj, images, labels, autocast)

    # memory, one item at a time
    mem = {}
    for name, obj in objs.items():
        if device.type == "cuda":
            mem[name] = cuda_step_bytes(obj, runs[name], device)
        else:
            mem[name] = saved_activation_bytes(obj, runs[name])

    # time, round-robin
    times = {name: [] for name in objs}
    for r in range(args.warmup + args.repeats):
        for name, run in runs.items():
            sync(device)
            t0 = time.perf_counter()
            run(r)
            sync(device)
            if r >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(v) for name, v in times.items()}

    params = {name: sum(p.numel() for p in obj.parameters() if p.requires_grad) for name, obj in objs.items()}
    mem_kind = "peak CUDA bytes of the step" if device.type == "cuda" else "activation bytes saved for backward"
    cfg_line = (
        f"ViT {'d=64 depth=4 heads=4 (--quick)' if args.quick else args.size}, {args.img_size}x{args.img_size}, "
        f"patch {args.patch_size} (N={n}), batch {args.batch}, device {device}"
        f"{' bf16' if args.bf16 else ''}, threads {torch.get_num_threads()}, median of {args.repeats}"
    )
    print(f"# bench_objectives: {cfg_line}")
    print(f"# memory = {mem_kind}")
    print()
    print("| item | step ms | x backbone | memory MiB | x backbone | trainable params |")
    print("|---|---:|---:|---:|---:|---:|")
    base_t, base_m = med["backbone"], mem["backbone"]
    rows = []
    for name in objs:
        row = {
            "item": name, "step_ms": 1e3 * med[name], "time_ratio": med[name] / base_t,
            "memory_bytes": mem[name], "memory_ratio": mem[name] / base_m if base_m else float("nan"),
            "params": params[name],
        }
        rows.append(row)
        print(f"| {name} | {row['step_ms']:.1f} | {row['time_ratio']:.2f} | {mem[name] / 2**20:.1f} | "
              f"{row['memory_ratio']:.2f} | {params[name]:,} |")
    result = {"config": vars(args) | {"num_patches": n, "memory_kind": mem_kind, "summary": cfg_line}, "rows": rows}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
