"""Test-split evaluation of run folders (the export of their backbone is :mod:`part.engine.export`).

* Fine-tuned (``supervised``) runs: top-1/top-5 accuracy, confusion matrix, Cohen's kappa, per-class and
  macro F1 on the test split (paper Tab. 3/4/6/7 report accuracy, the sleep task Cohen's kappa).
* Pretext runs (PART): the translation errors ``err_x``, ``err_y`` (mean squared error per component) and
  ``err_euclid`` (mean l2 error) of Appendix 8.1 "Image classification" on a held-out split, with a fixed
  sampling seed; other objectives report their loss and metrics averaged over the split.

Results go to ``<run>/results.json`` and are printed as a small table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset

from ..engine.distributed import resolve_device
from ..engine.progress import progress
from ..engine.runs import resolve_config
from . import metrics as M
from .features import EVAL_BATCH_SIZE, check_dataset_labels, eval_mode, limit


# --------------------------------------------------------------------------------------------------
# classification
# --------------------------------------------------------------------------------------------------
def classification_report(scores: torch.Tensor, labels: torch.Tensor, num_classes: int,
                          class_names: list[str] | None = None) -> dict:
    """Metrics of class scores ``(N, K)`` against labels ``(N,)``.

    Keys: ``num_samples``, ``top1``, ``top5`` (only when ``K > 5``: with 5 classes or fewer it is 1.0 by
    construction and says nothing), ``kappa`` (Cohen's, unweighted), ``macro_f1``, ``balanced_accuracy``,
    ``per_class_f1`` (list of K, NaN for a class absent from targets and predictions), ``confusion_matrix``
    (K x K, rows true, columns predicted), ``class_names`` if given for these K classes (the data's own
    names: image classes, sleep stages for the sleep kinds, ``class_names`` of a ``signal_npz`` file).
    """
    scores = torch.as_tensor(scores)
    labels = torch.as_tensor(labels).long()
    pred = scores.argmax(dim=1)
    cm = M.confusion_matrix(pred, labels, num_classes)
    out = {"num_samples": int(labels.shape[0])}
    out.update(M.topk_accuracy(scores, labels, ks=(1, 5) if num_classes > 5 else (1,)))
    out["kappa"] = M.cohen_kappa_from_confusion(cm)
    out["macro_f1"] = M.macro_f1(cm)
    out["balanced_accuracy"] = M.balanced_accuracy(cm)
    out["per_class_f1"] = M.per_class_f1(cm).tolist()
    out["confusion_matrix"] = cm.tolist()
    if class_names is not None and len(class_names) == num_classes:  # names of other classes are left out
        out["class_names"] = list(class_names)
    return out


@torch.no_grad()
def predict(objective: nn.Module, dataset: Dataset, batch_size: int = EVAL_BATCH_SIZE, device=None,
            num_workers: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits (N, K) float32 CPU, labels (N,) int64)`` of a supervised objective in eval mode.

    Uses :meth:`part.objectives.supervised.SupervisedObjective.logits` (grid patches, position embeddings as
    trained, no mixing); the objective's train/eval mode is restored afterwards.
    """
    dev = torch.device(device) if device is not None else next(objective.parameters()).device
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    logits, labels = [], []
    with eval_mode(objective):
        for x, y in progress(loader, "evaluate", total=len(loader)):
            logits.append(objective.logits(x.to(dev)).float().cpu())
            labels.append(torch.as_tensor(y).long().reshape(-1))
    if not logits:
        raise ValueError("the evaluation dataset is empty")
    return torch.cat(logits), torch.cat(labels)


def evaluate_classifier(objective: nn.Module, dataset: Dataset, batch_size: int = EVAL_BATCH_SIZE, device=None,
                        what: str = "test split") -> dict:
    """:func:`classification_report` of a supervised objective on ``dataset`` (labels checked first)."""
    k = objective.num_classes
    check_dataset_labels(dataset, k, what)
    logits, labels = predict(objective, dataset, batch_size, device)
    return classification_report(logits, labels, k, getattr(dataset, "classes", None))


# --------------------------------------------------------------------------------------------------
# pretext
# --------------------------------------------------------------------------------------------------
@torch.no_grad()
def evaluate_pretext(objective: nn.Module, dataset: Dataset, batch_size: int = EVAL_BATCH_SIZE, device=None,
                     seed: int = 0) -> dict:
    """Pretext metrics of a self-supervised objective on a held-out ``dataset``, eval mode, no gradients.

    For PART (outputs with ``pred``/``target`` relative translations) the errors are computed by
    :func:`part.evaluation.metrics.translation_errors` over all sampled pairs of the split: ``err_x``,
    ``err_y`` (MSE per component), ``err_euclid`` (mean l2), ``mse`` (= the loss), plus ``err_w``/``err_h``
    (scale extension) or ``err_t`` (1D). Patches and pairs are drawn from a generator seeded with ``seed``,
    so repeated evaluations agree. Other objectives: ``loss`` and their metrics averaged over samples.
    """
    dev = torch.device(device) if device is not None else next(objective.parameters()).device
    gen = torch.Generator(device=dev).manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False)
    spatial = int(getattr(objective, "spatial_dims", getattr(objective.backbone, "spatial_dims", 2)))
    from ..objectives.part import PARTModel

    is_part = isinstance(objective, PARTModel)
    sums: dict[str, float] = {}
    n = 0
    with eval_mode(objective):
        for x, _ in progress(loader, "evaluate", total=len(loader)):
            out = objective(x.to(dev), generator=gen)
            b = x.shape[0]
            if is_part:  # relative translations; other objectives' pred/target (e.g. MAE pixels) are not
                vals = M.translation_errors(out.pred, out.target, spatial_dims=spatial)
                vals["loss"] = float(out.loss)
            else:
                vals = {"loss": float(out.loss), **{k: float(v) for k, v in out.metrics.items()}}
            # every image contributes the same number of pairs, so batch means weighted by b are exact
            for key, v in vals.items():
                sums[key] = sums.get(key, 0.0) + v * b
            n += b
    if n == 0:
        raise ValueError("the evaluation dataset is empty")
    out = {k: v / n for k, v in sums.items()}
    out["num_samples"] = n
    return out


# --------------------------------------------------------------------------------------------------
# run folders
# --------------------------------------------------------------------------------------------------
def summary_row(name: str, results: dict) -> dict:
    """One table row of the scalar results (per-class lists and matrices left out)."""
    row = {"run": name}
    row.update({k: v for k, v in results.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
    return row


def evaluate(
    run: str | Path,
    split: str = "test",
    out: str | Path | None = None,
    overrides: Iterable[str] = (),
    batch_size: int = EVAL_BATCH_SIZE,
    max_samples: int | None = None,
    device: str | None = None,
    seed: int = 0,
    verbose: bool = True,
) -> dict:
    """Evaluate a run folder on ``split`` and write ``results.json`` (default ``<run>/results.json``).

    A fine-tuned run (``objective.name: supervised``) gets :func:`classification_report`; a pretraining run
    :func:`evaluate_pretext` on the held-out split. ``overrides`` adjust the run's config (e.g.
    ``data.root=...`` when the data moved). Returns the results dict (also printed as a table).
    """
    from ..engine import build_dataset, check_writer, load_run, writes_into

    run = Path(run)
    path = Path(out) if out is not None else run / "results.json"
    check_writer(run, path)  # fails now, not after the evaluation, while the run is in use
    objective, cfg = load_run(run)
    cfg = resolve_config(cfg, overrides)
    dev = resolve_device(device or cfg.train.device, field="--device" if device else "train.device")
    objective.to(dev)
    dataset = limit(build_dataset(cfg, train=False, split=split), max_samples)
    task = "classification" if getattr(objective, "uses_labels", False) else "pretext"
    if task == "classification":
        res = evaluate_classifier(objective, dataset, batch_size, dev, what=f"{split} split of {cfg.data.kind}")
    else:
        res = evaluate_pretext(objective, dataset, batch_size, dev, seed=seed)
    results = {"task": task, "run": str(run), "split": split, "objective": cfg.objective.name, **res}
    if hasattr(dataset, "record"):  # which samples (file, groups, subjects) the numbers come from
        results["data"] = dataset.record()
    with writes_into(run, path):  # one writer per run folder (part.engine.runfolder)
        M.save_results_json(path, results)
    if verbose:
        print(M.format_table([summary_row(run.name, res)]))
    results["path"] = str(path)
    return results


__all__ = ["classification_report", "predict", "evaluate_classifier", "evaluate_pretext", "evaluate",
           "summary_row"]
