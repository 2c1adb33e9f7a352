"""Linear probe and kNN on frozen features: cheap comparisons of pretrained backbones on a CPU.

``probe(source, ...)`` extracts frozen features (pooled [CLS] token or mean of patch tokens; no gradients,
eval mode) of the train and test splits, then

* trains a multinomial logistic regression on standardised features (mean / std of the train features),
  with L-BFGS (full batch, deterministic) or AdamW (mini-batches, seeded), and
* classifies with weighted kNN (k = 20, cosine, vote weights ``exp(s / 0.07)``, :mod:`part.evaluation.knn`),

and reports top-1/top-5, Cohen's kappa, macro F1 and the confusion matrix of both (``probe.json``).

The paper fine-tunes end to end (§4); the probe is this package's quick, cheap check of what a pretext
task taught the encoder. It works for any objective's run (PART, MP3, DropPos, MAE, supervised) and for
1D backbones. For PART the mean of the patch tokens is the natural feature (``pool="avg"``, the default):
its [CLS] token takes part in attention but no loss reads it during pretraining.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.errors import check_label_range
from ..engine.distributed import resolve_device
from ..engine.runs import resolve_config
from . import metrics as M
from .features import (DEFAULT_POOL, EVAL_BATCH_SIZE, check_labels, dataset_labels, extract_features, limit,
                       load_backbone)
from .heldout import classification_report
from .knn import KNN_K, KNN_TEMPERATURE, knn_scores

CLASSIFIERS = ("lbfgs", "adamw")  # logistic-regression solvers
DEFAULT_CLASSIFIER = "lbfgs"  # full batch, deterministic
PROBE_EPOCHS = 100  # L-BFGS iterations / AdamW epochs
PROBE_WEIGHT_DECAY = 1e-4


# --------------------------------------------------------------------------------------------------
# logistic regression
# --------------------------------------------------------------------------------------------------
def standardize(train: torch.Tensor, *others: torch.Tensor, eps: float = 1e-6) -> list[torch.Tensor]:
    """Subtract the train mean and divide by the train std (per feature; ``eps`` guards constant ones).
    Returns ``[train', *others']``."""
    mean = train.mean(dim=0, keepdim=True)
    std = train.std(dim=0, keepdim=True, unbiased=False).clamp_min(eps)
    return [(t - mean) / std for t in (train, *others)]


def train_logistic_regression(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int,
    optimizer: str = DEFAULT_CLASSIFIER,
    epochs: int = PROBE_EPOCHS,
    lr: float | None = None,
    weight_decay: float = PROBE_WEIGHT_DECAY,
    batch_size: int = 256,
    seed: int = 0,
) -> nn.Linear:
    """Fit ``Linear(d, num_classes)`` by cross-entropy on ``features (N, d)`` / ``labels (N,)``.

    ``optimizer="lbfgs"``: full-batch L-BFGS (strong-Wolfe line search) for ``epochs`` iterations, with an
    L2 penalty ``weight_decay / 2 * ||W||^2`` in the loss. ``"adamw"``: ``epochs`` passes of seeded
    mini-batches of ``batch_size``, lr ``lr`` (default 1e-3) with cosine decay, decoupled ``weight_decay``.
    The weights start at zero (LBFGS) / from a seeded init (AdamW), so results are reproducible.
    """
    if optimizer not in CLASSIFIERS:
        raise ValueError(f"optimizer must be 'lbfgs' or 'adamw', got {optimizer!r}")
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs}")
    features = features.float()
    labels = torch.as_tensor(labels).long().to(features.device)
    check_labels(labels, num_classes, "probe train labels")
    g = torch.Generator().manual_seed(seed)
    clf = nn.Linear(features.shape[1], num_classes).to(features.device)
    if optimizer == "lbfgs":
        nn.init.zeros_(clf.weight)
        nn.init.zeros_(clf.bias)
        opt = torch.optim.LBFGS(clf.parameters(), lr=lr or 1.0, max_iter=epochs, history_size=20,
                                line_search_fn="strong_wolfe", tolerance_grad=1e-7, tolerance_change=1e-10)

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(clf(features), labels) + 0.5 * weight_decay * clf.weight.pow(2).sum()
            loss.backward()
            return loss

        with torch.enable_grad():
            opt.step(closure)
        return clf
    with torch.no_grad():
        clf.weight.copy_(torch.randn(clf.weight.shape, generator=g) * 0.01)
        clf.bias.zero_()
    opt = torch.optim.AdamW(clf.parameters(), lr=lr or 1e-3, weight_decay=weight_decay)
    n = features.shape[0]
    steps = epochs * max(1, -(-n // batch_size))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    with torch.enable_grad():
        for _ in range(epochs):
            order = torch.randperm(n, generator=g).to(features.device)
            for i in range(0, n, batch_size):
                idx = order[i:i + batch_size]
                loss = F.cross_entropy(clf(features[idx]), labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
    return clf


def linear_probe(train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor, test_y: torch.Tensor,
                 num_classes: int, class_names=None, **fit) -> dict:
    """Standardise, fit :func:`train_logistic_regression` (``fit`` = its options), report on the test
    features with :func:`part.evaluation.heldout.classification_report`."""
    tr, te = standardize(train_x.float(), test_x.float())
    clf = train_logistic_regression(tr, train_y, num_classes, **fit)
    with torch.no_grad():
        logits = clf(te)
    return classification_report(logits, test_y, num_classes, class_names)


def knn_probe(train_x, train_y, test_x, test_y, num_classes: int, k: int = KNN_K,
              temperature: float = KNN_TEMPERATURE, class_names=None) -> dict:
    """Weighted kNN (:func:`part.evaluation.knn.knn_scores`) report on the test features."""
    scores = knn_scores(train_x, train_y, test_x, num_classes, k=k, temperature=temperature)
    out = classification_report(scores, test_y, num_classes, class_names)
    out.update(k=min(k, train_x.shape[0]), temperature=temperature)
    return out


# --------------------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------------------
@dataclass
class ProbeResult:
    """``linear`` / ``knn``: reports (``top1``, ``top5``, ``kappa``, ...); ``path``: the JSON written."""

    linear: dict
    knn: dict
    path: Path | None
    info: dict = field(default_factory=dict)


def probe(
    source: str | Path | None = None,
    config=None,
    out: str | Path | None = None,
    overrides: Iterable[str] = (),
    pool: str = DEFAULT_POOL,
    k: int = KNN_K,
    temperature: float = KNN_TEMPERATURE,
    classifier: str = DEFAULT_CLASSIFIER,
    epochs: int = PROBE_EPOCHS,
    lr: float | None = None,
    weight_decay: float = PROBE_WEIGHT_DECAY,
    max_train: int | None = None,
    max_test: int | None = None,
    batch_size: int = EVAL_BATCH_SIZE,
    num_classes: int | None = None,
    train_data=None,
    test_data=None,
    device: str | None = None,
    seed: int = 0,
    verbose: bool = True,
    random: bool = False,
) -> ProbeResult:
    """Linear probe + kNN of the frozen backbone of ``source`` (run folder or weights file), or of a randomly
    initialised one (``random=True``: the baseline every probe number needs).

    Args:
        source: run folder of any objective, an objective weights file, or an export (``part export``); found
            by :func:`part.engine.resolve.resolve`. None with ``random=True``.
        config: YAML path / mapping / Config for the data (and, for a bare weights file without a JSON
            beside it or with ``random=True``, the architecture). Default: the run's own config.
            ``overrides`` apply on top.
        out: JSON file or folder for ``probe.json`` (default: ``<run>/probe.json``, or beside the weights;
            required with ``random=True``).
        pool: ``"avg"`` (mean of patch tokens), ``"token"`` ([CLS]) or ``"flat"`` (patch tokens concatenated in
            grid order, :data:`~part.evaluation.features.POOLS`).
        k, temperature: kNN neighbours and vote temperature (DINO: 20, 0.07).
        classifier, epochs, lr, weight_decay: logistic regression (:func:`train_logistic_regression`).
        max_train, max_test: first samples of each split only (quick runs).
        num_classes: default: the dataset's ``num_classes``, else the largest train label + 1.
        train_data, test_data: ready datasets of ``(x, label)`` instead of ``cfg.data`` (Python API; e.g.
            1D sleep windows), both required together.
        random: probe ``config``'s ``model`` freshly initialised (seeded with its ``train.seed``; no position
            embeddings, the pretraining form) instead of a trained source.
    Returns:
        :class:`ProbeResult`; the results are also written as JSON and printed as a table.
    """
    from ..engine import check_writer, writes_into

    run, out = _probe_out(source, out, random)
    check_writer(run, out)  # fails now, not after the probe, while the run is in use
    backbone, cfg, info = _probe_backbone(source, config, overrides, random)
    train_data, test_data, num_classes = _probe_data(cfg, source, train_data, test_data, max_train, max_test,
                                                     num_classes)
    dev = resolve_device(device or (cfg.train.device if cfg is not None else "auto"),
                         field="--device" if device else "train.device")
    backbone.to(dev)
    train_x, train_y = extract_features(backbone, train_data, pool, batch_size, dev)
    test_x, test_y = extract_features(backbone, test_data, pool, batch_size, dev)
    check_labels(train_y, num_classes, "probe train split")
    check_labels(test_y, num_classes, "probe test split")
    torch.manual_seed(seed)
    names = getattr(train_data, "classes", None) or getattr(getattr(train_data, "dataset", None), "classes", None)
    lin = linear_probe(train_x, train_y, test_x, test_y, num_classes, names, optimizer=classifier, epochs=epochs,
                       lr=lr, weight_decay=weight_decay, seed=seed)
    knn = knn_probe(train_x, train_y, test_x, test_y, num_classes, k=k, temperature=temperature, class_names=names)
    info.update({"pool": pool, "num_train": int(train_x.shape[0]), "num_test": int(test_x.shape[0]),
                 "feature_dim": int(train_x.shape[1]), "num_classes": int(num_classes), "classifier": classifier,
                 "epochs": epochs, "weight_decay": weight_decay, "seed": seed})
    records = {name: data.record() for name, data in (("train", train_data), ("test", test_data))
               if hasattr(data, "record")}
    if records:  # which samples (file, groups, subjects) the probe was fitted and tested on
        info["data"] = records
    with writes_into(run, out):  # one writer per run folder (part.engine.runfolder)
        M.save_results_json(out, {**info, "linear": lin, "knn": knn})
    if verbose:
        cols = ["method", "top1"] + (["top5"] if "top5" in lin else []) + ["kappa", "macro_f1"]
        rows = [{"method": "linear probe", **lin}, {"method": f"kNN (k={knn['k']})", **knn}]
        print(M.format_table(rows, cols))
    return ProbeResult(lin, knn, out, info)


def _probe_out(source, out, random: bool) -> tuple[Path | None, Path]:
    """``(run folder written into or None, probe.json path)``; the source / ``random`` choice checked."""
    if random and source is not None:
        raise ValueError("probe: give a source (--run) or random=True (--random), not both")
    if not random and source is None:
        raise ValueError("probe: give a source (--run RUN_OR_EXPORT_OR_WEIGHTS) or random=True (--random) for the "
                         "randomly initialised baseline")
    if random and out is None:
        raise ValueError("probe of a random encoder: give out (--out), the JSON file or folder for probe.json")
    src = Path(source) if source is not None else None
    run = src if src is not None and src.is_dir() else None
    out = Path(out) if out is not None else (run or src.parent) / "probe.json"
    return run, out if out.suffix == ".json" else out / "probe.json"


def _probe_backbone(source, config, overrides, random: bool):
    """``(frozen backbone, Config or None, info)``: the trained encoder of ``source`` (and the config the data
    comes from: ``config``, else the run's own), or with ``random`` ``config``'s model freshly initialised."""
    from ..engine import build_backbone

    cfg = resolve_config(config, overrides) if config is not None else None
    if random:
        if cfg is None:
            raise ValueError("probe of a random encoder: give config (--config), whose model section is the encoder "
                             "and whose data the probe reads")
        torch.manual_seed(cfg.train.seed)
        backbone = build_backbone(cfg.model).eval()
        return backbone, cfg, {"source": "random", "init_seed": cfg.train.seed}
    if cfg is not None:  # signal_npz: the source run's recorded data.mean / data.std, when it has them
        from ..engine.datainfo import complete_config

        cfg = complete_config(cfg, init=source)
    backbone, run_cfg = load_backbone(source, cfg)
    if cfg is None and run_cfg is not None:
        cfg = resolve_config(run_cfg, overrides)
    return backbone, cfg, {"source": str(source)}


def _probe_data(cfg, source, train_data, test_data, max_train, max_test, num_classes):
    """``(train, test, num_classes)``: the given datasets or ``cfg.data``'s splits (no augmentation), limited;
    labels checked against the number of classes."""
    from ..engine import build_dataset

    if (train_data is None) != (test_data is None):
        raise ValueError("pass both train_data and test_data, or neither")
    if train_data is None:
        if cfg is None:
            raise ValueError(f"{source}: no config to build the data from; pass config=... (or --config)")
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        # no augmentation for either split: frozen features of the plain (resized, normalised) images
        train_data = build_dataset(cfg, train=False, split="train")
        test_data = build_dataset(cfg, train=False, split="test")
    train_data, test_data = limit(train_data, max_train), limit(test_data, max_test)
    if num_classes is None:
        num_classes = getattr(train_data, "num_classes", None) or getattr(getattr(train_data, "dataset", None),
                                                                          "num_classes", None)
    if num_classes is None:
        labels = dataset_labels(train_data)
        if labels is None:
            raise ValueError("cannot tell the number of classes; pass num_classes")
        check_label_range(labels, "probe train split")
        num_classes = int(labels.max()) + 1
    for name, data in (("train", train_data), ("test", test_data)):
        labels = dataset_labels(data)
        if labels is not None:
            check_labels(labels, num_classes, f"probe {name} split")
    return train_data, test_data, num_classes


__all__ = ["standardize", "train_logistic_regression", "linear_probe", "knn_probe", "probe", "ProbeResult",
           "CLASSIFIERS", "DEFAULT_CLASSIFIER", "PROBE_EPOCHS", "PROBE_WEIGHT_DECAY"]
