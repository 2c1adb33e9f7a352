"""Networks: the ViT backbones (timm parameter names) and the relative encoders (heads).

Heads are built by name through :mod:`part.models.registry`; :mod:`~part.models.heads` holds the plain
reference implementations and :mod:`~part.models.fast_heads` their fast exact twins. The size-by-name
builders ``vit("small")`` / ``vit1d("paper")`` are reached through their modules (``part.models.vit.vit``),
which they would otherwise hide.
"""

from .heads import CrossAttentionHead, FullMLPHead, IndexCrossAttentionHead, PairwiseMLPHead, PaperCrossAttentionHead
from .registry import HEADS, build_head, head_names, head_options
from .vit1d import VIT1D_SIZES, ViT1DConfig, VisionTransformer1D, vit1d_custom, vit1d_paper, vit1d_tiny
from .vit import VIT_SIZES, ViTConfig, VisionTransformer, num_params, vit_base, vit_custom, vit_small, vit_tiny

__all__ = [
    "CrossAttentionHead", "FullMLPHead", "IndexCrossAttentionHead", "PairwiseMLPHead", "PaperCrossAttentionHead",
    "HEADS", "build_head", "head_names", "head_options",
    "VIT1D_SIZES", "ViT1DConfig", "VisionTransformer1D", "vit1d_custom", "vit1d_paper", "vit1d_tiny",
    "VIT_SIZES", "ViTConfig", "VisionTransformer", "num_params", "vit_base", "vit_custom", "vit_small", "vit_tiny",
]
