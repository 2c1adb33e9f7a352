"""Backbones out of run folders / weight files / exports, labels, and frozen features for probing.

Shared by fine-tuning (:mod:`part.evaluation.finetuning`: which weights initialise the encoder), the linear
probe and kNN (:mod:`part.evaluation.probing`, :mod:`part.evaluation.knn`) and evaluation. Where the weights
are is found by the one resolver, :mod:`part.engine.resolve` (its names are re-exported here).

Sources of a backbone (paper §4 "Supervised finetuning": the relative encoder is eliminated, only the ViT
is kept):

* a run folder (``config.yaml`` + ``weights.safetensors``, or its newest checkpoint): objective weights,
  whose ``backbone.*`` keys are the encoder; everything else (PART's relative encoder ``head.*``, a MAE
  decoder, ...) is dropped;
* an objective weights file (``weights.safetensors``, ``checkpoints/step_*.safetensors``): the same keys;
* an export (``export/model.safetensors``, or ``FILE.safetensors`` written by ``part export``): backbone
  keys with timm names; the architecture is in the JSON next to it (``config.json`` / ``FILE.json``).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..engine.pretrained import load_source_backbone
from ..engine.progress import progress
from ..engine.resolve import (BACKBONE_PREFIX, export_sidecar, load_backbone_weights, resolve,  # noqa: F401
                              resolve_weights_path, split_backbone_state)
from ..models.vit import FEATURE_POOLS

EVAL_BATCH_SIZE = 256  # items per forward pass when evaluating, probing, extracting features
POOLS = FEATURE_POOLS  # frozen features: mean of the patch tokens, [CLS] token, or patch tokens in grid order
DEFAULT_POOL = "avg"  # PART's [CLS] token is read by no loss during pretraining


# --------------------------------------------------------------------------------------------------
# backbones (found by part.engine.resolve, the one resolver)
# --------------------------------------------------------------------------------------------------
def load_backbone(source: str | Path, config=None) -> tuple[nn.Module, object]:
    """``(backbone in eval mode, Config or None)`` from a run folder, an export or a weights file.

    The source is found by :func:`part.engine.resolve.resolve` and its encoder loaded by
    :func:`part.engine.pretrained.load_source_backbone`: a run's objective (any objective) and its config; an
    export rebuilt from its ``config.json`` / ``FILE.json``; any other weights file on ``config.model`` (a
    :class:`~part.config.Config`), else on the ``config.yaml`` of the run folder holding the file.

    The classifier of the source (if any) is dropped: features are the pooled tokens.
    """
    src = resolve(source, "source")
    backbone = load_source_backbone(src, config)
    backbone.reset_classifier(0)
    return backbone.eval(), src.config if src.config is not None else config


# --------------------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------------------
def dataset_labels(dataset: Dataset) -> torch.Tensor | None:
    """``(N,)`` int64 labels of a dataset without reading its images (``.labels`` of the readers in
    :mod:`part.data`, through ``Subset``), or None when the dataset does not expose them."""
    if isinstance(dataset, Subset):
        inner = dataset_labels(dataset.dataset)
        return None if inner is None else inner[torch.as_tensor(np.asarray(dataset.indices), dtype=torch.long)]
    labels = getattr(dataset, "labels", None)
    if labels is None:
        return None
    return torch.as_tensor(np.asarray(labels)).long().reshape(-1)


def check_labels(labels: torch.Tensor, num_classes: int, what: str) -> None:
    """Raise ``ValueError`` naming the first label outside ``[0, num_classes)`` and its sample index
    (``-1`` is how the readers mark unlabeled samples)."""
    labels = torch.as_tensor(labels).long().reshape(-1)
    bad = (labels < 0) | (labels >= num_classes)
    if bool(bad.any()):
        idx = int(bad.nonzero()[0, 0])
        value = int(labels[idx])
        hint = " (-1 marks an unlabeled sample)" if value == -1 else ""
        raise ValueError(f"{what}: label {value}{hint} of sample {idx} is outside [0, num_classes) with "
                         f"num_classes={num_classes} ({int(bad.sum())} such labels)")


def check_dataset_labels(dataset: Dataset, num_classes: int, what: str) -> None:
    """:func:`check_labels` on a dataset's exposed labels (cheap: no images are read). Datasets without
    ``labels`` are checked batch by batch later (the supervised objective validates every batch)."""
    labels = dataset_labels(dataset)
    if labels is not None:
        check_labels(labels, num_classes, what)


def limit(dataset: Dataset, max_samples: int | None) -> Dataset:
    """The first ``max_samples`` items (all when None)."""
    if max_samples is None or max_samples >= len(dataset):
        return dataset
    if max_samples <= 0:
        raise ValueError(f"max_samples must be positive, got {max_samples}")
    return Subset(dataset, range(max_samples))


# --------------------------------------------------------------------------------------------------
# frozen features
# --------------------------------------------------------------------------------------------------
@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """``module`` in eval mode (no dropout / drop-path) for the ``with`` block; its previous train/eval
    mode is restored afterwards, also when the block raises."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    data: Dataset | DataLoader,
    pool: str = DEFAULT_POOL,
    batch_size: int = EVAL_BATCH_SIZE,
    device: str | torch.device | None = None,
    num_workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen features of every item: ``(features (N, D) float32 CPU, labels (N,) int64 CPU)``.

    Items are ``(x, label)`` with images ``(C, H, W)`` or signals ``(C, T)``; the backbone encodes the grid
    patches (``forward_features``, with position embeddings only if it has them) in eval mode without
    gradients, and ``pool`` reduces the tokens: ``"token"`` = the [CLS] token ``(N, d)``, ``"avg"`` = the mean of
    the patch tokens ``(N, d)``, ``"flat"`` = the patch tokens in grid order, concatenated ``(N, L * d)`` for L
    patch tokens. The backbone's train/eval mode is restored afterwards.
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(map(repr, POOLS))}, got {pool!r}")
    if pool == "token" and getattr(backbone, "cls_token", None) is None:
        raise ValueError("pool='token' needs a backbone with a class token; use pool='avg'")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    dev = torch.device(device) if device is not None else next(backbone.parameters()).device
    loader = data if isinstance(data, DataLoader) else DataLoader(
        data, batch_size=batch_size, shuffle=False, num_workers=num_workers, drop_last=False)
    feats, labels = [], []
    with eval_mode(backbone):
        for x, y in progress(loader, "features", total=len(loader)):
            tokens = backbone.forward_features(x.to(dev, non_blocking=True))
            feats.append(backbone.pool(tokens, pool).float().cpu())
            labels.append(torch.as_tensor(y).long().reshape(-1))
    if not feats:
        raise ValueError("no samples to extract features from (the dataset is empty)")
    return torch.cat(feats), torch.cat(labels)


__all__ = [
    "eval_mode", "resolve_weights_path", "split_backbone_state", "load_backbone_weights", "load_backbone",
    "export_sidecar", "dataset_labels", "check_labels", "check_dataset_labels", "limit", "extract_features",
]
