"""PART-pretrained vs from-scratch, low-label fine-tuning, on the SYNTHETIC sleep-like EEG generator
(issue 5; the protocol of paper §5.2 Tab. 3 / App. 8.1 at demo scale). NOT real EEG: the numbers only show
what this pipeline measures on the generator, nothing about sleep staging.

Protocol, all in one run, on the subject split of the data options (test subjects never seen before testing):

1. pretrain PART (off-grid 1-s windows, target dt) on every non-test subject, labels unused
   (``configs/sleep_synthetic_cpu.yaml``);
2. for every fine-tune seed: fine-tune the pretrained encoder on the ``n_finetune`` low-label subjects
   (``configs/sleep_synthetic_finetune_cpu.yaml``: grid windows, learnable position embeddings with 20%
   masked in training, linear head on [CLS]) and train the same model from scratch with the same seed,
   steps and data;
3. evaluate both on the held-out subjects: Cohen's kappa, accuracy, macro F1, balanced accuracy.

Printed: the pretext loss (first log step, and the mean over the last fifth of the log) next to its chance
level (predicting dt = 0 for every pair, E[dt^2] measured on the sampler) and their ratio, the per-run
table, and mean (std) per initialisation. Everything is also written to ``<out>/summary.json``.
``--pretrain-per-seed`` pretrains once per seed, so the spread covers pretraining too; ``--report`` trains
nothing and prints the same for three finished runs (the last step of ``make demo-1d``).

    python experiments/sleep_synthetic_compare.py                         # the configs' budgets (CPU, minutes)
    python experiments/sleep_synthetic_compare.py --pretrain-steps 1000 --finetune-steps 300 --seeds 0 1 2
    python experiments/sleep_synthetic_compare.py --quick                 # seconds: a smoke run
    python experiments/sleep_synthetic_compare.py --threads 1 --seeds 0 1 2        # docs/sleep.md demo-1d table
    python experiments/sleep_synthetic_compare.py --threads 1 --seeds 0 1 2 --pretrain-per-seed   # spread over pretraining too
    python experiments/sleep_synthetic_compare.py --report runs/demo-1d runs/demo-1d-ft runs/demo-1d-scratch
    # a development draw of subjects (not the configured test subjects), a fine-tune option for both inits:
    python experiments/sleep_synthetic_compare.py --threads 1 --seeds 0 1 2 --pretrain-steps 600 \
        --data-set data.options.seed=1 --finetune-set objective.options.layer_decay=0.75
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

try:
    import part  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import part
from part.config import load_config
from part.engine.builders import build_dataset, build_objective
from part.evaluation.metrics import format_table, save_results_json
from part.targets import relative_targets

ROOT = Path(__file__).resolve().parents[1]
PRETRAIN_CFG = ROOT / "configs" / "sleep_synthetic_cpu.yaml"
FINETUNE_CFG = ROOT / "configs" / "sleep_synthetic_finetune_cpu.yaml"
QUICK_DATA = [
    "data.options.n_subjects=14", "data.options.epochs_per_subject=20", "data.options.n_finetune=4",
    "data.options.n_test=4",
]


def chance_dt_mse(cfg, draws: int = 64, seed: int = 0) -> float:
    """E[dt^2] over the pairs PART samples: the pretext MSE of always predicting 0 (the untrained level)."""
    model = build_objective(cfg)
    x = torch.zeros(draws, cfg.model.in_chans, cfg.model.img_size)
    g = torch.Generator().manual_seed(seed)
    _, boxes = model.sampler(x, g)
    n = boxes.shape[1]
    ii, jj = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    off = ii != jj
    pairs = torch.stack([ii[off], jj[off]], dim=-1).expand(draws, -1, -1)
    return float(relative_targets(boxes, pairs, with_scale=False).pow(2).mean())


def pretext_log(run: Path) -> tuple[dict, dict]:
    recs = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return recs[0], recs[-1]


def pretext_vs_chance(run: Path, cfg) -> dict:
    """The PART run's logged dt MSE next to its chance level: first and last logged loss, the mean over the
    last fifth of the log (the loss of one batch is noisy), chance (:func:`chance_dt_mse`) and their ratio."""
    recs = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines() if x.strip()]
    recs = [r for r in recs if "loss" in r]
    tail = recs[-max(1, len(recs) // 5):]
    chance = chance_dt_mse(cfg)
    end = statistics.fmean(r["loss"] for r in tail)
    return {"first": recs[0]["loss"], "last": recs[-1]["loss"], "tail_mean": end, "tail_steps":
            [tail[0]["step"], tail[-1]["step"]], "chance": chance, "ratio": end / chance, "steps": recs[-1]["step"]}


def print_pretext(p: dict) -> None:
    print(f"PART pretext dt MSE: {p['first']:.2f} at the first log -> {p['tail_mean']:.2f} (mean of steps "
          f"{p['tail_steps'][0]}-{p['tail_steps'][1]}); chance (predict dt = 0): {p['chance']:.2f}; "
          f"ratio {p['ratio']:.2f}")


def report(pre_run: Path, ft_run: Path, scratch_run: Path) -> dict:
    """Print the pretext loss vs chance of ``pre_run`` and the test results of the two fine-tunes (what
    ``make demo-1d`` ends with); returns them."""
    from part.io import read_json

    pre = pretext_vs_chance(pre_run, load_config(Path(pre_run) / "config.yaml"))
    print_pretext(pre)
    rows = []
    for name, run in (("PART-pretrained", ft_run), ("from scratch", scratch_run)):
        r = read_json(Path(run) / "results.json")
        rows.append({"init": name, "kappa": r["kappa"], "accuracy": r["top1"], "macro_f1": r["macro_f1"],
                     "run": str(run)})
    print(format_table(rows))
    return {"pretext": pre, "runs": rows}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(ROOT / "runs" / "sleep_synthetic_compare"), help="folder for the runs")
    p.add_argument("--pretrain-steps", type=int, help="PART steps (default: the pretrain config's)")
    p.add_argument("--finetune-steps", type=int, help="fine-tune steps per run (default: the fine-tune config's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="fine-tune seeds (train.seed), one pair of runs each")
    p.add_argument("--threads", type=int, default=None, help="torch threads on CPU (train.threads)")
    p.add_argument("--data-set", action="append", default=[], metavar="KEY=VALUE",
                   help="data override applied to BOTH configs (keeps the subject split identical)")
    p.add_argument("--pretrain-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override of the pretraining config only (e.g. train.max_steps=1200)")
    p.add_argument("--finetune-set", action="append", default=[], metavar="KEY=VALUE",
                   help="override of the fine-tune config, applied to BOTH the PART-pretrained and the "
                        "from-scratch runs (e.g. optim.lr=5e-4, objective.options.layer_decay=0.75)")
    p.add_argument("--quick", action="store_true", help="smoke run: tiny data, 20 + 20 steps")
    p.add_argument("--report", nargs=3, metavar=("PRETRAIN", "FINETUNE", "SCRATCH"),
                   help="train nothing: print the pretext loss vs chance and kappa of three finished runs")
    p.add_argument("--pretrain-per-seed", action="store_true",
                   help="pretrain PART once per seed (train.seed = seed) instead of once for all fine-tunes")
    args = p.parse_args(argv)
    if args.report:
        return report(*(Path(r) for r in args.report))

    out = Path(args.out)
    common = list(args.data_set)
    if args.quick:
        common = QUICK_DATA + common
        args.pretrain_steps = args.pretrain_steps or 20
        args.finetune_steps = args.finetune_steps or 20
    if args.threads:
        common.append(f"train.threads={args.threads}")
    pre_over = common + ([f"train.max_steps={args.pretrain_steps}"] if args.pretrain_steps else []) + args.pretrain_set
    ft_over = common + ([f"train.max_steps={args.finetune_steps}"] if args.finetune_steps else []) + args.finetune_set
    pre_cfg = load_config(PRETRAIN_CFG, pre_over)
    ft_cfg = load_config(FINETUNE_CFG, ft_over)
    if pre_cfg.data != type(pre_cfg.data)(**{**vars(ft_cfg.data), "split": pre_cfg.data.split}):
        raise ValueError(f"the data sections of {PRETRAIN_CFG.name} and {FINETUNE_CFG.name} differ beyond "
                         "data.split; the subject split would not be the same")

    splits = {s: build_dataset(ft_cfg, train=False, split=s) for s in ("pretrain", "finetune", "test")}
    test = splits["test"]
    majority = float(test.stage_counts().max() / len(test))
    print("SYNTHETIC sleep-like data (not real EEG):")
    for s, ds in splits.items():
        print(f"  {s:9s} {len(ds.subjects):3d} subjects {len(ds):6d} windows  stages W/N1/N2/N3/REM "
              f"{ds.stage_counts().tolist()}")
    assert not set(test.subjects) & (set(splits["pretrain"].subjects) | set(splits["finetune"].subjects))

    pretexts, pres = [], {}
    for seed in (args.seeds if args.pretrain_per_seed else [None]):
        t0 = time.perf_counter()
        name = "pretrain" if seed is None else f"pretrain-seed{seed}"
        pre = part.pretrain(pre_cfg, out=out / name, overwrite=True, progress=False,
                            overrides=[] if seed is None else [f"train.seed={seed}"])
        t_pre = time.perf_counter() - t0
        pres[seed] = pre
        pt = {**pretext_vs_chance(pre.run_dir, pre_cfg), "seed": seed, "seconds": round(t_pre, 1)}
        pretexts.append(pt)
        print(f"\n{name}: {pre.step} steps in {t_pre:.0f} s")
        print_pretext(pt)
    first, last = pretext_log(pre.run_dir)
    chance = pretexts[-1]["chance"]

    rows = []
    for seed in args.seeds:
        for name in ("PART-pretrained", "from scratch"):
            t0 = time.perf_counter()
            init = pres[seed if args.pretrain_per_seed else None].run_dir if name == "PART-pretrained" else "none"
            ft = part.finetune(ft_cfg, init=init, out=out / f"{'part' if name == 'PART-pretrained' else 'scratch'}-seed{seed}",
                               overrides=[f"train.seed={seed}"], overwrite=True, progress=False)
            r = ft.results
            rows.append({"init": name, "seed": seed, "kappa": r["kappa"], "accuracy": r["top1"],
                         "macro_f1": r["macro_f1"], "balanced_acc": r["balanced_accuracy"],
                         "steps": ft.train.step, "seconds": round(time.perf_counter() - t0, 1)})
    print("\nLow-label fine-tuning, evaluated on the held-out test subjects "
          f"({len(test)} windows; majority-class accuracy {majority:.3f}, kappa 0 = chance):")
    print(format_table(rows))

    summary_rows = []
    for name in ("PART-pretrained", "from scratch"):
        sel = [r for r in rows if r["init"] == name]
        row = {"init": name, "runs": len(sel)}
        for k in ("kappa", "accuracy", "macro_f1"):
            vals = [r[k] for r in sel]
            row[k] = statistics.fmean(vals)
            row[f"{k}_std"] = statistics.stdev(vals) if len(vals) > 1 else None
        summary_rows.append(row)
    if len(pretexts) > 1:
        ratios = [pt["ratio"] for pt in pretexts]
        print(f"\nPART pretext / chance over {len(ratios)} pretraining seeds: {statistics.fmean(ratios):.3f} "
              f"+- {statistics.stdev(ratios):.3f}")
    print("\nMean (std over fine-tune seeds):")
    print(format_table(summary_rows))

    summary = {
        "data": "SYNTHETIC sleep-like generator (part.data.sleep.synthetic), not real EEG",
        "command": " ".join([Path(sys.argv[0]).name] + (sys.argv[1:] if argv is None else list(argv))),
        "splits": {s: {"subjects": list(ds.subjects), "windows": len(ds)} for s, ds in splits.items()},
        "pretrain": {"run": str(pre.run_dir), "steps": pre.step, "seconds": t_pre, "first": first, "last": last,
                     "chance_dt_mse": chance},
        "pretext": pretexts,
        "runs": rows, "summary": summary_rows, "test_majority_accuracy": majority,
    }
    save_results_json(out / "summary.json", summary)
    print(f"\nwrote {out / 'summary.json'}")
    return summary


if __name__ == "__main__":
    main()
