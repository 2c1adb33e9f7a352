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

Printed: one table per set with mean +- std over seeds of test accuracy, Cohen's kappa and macro F1, the
mean wall time of a run, and the difference PART fine-tune - scratch fine-tune in accuracy with its standard
error (``sqrt(sd_part^2 / n + sd_scratch^2 / n)`` over the n seeds); everything per run goes to
``<out>/summary.json``.

Choosing settings without the test split: ``--select-on val`` carves a stratified validation split
(``--val-fraction`` of every class, drawn once with ``--split-seed``, the same for every run seed) out of
``train.npz`` and runs the whole protocol with the rest as train and the carve in the role of the test split
(written to ``<out>/<set>/val_split/``; the real ``test.npz`` is never read). ``--val-groups`` holds out
whole groups (recordings) instead, e.g. ``--val-groups train-4 train-9`` on Blink: one long- and one
short-blink recording, a shift like the one between the published train and test recordings. ``--val-folds``
runs several such hold-outs (each fold a comma-separated group list, e.g. ``train-0,train-5 train-1,train-6``), one
after the other, and pools them: PART - scratch paired over every (fold, seed) run, with its standard error.
Compare settings on those numbers, then run the chosen one once with the default ``--select-on test``.

Transductive pretraining (a different protocol, always reported as such): ``--pretrain-on train+eval`` lets
PART pretraining also see the *signals* ``x`` of the evaluation split of the protocol (the validation carve
under ``--select-on val``, ``test.npz`` under ``--select-on test``), never its labels: ``x`` of train and of
the evaluation split are written, without ``y``, to ``<out>/<set>/pretrain_data/train.npz`` (and the
evaluation split's ``x`` alone to its ``test.npz``, which the pretext loss on that split reads); the user's
data folder is not modified. Fine-tuning, probes and scratch are unchanged (labelled train split only). With
``normalize: dataset`` the per-channel statistics still come from the labelled train split only (passed to
pretraining as ``data.mean`` / ``data.std``), so every run of a seed normalises with the same numbers as in
the default protocol. The default ``--pretrain-on train`` is the inductive protocol above. With ``--val-folds``
each fold's pretraining sees the signals of its own held-out recordings.

    python experiments/signals_compare.py --sets blink fingermovements --seeds 0 1 2
    python experiments/signals_compare.py --sets fingermovements --seeds 0 1 2 --pretrain-steps 600
    python experiments/signals_compare.py --sets fingermovements --root fingermovements=tests/fixtures/fingermovements_small --quick
    python experiments/signals_compare.py --sets blink --select-on val --val-folds train-0,train-5 train-1,train-6 \
        train-2,train-7 train-3,train-8 train-4,train-9 --set "data.options.augment={scale: 0.5, offset: 0.5}"
    python experiments/signals_compare.py --sets blink --select-on val --set data.options.normalize=window \
        --set-pretrain objective.num_patches=20 --set-finetune optim.lr=5e-4
    python experiments/signals_compare.py --sets blink --select-on val --val-groups train-4 train-9 \
        --set data.options.normalize=window --set-pretrain objective.num_patches=20 --pretrain-on train+eval
    python experiments/signals_compare.py --paired runs/shipped/summary.json runs/lpft/summary.json

``--paired BASE OTHER`` trains nothing: it pairs the runs of two earlier ``summary.json`` by (held-out split,
seed) and prints OTHER - BASE for each method with its standard error over those pairs (a setting against the
shipped one, on the same folds and seeds).
"""

from __future__ import annotations

import argparse
import json
import math
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
from part.data.signal_npz import channel_stats, signal_npz_options
from part.engine import build_backbone, complete_config, export_backbone
from part.evaluation.heldout import evaluate
from part.evaluation.metrics import format_table, save_results_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sleep_synthetic_compare import chance_dt_mse  # noqa: E402  (the same chance level for any 1D PART)

import numpy as np  # noqa: E402

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


def carve_val(root: Path, out: Path, fraction: float, seed: int, groups=None) -> Path:
    """Split ``root/train.npz`` into ``out/train.npz`` (the rest) and ``out/test.npz`` (the carve): with
    ``groups``, the samples whose ``group`` is listed (whole recordings held out); else a stratified carve of
    ``fraction`` of every class, drawn with ``seed``. Per-sample arrays (first dimension N: ``x``, ``y``,
    ``group``) are split, the others (``class_names``, ``fs``, ...) copied. ``root/test.npz`` is not read.
    Returns ``out``."""
    path = Path(root) / "train.npz"
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    if "y" not in arrays:
        raise ValueError(f"{path}: --select-on val needs labels y to stratify the carve")
    y, n = arrays["y"], len(arrays["y"])
    if groups:
        if "group" not in arrays:
            raise ValueError(f"{path}: --val-groups needs a group array")
        have = set(arrays["group"].astype(str).tolist())
        missing = [g for g in groups if str(g) not in have]
        if missing:
            raise ValueError(f"{path}: --val-groups {missing[0]!r} is not a group of the file")
        val = np.isin(arrays["group"].astype(str), [str(g) for g in groups])
        if val.all():
            raise ValueError(f"{path}: --val-groups leave no train sample")
    else:
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"--val-fraction must be in (0, 1), got {fraction}")
        rng = np.random.default_rng(seed)
        val = np.zeros(n, dtype=bool)
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            val[rng.choice(idx, max(1, round(fraction * len(idx))), replace=False)] = True
    out.mkdir(parents=True, exist_ok=True)
    for name, keep in (("train", ~val), ("test", val)):
        np.savez(out / f"{name}.npz", **{k: (v[keep] if v.ndim and len(v) == n else v) for k, v in arrays.items()})
    return out


PRETRAIN_ON = ("train", "train+eval")
_META = ("channel_names", "fs")  # per-set arrays the pretraining folder keeps (no y, no class_names)


def pretrain_folder(root: Path, out: Path) -> dict:
    """The data of ``--pretrain-on train+eval``: ``out/train.npz`` holds ``x`` of ``root/train.npz`` followed
    by ``x`` of ``root/test.npz`` (the evaluation split of the protocol), ``out/test.npz`` the evaluation
    split's ``x`` alone; ``group`` tags every row ``train`` or ``eval``; ``channel_names`` and ``fs`` are
    copied. No ``y`` (nor ``class_names``) is read from the evaluation file or written: its label array is
    never accessed (``np.load`` reads an npz member only when asked). ``root`` is not modified.
    Returns ``{"folder", "train", "eval"}`` (the folder and the two row counts)."""
    root, out = Path(root), Path(out)
    parts, meta = {}, {}
    for split in ("train", "test"):
        path = root / f"{split}.npz"
        if not path.is_file():
            raise ValueError(f"--pretrain-on train+eval needs {path}")
        with np.load(path, allow_pickle=False) as f:
            parts[split] = np.asarray(f["x"])
            for k in _META:
                if k in f.files and k not in meta:
                    meta[k] = f[k]
    tr, ev = parts["train"], parts["test"]
    if tr.ndim != 3 or ev.ndim != 3 or tr.shape[1:] != ev.shape[1:]:
        raise ValueError(f"--pretrain-on train+eval: x of {root / 'train.npz'} {tr.shape} and of "
                         f"{root / 'test.npz'} {ev.shape} must be (N, C, T) with the same C, T")
    out.mkdir(parents=True, exist_ok=True)
    group = np.array(["train"] * len(tr) + ["eval"] * len(ev))
    np.savez(out / "train.npz", x=np.concatenate([tr, ev]), group=group, **meta)
    np.savez(out / "test.npz", x=ev, group=np.array(["eval"] * len(ev)), **meta)
    return {"folder": str(out), "train": len(tr), "eval": len(ev)}


def train_stats_overrides(root: Path, pre_cfg, overrides) -> list[str]:
    """``data.mean=[...]`` / ``data.std=[...]`` of the labelled ``root/train.npz`` (``channel_stats``) when
    the resolved PART config normalises with ``dataset`` statistics and sets none of its own, else ``[]``:
    transductive pretraining then normalises with the train split's numbers, as every other run does."""
    cfg = load_config(pre_cfg, list(overrides))
    if signal_npz_options(cfg.data.options).normalize != "dataset" or cfg.data.mean is not None \
            or cfg.data.std is not None:
        return []
    with np.load(Path(root) / "train.npz", allow_pickle=False) as f:
        mean, std = channel_stats(f["x"])
    return [f"data.mean={json.dumps(mean)}", f"data.std={json.dumps(std)}"]


def diff_se(result: dict) -> tuple[float, float]:
    """PART fine-tune minus scratch fine-tune accuracy (mean over seeds) and its standard error
    ``sqrt(sd_a^2 / n + sd_b^2 / n)`` (0 with one seed)."""
    a = [r["part_ft"]["top1"] for r in result["runs"]]
    b = [r["scratch_ft"]["top1"] for r in result["runs"]]
    n = len(a)
    se = math.sqrt((statistics.variance(a) + statistics.variance(b)) / n) if n > 1 else 0.0
    return statistics.mean(a) - statistics.mean(b), se


def paired_mean_se(diffs) -> tuple[float, float]:
    """Mean of paired differences and its standard error ``sd(diffs) / sqrt(n)`` (0 with one pair)."""
    se = statistics.stdev(diffs) / math.sqrt(len(diffs)) if len(diffs) > 1 else 0.0
    return statistics.mean(diffs), se


def pooled(fold_results) -> dict:
    """Leave-recordings-out folds pooled: every (fold, seed) run is one paired unit. ``part`` / ``scratch``:
    mean accuracy over all runs; ``diff``: mean of PART - scratch per run, ``se`` its standard error
    ``sd(diffs) / sqrt(n)`` (0 with one run); ``folds``: per fold ``(mean PART, mean scratch)``."""
    a = [r["part_ft"]["top1"] for f in fold_results for r in f["runs"]]
    b = [r["scratch_ft"]["top1"] for f in fold_results for r in f["runs"]]
    d = [u - v for u, v in zip(a, b)]
    diff, se = paired_mean_se(d)
    folds = [(statistics.mean(r["part_ft"]["top1"] for r in f["runs"]),
              statistics.mean(r["scratch_ft"]["top1"] for r in f["runs"])) for f in fold_results]
    return {"part": statistics.mean(a), "scratch": statistics.mean(b), "diff": diff, "se": se,
            "n": len(d), "folds": folds}


def pooled_table(name: str, fold_groups, fold_results) -> str:
    p = pooled(fold_results)
    protocol = ("; PART also pretrained on each fold's unlabelled held-out signals (transductive)"
                if fold_results[0].get("pretrain_on") == "train+eval" else "")
    lines = [f"{name}: {len(fold_groups)} folds of held-out groups x {len(fold_results[0]['runs'])} seeds pooled "
             f"(n = {p['n']} paired runs{protocol})", "| fold (held out) | PART -> fine-tune | scratch fine-tune |",
             "| --- | ---: | ---: |"]
    lines += [f"| {' '.join(g)} | {a:.3f} | {b:.3f} |" for g, (a, b) in zip(fold_groups, p["folds"])]
    lines.append(f"| pooled | {p['part']:.3f} | {p['scratch']:.3f} |")
    ratio = f" = {p['diff'] / p['se']:.1f} SE" if p["se"] > 0 else ""
    return "\n".join(lines) + f"\nPART ft - scratch ft top1 (paired over runs): {p['diff']:+.3f}, SE {p['se']:.3f}{ratio}"


PAIRED_METHODS = ("part_ft", "scratch_ft", "part_probe", "random_probe")


def _runs_by_key(result: dict) -> dict:
    """``{(held-out groups or evaluation split, seed): run}`` of one set's result (folds flattened)."""
    if "folds" in result:
        return {(" ".join(f["val_groups"]), r["seed"]): r for f in result["folds"] for r in f["runs"]}
    held = " ".join(result.get("val_groups") or []) or result.get("select_on", "test")
    return {(held, r["seed"]): r for r in result["runs"]}


def paired_against(base: dict, other: dict) -> dict:
    """One set's ``other`` setting minus its ``base`` setting, paired over the runs both hold (same held-out
    split and seed). Per method of ``PAIRED_METHODS``: mean difference in top-1, standard error
    ``sd(diffs) / sqrt(n)`` (0 with one run), the means of both sides, n; and both sides' mean pretext loss
    on train and on the evaluation split. Raises ``ValueError`` when no run pairs up or when the two
    were not evaluated on the same split."""
    for key in ("select_on", "val_fraction", "split_seed"):
        if base.get(key) != other.get(key):
            raise ValueError(f"the two results were evaluated differently: {key} {base.get(key)!r} vs "
                             f"{other.get(key)!r}")
    a, b = _runs_by_key(base), _runs_by_key(other)
    keys = sorted(set(a) & set(b))
    if not keys:
        raise ValueError(f"no (held-out split, seed) run in common: {sorted(a)} vs {sorted(b)}")
    out = {"n": len(keys), "runs": [f"{held} seed {seed}" for held, seed in keys]}
    for m in PAIRED_METHODS:
        diff, se = paired_mean_se([b[k][m]["top1"] - a[k][m]["top1"] for k in keys])
        out[m] = {"base": statistics.mean(a[k][m]["top1"] for k in keys),
                  "other": statistics.mean(b[k][m]["top1"] for k in keys), "diff": diff, "se": se}
    out["pretext"] = {side: {split: statistics.mean(runs[k]["pretext_loss"][split] for k in keys)
                             for split in ("train", "test")} for side, runs in (("base", a), ("other", b))}
    return out


def paired_main(base_path: str, other_path: str) -> dict:
    """``--paired BASE OTHER``: read two ``summary.json`` of this script, print OTHER - BASE per set paired over
    their common runs; nothing trains. Raises ``ValueError`` (one line) on files that do not pair."""
    docs = []
    for path in (base_path, other_path):
        try:
            docs.append(json.loads(Path(path).read_text())["results"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}: not a summary.json of signals_compare.py ({exc.__class__.__name__}: {exc})")
    common = [n for n in docs[0] if n in docs[1]]
    if not common:
        raise ValueError(f"{base_path} and {other_path} share no set")
    res = {}
    for name in common:
        r = res[name] = paired_against(docs[0][name], docs[1][name])
        print(f"{name}: {other_path} - {base_path}, paired over {r['n']} runs (same held-out split and seed)")
        print("| method | BASE top1 | OTHER top1 | OTHER - BASE | SE |\n| --- | ---: | ---: | ---: | ---: |")
        for m in PAIRED_METHODS:
            print(f"| {m} | {r[m]['base']:.3f} | {r[m]['other']:.3f} | {r[m]['diff']:+.3f} | {r[m]['se']:.3f} |")
        pre = r["pretext"]
        print("PART pretext dt-MSE, mean over these runs (train / evaluation split): "
              f"BASE {pre['base']['train']:.1f} / {pre['base']['test']:.1f}, "
              f"OTHER {pre['other']['train']:.1f} / {pre['other']['test']:.1f}")
        print()
    return res


def data_root(name: str, root: str | None) -> Path:
    """The labelled data folder of set ``name``: ``--root`` as given (relative to the working directory, as
    the runs read it), else the PART config's ``data.root`` (relative to the repository)."""
    if root:
        return Path(root)
    path = Path(load_config(SETS[name][0]).data.root)
    return path if path.is_absolute() else ROOT / path


def transductive(args, name: str, root, set_out: Path) -> tuple[str | None, list[str], dict | None]:
    """``(pretrain_root, pretrain_overrides, record)`` of ``--pretrain-on``: ``(None, [], None)`` for ``train``;
    for ``train+eval`` the label-free pretraining folder of the labelled folder ``root`` (its train signals and
    its evaluation split's signals, written under ``set_out / "pretrain_data"``), the train split's
    normalisation statistics as overrides, and what was done. Raises ``ValueError`` on unusable data."""
    if args.pretrain_on != "train+eval":
        return None, [], None
    labelled = data_root(name, str(root))
    record = pretrain_folder(labelled, set_out / "pretrain_data")
    extra = train_stats_overrides(labelled, SETS[name][0], list(args.overrides) + list(args.overrides_pre))
    record["normalization"] = ("dataset: statistics of the labelled train split" if extra else
                               "no statistics computed (window / none, or data.mean / data.std given)")
    return record["folder"], extra, record


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def run_set(name: str, root: str | None, seeds, out: Path, pretrain_steps, finetune_steps, threads, extra,
            extra_pre=(), extra_ft=(), pretrain_root: str | None = None, pretrain_extra=()) -> dict:
    """The protocol of the module docstring for one set. ``pretrain_root``: a different data folder for PART
    pretraining (``--pretrain-on train+eval``, :func:`pretrain_folder`), with ``pretrain_extra`` overrides
    for it (:func:`train_stats_overrides`); the pretext loss, the probes, fine-tuning and scratch then read
    ``root`` (the labelled splits) except the pretext loss on the evaluation split, which reads the
    pretraining folder's label-free ``test.npz``."""
    pre_cfg, ft_cfg = SETS[name]
    common = list(extra) + ([f"data.root={root}"] if root else []) + ([f"train.threads={threads}"] if threads else [])
    pre_over = common + list(extra_pre) + ([f"train.max_steps={pretrain_steps}"] if pretrain_steps else [])
    if pretrain_root:
        pre_over += [f"data.root={pretrain_root}"] + list(pretrain_extra)  # later overrides win
    labelled = [f"data.root={root}"] if pretrain_root and root else []
    ft_over = common + list(extra_ft) + ([f"train.max_steps={finetune_steps}"] if finetune_steps else [])
    runs = []
    for s in seeds:
        seed = [f"train.seed={s}"]
        d = out / name / f"seed{s}"
        pre, t_pre = _timed(lambda: part.pretrain(pre_cfg, out=d / "part", overrides=pre_over + seed,
                                                  overwrite=True, progress=False))
        pretext = {}
        for split in ("train", "test"):
            r = evaluate(pre.run_dir, split=split, out=d / "part" / f"pretext_{split}.json", verbose=False, seed=s,
                         overrides=labelled if split == "train" else ())
            pretext[split] = r["loss"]
        cfg = load_config(pre.run_dir / "config.yaml")
        pretext["chance"] = chance_dt_mse(cfg, seed=s)
        ft, t_ft = _timed(lambda: part.finetune(ft_cfg, init=pre.run_dir, out=d / "part_ft", overrides=ft_over + seed,
                                                overwrite=True, progress=False))
        sc, t_sc = _timed(lambda: part.finetune(ft_cfg, init="none", out=d / "scratch_ft", overrides=ft_over + seed,
                                                overwrite=True, progress=False))
        probe_kw = dict(epochs=100, verbose=False, seed=s)
        pr, t_pr = _timed(lambda: part.probe(pre.run_dir, out=d / "part" / "probe.json", overrides=labelled,
                                             **probe_kw))
        # a randomly initialised encoder of the same seed and architecture, probed on the same features
        import torch

        torch.manual_seed(s)
        rand_dir = d / "random_encoder"
        export_backbone(build_backbone(cfg.model), rand_dir)
        rcfg = complete_config(load_config(ft_cfg, common + list(extra_ft)))
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
    held = "val carve" if result.get("select_on") == "val" else "test"
    d, se = diff_se(result)
    ratio = f" = {d / se:.1f} SE" if se > 0 else ""
    protocol = (f"PART pretrained on train + the unlabelled {held} signals (transductive)"
                if result.get("pretrain_on") == "train+eval" else "PART pretrained on train only")
    return (f"{result['set']} ({len(rs)} seeds; {protocol}; {held} n={rs[0]['part_ft']['num_samples']}; PART pretrain "
            f"{statistics.mean(r['wall_s']['pretrain'] for r in rs):.0f} s/seed; pretext dt-MSE train {pretext['train']}, "
            f"{held} {pretext['test']}, chance {pretext['chance']})\n" + format_table(rows)
            + f"\nPART ft - scratch ft top1: {d:+.3f}, SE {se:.3f}{ratio}")


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
    p.add_argument("--set-pretrain", dest="overrides_pre", action="append", default=[], metavar="KEY=VALUE",
                   help="override the PART config only, e.g. objective.num_patches=20")
    p.add_argument("--set-finetune", dest="overrides_ft", action="append", default=[], metavar="KEY=VALUE",
                   help="override the fine-tune config only (also the random encoder's probe), e.g. optim.lr=5e-4")
    p.add_argument("--select-on", choices=("test", "val"), default="test",
                   help="val: evaluate on a stratified carve of train.npz instead of test.npz (choose settings there)")
    p.add_argument("--val-fraction", type=float, default=0.25, help="share of every class carved out by --select-on val")
    p.add_argument("--split-seed", type=int, default=0, help="seed of the --select-on val carve (fixed across run seeds)")
    p.add_argument("--val-groups", nargs="+", metavar="GROUP",
                   help="--select-on val: hold out these groups (recordings) of train.npz instead of a random carve")
    p.add_argument("--pretrain-on", default="train", metavar="|".join(PRETRAIN_ON),
                   help="train (default; inductive): PART sees the train split only; train+eval (transductive): "
                        "also the unlabelled signals x of the evaluation split (val carve or test), never its labels")
    p.add_argument("--val-folds", nargs="+", metavar="G1,G2",
                   help="--select-on val: several folds, each a comma-separated list of held-out groups (e.g. "
                        "train-0,train-5 train-1,train-6); runs the protocol per fold and pools PART - scratch")
    p.add_argument("--quick", action="store_true", help="a few steps: a smoke run, not a measurement")
    p.add_argument("--out", default=str(ROOT / "runs" / "signals_compare"))
    p.add_argument("--paired", nargs=2, metavar=("BASE", "OTHER"),
                   help="trains nothing: read two summary.json of this script and print OTHER - BASE per method, "
                        "paired over the (held-out split, seed) runs both hold")
    args = p.parse_args(argv)
    if args.paired:
        try:
            return paired_main(*args.paired)
        except ValueError as exc:
            p.error(str(exc))
    if args.pretrain_on not in PRETRAIN_ON:  # one line, exit 2, naming the option and the value
        p.error(f"--pretrain-on must be one of {list(PRETRAIN_ON)}, got {args.pretrain_on!r}")
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
    if args.val_folds and (args.select_on != "val" or args.val_groups):
        p.error("--val-folds needs --select-on val and replaces --val-groups")
    for name in args.sets:
        root = roots.get(name)
        if args.val_folds:
            src = data_root(name, root)
            folds = [[g for g in f.split(",") if g] for f in args.val_folds]
            try:  # every fold carved before anything trains; a bad group is one line, exit 2
                fold_roots = [carve_val(src, out / f"fold{i}" / name / "val_split", args.val_fraction,
                                        args.split_seed, groups) for i, groups in enumerate(folds)]
            except ValueError as exc:
                p.error(str(exc))
            fold_results = []
            for i, (groups, fold_root) in enumerate(zip(folds, fold_roots)):
                fold_out = out / f"fold{i}"
                try:
                    pre_root, pre_extra, pre_data = transductive(args, name, fold_root, fold_out / name)
                except ValueError as exc:
                    p.error(str(exc))
                r = run_set(name, str(fold_root), args.seeds, fold_out, args.pretrain_steps, args.finetune_steps,
                            args.threads, args.overrides, args.overrides_pre, args.overrides_ft,
                            pretrain_root=pre_root, pretrain_extra=pre_extra)
                r.update(select_on="val", val_groups=groups, pretrain_on=args.pretrain_on, pretrain_data=pre_data)
                print(table(r))
                print()
                fold_results.append(r)
            results[name] = {"set": name, "select_on": "val", "val_folds": folds, "folds": fold_results,
                             "pretrain_on": args.pretrain_on, "pooled": pooled(fold_results)}
            print(pooled_table(name, folds, fold_results))
            print()
            continue
        try:  # bad data or options: one line naming them, exit 2 (argparse's error)
            if args.select_on == "val":
                root = str(carve_val(data_root(name, root), out / name / "val_split", args.val_fraction,
                                     args.split_seed, args.val_groups))
            if args.pretrain_on == "train+eval":
                root = str(data_root(name, root))
            pre_root, pre_extra, pre_data = transductive(args, name, root, out / name)
        except ValueError as exc:
            p.error(str(exc))
        results[name] = run_set(name, root, args.seeds, out, args.pretrain_steps, args.finetune_steps,
                                args.threads, args.overrides, args.overrides_pre, args.overrides_ft,
                                pretrain_root=pre_root, pretrain_extra=pre_extra)
        val = args.select_on == "val"
        results[name].update(pretrain_on=args.pretrain_on, pretrain_data=pre_data)
        results[name].update(select_on=args.select_on, val_groups=args.val_groups if val else None,
                             val_fraction=args.val_fraction if val and not args.val_groups else None,
                             split_seed=args.split_seed if val and not args.val_groups else None)
        print(table(results[name]))
        print()
    summary = {"command": " ".join(sys.argv), "wall_s": time.perf_counter() - t0, "results": results}
    save_results_json(out / "summary.json", summary)
    print(f"wrote {out / 'summary.json'}")
    return summary


if __name__ == "__main__":
    main()
