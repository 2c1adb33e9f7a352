"""1D Vision Transformer for multichannel signals (paper §5.2 "Time-series prediction", App. 8.1).

The same transformer :class:`part.models.vit.Block` s as the 2D ViT, on tokens that embed 1D patches:

* ``patch_embed.proj`` is stored as ``Conv1d(C, d, kernel_size=L, stride=L)`` (the 1D analogue of timm's
  ``Conv2d`` patch embedding, so a grid-patchified signal could also be embedded by the convolution) but is
  *applied as a linear layer on the flattened ``C x L`` patch* ("tokenized by a linear layer", App. 8.1):
  ``token = W.flatten(1) @ patch.reshape(C * L) + b`` with the channel-major flattening of ``(C, L)``. That
  makes it embed windows sampled anywhere, on or off the grid, and resampled windows of any original length.
* Position embeddings are OFF for pretraining (PART must infer where windows come from) and learnable
  (randomly initialised) for fine-tuning via :meth:`VisionTransformer1D.enable_pos_embed`. During
  fine-tuning *training*, a fraction ``pos_embed_mask_ratio`` (paper: 20%) of the patch positions get no
  position embedding ("We randomly mask out 20% of the position embeddings", App. 8.1): per sample exactly
  ``round(ratio * N)`` positions chosen uniformly without replacement. In eval mode all positions get theirs.

Parameter names follow the 2D model (timm's): ``cls_token``, ``pos_embed``, ``patch_embed.proj``,
``blocks.{i}.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``, ``head``.

Paper preset (:func:`vit1d_paper`): d = 512, depth 4, 8 heads, MLP ratio 4, patch 6 x 100, CLS token:
12,918,784 parameters without position embeddings and classifier (12.9M, as in App. 8.1); the 30 grid
position embeddings (+ CLS) add 15,872 and a 5-class head 2,565.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..sampling.windows1d import check_signals, patchify1d
from .vit import EncoderBase, num_params


@dataclass
class ViT1DConfig:
    """Architecture arguments of :class:`VisionTransformer1D`; saved next to exported weights.

    Defaults are the paper preset (App. 8.1): 30-s windows at 100 Hz (``signal_len=3000``), 1-s patches
    (``patch_len=100``), 6 EEG channels, d = 512, depth 4, 8 heads (12.9M parameters).
    """

    signal_len: int = 3000
    patch_len: int = 100
    in_chans: int = 6
    embed_dim: int = 512
    depth: int = 4
    num_heads: int = 8
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    class_token: bool = True
    pos_embed: bool = False
    pos_embed_mask_ratio: float = 0.2
    num_classes: int = 0
    global_pool: str = "token"  # "token" (CLS) or "avg" (mean of patch tokens)
    drop_rate: float = 0.0
    attn_drop_rate: float = 0.0
    drop_path_rate: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


class PatchEmbed1D(nn.Module):
    """Linear embedding of flattened ``C x L`` patches; weight kept as ``proj`` = ``Conv1d(C, d, L, stride=L)``."""

    def __init__(self, patch_len: int, in_chans: int, embed_dim: int):
        super().__init__()
        self.patch_len = patch_len
        self.in_chans = in_chans
        self.proj = nn.Conv1d(in_chans, embed_dim, kernel_size=patch_len, stride=patch_len)

    def forward(self, patches: torch.Tensor) -> torch.Tensor:
        """``(B, N, C, L)`` -> ``(B, N, d)``."""
        if patches.dim() != 4:
            raise ValueError(f"patches must be 4D (B, N, C, L), got shape {tuple(patches.shape)}")
        b, n, c, length = patches.shape
        if c != self.in_chans or length != self.patch_len:
            raise ValueError(
                f"patches have C={c} channels of length {length} but the patch embedding expects "
                f"C={self.in_chans}, L={self.patch_len}"
            )
        return F.linear(patches.reshape(b, n, c * length), self.proj.weight.flatten(1), self.proj.bias)


class VisionTransformer1D(EncoderBase):
    """1D ViT encoder (App. 8.1). Pretraining calls :meth:`forward_patches` on sampled windows without
    position embeddings; fine-tuning calls :meth:`forward` on signals ``(B, C, T)`` (consecutive grid windows,
    with position embeddings if enabled, partially masked in training mode).

    Exposes the backbone protocol used by :class:`part.objectives.PARTModel`: ``patch_size`` (= L),
    ``img_size`` (= ``(T,)``), ``embed_dim``, ``num_heads``, ``num_patches`` (= T / L),
    ``spatial_dims = 1``.
    """

    spatial_dims = 1

    def __init__(self, config: ViT1DConfig | None = None, **kwargs):
        super().__init__()
        if config is not None and kwargs:
            raise ValueError("pass either a ViT1DConfig or keyword arguments, not both")
        cfg = config or ViT1DConfig(**kwargs)
        for key in ("signal_len", "patch_len", "in_chans", "embed_dim", "num_heads"):
            value = getattr(cfg, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        if isinstance(cfg.depth, bool) or not isinstance(cfg.depth, int) or cfg.depth < 0:
            raise ValueError(f"depth must be a non-negative int, got {cfg.depth!r}")
        if cfg.signal_len % cfg.patch_len:
            raise ValueError(
                f"signal_len={cfg.signal_len} must be a multiple of patch_len={cfg.patch_len} "
                "(grid windows for fine-tuning and position embeddings)"
            )
        if not 0.0 <= cfg.pos_embed_mask_ratio < 1.0:
            raise ValueError(f"pos_embed_mask_ratio must be in [0, 1), got {cfg.pos_embed_mask_ratio}")
        self.signal_len = cfg.signal_len
        self.patch_len = cfg.patch_len
        self.patch_size = cfg.patch_len  # backbone protocol name shared with the 2D ViT
        self.img_size = (cfg.signal_len,)
        self.in_chans = cfg.in_chans
        self.grid_size = (cfg.signal_len // cfg.patch_len,)
        self.pos_embed_mask_ratio = float(cfg.pos_embed_mask_ratio)
        self._build(cfg, PatchEmbed1D(cfg.patch_len, cfg.in_chans, cfg.embed_dim), self.grid_size[0])

    def set_pos_embed_mask_ratio(self, ratio: float) -> None:
        """Fraction of patch position embeddings dropped per sample in training mode (paper: 0.2)."""
        if not 0.0 <= ratio < 1.0:
            raise ValueError(f"pos_embed_mask_ratio must be in [0, 1), got {ratio}")
        self.pos_embed_mask_ratio = float(ratio)
        self.config.pos_embed_mask_ratio = float(ratio)

    # --- position-embedding masking ------------------------------------------------------------
    def sample_pos_embed_mask(
        self, batch: int, num_patches: int, generator: torch.Generator | None = None, device=None
    ) -> torch.Tensor:
        """``(B, N)`` bool, True where a patch gets NO position embedding: exactly ``round(ratio * N)``
        positions per sample, uniformly without replacement (App. 8.1)."""
        k = int(round(self.pos_embed_mask_ratio * num_patches))
        device = device if device is not None else self.patch_embed.proj.weight.device
        mask = torch.zeros(batch, num_patches, dtype=torch.bool, device=device)
        if k == 0:
            return mask
        gdev = generator.device if generator is not None else device
        scores = torch.rand((batch, num_patches), generator=generator, device=gdev).to(device)
        return mask.scatter_(1, scores.topk(k, dim=1, sorted=False).indices, True)

    # --- forward -------------------------------------------------------------------------------
    def forward_patches(
        self, patches: torch.Tensor, pos_embed: bool | None = None, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Encode patches. ``(B, N, C, L)`` -> tokens ``(B, prefix + N, d)`` (after the final norm).

        Position embeddings (if present and ``pos_embed`` is not False) assume the N patches are the
        consecutive grid windows of ``signal_len``; in training mode ``round(pos_embed_mask_ratio * N)``
        random patches per sample get none (``generator`` seeds that choice). The CLS embedding is kept.
        """
        x = self.patch_embed(patches)
        use_pos = self.pos_embed is not None if pos_embed is None else pos_embed
        if use_pos and self.pos_embed is None:
            raise ValueError("pos_embed=True but this model has no position embeddings; call enable_pos_embed()")
        b, n, _ = x.shape
        if use_pos:
            if n != self.num_patches:
                raise ValueError(
                    f"position embeddings are for {self.num_patches} grid windows "
                    f"(signal_len={self.signal_len}, patch_len={self.patch_len}), got {n} patches"
                )
            pe = self.pos_embed[:, self.num_prefix_tokens :].to(x.dtype)
            if self.training and self.pos_embed_mask_ratio > 0:
                keep = ~self.sample_pos_embed_mask(b, n, generator, x.device)
                x = x + pe * keep.unsqueeze(-1).to(x.dtype)
            else:
                x = x + pe
        if self.cls_token is not None:
            cls = self.cls_token.expand(b, -1, -1).to(x.dtype)
            if use_pos:
                cls = cls + self.pos_embed[:, :1].to(x.dtype)
            x = torch.cat([cls, x], dim=1)
        x = self.pos_drop(x)
        x = self.blocks(x)
        return self.norm(x)

    def forward_features(self, signals: torch.Tensor) -> torch.Tensor:
        """Cut signals ``(B, C, T)`` into the ``T / L`` consecutive windows and encode -> ``(B, prefix + N, d)``."""
        check_signals(signals, check_finite=False)
        return self.forward_patches(patchify1d(signals, self.patch_len))


VIT1D_SIZES = {
    # App. 8.1: "a 1D ViT backbone with 12.9M parameters" (widths not given in the paper; this choice
    # gives 12,918,784 parameters for 6 x 100 patches, without position embeddings and classifier).
    "paper": dict(embed_dim=512, depth=4, num_heads=8),
    # CPU demos and tests: 2 blocks of width 64.
    "tiny": dict(embed_dim=64, depth=2, num_heads=4),
}


def vit1d(size: str = "paper", **kwargs) -> VisionTransformer1D:
    """Build a 1D ViT by size name (``paper``/``tiny``); kwargs override :class:`ViT1DConfig` fields."""
    if size not in VIT1D_SIZES:
        raise ValueError(f"unknown 1D ViT size {size!r}; choose one of {sorted(VIT1D_SIZES)} or use vit1d_custom")
    return VisionTransformer1D(ViT1DConfig(**{**VIT1D_SIZES[size], **kwargs}))


def vit1d_paper(in_chans: int = 6, **kwargs) -> VisionTransformer1D:
    """The paper's 12.9M-parameter 1D ViT (App. 8.1): d=512, depth 4, 8 heads, 30-s windows of 1-s patches at 100 Hz."""
    return vit1d("paper", in_chans=in_chans, **kwargs)


def vit1d_tiny(in_chans: int = 6, **kwargs) -> VisionTransformer1D:
    """A tiny 1D ViT for CPU demos: d=64, depth 2, 4 heads."""
    return vit1d("tiny", in_chans=in_chans, **kwargs)


def vit1d_custom(dim: int, depth: int, heads: int, **kwargs) -> VisionTransformer1D:
    """Any width/depth/heads, e.g. ``vit1d_custom(32, 2, 2, signal_len=300, patch_len=10, in_chans=2)``."""
    return VisionTransformer1D(ViT1DConfig(embed_dim=dim, depth=depth, num_heads=heads, **kwargs))


__all__ = [
    "VisionTransformer1D", "ViT1DConfig", "PatchEmbed1D", "VIT1D_SIZES",
    "vit1d", "vit1d_paper", "vit1d_tiny", "vit1d_custom", "num_params",
]
