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

DeiT recipe options (the paper fine-tunes "adher[ing] strictly to the supervised training protocols
recommended in DeiT", Appendix 8.1): label smoothing, mixup / cutmix (soft targets, partner = the batch
reversed, as in timm's ``Mixup``), and layer-wise lr decay through :meth:`SupervisedObjective.param_groups`
(the engine applies each group's ``lr_scale``). 1D backbones (``spatial_dims = 1``, App. 8.1) take signals
``(B, C, T)`` cut into ``T / L`` consecutive windows; their training-time position-embedding masking uses
the step's generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.vit import POS_EMBED_INITS
from ..sampling.crop import patchify
from ..sampling.samplers import check_images
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
        pos_embed_init: how the position embeddings added here start: ``"random"`` (truncated normal, std
            0.02; paper §4 "Supervised finetuning") or ``"sincos"`` (the fixed sin-cos table of the patch grid
            that MAE and DropPos pretrain with, learnable from there). A backbone that brings its own position
            embeddings keeps them; without ``pos_embed`` there is nothing to start.
        global_pool: ``"token"`` (CLS) or ``"avg"`` (mean of patch tokens).
        label_smoothing: cross-entropy label smoothing (DeiT recipe: 0.1).
        check_inputs: validate images and labels on every call.
        mixup: Beta(alpha, alpha) parameter of mixup (DeiT: 0.8); 0 disables it.
        cutmix: Beta(alpha, alpha) parameter of cutmix (DeiT: 1.0); 0 disables it. For 1D signals the
            cut is a time interval.
        mix_prob: probability that a training batch is mixed at all (DeiT: 1.0).
        switch_prob: with both enabled, probability of cutmix instead of mixup for a batch (DeiT: 0.5).
        layer_decay: layer-wise lr decay factor (BEiT/MAE fine-tuning); ``None`` (or 1.0) keeps one lr.
            Layer 0 = patch embedding, CLS token, position embeddings; block i = i + 1; final norm and
            classifier = depth + 1 (lr scale 1).
        head_only_steps: LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and
            Underperform Out-of-Distribution", ICLR, arXiv:2202.10054): for the first ``head_only_steps``
            optimiser steps only the classifier (``backbone.head``) moves, every other parameter has lr 0
            (a linear probe on the initial features), then all parameters train. 0 (default) = plain
            fine-tuning. The lr schedule is unchanged; the engine reads each group's ``frozen_until``.
    """

    uses_labels = True

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        pos_embed: bool = True,
        pos_embed_init: str = "random",
        global_pool: str = "token",
        label_smoothing: float = 0.1,
        check_inputs: bool = True,
        mixup: float = 0.0,
        cutmix: float = 0.0,
        mix_prob: float = 1.0,
        switch_prob: float = 0.5,
        layer_decay: float | None = None,
        head_only_steps: int = 0,
    ):
        super().__init__()
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        if global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
        if pos_embed_init not in POS_EMBED_INITS:
            raise ValueError(f"pos_embed_init must be one of {POS_EMBED_INITS}, got {pos_embed_init!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        for name, value in (("mixup", mixup), ("cutmix", cutmix)):
            if not value >= 0.0:
                raise ValueError(f"{name} must be >= 0 (a Beta alpha; 0 disables it), got {value}")
        for name, value in (("mix_prob", mix_prob), ("switch_prob", switch_prob)):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {value}")
        if layer_decay is not None and not 0.0 < layer_decay <= 1.0:
            raise ValueError(f"layer_decay must be in (0, 1] or None, got {layer_decay}")
        if isinstance(head_only_steps, bool) or not isinstance(head_only_steps, int) or head_only_steps < 0:
            raise ValueError(f"head_only_steps must be an int >= 0, got {head_only_steps!r}")
        self.head_only_steps = head_only_steps
        self.backbone = backbone
        self.spatial_dims = int(getattr(backbone, "spatial_dims", 2))
        self.mixup, self.cutmix = float(mixup), float(cutmix)
        self.mix_prob, self.switch_prob = float(mix_prob), float(switch_prob)
        self.layer_decay = layer_decay
        self.num_classes = num_classes
        self.use_pos_embed = bool(pos_embed)
        self.label_smoothing = float(label_smoothing)
        self.check_inputs = check_inputs
        if self.use_pos_embed:
            backbone.enable_pos_embed(pos_embed_init)
        backbone.reset_classifier(num_classes, global_pool)  # raises for 'token' without a CLS token

    def logits(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Grid patches -> backbone (position embeddings as configured) -> pooled -> head.

        ``images (B, C, H, W)`` (1D: signals ``(B, C, T)``) -> ``(B, num_classes)``. ``generator`` seeds the
        1D backbone's training-time position-embedding masking (App. 8.1).
        """
        bb = self.backbone
        if self.spatial_dims == 1:
            from ..sampling.windows1d import check_signals, patchify1d

            if self.check_inputs:
                check_signals(images)
                if images.shape[-1] != bb.signal_len:
                    raise ValueError(
                        f"signals have T={images.shape[-1]} samples but the backbone was built for "
                        f"signal_len={bb.signal_len}"
                    )
            tokens = bb.forward_patches(patchify1d(images, bb.patch_len), pos_embed=self.use_pos_embed,
                                        generator=generator)
        elif tuple(images.shape[-2:]) != tuple(bb.img_size) and bb.config.dynamic_img_size:
            # another resolution (e.g. evaluating at a larger size): the grid of the images, position
            # embeddings resampled to it (part.models.pos_embed)
            if self.check_inputs:
                check_images(images)
            grid = (images.shape[-2] // bb.patch_size, images.shape[-1] // bb.patch_size)
            tokens = bb.forward_patches(patchify(images, bb.patch_size), pos_embed=self.use_pos_embed, grid=grid)
        else:
            tokens = bb.forward_patches(grid_patches(bb, images, self.check_inputs), pos_embed=self.use_pos_embed)
        return bb.forward_head(tokens)

    def forward(
        self, images: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> SupervisedOutput:
        """``images (B, C, H, W)`` (1D: ``(B, C, T)``), ``labels (B,)`` int64 in ``[0, num_classes)``.
        ``generator`` draws the mixup/cutmix choices (training mode only) and the 1D position-embedding
        mask; nothing else here is random besides dropout / drop-path."""
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
        lam = 1.0
        if self.training and (self.mixup > 0 or self.cutmix > 0):
            images, lam = self.mix(images, generator)
        logits = self.logits(images, generator)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=self.label_smoothing)
        if lam < 1.0:  # soft target lam * smooth(y) + (1 - lam) * smooth(y reversed) (timm's Mixup)
            loss = lam * loss + (1.0 - lam) * F.cross_entropy(
                logits.float(), labels.flip(0), label_smoothing=self.label_smoothing)
        with torch.no_grad():
            k = min(5, self.num_classes)
            top = logits.detach().topk(k, dim=-1).indices  # (B, k)
            correct = top == labels[:, None]
            metrics = {"acc1": correct[:, 0].float().mean()}
            if self.num_classes >= 5:
                metrics["acc5"] = correct.any(dim=1).float().mean()
        return SupervisedOutput(loss, logits, metrics)

    # --- DeiT recipe: mixup / cutmix ------------------------------------------------------------
    def mix(self, images: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, float]:
        """Mix each sample with its partner in the reversed batch: ``(images', lam)``, where the target is
        ``lam * y + (1 - lam) * y.flip(0)``. ``lam = 1`` (images unchanged) when the batch is not mixed.

        Mixup: ``x' = lam x + (1 - lam) x.flip(0)``, ``lam ~ Beta(mixup, mixup)``. Cutmix: a box of area
        ratio ``1 - lam`` (``lam ~ Beta(cutmix, cutmix)``; a time interval for 1D) is pasted from the
        partner, its centre uniform and the box clipped to the image; ``lam`` is then recomputed from the
        clipped area. All draws come from ``generator`` (via one seed), so a resumed run mixes the same way.
        """
        gen_device = generator.device if generator is not None else images.device
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=gen_device))
        rng = np.random.default_rng(seed)
        if rng.random() >= self.mix_prob:
            return images, 1.0
        use_cutmix = self.cutmix > 0 and (self.mixup == 0 or rng.random() < self.switch_prob)
        if not use_cutmix:
            lam = float(rng.beta(self.mixup, self.mixup))
            return images * lam + images.flip(0) * (1.0 - lam), lam
        lam = float(rng.beta(self.cutmix, self.cutmix))
        sizes = images.shape[2:]  # (H, W) or (T,)
        ratio = (1.0 - lam) ** (1.0 / len(sizes))
        lo_hi = []
        for n in sizes:
            cut = int(n * ratio)
            centre = int(rng.integers(0, n))
            lo_hi.append((min(max(centre - cut // 2, 0), n), min(max(centre + cut // 2, 0), n)))
        region = (Ellipsis,) + tuple(slice(a, b) for a, b in lo_hi)
        out = images.clone()
        out[region] = images.flip(0)[region]
        area = float(np.prod([b - a for a, b in lo_hi]))
        return out, 1.0 - area / float(np.prod(sizes))

    # --- optimiser groups: layer-wise lr decay ---------------------------------------------------
    def layer_id(self, name: str) -> int:
        """Depth index of parameter ``name`` for layer-wise lr decay: 0 for ``backbone.patch_embed``,
        ``backbone.cls_token``, ``backbone.pos_embed``; ``i + 1`` for ``backbone.blocks.i``; ``depth + 1``
        for everything after the blocks (final norm, classifier)."""
        depth = len(self.backbone.blocks)
        rest = name[len("backbone."):] if name.startswith("backbone.") else name
        if rest.startswith(("patch_embed", "cls_token", "pos_embed")):
            return 0
        if rest.startswith("blocks."):
            return int(rest.split(".")[1]) + 1
        return depth + 1

    def param_groups(self, weight_decay: float) -> list[dict]:
        """AdamW groups for the engine. No weight decay on biases, norms (1-D tensors), position embeddings
        and CLS token. With ``layer_decay`` < 1 each group carries ``lr_scale = layer_decay ** (depth + 1 -
        layer_id)`` (BEiT / MAE fine-tuning), which the engine multiplies into the scheduled lr. With
        ``head_only_steps`` > 0 every group but the classifier's carries ``frozen_until = head_only_steps``
        (the engine sets its lr to 0 before that step: LP-FT)."""
        skip = {f"backbone.{n}" for n in self.backbone.no_weight_decay()}
        depth = len(self.backbone.blocks)
        decay_rate = 1.0 if self.layer_decay is None else float(self.layer_decay)
        groups: dict[tuple[int, bool], dict] = {}
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            no_decay = p.ndim <= 1 or name in skip or name.endswith(".bias")
            lid = self.layer_id(name) if decay_rate < 1.0 else depth + 1
            head = bool(self.head_only_steps) and name.startswith("backbone.head.")  # own group only for LP-FT
            key = (lid, head, no_decay)
            if key not in groups:
                groups[key] = {"params": [], "weight_decay": 0.0 if no_decay else weight_decay,
                               "lr_scale": decay_rate ** (depth + 1 - lid), "layer_id": lid}
                if self.head_only_steps and not head:
                    groups[key]["frozen_until"] = self.head_only_steps
            groups[key]["params"].append(p)
        return [groups[k] for k in sorted(groups)]


__all__ = ["SupervisedObjective", "SupervisedOutput"]
