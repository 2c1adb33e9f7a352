"""Networks: the ViT backbone (timm parameter names) and the relative encoders (heads)."""

from .heads import HEADS, CrossAttentionHead, FullMLPHead, PairwiseMLPHead, build_head
from .vit import VIT_SIZES, ViTConfig, VisionTransformer, num_params, vit, vit_base, vit_custom, vit_small, vit_tiny

__all__ = [
    "HEADS", "CrossAttentionHead", "FullMLPHead", "PairwiseMLPHead", "build_head",
    "VIT_SIZES", "ViTConfig", "VisionTransformer", "num_params", "vit", "vit_base", "vit_custom", "vit_small", "vit_tiny",
]
