"""Vision Transformer for PART (paper §4), written here with timm's parameter names.

Differences from a grid-only ViT:

* ``patch_embed.proj`` is applied as a *linear layer on flattened C x P x P patches* (the weight is stored
  as a ``Conv2d(C, d, P, P)`` so the state dict matches timm's ``PatchEmbed``), so it embeds patches
  cropped from any box, on or off the grid.
* Position embeddings are OFF for pretraining (PART has to infer where patches come from) and can be
  switched on, randomly initialised and learnable, for fine-tuning (:meth:`enable_pos_embed`).
* With ``dynamic_img_size`` (default) images of any size divisible by P are accepted: learnable position
  embeddings are resampled bicubically to the image's patch grid (:mod:`part.models.pos_embed`, timm's
  ``resample_abs_pos_embed`` semantics), as timm's ``VisionTransformer(dynamic_img_size=True)`` does.

Parameter names follow ``timm.models.vision_transformer.VisionTransformer``: ``cls_token``, ``pos_embed``,
``patch_embed.proj``, ``blocks.{i}.norm1``, ``blocks.{i}.attn.qkv``, ``blocks.{i}.attn.proj``,
``blocks.{i}.norm2``, ``blocks.{i}.mlp.fc1``, ``blocks.{i}.mlp.fc2``, ``norm``, ``head``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..sampling.crop import patchify
from .pos_embed import resample_abs_pos_embed, sincos_table


def drop_path(x: torch.Tensor, prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample (residual branch dropped with probability ``prob``)."""
    if prob == 0.0 or not training:
        return x
    keep = 1.0 - prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    def __init__(self, prob: float = 0.0):
        super().__init__()
        self.prob = prob

    def forward(self, x):
        return drop_path(x, self.prob, self.training)


class PatchEmbed(nn.Module):
    """Linear embedding of flattened patches; weight kept as ``proj`` = Conv2d(C, d, P, P) (timm layout)."""

    def __init__(self, patch_size: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_size = patch_size
        self.in_chans = in_chans
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """``(B, N, C, P, P)`` -> ``(B, N, d)``."""
        b, n, c, p, q = patches.shape
        if c != self.in_chans or p != self.patch_size or q != self.patch_size:
            raise ValueError(
                f"patches have shape (C={c}, {p}x{q}) but the patch embedding expects "
                f"(C={self.in_chans}, {self.patch_size}x{self.patch_size})"
            )
        return F.linear(patches.reshape(b, n, c * p * q), self.proj.weight.flatten(1), self.proj.bias)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, H, N, dh)
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        x = x.transpose(1, 2).reshape(b, n, d)
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        return self.drop(self.fc2(self.drop(self.act(self.fc1(x)))))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True, drop=0.0, attn_drop=0.0, drop_path=0.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias, attn_drop, drop)
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x):
        x = x + self.drop_path1(self.attn(self.norm1(x)))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


@dataclass
class ViTConfig:
    """Architecture arguments; saved next to exported weights (``config.json``)."""

    img_size: int | tuple[int, int] = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    class_token: bool = True
    pos_embed: bool = False
    num_classes: int = 0
    global_pool: str = "token"  # "token" (CLS) or "avg" (mean of patch tokens)
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    dynamic_img_size: bool = True  # other image sizes: position embeddings resampled to their grid

    def to_dict(self) -> dict:
        return asdict(self)


# what frozen features may be pooled by (EncoderBase.pool): the mean of the patch tokens, the [CLS] token, or the
# patch tokens concatenated in grid order ("flat", N * d features: the one pooling that tells a linear classifier
# where each patch is, whatever the backbone; PART's has no position embeddings, so its "avg" feature is a function
# of the unordered set of patches). A classifier head pools by "token" or "avg" only.
FEATURE_POOLS = ("avg", "token", "flat")
# How the position embeddings fine-tuning adds start (EncoderBase.enable_pos_embed): "random" is the paper's
# (§4) and timm's; "sincos" starts them from the fixed sin-cos table MAE and DropPos pretrain with
POS_EMBED_INITS = ("random", "sincos")


class EncoderBase(nn.Module):
    """What the 2D and 1D ViTs share: CLS token, blocks, final norm, classifier head, the position-embedding
    switch for fine-tuning, pooling. Subclasses build their patch embedding and define
    ``forward_patches`` and ``forward_features``."""

    def _build(self, cfg, patch_embed: nn.Module, num_patches: int) -> None:
        if cfg.global_pool not in ("token", "avg"):
            raise ValueError(f"global_pool must be 'token' or 'avg', got {cfg.global_pool!r}")
        if cfg.global_pool == "token" and not cfg.class_token:
            raise ValueError("global_pool='token' needs class_token=True; use global_pool='avg'")
        if cfg.embed_dim % cfg.num_heads:
            raise ValueError(f"embed_dim={cfg.embed_dim} must be divisible by num_heads={cfg.num_heads}")
        self.config = cfg
        self.embed_dim = cfg.embed_dim
        self.num_heads = cfg.num_heads
        self.num_patches = num_patches
        self.num_prefix_tokens = 1 if cfg.class_token else 0
        self.patch_embed = patch_embed
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim)) if cfg.class_token else None
        self.pos_embed = None
        self.pos_drop = nn.Dropout(cfg.drop_rate)
        dpr = torch.linspace(0, cfg.drop_path_rate, max(cfg.depth, 1)).tolist()
        self.blocks = nn.Sequential(
            *[
                Block(cfg.embed_dim, cfg.num_heads, cfg.mlp_ratio, cfg.qkv_bias, cfg.drop_rate, cfg.attn_drop_rate, dpr[i])
                for i in range(cfg.depth)
            ]
        )
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        self.head = nn.Linear(cfg.embed_dim, cfg.num_classes) if cfg.num_classes > 0 else nn.Identity()
        self.apply(_init_weights)
        if self.cls_token is not None:
            nn.init.normal_(self.cls_token, std=1e-6)
        if cfg.pos_embed:
            self.enable_pos_embed()

    # --- fine-tuning switches ------------------------------------------------------------------
    def enable_pos_embed(self, init: str = "random") -> None:
        """Add learnable position embeddings ``(1, prefix + num_patches, d)`` (paper §4 "Supervised
        finetuning": randomly initialised). ``init``: ``"random"`` (truncated normal, std 0.02, the paper's and
        timm's) or ``"sincos"`` (the fixed sin-cos table of the patch grid, :func:`~part.models.pos_embed.sincos_table`,
        as the starting value; they stay learnable). A model that already has position embeddings keeps them."""
        if init not in POS_EMBED_INITS:
            raise ValueError(f"position-embedding init must be one of {POS_EMBED_INITS}, got {init!r}")
        if self.pos_embed is not None:
            return
        dev = self.patch_embed.proj.weight.device
        if init == "sincos":
            pe = sincos_table(self.embed_dim, self.grid_size, self.num_prefix_tokens).unsqueeze(0).to(dev)
        else:
            pe = torch.zeros(1, self.num_prefix_tokens + self.num_patches, self.embed_dim, device=dev)
            nn.init.trunc_normal_(pe, std=0.02)
        self.pos_embed = nn.Parameter(pe)
        self.config.pos_embed = True

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the head with a fresh ``Linear(d, num_classes)`` (or Identity for 0)."""
        if global_pool is not None:
            if global_pool not in ("token", "avg"):
                raise ValueError(f"global_pool must be 'token' or 'avg', got {global_pool!r}")
            if global_pool == "token" and self.cls_token is None:
                raise ValueError("global_pool='token' needs a class token")
            self.config.global_pool = global_pool
        self.config.num_classes = num_classes
        dev = self.patch_embed.proj.weight.device
        self.head = nn.Linear(self.embed_dim, num_classes).to(dev) if num_classes > 0 else nn.Identity()
        if num_classes > 0:
            _init_weights(self.head)

    # --- pooling and head ----------------------------------------------------------------------
    def patch_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Drop the prefix (CLS) token: ``(B, prefix + N, d)`` -> ``(B, N, d)``."""
        return tokens[:, self.num_prefix_tokens :]

    def pool(self, tokens: torch.Tensor, global_pool: str | None = None) -> torch.Tensor:
        """``(B, prefix + N, d)`` -> ``(B, d)``: CLS token or mean of patch tokens; ``"flat"`` (frozen features
        only, never a head's pooling) -> ``(B, N * d)``, the patch tokens in grid order (:data:`FEATURE_POOLS`)."""
        mode = global_pool or self.config.global_pool
        if mode == "token":
            return tokens[:, 0]
        if mode == "flat":
            return self.patch_tokens(tokens).flatten(1)
        return self.patch_tokens(tokens).mean(dim=1)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.pool(tokens)
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images / signals -> logits ``(B, num_classes)`` (pooled features ``(B, d)`` without a head)."""
        return self.forward_head(self.forward_features(x))

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token"}


class VisionTransformer(EncoderBase):
    """ViT encoder. Pretraining calls :meth:`forward_patches` on sampled patches (no position embedding);
    fine-tuning calls :meth:`forward` on images (grid patches, with position embeddings if enabled).
    """

    def __init__(self, config: ViTConfig | None = None, **kwargs):
        super().__init__()
        if config is not None and kwargs:
            raise ValueError("pass either a ViTConfig or keyword arguments, not both")
        cfg = config or ViTConfig(**kwargs)
        h, w = (cfg.img_size, cfg.img_size) if isinstance(cfg.img_size, int) else tuple(cfg.img_size)
        self.img_size = (h, w)
        self.patch_size = cfg.patch_size
        self.grid_size = (h // cfg.patch_size, w // cfg.patch_size)
        self._build(cfg, PatchEmbed(cfg.patch_size, cfg.in_chans, cfg.embed_dim), self.grid_size[0] * self.grid_size[1])

    def forward_patches(self, patches: torch.Tensor, pos_embed: bool | None = None,
                        grid: tuple[int, int] | None = None) -> torch.Tensor:
        """Encode patches. ``(B, N, C, P, P)`` -> tokens ``(B, prefix + N, d)`` (after the final norm).

        Position embeddings (if present and ``pos_embed`` is not False) assume the N patches are the
        row-major grid ``grid`` (default: the grid of ``img_size``); another grid than the model's gets the
        embeddings resampled (:meth:`pos_embed_for`).
        """
        x = self.patch_embed(patches)
        use_pos = self.pos_embed is not None if pos_embed is None else pos_embed
        if use_pos and self.pos_embed is None:
            raise ValueError("pos_embed=True but this model has no position embeddings; call enable_pos_embed()")
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if use_pos:
            g = tuple(grid) if grid is not None else self.grid_size
            if g[0] * g[1] != patches.shape[1]:
                raise ValueError(
                    f"position embeddings need the {g[0]}x{g[1]} grid patches, got {patches.shape[1]} patches"
                )
            x = x + self.pos_embed_for(g)
        x = self.pos_drop(x)
        x = self.blocks(x)
        return self.norm(x)

    def pos_embed_for(self, grid: tuple[int, int]) -> torch.Tensor:
        """The position embeddings ``(1, prefix + gh*gw, d)`` for a patch grid ``(gh, gw)``: the learnt ones
        on the model's own grid, bicubically resampled ones on another (needs ``dynamic_img_size``)."""
        grid = (int(grid[0]), int(grid[1]))
        if grid == self.grid_size:
            return self.pos_embed
        if not self.config.dynamic_img_size:
            raise ValueError(
                f"images give a {grid[0]}x{grid[1]} patch grid but this model's position embeddings are for "
                f"{self.grid_size[0]}x{self.grid_size[1]} (img_size {self.img_size}) and dynamic_img_size=False"
            )
        return resample_abs_pos_embed(self.pos_embed, grid, self.grid_size, self.num_prefix_tokens)

    def resize_grid(self, img_size: int | tuple[int, int]) -> None:
        """Rebuild for another image size: ``img_size``/``grid_size`` change and learnt position
        embeddings are resampled to the new grid (bicubic, as timm does when loading weights at another
        size). Shapes: ``pos_embed`` ``(1, prefix + gh*gw, d)`` -> ``(1, prefix + gh'*gw', d)``."""
        h, w = (img_size, img_size) if isinstance(img_size, int) else tuple(int(s) for s in img_size)
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"img_size {h}x{w} is not divisible by patch_size={self.patch_size}")
        grid = (h // self.patch_size, w // self.patch_size)
        if self.pos_embed is not None and grid != self.grid_size:
            with torch.no_grad():
                new = resample_abs_pos_embed(self.pos_embed.detach(), grid, self.grid_size, self.num_prefix_tokens)
            self.pos_embed = nn.Parameter(new.clone())
        self.img_size, self.grid_size = (h, w), grid
        self.num_patches = grid[0] * grid[1]
        self.config.img_size = img_size if isinstance(img_size, int) else (h, w)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        """Grid-patchify images ``(B, C, H, W)`` and encode -> ``(B, prefix + N, d)``, N = (H/P)(W/P)."""
        if images.dim() != 4:
            raise ValueError(f"images must be 4D (B, C, H, W), got shape {tuple(images.shape)}")
        grid = (images.shape[-2] // self.patch_size, images.shape[-1] // self.patch_size)
        return self.forward_patches(patchify(images, self.patch_size), grid=grid)


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
    elif isinstance(m, (nn.Conv1d, nn.Conv2d)):
        # xavier on the flattened (d, C*P*P) or (d, C*L) matrix, as MAE/timm do for the patch embedding
        w = m.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


VIT_SIZES = {
    "tiny": dict(embed_dim=192, depth=12, num_heads=3),
    "small": dict(embed_dim=384, depth=12, num_heads=6),
    "base": dict(embed_dim=768, depth=12, num_heads=12),
}


def vit(size: str = "tiny", **kwargs) -> VisionTransformer:
    """Build a ViT by size name (``tiny``/``small``/``base``); kwargs override ViTConfig fields."""
    if size not in VIT_SIZES:
        raise ValueError(f"unknown ViT size {size!r}; choose one of {sorted(VIT_SIZES)} or use vit_custom")
    return VisionTransformer(ViTConfig(**{**VIT_SIZES[size], **kwargs}))


def vit_tiny(**kwargs) -> VisionTransformer:
    """ViT-Ti: d=192, depth 12, 3 heads."""
    return vit("tiny", **kwargs)


def vit_small(**kwargs) -> VisionTransformer:
    """ViT-S: d=384, depth 12, 6 heads."""
    return vit("small", **kwargs)


def vit_base(**kwargs) -> VisionTransformer:
    """ViT-B: d=768, depth 12, 12 heads."""
    return vit("base", **kwargs)


def vit_custom(dim: int, depth: int, heads: int, **kwargs) -> VisionTransformer:
    """Any width/depth/heads, e.g. a tiny test model ``vit_custom(32, 2, 2, img_size=16, patch_size=4)``."""
    return VisionTransformer(ViTConfig(embed_dim=dim, depth=depth, num_heads=heads, **kwargs))


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


__all__ = [
    "EncoderBase", "VisionTransformer", "ViTConfig", "PatchEmbed", "Attention", "Mlp", "Block", "DropPath",
    "vit", "vit_tiny", "vit_small", "vit_base", "vit_custom", "VIT_SIZES", "num_params",
]

