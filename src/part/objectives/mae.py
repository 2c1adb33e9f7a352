"""MAE baseline (He et al., CVPR 2022, "Masked Autoencoders Are Scalable Vision Learners"), the generative
grid-based method PART is compared with in the paper (§5 Tab. 2, 3, 6, 7; Fig. 1a).

    images (B, C, H, W)
      -> patchify (grid)              patches (B, N, C, P, P)
      -> patch_embed + pos_embed      tokens (B, N, d)            (2D sin-cos, fixed, as MAE)
      -> random_masking               keep N_vis = int(N (1 - r)) per sample (per-sample shuffle)
      -> encoder (the backbone)       latent (B, prefix + N_vis, d)
      -> decoder_embed, + mask tokens, un-shuffle (ids_restore), + decoder pos_embed
      -> light decoder blocks, decoder_pred   pred (B, N, C P P)
      -> loss = mean over MASKED patches of mean_pixels (pred - target)^2
         target = per-patch normalised pixels when ``norm_pix_loss`` (MAE's default for its results)

Defaults, from the MAE paper and facebookresearch/mae ``models_mae.py``: mask ratio 0.75, normalised-pixel
loss, fixed 2D sin-cos position embeddings in encoder and decoder (CLS row zero), a learnable mask token.
MAE's own decoder is 512-d x 8 blocks (16 heads) for ViT-B/L/H; its ablation (Tab. 1a) shows a 1-block
decoder fine-tunes as well, so the default here is *small*: width = the backbone's, 2 blocks, the
backbone's head count. Pass ``decoder_dim=512, decoder_depth=8, decoder_heads=16`` for MAE's setting.

Position embeddings live in the backbone (timm name ``pos_embed``) so the exported encoder carries them,
as MAE's checkpoints do: if the backbone has none, :meth:`VisionTransformer.enable_pos_embed` adds them;
they are then overwritten with 2D sin-cos and frozen (``requires_grad=False``) unless
``freeze_pos_embed=False``. Fine-tuning code decides whether to keep or re-initialise them.

This module also holds the small grid helpers shared by the grid-based baselines (MP3, DropPos,
supervised): :func:`grid_patches`, :func:`random_masking`, :func:`init_sincos_pos_embed` (the sin-cos table
itself is :func:`part.models.pos_embed.sincos_pos_embed_2d`; token gathers are in :mod:`part.models.tokens`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn

from ..models.pos_embed import sincos_pos_embed_2d, sincos_table
from ..models.tokens import gather_tokens
from ..models.vit import Block
from ..sampling.crop import patchify
from ..sampling.samplers import check_images

# --------------------------------------------------------------------------------------------------
# grid helpers shared by the grid-based baselines
# --------------------------------------------------------------------------------------------------


def grid_patches(backbone: nn.Module, images: torch.Tensor, check_inputs: bool = True) -> torch.Tensor:
    """Exact grid patches of images whose size is the backbone's ``img_size``.

    Grid baselines classify absolute grid positions / use a fixed position table, so the image size must
    be the one the backbone was built for. ``(B, C, H, W)`` -> ``(B, N, C, P, P)``, row-major.
    """
    if check_inputs:
        check_images(images)
    h, w = images.shape[-2:]
    if (h, w) != tuple(backbone.img_size):
        raise ValueError(
            f"images are {h}x{w} but the backbone was built for img_size={tuple(backbone.img_size)}; grid "
            "baselines (mp3, droppos, mae, supervised) need images of exactly that size"
        )
    return patchify(images, backbone.patch_size)


def check_ratio(name: str, ratio: float, num_tokens: int | None = None) -> int | None:
    """Validate a masking ratio in [0, 1); with ``num_tokens`` return the number kept, ``int(N (1 - r))``.

    The kept count follows MAE (``len_keep = int(L * (1 - mask_ratio))``). Raises when nothing would be
    kept or nothing masked (a loss on masked tokens would be undefined).
    """
    ratio = float(ratio)
    if not 0.0 < ratio < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {ratio}")
    if num_tokens is None:
        return None
    keep = int(num_tokens * (1.0 - ratio))
    if keep < 1 or keep >= num_tokens:
        raise ValueError(
            f"{name}={ratio} keeps {keep} of {num_tokens} tokens; it must keep at least 1 and mask at least 1"
        )
    return keep


@dataclass
class Masking:
    """Per-sample random masking by shuffling (MAE's ``random_masking``), all ``(B, N)`` int64 / bool.

    ``ids_shuffle[b]`` is a random permutation of ``0..N-1``; the first ``num_keep`` entries are kept.
    ``ids_restore`` is its inverse (``ids_shuffle.gather(1, ids_restore) == arange``).
    ``ids_keep = ids_shuffle[:, :num_keep]`` (B, K). ``mask`` is True where a token is removed, in the
    original (un-shuffled) order.
    """

    ids_shuffle: torch.Tensor
    ids_restore: torch.Tensor
    ids_keep: torch.Tensor
    mask: torch.Tensor


def random_masking(
    batch: int,
    num_tokens: int,
    num_keep: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Masking:
    """Uniformly random subset of ``num_keep`` of ``num_tokens`` tokens per sample (argsort of noise)."""
    gdev = generator.device if generator is not None else device
    noise = torch.rand((batch, num_tokens), generator=generator, device=gdev).to(device)
    ids_shuffle = noise.argsort(dim=1)
    ids_restore = ids_shuffle.argsort(dim=1)
    ids_keep = ids_shuffle[:, :num_keep]
    mask = torch.ones(batch, num_tokens, dtype=torch.bool, device=device)
    mask[:, :num_keep] = False
    mask = mask.gather(1, ids_restore)
    return Masking(ids_shuffle, ids_restore, ids_keep, mask)


def unshuffle_tokens(visible: torch.Tensor, fill: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
    """Put kept tokens back at their grid positions and ``fill`` everywhere else (MAE decoder input).

    ``visible (B, K, d)`` in kept order (``ids_keep``), ``fill (1, 1, d)``, ``ids_restore (B, N)`` ->
    ``(B, N, d)`` where row ``ids_keep[b, j]`` is ``visible[b, j]``.
    """
    b, n = ids_restore.shape
    full = torch.cat([visible, fill.expand(b, n - visible.shape[1], -1)], dim=1)  # shuffled order
    return gather_tokens(full, ids_restore)


def init_sincos_pos_embed(backbone: nn.Module, freeze: bool = True) -> None:
    """Give ``backbone`` position embeddings (if it has none) set to the fixed 2D sin-cos table."""
    if backbone.pos_embed is None:
        backbone.enable_pos_embed()
    table = sincos_table(backbone.embed_dim, backbone.grid_size, backbone.num_prefix_tokens)
    with torch.no_grad():
        backbone.pos_embed.copy_(table.unsqueeze(0).to(backbone.pos_embed))
    backbone.pos_embed.requires_grad_(not freeze)


def encode_visible(backbone: nn.Module, tokens: torch.Tensor, prefix_pos: torch.Tensor | None) -> torch.Tensor:
    """Run the backbone's blocks on already-embedded visible tokens.

    ``tokens (B, K, d)`` (position embeddings already added) -> ``(B, prefix + K, d)`` after the final
    norm. ``prefix_pos (1, prefix, d)`` is added to the CLS token (MAE adds ``pos_embed[:, :1]``).
    """
    if backbone.cls_token is not None:
        cls = backbone.cls_token if prefix_pos is None else backbone.cls_token + prefix_pos
        tokens = torch.cat([cls.expand(tokens.shape[0], -1, -1), tokens], dim=1)
    x = backbone.pos_drop(tokens)
    x = backbone.blocks(x)
    return backbone.norm(x)


def init_decoder(module: nn.Module) -> None:
    """MAE's decoder init: xavier-uniform linears with zero bias, unit LayerNorms."""
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


# --------------------------------------------------------------------------------------------------
# MAE
# --------------------------------------------------------------------------------------------------


@dataclass
class MAEOutput:
    """One MAE step.

    loss: scalar, mean over masked patches of the per-patch pixel MSE. pred/target: ``(B, N, C P P)``
    (target normalised per patch when ``norm_pix_loss``). mask: ``(B, N)`` bool, True = masked.
    ids_restore: ``(B, N)``. metrics: ``mse_visible`` (same error on visible patches, not trained),
    ``mask_ratio`` (fraction masked).
    """

    loss: torch.Tensor
    pred: torch.Tensor
    target: torch.Tensor
    mask: torch.Tensor
    ids_restore: torch.Tensor
    metrics: dict = field(default_factory=dict)


class MAEObjective(nn.Module):
    """Masked autoencoder on the backbone's grid (He et al. 2022).

    Args:
        backbone: :class:`part.models.vit.VisionTransformer`; gets fixed sin-cos ``pos_embed``.
        mask_ratio: fraction of patches removed per image (MAE: 0.75).
        decoder_dim: decoder width (default: the backbone's; MAE uses 512).
        decoder_depth: decoder blocks (default 2; MAE uses 8).
        decoder_heads: decoder heads (default: the backbone's; MAE uses 16).
        norm_pix_loss: regress per-patch normalised pixels (MAE's default for its reported results).
        freeze_pos_embed: keep the sin-cos encoder position embeddings fixed, as MAE does.
        check_inputs: validate images on every call.
    """

    def __init__(
        self,
        backbone: nn.Module,
        mask_ratio: float = 0.75,
        decoder_dim: int | None = None,
        decoder_depth: int = 2,
        decoder_heads: int | None = None,
        mlp_ratio: float = 4.0,
        norm_pix_loss: bool = True,
        freeze_pos_embed: bool = True,
        check_inputs: bool = True,
    ):
        super().__init__()
        self.backbone = backbone
        self.num_patches = backbone.num_patches
        self.num_keep = check_ratio("mask_ratio", mask_ratio, self.num_patches)
        self.mask_ratio = float(mask_ratio)
        self.norm_pix_loss = norm_pix_loss
        self.check_inputs = check_inputs
        if decoder_depth < 1:
            raise ValueError(f"decoder_depth must be >= 1, got {decoder_depth}")
        init_sincos_pos_embed(backbone, freeze=freeze_pos_embed)

        dd = decoder_dim or backbone.embed_dim
        heads = decoder_heads or backbone.num_heads
        if dd % heads:
            raise ValueError(f"decoder_dim={dd} must be divisible by decoder_heads={heads}")
        patch_dim = backbone.patch_embed.in_chans * backbone.patch_size ** 2
        self.decoder_embed = nn.Linear(backbone.embed_dim, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_blocks = nn.Sequential(*[Block(dd, heads, mlp_ratio) for _ in range(decoder_depth)])
        self.decoder_norm = nn.LayerNorm(dd, eps=1e-6)
        self.decoder_pred = nn.Linear(dd, patch_dim)
        gh, gw = backbone.grid_size
        self.register_buffer(
            "decoder_pos_embed", sincos_pos_embed_2d(dd, gh, gw, backbone.num_prefix_tokens).unsqueeze(0)
        )
        for m in (self.decoder_embed, self.decoder_blocks, self.decoder_norm, self.decoder_pred):
            init_decoder(m)  # the backbone keeps its own initialisation
        nn.init.normal_(self.mask_token, std=0.02)

    # --- the three steps of models_mae.py, shapes in comments ------------------------------------
    def forward_encoder(self, patches: torch.Tensor, generator: torch.Generator | None = None):
        """``(B, N, C, P, P)`` -> latent ``(B, prefix + K, d)``, :class:`Masking`."""
        bb = self.backbone
        b, n = patches.shape[:2]
        prefix = bb.num_prefix_tokens
        x = bb.patch_embed(patches) + bb.pos_embed[:, prefix:]  # (B, N, d)
        masking = random_masking(b, n, self.num_keep, generator, patches.device)
        x = gather_tokens(x, masking.ids_keep)  # (B, K, d)
        latent = encode_visible(bb, x, bb.pos_embed[:, :prefix] if prefix else None)
        return latent, masking

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent ``(B, prefix + K, d)`` -> pixel predictions ``(B, N, C P P)``."""
        prefix = self.backbone.num_prefix_tokens
        x = self.decoder_embed(latent)  # (B, prefix + K, dd)
        full = unshuffle_tokens(x[:, prefix:], self.mask_token.to(x.dtype), ids_restore)  # (B, N, dd)
        x = torch.cat([x[:, :prefix], full], dim=1) + self.decoder_pos_embed
        x = self.decoder_norm(self.decoder_blocks(x))
        return self.decoder_pred(x)[:, prefix:]

    def target(self, patches: torch.Tensor) -> torch.Tensor:
        """Flattened patches ``(B, N, C P P)``, normalised per patch when ``norm_pix_loss``."""
        t = patches.flatten(2).float()
        if self.norm_pix_loss:
            mean = t.mean(dim=-1, keepdim=True)
            var = t.var(dim=-1, keepdim=True)
            t = (t - mean) / (var + 1e-6).sqrt()
        return t

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> MAEOutput:
        """One MAE step on ``images (B, C, H, W)`` of the backbone's ``img_size``."""
        patches = grid_patches(self.backbone, images, self.check_inputs)
        latent, masking = self.forward_encoder(patches, generator)
        pred = self.forward_decoder(latent, masking.ids_restore)
        target = self.target(patches)
        per_patch = (pred.float() - target).pow(2).mean(dim=-1)  # (B, N)
        m = masking.mask.float()
        loss = (per_patch * m).sum() / m.sum()
        with torch.no_grad():
            metrics = {
                "mse_visible": (per_patch.detach() * (1 - m)).sum() / (1 - m).sum(),
                "mask_ratio": m.mean(),
            }
        return MAEOutput(loss, pred, target, masking.mask, masking.ids_restore, metrics)


__all__ = [
    "MAEObjective", "MAEOutput", "Masking", "random_masking", "init_sincos_pos_embed",
    "grid_patches", "check_ratio", "encode_visible", "unshuffle_tokens", "init_decoder",
]
