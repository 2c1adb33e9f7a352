"""Backbones out of run folders / weight files, and frozen features for probing.

Shared by fine-tuning (:mod:`part.evaluation.finetuning`: which weights initialise the encoder), the linear
probe and kNN (:mod:`part.evaluation.probing`, :mod:`part.evaluation.knn`) and export.

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

import json
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset, Subset

from ..engine import checkpoint as ck
from ..engine.progress import progress

BACKBONE_PREFIX = "backbone."
EVAL_BATCH_SIZE = 256  # items per forward pass when evaluating, probing, extracting features
POOLS = ("avg", "token")  # frozen features: mean of the patch tokens or the [CLS] token
DEFAULT_POOL = "avg"  # PART's [CLS] token is read by no loss during pretraining


# --------------------------------------------------------------------------------------------------
# weights
# --------------------------------------------------------------------------------------------------
def resolve_weights_path(source: str | Path, what: str = "--init") -> Path:
    """The ``.safetensors`` file behind ``source``: the file itself, or in a folder ``weights.safetensors``
    (finished run), ``model.safetensors`` (export folder), ``export/model.safetensors`` or the newest
    checkpoint. Raises ``ValueError`` naming ``source`` when nothing is there."""
    path = Path(source)
    if not path.exists():
        raise ValueError(f"{what} path not found: {path}")
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ValueError(f"{what} {path}: expected a .safetensors file or a run folder")
        return path
    for rel in ("weights.safetensors", "model.safetensors", "export/model.safetensors"):
        if (path / rel).is_file():
            return path / rel
    ckpts = ck.list_checkpoints(path / "checkpoints")
    if ckpts:
        return ckpts[-1].with_suffix(".safetensors")
    raise ValueError(f"{what} {path}: no weights found (looked for weights.safetensors, model.safetensors, "
                     "export/model.safetensors and checkpoints/step_*.safetensors)")


def split_backbone_state(state: dict) -> tuple[dict, list[str]]:
    """Objective or export weights -> ``(backbone state with timm names, dropped keys)``.

    Objective weights have the encoder under ``backbone.``; every other key (e.g. PART's relative encoder
    ``head.*``) is dropped. Weights without any ``backbone.`` key are taken as a bare backbone (export).
    """
    if any(k.startswith(BACKBONE_PREFIX) for k in state):
        keep = {k[len(BACKBONE_PREFIX):]: v for k, v in state.items() if k.startswith(BACKBONE_PREFIX)}
        return keep, sorted(k for k in state if not k.startswith(BACKBONE_PREFIX))
    return dict(state), []


def load_backbone_weights(backbone: nn.Module, source: str | Path, what: str = "--init") -> dict:
    """Initialise ``backbone`` from a run folder / weights file (paper §4 "Supervised finetuning").

    Loaded: every encoder tensor (patch embedding, CLS token, blocks, final norm). Kept as the model has
    them (freshly initialised): the classifier ``head.*`` always, and ``pos_embed`` when the source has
    none (PART pretrains without position embeddings, so fine-tuning adds random learnable ones) or when
    the model does not use one. Dropped: the objective's other parts (PART's relative encoder ``head.*``).

    Raises ``ValueError``: path missing; tensors of another size (the sizes are named); encoder keys the
    source lacks or has in excess (listed) — e.g. a backbone of another depth.

    Learnt position embeddings of another patch grid (the source was fine-tuned at another image size) are
    resampled to this backbone's grid (:func:`part.models.pos_embed.resample_abs_pos_embed`: bicubic, CLS
    position kept), as timm does when it loads weights at another ``img_size``.

    Returns a report: ``source`` (file), ``loaded`` (keys), ``fresh`` (keys kept as initialised),
    ``dropped`` (source keys not used), ``resampled`` (keys resized to this grid).
    """
    path = resolve_weights_path(source, what)
    state, dropped = split_backbone_state(ck.load_weights(path))
    own = backbone.state_dict()
    fresh = [k for k in own if k.startswith("head.")]
    dropped += [k for k in state if k.startswith("head.")]  # a source classifier (fine-tuned / export)
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    resampled = []
    if "pos_embed" in own and "pos_embed" not in state:
        fresh.append("pos_embed")
    elif "pos_embed" in state and "pos_embed" not in own:
        dropped.append("pos_embed")
        state.pop("pos_embed")
    elif "pos_embed" in state and state["pos_embed"].shape != own["pos_embed"].shape and hasattr(backbone, "grid_size"):
        # fine-tuning / evaluating at another image size or patch grid: resample (bicubic, timm semantics)
        from ..models.pos_embed import resample_abs_pos_embed

        prefix = backbone.num_prefix_tokens
        state["pos_embed"] = resample_abs_pos_embed(state["pos_embed"], backbone.grid_size,
                                                    source_grid(path, state["pos_embed"].shape[1] - prefix), prefix)
        resampled.append("pos_embed")
    full = dict(state)
    full.update({k: own[k] for k in fresh})  # the strict check below then lists real gaps only
    ck.load_state_dict_checked(backbone, full, strict=True, what=f"{what} {path}")
    return {"source": str(path), "loaded": sorted(state), "fresh": sorted(fresh), "dropped": sorted(dropped),
            "resampled": resampled}


def source_grid(wpath: Path, num_tokens: int) -> tuple[int, int] | None:
    """The patch grid ``(rows, cols)`` that the position embeddings of a weights file were learnt on: from the
    export's ``config.json``/``FILE.json`` (``model_args``) or the run's ``config.yaml`` (``model``); None
    (square, as timm assumes) when neither says, or when theirs does not have ``num_tokens`` positions."""
    size = patch = None
    side = export_sidecar(wpath)
    if side is not None:
        args = read_export_config(side).get("model_args") or {}
        size, patch = args.get("img_size"), args.get("patch_size")
    elif _run_config(wpath) is not None:
        from ..config import read_yaml_mapping

        model = read_yaml_mapping(_run_config(wpath), "run config").get("model") or {}
        size, patch = model.get("img_size"), model.get("patch_size")
    if size is None or not patch:
        return None
    h, w = (size, size) if isinstance(size, int) else tuple(size)
    grid = (int(h) // int(patch), int(w) // int(patch))
    return grid if grid[0] * grid[1] == num_tokens else None


def read_export_config(side: Path) -> dict:
    """The JSON mapping of an export's ``config.json`` / ``FILE.json``; ``ValueError`` naming the file when it
    cannot be read or is not a JSON object."""
    try:
        config = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{side}: not a readable JSON file ({getattr(exc, 'strerror', None) or exc})") from None
    if not isinstance(config, dict):
        raise ValueError(f"{side}: must hold a JSON object, got {type(config).__name__}")
    return config


def _backbone_from_part_config(config: dict, where: str, weights: Path | None = None) -> nn.Module:
    """The backbone an export's ``part_config`` describes. Its keys and types are checked first, and, with
    ``weights``, its shapes against that file's safetensors header, so an edited config cannot make this
    build a model of any size before a check (:mod:`part.models.shapes`)."""
    from ..models.shapes import architecture_args, check_against_shapes

    part_cfg = config.get("part_config")
    if not isinstance(part_cfg, dict):
        raise ValueError(f"{where}: no 'part_config' with the architecture arguments")
    one_d = config.get("architecture") == "part_vit1d" or "signal_len" in part_cfg
    args = architecture_args(part_cfg, where, one_d)
    if weights is not None:
        shapes = ck.weight_shapes(weights)
        prefix = BACKBONE_PREFIX if any(k.startswith(BACKBONE_PREFIX) for k in shapes) else ""
        check_against_shapes(args, shapes, f"{where} against {weights}", prefix, one_d)
    if one_d:
        from ..models.vit1d import ViT1DConfig, VisionTransformer1D

        return VisionTransformer1D(ViT1DConfig(**args))
    from ..models.vit import ViTConfig, VisionTransformer

    return VisionTransformer(ViTConfig(**args))


_STEP_FILE = re.compile(r"step_\d+\.json")


def export_sidecar(path: Path) -> Path | None:
    """The architecture JSON of an exported weights file: ``FILE.json`` or ``config.json`` beside it (a
    checkpoint's ``step_*.json`` manifest is not one: an architecture JSON names ``part_config``)."""
    for cand in (path.with_suffix(".json"), path.parent / "config.json"):
        if cand.is_file():
            if cand.name != "config.json" and _STEP_FILE.fullmatch(cand.name):
                continue
            return cand
    return None


def _run_config(wpath: Path) -> Path | None:
    for folder in (wpath.parent, wpath.parent.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    return None


def load_backbone(source: str | Path, config=None) -> tuple[nn.Module, object]:
    """``(backbone in eval mode, Config or None)`` from a run folder or a weights file.

    * run folder: :func:`part.engine.load_run` (any objective), its ``.backbone`` and its config;
    * weights file with an architecture JSON beside it (``part export`` output): rebuilt from that JSON;
    * any other weights file: the architecture comes from ``config`` (a :class:`~part.config.Config`,
      its ``model`` section), or else from the ``config.yaml`` of the run folder holding the file.

    The classifier of the source (if any) is dropped: features are the pooled tokens.
    """
    from ..engine import build_backbone, load_run

    path = Path(source)
    if not path.exists():
        raise ValueError(f"run folder or weights file not found: {path}")
    if path.is_dir() and (path / "config.yaml").is_file():
        objective, cfg = load_run(path)
        bb = objective.backbone
        bb.reset_classifier(0)
        return bb.eval(), cfg
    wpath = resolve_weights_path(path, "source")
    side = export_sidecar(wpath)
    if side is not None:
        backbone = _backbone_from_part_config(read_export_config(side), str(side), wpath)
    elif config is not None:
        backbone = build_backbone(config.model)
    elif _run_config(wpath) is not None:  # weights.safetensors / checkpoints/step_*.safetensors of a run
        from ..config import load_config

        config = load_config(_run_config(wpath))
        backbone = build_backbone(config.model)
    else:
        raise ValueError(f"{wpath}: no architecture JSON beside it (FILE.json or config.json); pass a config "
                         "whose model section describes this backbone")
    state, _ = split_backbone_state(ck.load_weights(wpath))
    if "pos_embed" in state:
        backbone.enable_pos_embed()
    backbone.reset_classifier(0)
    load_backbone_weights(backbone, wpath, what="weights")
    return backbone.eval(), config


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
    """Frozen features of every item: ``(features (N, d) float32 CPU, labels (N,) int64 CPU)``.

    Items are ``(x, label)`` with images ``(C, H, W)`` or signals ``(C, T)``; the backbone encodes the grid
    patches (``forward_features``, with position embeddings only if it has them) in eval mode without
    gradients, and ``pool`` reduces the tokens: ``"token"`` = the [CLS] token, ``"avg"`` = the mean of the
    patch tokens. The backbone's train/eval mode is restored afterwards.
    """
    if pool not in POOLS:
        raise ValueError(f"pool must be 'token' or 'avg', got {pool!r}")
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
