"""PART-pretrained vs from-scratch on real EEG (``data.kind: signal_npz``): fine-tuning and linear probe,
several seeds, mean +- std, wall time (issue 16).

Sets (convert them first with ``benchmarks/aeon_to_signal_npz.py``; configs in ``configs/``):

* ``blink``            - ``configs/blink_part_cpu.yaml`` + ``configs/blink_finetune_cpu.yaml`` (data/blink)
* ``fingermovements``  - ``configs/fingermovements_part_cpu.yaml`` + ``..._finetune_cpu.yaml``
  (data/fingermovements)

Protocol, per set and per seed ``s`` (``train.seed = s`` everywhere; the published train/test split):

1. pretrain PART on ``train.npz`` (labels unused);
2. fine-tune the PART encoder on ``train.npz`` and evaluate on ``test.npz``; train the same model from
   scratch with the same seed, steps and data (``--init none``);
3. linear probe (L-BFGS logistic regression on mean-pooled frozen features, fitted on train, tested on test)
   of the PART encoder and of a randomly initialised encoder of the same seed;
4. the PART pretext loss (MSE of dt) on train and on test trials next to its chance level (predicting dt = 0,
   E[dt^2] on the sampler): how much of what PART learnt transfers to unseen trials.

Printed: one table per set with mean +- std over seeds of test accuracy, Cohen's kappa and macro F1, and the
mean wall time of a run; everything per run goes to ``<out>/summary.json``.

    python benchmarks/signals_compare.py --sets blink fingermovements --seeds 0 1 2
    python benchmarks/signals_compare.py --sets fingermovements --seeds 0 1 2 --pretrain-steps 600
    python benchmarks/signals_compare.py --sets fingermovements --root fingermovements=tests/fixtures/fingermovements_small --quick
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

try:
    import part  # noqa: F401
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import part
from part.config import load_config
from part.engine import build_backbone, complete_config, export_backbone
from part.evaluation.heldout import evaluate
from part.evaluation.metrics import format_table, save_results_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sleep_synthetic_compare import chance_dt_mse  # noqa: E402  (the same chance level for any 1D PART)

ROOT = Path(__file__).resolve().parents[1]
SETS = {name: (ROOT / "configs" / f"{name}_part_cpu.yaml", ROOT / "configs" / f"{name}_finetune_cpu.yaml")
        for name in ("blink", "fingermovements")}
QUICK = {"pretrain": 4, "finetune": 4}


def mean_std(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return ""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} +- {sd:.3f}"


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_set(name: str, root: str | None, seeds, out: Path, pretrain_steps, finetune_steps, threads, extra) -> dict:
    pre_cfg, ft_cfg = SETS[name]
    common = list(extra) + ([f"data.root={root}"] if root else []) + ([f"train.threads={threads}"] if threads else [])
    pre_over = common + ([f"train.max_steps={pretrain_steps}"] if pretrain_steps else [])
    ft_over = common + ([f"train.max_steps={finetune_steps}"] if finetune_steps else [])
    runs = []
    for s in seeds:
        seed = [f"train.seed={s}"]
        d = out / name / f"seed{s}"
        pre, t_pre = _timed(lambda: part.pretrain(pre_cfg, out=d / "part", overrides=pre_over + seed,
                                                  overwrite=True, progress=False))
        pretext = {}
        for split in ("train", "test"):
            r = evaluate(pre.run_dir, split=split, out=d / "part" / f"pretext_{split}.json", verbose=False, seed=s)
            pretext[split] = r["loss"]
        cfg = load_config(pre.run_dir / "config.yaml")
        pretext["chance"] = chance_dt_mse(cfg, seed=s)
        ft, t_ft = _timed(lambda: part.finetune(ft_cfg, init=pre.run_dir, out=d / "part_ft", overrides=ft_over + seed,
                                                overwrite=True, progress=False))
        sc, t_sc = _timed(lambda: part.finetune(ft_cfg, init="none", out=d / "scratch_ft", overrides=ft_over + seed,
                                                overwrite=True, progress=False))
        probe_kw = dict(epochs=100, verbose=False, seed=s)
        pr, t_pr = _timed(lambda: part.probe(pre.run_dir, out=d / "part" / "probe.json", **probe_kw))
        # a randomly initialised encoder of the same seed and architecture, probed on the same features
        import torch

        torch.manual_seed(s)
        rand_dir = d / "random_encoder"
        export_backbone(build_backbone(cfg.model), rand_dir)
        rcfg = complete_config(load_config(ft_cfg, common))
        rp, t_rp = _timed(lambda: part.probe(rand_dir / "model.safetensors", config=rcfg,
                                             out=rand_dir / "probe.json", **probe_kw))
        rec = {"seed": s, "pretext_loss": pretext, "wall_s": {"pretrain": t_pre, "part_ft": t_ft, "scratch_ft": t_sc,
                                                              "part_probe": t_pr, "random_probe": t_rp}}
        for key, res in (("part_ft", ft.results), ("scratch_ft", sc.results), ("part_probe", pr.linear),
                         ("random_probe", rp.linear)):
            rec[key] = {k: res[k] for k in ("top1", "kappa", "macro_f1", "num_samples")}
        runs.append(rec)
        print(f"{name} seed {s}: PART ft {rec['part_ft']['top1']:.3f}, scratch ft {rec['scratch_ft']['top1']:.3f}, "
              f"PART probe {rec['part_probe']['top1']:.3f}, random probe {rec['random_probe']['top1']:.3f}; "
              f"pretext train {pretext['train']:.3f} / test {pretext['test']:.3f} / chance {pretext['chance']:.3f}",
              file=sys.stderr)
    return {"set": name, "seeds": list(seeds), "pretrain_config": str(pre_cfg), "finetune_config": str(ft_cfg),
            "overrides": {"pretrain": pre_over, "finetune": ft_over}, "runs": runs}


def table(result: dict) -> str:
    rows = []
    labels = {"part_ft": "PART -> fine-tune", "scratch_ft": "scratch fine-tune", "part_probe": "PART linear probe",
              "random_probe": "random-init linear probe"}
    for key, label in labels.items():
        rs = result["runs"]
        rows.append({"method": label, "top1": mean_std(r[key]["top1"] for r in rs),
                     "kappa": mean_std(r[key]["kappa"] for r in rs), "macro_f1": mean_std(r[key]["macro_f1"] for r in rs),
                     "wall_s": statistics.mean(r["wall_s"][key] for r in rs)})
    rs = result["runs"]
    pretext = {k: mean_std(r["pretext_loss"][k] for r in rs) for k in ("train", "test", "chance")}
    return (f"{result['set']} ({len(rs)} seeds; test n={rs[0]['part_ft']['num_samples']}; PART pretrain "
            f"{statistics.mean(r['wall_s']['pretrain'] for r in rs):.0f} s/seed; pretext dt-MSE train {pretext['train']}, "
            f"test {pretext['test']}, chance {pretext['chance']})\n" + format_table(rows))


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", choices=sorted(SETS), default=sorted(SETS))
    p.add_argument("--root", action="append", default=[], metavar="SET=FOLDER", help="data folder of a set")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--pretrain-steps", type=int, help="PART steps (default: the config's)")
    p.add_argument("--finetune-steps", type=int, help="fine-tune steps (default: the config's)")
    p.add_argument("--threads", type=int, help="torch threads on CPU (train.threads)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override both configs, e.g. data.options.normalize=window")
    p.add_argument("--quick", action="store_true", help="a few steps: a smoke run, not a measurement")
    p.add_argument("--out", default=str(ROOT / "runs" / "signals_compare"))
    args = p.parse_args(argv)
    roots = dict(r.split("=", 1) for r in args.root)
    unknown = sorted(set(roots) - set(SETS))
    if unknown:
        p.error(f"--root names unknown set {unknown[0]!r}")
    if args.quick:
        args.pretrain_steps = args.pretrain_steps or QUICK["pretrain"]
        args.finetune_steps = args.finetune_steps or QUICK["finetune"]
        args.overrides = ["train.batch_size=8"] + args.overrides  # small data (test fixtures) fit a batch
    out = Path(args.out)
    results = {}
    t0 = time.perf_counter()
    for name in args.sets:
        results[name] = run_set(name, roots.get(name), args.seeds, out, args.pretrain_steps, args.finetune_steps,
                                args.threads, args.overrides)
        print(table(results[name]))
        print()
    summary = {"command": " ".join(sys.argv), "wall_s": time.perf_counter() - t0, "results": results}
    save_results_json(out / "summary.json", summary)
    print(f"wrote {out / 'summary.json'}")
    return summary


if __name__ == "__main__":
    main()
