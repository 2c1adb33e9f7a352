"""``part.load(path)``: a trained encoder from a run folder, a weights file or an export folder, ready to use.

    import part
    model = part.load("runs/my-model/export")       # or the run folder, or a .safetensors file
    x = model.normalize(raw)                         # the preprocessing the source records (mean / std)
    z = model.features(x)                            # (B, d): pooled as the source records (avg or token)
    scores = model.logits(x)                         # (B, K): a fine-tuned model's class scores

The source is found by :func:`part.engine.resolve.resolve`. An export folder alone is enough: its
``config.json`` holds the architecture (``part_config``), the pooling (``global_pool``), the classifier (a
fine-tuned run's export carries its ``head``: ``num_classes``, ``label_names``) and the preprocessing.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn

from ..config import Config
from ..models.vit import FEATURE_POOLS
from . import checkpoint as ck
from .resolve import Source, load_backbone_weights, load_objective, resolve, source_backbone, split_backbone_state

__all__ = ["LoadedModel", "load", "load_source_backbone"]


class LoadedModel(nn.Module):
    """A trained encoder (eval mode) and what its source records.

    Attributes: ``backbone`` (:class:`~part.models.vit.VisionTransformer` or the 1D one); ``pool``
    (``"avg"`` or ``"token"``: how :meth:`features` pools, as recorded); ``num_classes`` (its classifier's
    classes, 0 when it has none); ``class_names`` (or None); ``preprocessing`` (what inputs went through:
    ``mean``, ``std``, ... see :attr:`part.engine.resolve.Source.preprocessing`); ``config`` (the run's
    :class:`~part.config.Config`, None for an export); ``source`` (the :class:`~part.engine.resolve.Source`).
    """

    def __init__(self, backbone: nn.Module, source: Source, class_names=None):
        super().__init__()
        self.backbone = backbone.eval()
        self.source = source
        self.pool = backbone.config.global_pool
        self.num_classes = int(backbone.config.num_classes)
        self.class_names = list(class_names) if class_names else None
        self.preprocessing = source.preprocessing
        self.config = source.config
        self.eval()

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Raw inputs ``(B, C, ...)`` (images in ``[0, 1]``, signals in their file's units) -> what the encoder
        saw in training: signals by their recorded ``normalize`` (:func:`part.data.signal_npz.normalize_signals`:
        ``dataset`` statistics, per ``window``, or ``none``), images per channel ``(x - mean) / std``; unchanged
        when the source records no statistics."""
        pre = self.preprocessing
        if "normalize" in pre:  # a signal_npz run or export
            from ..data.signal_npz import normalize_signals

            out = normalize_signals(x.detach().cpu().numpy(), pre["normalize"], pre.get("mean"), pre.get("std"))
            return torch.from_numpy(out).to(x.device)
        if pre.get("mean") is None or pre.get("std") is None:
            return x
        shape = (1, -1) + (1,) * (x.dim() - 2)
        mean = torch.as_tensor(pre["mean"], dtype=x.dtype, device=x.device).view(shape)
        std = torch.as_tensor(pre["std"], dtype=x.dtype, device=x.device).view(shape)
        return (x - mean) / std

    @torch.no_grad()
    def features(self, x: torch.Tensor, pool: str | None = None) -> torch.Tensor:
        """Normalised inputs ``(B, C, H, W)`` (1D: ``(B, C, T)``) -> pooled features ``(B, d)``: the [CLS] token
        (``"token"``) or the mean of the patch tokens (``"avg"``), or ``(B, N * d)``, the patch tokens in grid
        order (``"flat"``); default: the recorded :attr:`pool`."""
        if pool is not None and pool not in FEATURE_POOLS:
            raise ValueError(f"pool must be one of {', '.join(map(repr, FEATURE_POOLS))}, got {pool!r}")
        return self.backbone.pool(self.backbone.forward_features(x), pool or self.pool)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised inputs -> class scores ``(B, num_classes)`` of a fine-tuned model (its classifier on the
        recorded pooling, position embeddings as trained). ``ValueError`` for an encoder without one."""
        if not self.num_classes:
            raise ValueError(f"{self.source.path} has no classifier (a pretrained encoder); features(x) gives its "
                             "pooled features, part finetune trains one")
        return self.backbone.forward_head(self.backbone.forward_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`logits` when there is a classifier, else :meth:`features`."""
        return self.logits(x) if self.num_classes else self.features(x)


def load(path: str | Path, config: Config | None = None) -> LoadedModel:
    """The trained encoder at ``path`` (a run folder of any objective, a folder of ``part export``, or a
    ``.safetensors`` file) as a :class:`LoadedModel` in eval mode on the CPU.

    ``config``: the architecture of a bare weights file that has neither an architecture JSON beside it nor a
    run folder around it (its ``model`` section). Raises ``ValueError`` (one line naming the path) when the
    path is missing, holds no weights, or its weights do not fit its architecture.
    """
    src = resolve(path, "part.load")
    return LoadedModel(load_source_backbone(src, config), src, _class_names(src))


def load_source_backbone(src: Source, config: Config | None = None) -> nn.Module:
    """The trained encoder of ``src`` (eval mode), its classifier kept: a run's objective's backbone
    (:func:`~part.engine.resolve.load_objective`; also a weights file of a run when no ``config`` is given), an
    export's backbone with every tensor of ``model.safetensors``, or a weights file's encoder on
    ``config.model`` (classifier and relative encoder dropped, :func:`~part.engine.resolve.load_backbone_weights`)."""
    if src.kind in ("run", "published") or (src.kind == "weights" and config is None and src.config is not None):
        return load_objective(src).backbone.eval()
    backbone = source_backbone(src, config)
    state, _ = split_backbone_state(ck.load_weights(src.weights))
    if src.export is not None:  # the backbone as exported: its classifier and position embeddings included
        if "pos_embed" in state:
            backbone.enable_pos_embed()
        if "head.weight" in state and not backbone.config.num_classes:
            backbone.reset_classifier(int(state["head.weight"].shape[0]))
        ck.load_state_dict_checked(backbone, state, strict=True, what=f"{src.export_file} + {src.weights}")
        return backbone.eval()
    if "pos_embed" in state:
        backbone.enable_pos_embed()
    backbone.reset_classifier(0)
    load_backbone_weights(backbone, src, what="weights")
    return backbone.eval()


def _class_names(src: Source):
    if src.export is not None:
        return src.export.get("label_names")
    from ..io import read_json

    res = read_json(src.run / "results.json") if src.run is not None else {}
    return res.get("class_names") if isinstance(res.get("class_names"), list) else None
