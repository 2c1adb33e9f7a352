"""Networks: the ViT backbone (timm parameter names) and the relative encoders (heads)."""

from .heads import HEADS, CrossAttentionHead, FullMLPHead, PairwiseMLPHead, build_head
from .vit1d import VIT1D_SIZES, ViT1DConfig, VisionTransformer1D, vit1d, vit1d_custom, vit1d_paper, vit1d_tiny
from .vit import VIT_SIZES, ViTConfig, VisionTransformer, num_params, vit, vit_base, vit_custom, vit_small, vit_tiny

__all__ = [
    "HEADS", "CrossAttentionHead", "FullMLPHead", "PairwiseMLPHead", "build_head",
    "VIT1D_SIZES", "ViT1DConfig", "VisionTransformer1D", "vit1d", "vit1d_custom", "vit1d_paper", "vit1d_tiny",
    "VIT_SIZES", "ViTConfig", "VisionTransformer", "num_params", "vit", "vit_base", "vit_custom", "vit_small", "vit_tiny",
]
