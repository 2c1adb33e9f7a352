"""DropPos baseline (Wang et al., NeurIPS 2023, "DropPos: Pre-Training Vision Transformers by
Reconstructing Dropped Positions"), the grid-based position-classification method PART is compared with
(paper §5 Tab. 2, 3, 6; Fig. 1b). The paper notes DropPos uses "additional losses (attentive
reconstruction and position smoothing)"; both are implemented here as options.

    images (B, C, H, W)
      -> patchify (grid)                     patches (B, N, C, P, P), grid index n = row * grid_w + col
      -> patch_embed                         tokens (B, N, d)
      -> patch masking (mask_ratio)          keep K = int(N (1 - mask_ratio)) tokens, ids_keep (B, K)
      -> position dropping (pos_mask_ratio)  of the K visible tokens, int(K pos_mask_ratio) get a
                                             learnable [MASK] position token instead of their 2D sin-cos
                                             position embedding; the others keep theirs
      -> encoder (the backbone)              (B, prefix + K, d)
      -> light decoder without position embeddings -> linear to N logits     (B, K, N)
      -> loss: cross-entropy of each dropped token's grid index (ids_keep), with Gaussian-smoothed soft
         targets (position smoothing, sigma) and optional per-token weights (attentive reconstruction)

Defaults, from the DropPos repository's ViT-B pretraining script and model file: ``mask_ratio=0.75``,
``pos_mask_ratio=0.75``, fixed 2D sin-cos encoder position embeddings, learnable [MASK] position token,
decoder of 2 blocks (512-d for ViT-B; here the backbone's width by default), ``sigma=1`` decayed linearly
to 0 over training, attentive reconstruction on (temperature 0.1).

Position smoothing: the soft target of grid cell i is ``w_ij ~ exp(-||p_i - p_j||^2 / sigma^2)`` over cells
j, normalised to sum 1 per row (``sigma = 0`` gives one-hot targets). DropPos decays sigma linearly with the
epoch; an objective knows no loop, so the engine (or any caller) sets the fraction of training done with
:meth:`DropPosObjective.set_progress`; without calls sigma stays at its initial value.

Attentive reconstruction: a no-grad forward of the *full* image (all N patches, all positions) gives the
cosine similarity of the CLS output with each patch output; ``softmax(sim / 0.1)`` over patches, taken on
the visible ones and renormalised, weights each dropped token's loss. This costs one extra forward
without backward over N tokens (vs K in the training forward). Needs a CLS token.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.tokens import gather_tokens
from ..models.vit import Block
from .mae import (
    check_ratio, encode_visible, grid_patches, init_decoder, init_sincos_pos_embed, random_masking,
)


def smoothing_matrix(grid_h: int, grid_w: int, sigma: float, device=None) -> torch.Tensor:
    """Gaussian position-smoothing targets ``(N, N)``, rows sum to 1; ``sigma <= 0`` -> identity.

    Row i is the soft label of grid cell i (row-major), ``exp(-d2(i, j) / sigma^2)`` normalised.
    """
    n = grid_h * grid_w
    if sigma <= 0:
        return torch.eye(n, device=device)
    ys, xs = torch.meshgrid(
        torch.arange(grid_h, device=device, dtype=torch.float32),
        torch.arange(grid_w, device=device, dtype=torch.float32), indexing="ij",
    )
    pos = torch.stack([ys.reshape(-1), xs.reshape(-1)], dim=1)  # (N, 2)
    d2 = (pos[:, None, :] - pos[None, :, :]).pow(2).sum(-1)
    w = torch.exp(-d2 / sigma ** 2)
    return w / w.sum(dim=1, keepdim=True)


@dataclass
class DropPosOutput:
    """One DropPos step.

    loss: weighted mean soft cross-entropy over visible tokens whose position was dropped.
    logits: ``(B, K, N)`` for the K visible tokens. labels: ``(B, K)`` their grid indices (= ids_keep).
    pos_dropped: ``(B, K)`` bool. weights: ``(B, K)`` loss weights (0 where the position was kept).
    metrics: ``acc`` (top-1 position accuracy on dropped tokens, unweighted), ``sigma`` (current).
    """

    loss: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor
    pos_dropped: torch.Tensor
    weights: torch.Tensor
    metrics: dict = field(default_factory=dict)


class DropPosObjective(nn.Module):
    """Drop position embeddings of a random subset of visible patches and classify their positions.

    Args:
        backbone: :class:`part.models.vit.VisionTransformer`; gets fixed 2D sin-cos ``pos_embed``.
        mask_ratio: fraction of patches removed before the encoder (DropPos: 0.75).
        pos_mask_ratio: fraction of the visible patches whose position embedding is dropped (0.75).
        sigma: position-smoothing width in grid cells (DropPos: 1); 0 = one-hot targets.
        sigma_decay: decay sigma linearly to 0 with :meth:`set_progress` (DropPos: on).
        attentive: attentive reconstruction weights (DropPos: on); needs a CLS token.
        attn_temperature: softmax temperature of the attentive weights (DropPos: 0.1).
        decoder_dim / decoder_depth / decoder_heads: the position decoder (DropPos ViT-B: 512 / 2 / 16;
            defaults: backbone width / 2 / backbone heads).
        freeze_pos_embed: keep the sin-cos position embeddings fixed (DropPos does).
        check_inputs: validate images on every call.
    """

    def __init__(
        self,
        backbone: nn.Module,
        mask_ratio: float = 0.75,
        pos_mask_ratio: float = 0.75,
        sigma: float = 1.0,
        sigma_decay: bool = True,
        attentive: bool = True,
        attn_temperature: float = 0.1,
        decoder_dim: int | None = None,
        decoder_depth: int = 2,
        decoder_heads: int | None = None,
        mlp_ratio: float = 4.0,
        freeze_pos_embed: bool = True,
        check_inputs: bool = True,
    ):
        super().__init__()
        self.backbone = backbone
        self.num_patches = backbone.num_patches
        self.num_keep = check_ratio("mask_ratio", mask_ratio, self.num_patches)
        self.num_pos_keep = check_ratio("pos_mask_ratio", pos_mask_ratio, self.num_keep)
        self.mask_ratio, self.pos_mask_ratio = float(mask_ratio), float(pos_mask_ratio)
        if sigma < 0:
            raise ValueError(f"sigma must be >= 0, got {sigma}")
        if attentive and backbone.cls_token is None:
            raise ValueError("attentive=True needs a backbone with a class token (class_token=True)")
        if attn_temperature <= 0:
            raise ValueError(f"attn_temperature must be positive, got {attn_temperature}")
        if decoder_depth < 1:
            raise ValueError(f"decoder_depth must be >= 1, got {decoder_depth}")
        self.sigma0 = float(sigma)
        self.sigma_decay = sigma_decay
        self.attentive = attentive
        self.attn_temperature = float(attn_temperature)
        self.check_inputs = check_inputs
        self.progress = 0.0
        init_sincos_pos_embed(backbone, freeze=freeze_pos_embed)

        d = backbone.embed_dim
        dd = decoder_dim or d
        heads = decoder_heads or backbone.num_heads
        if dd % heads:
            raise ValueError(f"decoder_dim={dd} must be divisible by decoder_heads={heads}")
        self.mask_pos_token = nn.Parameter(torch.zeros(1, 1, d))
        self.decoder_embed = nn.Linear(d, dd)
        self.decoder_blocks = nn.Sequential(*[Block(dd, heads, mlp_ratio) for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(dd, eps=1e-6)
        self.decoder_pred = nn.Linear(dd, self.num_patches)
        for m in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            init_decoder(m)
        nn.init.normal_(self.mask_pos_token, std=0.02)

    # --- schedule ----------------------------------------------------------------------------------
    def set_progress(self, progress: float) -> None:
        """Fraction of training done, in [0, 1]; drives the linear sigma decay (DropPos: per epoch)."""
        if not 0.0 <= progress <= 1.0:
            raise ValueError(f"progress must be in [0, 1], got {progress}")
        self.progress = float(progress)

    @property
    def sigma(self) -> float:
        return self.sigma0 * (1.0 - self.progress) if self.sigma_decay else self.sigma0

    # --- steps -------------------------------------------------------------------------------------
    @torch.no_grad()
    def attentive_weights(self, patches: torch.Tensor) -> torch.Tensor:
        """``softmax(cos(CLS, patch_n) / T)`` over the N patches of the full image: ``(B, N)``."""
        bb = self.backbone
        x = bb.patch_embed(patches) + bb.pos_embed[:, 1:]
        out = encode_visible(bb, x, bb.pos_embed[:, :1])
        sim = F.cosine_similarity(out[:, :1].float(), out[:, 1:].float(), dim=-1)  # (B, N)
        return (sim / self.attn_temperature).softmax(dim=-1)

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> DropPosOutput:
        """One DropPos step on ``images (B, C, H, W)`` of the backbone's ``img_size``."""
        bb = self.backbone
        patches = grid_patches(bb, images, self.check_inputs)
        b, n = patches.shape[:2]
        dev = patches.device
        prefix = bb.num_prefix_tokens

        # patch masking, then position dropping among the K visible tokens
        keep = random_masking(b, n, self.num_keep, generator, dev).ids_keep  # (B, K) grid indices
        pos_dropped = random_masking(b, self.num_keep, self.num_pos_keep, generator, dev).mask  # (B, K)
        x = gather_tokens(bb.patch_embed(patches), keep)  # (B, K, d)
        pos = gather_tokens(bb.pos_embed[:, prefix:].expand(b, -1, -1), keep)
        pos = torch.where(pos_dropped[..., None], self.mask_pos_token.to(pos.dtype), pos)
        latent = encode_visible(bb, x + pos, bb.pos_embed[:, :prefix] if prefix else None)

        # position decoder (no position embeddings) -> N logits per visible token
        y = self.decoder_norm(self.decoder_blocks(self.decoder_embed(latent)))
        logits = self.decoder_pred(y)[:, prefix:]  # (B, K, N)

        labels = keep
        gh, gw = bb.grid_size
        soft = smoothing_matrix(gh, gw, self.sigma, dev)[labels]  # (B, K, N)
        per_token = -(soft * F.log_softmax(logits.float(), dim=-1)).sum(dim=-1)  # (B, K)
        weights = pos_dropped.float()
        if self.attentive:
            attn = self.attentive_weights(patches).gather(1, keep)  # (B, K)
            weights = weights * attn / attn.sum(dim=1, keepdim=True)
        loss = (per_token * weights).sum() / weights.sum()
        with torch.no_grad():
            hit = (logits.detach().argmax(dim=-1) == labels).float()
            dropped = pos_dropped.float()
            metrics = {
                "acc": (hit * dropped).sum() / dropped.sum(),
                "acc_pos_kept": (hit * (1 - dropped)).sum() / (1 - dropped).sum(),
                "sigma": torch.tensor(self.sigma, device=dev),
            }
        return DropPosOutput(loss, logits, labels, pos_dropped, weights, metrics)


__all__ = ["DropPosObjective", "DropPosOutput", "smoothing_matrix"]
