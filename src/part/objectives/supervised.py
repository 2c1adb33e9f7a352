"""Supervised-from-scratch baseline (paper Tab. 3, 6, 7: "Supervised" and "Supervised w/ Pos Embed").

    images (B, C, H, W), labels (B,)
      -> patchify (grid)                    patches (B, N, C, P, P)
      -> backbone (+ learnable position embeddings when ``pos_embed=True``)
      -> pool: CLS token or mean of patch tokens
      -> linear head (the backbone's ``head``, timm name) -> logits (B, num_classes)
      -> cross-entropy (optional label smoothing)

The same recipe as fine-tuning a pretrained encoder (paper §4 "Supervised finetuning": grid sampling,
randomly initialised learnable position embeddings, linear head on [CLS]), started from random weights.
``uses_labels = True`` tells the engine to call ``forward(images, labels, generator)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .mae import grid_patches


@dataclass
class SupervisedOutput:
    """loss: scalar cross-entropy. logits: ``(B, num_classes)``. metrics: ``acc1`` (and ``acc5`` when
    there are at least 5 classes), detached."""

    loss: torch.Tensor
    logits: torch.Tensor
    metrics: dict = field(default_factory=dict)


class SupervisedObjective(nn.Module):
    """Classification from scratch on the backbone's grid.

    Args:
        backbone: :class:`part.models.vit.VisionTransformer`; its ``head`` is replaced by a fresh
            ``Linear(d, num_classes)``.
        num_classes: number of classes.
        pos_embed: use learnable position embeddings (added with :meth:`enable_pos_embed` if missing);
            False runs without any, even if the backbone has them.
        global_pool: ``"token"`` (CLS) or ``"avg"`` (mean of patch tokens).
        label_smoothing: cross-entropy label smoothing (DeiT recipe: 0.1).
        check_inputs: validate images and labels on every call.
    """

    uses_labels = True

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        pos_embed: bool = True,
        global_pool: str = "token",
        label_smoothing: float = 0.1,
        check_inputs: bool = True,
    ):
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.backbone = backbone
        self.num_classes = num_classes
        self.use_pos_embed = bool(pos_embed)
        self.label_smoothing = float(label_smoothing)
        self.check_inputs = check_inputs
        if self.use_pos_embed:
            backbone.enable_pos_embed()
        backbone.reset_classifier(num_classes, global_pool)  # raises for 'token' without a CLS token

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> SupervisedOutput:
        """``images (B, C, H, W)``, ``labels (B,)`` int64 in ``[0, num_classes)``. ``generator`` is
        accepted for the common protocol (nothing here is random besides dropout)."""
        if self.check_inputs:
            if labels.dim() != 1 or labels.shape[0] != images.shape[0]:
                raise ValueError(
                    f"labels must be (B,) with B={images.shape[0]}, got shape {tuple(labels.shape)}"
                )
            if labels.dtype.is_floating_point or labels.dtype == torch.bool:
                raise ValueError(f"labels must be integer class indices, got dtype {labels.dtype}")
            if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ValueError(
                    f"labels must be in [0, {self.num_classes}), got range "
                    f"[{int(labels.min())}, {int(labels.max())}]"
                )
        bb = self.backbone
        patches = grid_patches(bb, images, self.check_inputs)
        logits = bb.forward_head(bb.forward_patches(patches, pos_embed=self.use_pos_embed))
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        with torch.no_grad():
            k = min(5, self.num_classes)
            top = logits.detach().topk(k, dim=-1).indices  # (B, k)
            correct = top == labels[:, None]
            metrics = {"acc1": correct[:, 0].float().mean()}
            if self.num_classes >= 5:
                metrics["acc5"] = correct.any(dim=1).float().mean()
        return SupervisedOutput(loss, logits, metrics)


__all__ = ["SupervisedObjective", "SupervisedOutput"]
