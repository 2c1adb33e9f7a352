"""The evaluation stages of an ablation cell that read a pretraining run: the linear probe + kNN on the
validation carve and the test split, the probe vs pretraining epoch curve, and the learning curves a stage
summary keeps (:mod:`part.ablation.summaries`)."""

from __future__ import annotations

import json
from pathlib import Path

from ..engine import list_checkpoints
from ..engine.info import last_record
from ..engine.runs import run_folder_config
from ..evaluation import probe
from .settings import AblationConfig

__all__ = ["probe_stage", "probe_curve", "val_curve", "loss_curve"]


def _probe_data(run: Path, acfg: AblationConfig, data: dict | None = None):
    """``(config, train, val, test)`` datasets of the probe: the pretraining config's data with the probe's
    validation carve (``val`` None without one); plain images, no augmentation. ``data``: the labelled
    ``root`` / ``options`` to read instead, when the pretraining read unlabelled data
    (``pretrain_on: train+test``, :mod:`part.ablation.folds`)."""
    from ..engine import build_dataset

    cfg = run_folder_config(run)
    if data is not None:
        cfg.data.root, cfg.data.options = data["root"], dict(data["options"])
    if acfg.probe.val_carve is not None:
        cfg.data.val_carve = acfg.probe.val_carve
    cfg.data.label_fraction = None
    train = build_dataset(cfg, train=False, split="train")
    val = build_dataset(cfg, train=False, split="val") if acfg.probe.val_carve is not None else None
    test = build_dataset(cfg, train=False, split="test")
    return cfg, train, val, test


def _probe_kwargs(acfg: AblationConfig, seed: int) -> dict:
    p = acfg.probe
    return dict(pool=p.pool, k=p.k, temperature=p.temperature, classifier=p.classifier, epochs=p.epochs, lr=p.lr,
                weight_decay=p.weight_decay, max_train=p.max_train, max_test=p.max_test, batch_size=p.batch_size,
                seed=seed, verbose=False)


def probe_stage(run: Path, cdir: Path, acfg: AblationConfig, seed: int, data: dict | None = None) -> dict:
    """Linear probe + kNN of the pretrained backbone: on the test split, and on the validation carve when the
    probe has one (``val_probe_top1``, ``val_knn_top1``: the numbers choices are made on). ``data``: see
    :func:`_probe_data`."""
    cfg, train, val, test = _probe_data(run, acfg, data)
    res = probe(run, config=cfg, out=cdir / "probe.json", train_data=train, test_data=test,
                **_probe_kwargs(acfg, seed))
    metrics = {"probe_top1": res.linear["top1"], "probe_top5": res.linear.get("top5"), "knn_top1": res.knn["top1"]}
    if val is not None:
        v = probe(run, config=cfg, out=cdir / "probe_val.json", train_data=train, test_data=val,
                  **_probe_kwargs(acfg, seed))
        metrics.update(val_probe_top1=v.linear["top1"], val_knn_top1=v.knn["top1"])
    return metrics


def probe_curve(run: Path, cdir: Path, acfg: AblationConfig, seed: int, data: dict | None = None) -> list[dict]:
    """Probe vs pretraining epoch: linear probe and kNN on the validation carve (the test split otherwise)
    of every kept checkpoint of the pretraining run, oldest first, then of its final weights."""
    from ..engine.checkpoint import checkpoint_step

    cfg, train, val, test = _probe_data(run, acfg, data)
    held = val if val is not None else test
    prefix = "val_" if val is not None else ""
    steps_per_epoch = _steps_per_epoch(run)
    sources = [(checkpoint_step(p), p.with_suffix(".safetensors")) for p in list_checkpoints(run / "checkpoints")]
    final = last_record(run / "metrics.jsonl").get("step")
    if final is not None and all(s != final for s, _ in sources):
        sources.append((int(final), run / "weights.safetensors"))
    curve = []
    folder = cdir / "probe_curve"
    folder.mkdir(exist_ok=True)
    for step, weights in sources:
        res = probe(weights, config=cfg, out=folder / f"step_{step:07d}.json", train_data=train, test_data=held,
                    **_probe_kwargs(acfg, seed))
        curve.append({"step": step, "epoch": round(step / steps_per_epoch, 3) if steps_per_epoch else None,
                      f"{prefix}probe_top1": res.linear["top1"], f"{prefix}knn_top1": res.knn["top1"]})
    return curve


def _steps_per_epoch(run: Path) -> float | None:
    """Steps per epoch of a run, from its ``metrics.jsonl`` (``step / epoch`` of the last record)."""
    rec = last_record(run / "metrics.jsonl")
    if rec.get("epoch"):
        return rec["step"] / rec["epoch"]
    return None


def _records(path: Path) -> list[dict]:
    out = []
    if not path.is_file():
        return out
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue  # a torn last line of a killed run
    return out


def val_curve(path: Path) -> list[dict]:
    """``[{"epoch", "step", "val_top1"}, ...]``: a fine-tune's validation accuracy at every evaluation."""
    return [{"epoch": r.get("epoch"), "step": r["step"], "val_top1": r["val_top1"]}
            for r in _records(path) if "val_top1" in r]


def loss_curve(path: Path, points: int = 50) -> list[dict]:
    """``[{"epoch", "step", "loss"}, ...]``: at most ``points`` records of a training run's loss."""
    recs = [r for r in _records(path) if "loss" in r]
    stride = max(1, -(-len(recs) // points))
    picked = recs[::stride] + ([recs[-1]] if recs and (len(recs) - 1) % stride else [])
    return [{"epoch": r.get("epoch"), "step": r["step"], "loss": r["loss"]} for r in picked]
