"""MP3 baseline: Masked Patch Position Prediction (Zhai et al., ICML 2022, "Position Prediction as an
Effective Pretraining Strategy"), the grid-based position-classification method PART is compared with
(paper §5 Tab. 2, 3, 6, 7; Fig. 1b; PART-grid, §5.3 Tab. 4, shares its sampling).

    images (B, C, H, W)
      -> patchify (grid)            patches (B, N, C, P, P); label of patch n = its grid index
                                    = row * grid_w + col
      -> patch_embed                tokens (B, N, d)          NO position embeddings
      -> per-sample shuffle         token order carries no position (labels follow the tokens)
      -> context subset             N_ctx = N - int(N * mask_ratio) tokens per image
      -> encoder blocks whose attention uses ONLY context tokens (and CLS) as keys/values; every token
         still issues a query, so every token gets an output
      -> linear head (d -> N)       logits (B, N, N)
      -> cross-entropy against each token's grid index, averaged over all N tokens

Defaults: ``mask_ratio=0.75`` (fraction of tokens removed from the keys/values), linear position
classifier, no position embeddings, loss on every token. The ratio is MP3's setting as we read the paper;
it could not be re-checked against the paper text or an official implementation from this codebase's
sources, so configs should state it explicitly. In every layer the keys/values are the *current*
representations of the context tokens (a per-layer key mask), not the layer-0 embeddings.

Masked-key attention is implemented here, not in ``vit.py``: :func:`masked_key_block` re-runs a timm-style
block from its submodules (``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp``, drop paths).
Two exact implementations: the *reference* passes a boolean key mask to scaled-dot-product attention;
the default *gather* path computes queries for all tokens but keys/values only for the context tokens
(``(N_ctx / N)`` of the attention cost). A test holds them equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.tokens import gather_tokens
from .mae import check_ratio, grid_patches, random_masking


def masked_key_attention(
    blk: nn.Module,
    x: torch.Tensor,
    key_index: torch.Tensor | None = None,
    key_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Self-attention of ``blk.attn`` on ``blk.norm1(x)`` with a restricted set of keys/values.

    Args:
        blk: a :class:`part.models.vit.Block`.
        x: ``(B, L, d)`` block input (prefix tokens included).
        key_index: ``(B, L_k)`` int64, the tokens that serve as keys/values (fast path: their keys and
            values are the only ones computed).
        key_mask: ``(B, L)`` bool, True where a token serves as key/value (reference path).
        With neither, plain self-attention.
    Returns:
        the attention branch output ``(B, L, d)`` (after ``attn.proj`` and its dropout).
    """
    attn = blk.attn
    b, n, d = x.shape
    heads, dh = attn.num_heads, attn.head_dim
    h = blk.norm1(x)
    mask = None
    if key_index is not None:
        w, bias = attn.qkv.weight, attn.qkv.bias
        q = F.linear(h, w[:d], None if bias is None else bias[:d])
        kv = F.linear(gather_tokens(h, key_index), w[d:], None if bias is None else bias[d:])
        q = q.reshape(b, n, heads, dh).transpose(1, 2)  # (B, H, L, dh)
        k, v = kv.reshape(b, -1, 2, heads, dh).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, L_k, dh)
    else:
        q, k, v = attn.qkv(h).reshape(b, n, 3, heads, dh).permute(2, 0, 3, 1, 4).unbind(0)
        if key_mask is not None:
            mask = key_mask[:, None, None, :]  # (B, 1, 1, L): True = attend
    p = attn.attn_drop if attn.training else 0.0
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p)
    out = out.transpose(1, 2).reshape(b, n, d)
    return attn.proj_drop(attn.proj(out))


def masked_key_block(
    blk: nn.Module, x: torch.Tensor, key_index: torch.Tensor | None = None, key_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``Block.forward`` with masked keys: ``x + attn(norm1 x)`` then ``x + mlp(norm2 x)``. ``(B, L, d)``."""
    x = x + blk.drop_path1(masked_key_attention(blk, x, key_index, key_mask))
    return x + blk.drop_path2(blk.mlp(blk.norm2(x)))


@dataclass
class MP3Output:
    """One MP3 step.

    loss: mean cross-entropy over all tokens. logits: ``(B, N, N)`` (token order as fed, i.e. shuffled).
    labels: ``(B, N)`` grid index of each token. context: ``(B, N)`` bool, True where the token served as
    key/value. metrics: ``acc`` (all tokens), ``acc_context``, ``acc_masked``.
    """

    loss: torch.Tensor
    logits: torch.Tensor
    labels: torch.Tensor
    context: torch.Tensor
    metrics: dict = field(default_factory=dict)


class MP3Objective(nn.Module):
    """Position prediction with masked keys, no position embeddings (Zhai et al. 2022).

    Args:
        backbone: :class:`part.models.vit.VisionTransformer`; its ``pos_embed`` (if any) is not used.
        mask_ratio: fraction of patch tokens removed from the keys/values of every attention layer.
        shuffle: shuffle the token order per sample (the encoder is permutation-equivariant without
            position embeddings, so this changes nothing mathematically; it guards against any
            order leak and makes the labels explicit).
        attention: ``"gather"`` (fast, exact) or ``"mask"`` (reference, boolean key mask).
        check_inputs: validate images on every call.
    """

    ATTENTION = ("gather", "mask")

    def __init__(
        self,
        backbone: nn.Module,
        mask_ratio: float = 0.75,
        shuffle: bool = True,
        attention: str = "gather",
        check_inputs: bool = True,
    ):
        super().__init__()
        if attention not in self.ATTENTION:
            raise ValueError(f"attention must be one of {list(self.ATTENTION)}, got {attention!r}")
        self.backbone = backbone
        self.num_patches = backbone.num_patches
        self.num_context = check_ratio("mask_ratio", mask_ratio, self.num_patches)
        self.mask_ratio = float(mask_ratio)
        self.shuffle = shuffle
        self.attention = attention
        self.check_inputs = check_inputs
        self.head = nn.Linear(backbone.embed_dim, self.num_patches)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def encode(self, tokens: torch.Tensor, context_index: torch.Tensor) -> torch.Tensor:
        """Patch tokens ``(B, N, d)`` (no position) and context indices ``(B, K)`` into those tokens ->
        encoded patch tokens ``(B, N, d)`` (after the final norm, prefix removed)."""
        bb = self.backbone
        b, n, _ = tokens.shape
        prefix = bb.num_prefix_tokens
        if bb.cls_token is not None:
            tokens = torch.cat([bb.cls_token.expand(b, -1, -1), tokens], dim=1)
        x = bb.pos_drop(tokens)
        pre = torch.arange(prefix, device=x.device).expand(b, prefix)
        key_index = torch.cat([pre, context_index + prefix], dim=1)  # prefix tokens are always keys
        if self.attention == "gather":
            for blk in bb.blocks:
                x = masked_key_block(blk, x, key_index=key_index)
        else:
            key_mask = torch.zeros(b, prefix + n, dtype=torch.bool, device=x.device)
            key_mask.scatter_(1, key_index, True)
            for blk in bb.blocks:
                x = masked_key_block(blk, x, key_mask=key_mask)
        return bb.norm(x)[:, prefix:]

    def forward(self, images: torch.Tensor, generator: torch.Generator | None = None) -> MP3Output:
        """One MP3 step on ``images (B, C, H, W)`` of the backbone's ``img_size``."""
        patches = grid_patches(self.backbone, images, self.check_inputs)
        b, n = patches.shape[:2]
        dev = patches.device
        tokens = self.backbone.patch_embed(patches)  # (B, N, d), no position embedding
        if self.shuffle:
            order = random_masking(b, n, n, generator, dev).ids_shuffle  # a random permutation per sample
            tokens = gather_tokens(tokens, order)
            labels = order  # token i came from grid cell order[b, i]
        else:
            labels = torch.arange(n, device=dev).expand(b, n)
        ctx = random_masking(b, n, self.num_context, generator, dev)
        context = ~ctx.mask  # (B, N) over the fed (shuffled) token order
        logits = self.head(self.encode(tokens, ctx.ids_keep))  # (B, N, N)
        loss = F.cross_entropy(logits.float().reshape(b * n, n), labels.reshape(-1))
        with torch.no_grad():
            hit = (logits.detach().argmax(dim=-1) == labels).float()
            c = context.float()
            metrics = {
                "acc": hit.mean(),
                "acc_context": (hit * c).sum() / c.sum(),
                "acc_masked": (hit * (1 - c)).sum() / (1 - c).sum(),
            }
        return MP3Output(loss, logits, labels, context, metrics)


__all__ = ["MP3Objective", "MP3Output", "masked_key_attention", "masked_key_block"]
