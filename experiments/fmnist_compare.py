"""End-to-end CPU check on Fashion-MNIST: PART-pretrained ViT vs the same ViT from scratch.

1. Pretrain the small ViT of ``configs/fmnist_tiny_cpu.yaml`` with PART for a fixed number of steps.
2. Linear probe + kNN (k=20, cosine, T=0.07) of its frozen features, and of the same ViT at its random
   initialisation (what "from scratch" starts from).
3. Fine-tune both (``configs/fmnist_finetune_cpu.yaml``: fresh learnable position embeddings, linear head
   on [CLS], paper §4) for the same number of steps, and evaluate on the test split.
4. Print one table (and write ``<out>/compare.json``).

Budgets are steps and sample counts, so the run time is bounded on a shared 2-core machine::

    python experiments/fmnist_compare.py --quick                  # smoke run, about a minute
    python experiments/fmnist_compare.py --pretrain-steps 600 --finetune-steps 300 \
        --max-train 10000 --max-test 2000                        # a modest budget, ~15-20 min on a busy 2-core machine

Fashion-MNIST is read from /usr/share/datasets/fashion-mnist (Debian's ``dataset-fashion-mnist``) or
``--data-root``. Numbers from short budgets say how the two starts compare at that budget, nothing more.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from part import pretrain  # noqa: E402
from part.engine import build_backbone, export_backbone  # noqa: E402
from part.evaluation import evaluate, finetune, probe  # noqa: E402
from part.evaluation.metrics import format_table, save_results_json  # noqa: E402
from part.config import load_config  # noqa: E402

CONFIGS = ROOT / "configs"


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny smoke budget (overrides the budgets below)")
    p.add_argument("--pretrain-steps", type=int, default=600)
    p.add_argument("--finetune-steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-train", type=int, default=10000, help="training images used (pretrain, probe, finetune)")
    p.add_argument("--max-test", type=int, default=2000, help="test images evaluated")
    p.add_argument("--embed-dim", type=int, default=96)
    p.add_argument("--depth", type=int, default=4)
    p.add_argument("--num-heads", type=int, default=3)
    p.add_argument("--num-pairs", type=int, default=1024)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 is fastest on a busy 2-core machine: 2 oversubscribe it)")
    p.add_argument("--data-root", help="Fashion-MNIST IDX folder (default: the Debian package's)")
    p.add_argument("--out", default="runs/fmnist_compare", help="folder for the runs and compare.json")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.pretrain_steps, args.finetune_steps, args.batch_size = 20, 20, 64
        args.max_train, args.max_test, args.embed_dim, args.depth, args.num_pairs = 1000, 500, 48, 2, 256
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    common = [f"train.threads={args.threads}", "train.device=cpu", f"train.seed={args.seed}",
              f"train.batch_size={args.batch_size}", f"model.embed_dim={args.embed_dim}", f"model.depth={args.depth}",
              f"model.num_heads={args.num_heads}",
              f"data.max_samples={args.max_train}", "train.log_every=50", "train.ckpt_every=100000"]
    if args.data_root:
        common.append(f"data.root={args.data_root}")
    times = {}

    t = time.perf_counter()
    warm = min(50, args.pretrain_steps // 10)
    pre = pretrain(CONFIGS / "fmnist_tiny_cpu.yaml", out=out / "pretrain", overwrite=True, progress=False,
                   overrides=common + [f"train.max_steps={args.pretrain_steps}", f"objective.num_pairs={args.num_pairs}",
                                       f"optim.warmup_steps={warm}"])
    times["pretrain_s"] = time.perf_counter() - t
    pre_errors = {k: pre.metrics.get(k) for k in ("err_x", "err_y", "err_euclid")}

    # the from-scratch encoder at initialisation: same config and seed as the fine-tuning baseline builds
    cfg = load_config(CONFIGS / "fmnist_finetune_cpu.yaml", common)
    torch.manual_seed(args.seed)
    export_backbone(build_backbone(cfg.model), out / "random_init")

    probe_opts = dict(config=CONFIGS / "fmnist_probe_cpu.yaml", max_train=args.max_train, max_test=args.max_test,
                      overrides=[f"train.threads={args.threads}", "train.device=cpu"]
                      + ([f"data.root={args.data_root}"] if args.data_root else []), verbose=False)
    t = time.perf_counter()
    probes = {"PART": probe(pre.run_dir, out=out / "probe_part.json", **probe_opts),
              "scratch": probe(out / "random_init" / "model.safetensors", out=out / "probe_scratch.json", **probe_opts)}
    times["probe_s"] = time.perf_counter() - t

    results = {}
    for name, init in (("PART", pre.run_dir), ("scratch", "none")):
        t = time.perf_counter()
        ft = finetune(CONFIGS / "fmnist_finetune_cpu.yaml", init=init, out=out / f"finetune_{name.lower()}",
                      overwrite=True, progress=False, evaluate=False,
                      overrides=common + [f"train.max_steps={args.finetune_steps}",
                                          f"optim.warmup_steps={min(50, args.finetune_steps // 10)}"])
        # evaluate on max_test images of the test split (data.max_samples limited the training split)
        results[name] = evaluate(ft.run_dir, max_samples=args.max_test, overrides=["data.max_samples=null"],
                                 verbose=False)
        times[f"finetune_{name.lower()}_s"] = time.perf_counter() - t

    rows = []
    for name, label in (("PART", "PART-pretrained"), ("scratch", "from scratch (random init)")):
        rows.append({"init": label, "probe top1": probes[name].linear["top1"], "kNN top1": probes[name].knn["top1"],
                     "finetune top1": results[name]["top1"], "finetune kappa": results[name]["kappa"]})
    budget = {k: getattr(args, k) for k in ("pretrain_steps", "finetune_steps", "batch_size", "max_train", "max_test",
                                            "embed_dim", "depth", "num_heads", "num_pairs", "threads", "seed")}
    report = {"budget": budget, "rows": rows, "pretext_final": pre_errors, "seconds": times,
              "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:]))}
    save_results_json(out / "compare.json", report)
    print(f"\nFashion-MNIST, ViT d={args.embed_dim} depth={args.depth}: PART pretrain {args.pretrain_steps} steps, "
          f"fine-tune {args.finetune_steps} steps, batch {args.batch_size}, {args.max_train} train / "
          f"{args.max_test} test images, {args.threads} threads")
    print(format_table(rows))
    print("seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in times.items()))
    print(f"wrote {out / 'compare.json'}")
    return report


if __name__ == "__main__":
    main()
