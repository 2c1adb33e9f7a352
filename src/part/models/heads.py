"""Relative encoders (paper §4 "Cross-attention relative encoder", §5.3 "Impact of relative encoder").

Every head maps patch embeddings ``x (B, N, d)`` and index pairs ``pairs (B, M, 2)`` (ref, tgt) to
predictions ``(B, M, k)``, k = 2 (dx, dy), 4 (+ w/h ratios), or 1-2 in 1D.

* ``cross_attention`` — the paper's main head: ``concat(X'_ref, X'_tgt)`` -> linear 2d -> d -> query of a
  multi-head cross-attention whose keys/values are all N embeddings -> linear to k.
* ``pairwise_mlp`` — an MLP on ``concat(X'_ref, X'_tgt)`` with shared weights; sees only the two patches.
* ``mlp`` — fully connected: sees all N embeddings flattened and predicts all N^2 pairs at once.

The classes below are the straightforward *reference* implementations: gather the pair embeddings, then
compute, exactly as the paper describes. They are the test oracle for any faster implementation.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x (B, N, d)``, ``index (B, M)`` -> ``(B, M, d)``."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def gather_pair_embeddings(x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """``concat(X'_ref, X'_tgt)``: ``x (B, N, d)``, ``pairs (B, M, 2)`` -> ``(B, M, 2d)``."""
    return torch.cat([gather_tokens(x, pairs[..., 0]), gather_tokens(x, pairs[..., 1])], dim=-1)


def _check_pairs(x: torch.Tensor, pairs: torch.Tensor) -> None:
    if x.dim() != 3:
        raise ValueError(f"embeddings must be (B, N, d), got shape {tuple(x.shape)}")
    if pairs.dim() != 3 or pairs.shape[-1] != 2 or pairs.shape[0] != x.shape[0]:
        raise ValueError(f"pairs must be (B, M, 2) with B={x.shape[0]}, got shape {tuple(pairs.shape)}")


class CrossAttentionHead(nn.Module):
    """The paper's cross-attention relative encoder (§4), reference implementation.

    Parameters (state-dict keys): ``query_proj`` (2d -> d), ``q`` (d -> d), ``kv`` (d -> 2d),
    ``proj`` (d -> d, attention output), ``out`` (d -> k).

    Args:
        dim: embedding width d.
        num_heads: attention heads (d must be divisible).
        out_dim: k.
    """

    def __init__(self, dim: int, num_heads: int = 1, out_dim: int = 2, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"head dim={dim} must be divisible by head num_heads={num_heads}")
        self.dim, self.num_heads, self.out_dim = dim, num_heads, out_dim
        self.head_dim = dim // num_heads
        self.query_proj = nn.Linear(2 * dim, dim)
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """``x (B, N, d)``, ``pairs (B, M, 2)`` -> ``(B, M, k)``."""
        _check_pairs(x, pairs)
        b, n, d = x.shape
        m = pairs.shape[1]
        h, dh = self.num_heads, self.head_dim
        query = self.query_proj(gather_pair_embeddings(x, pairs))  # (B, M, d)
        q = self.q(query).reshape(b, m, h, dh).transpose(1, 2)  # (B, H, M, dh)
        k, v = self.kv(x).reshape(b, n, 2, h, dh).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, N, dh)
        attn = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(dh)) v
        attn = attn.transpose(1, 2).reshape(b, m, d)
        return self.out(self.proj(attn))


class PairwiseMLPHead(nn.Module):
    """MLP on ``concat(X'_ref, X'_tgt)`` with weights shared over pairs (§5.3, Tab. 5), reference.

    ``hidden_dim=0`` gives the single linear map ``2d -> k`` whose ``2*d*2`` parameter count the paper
    quotes; the default ``hidden_dim=None`` uses one hidden layer of width d.
    Keys: ``fc1`` (2d -> hidden), ``fc2`` (hidden -> k); with ``hidden_dim=0`` only ``fc1`` (2d -> k).
    """

    def __init__(self, dim: int, out_dim: int = 2, hidden_dim: int | None = None):
        super().__init__()
        self.dim, self.out_dim = dim, out_dim
        hidden = dim if hidden_dim is None else hidden_dim
        self.hidden_dim = hidden
        if hidden == 0:
            self.fc1 = nn.Linear(2 * dim, out_dim)
            self.fc2 = None
        else:
            self.fc1 = nn.Linear(2 * dim, hidden)
            self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        _check_pairs(x, pairs)
        y = self.fc1(gather_pair_embeddings(x, pairs))
        return y if self.fc2 is None else self.fc2(F.gelu(y))


class FullMLPHead(nn.Module):
    """Fully connected relative encoder (§5.3): all N embeddings flattened -> all N^2 pair predictions.

    With ``hidden_dim=0`` (default) it is the single linear map ``N*d -> N*N*k`` the paper describes
    (``N*d*N^2*2`` weights); ``hidden_dim > 0`` inserts one hidden layer. Needs a fixed N.
    """

    def __init__(self, dim: int, num_patches: int, out_dim: int = 2, hidden_dim: int = 0):
        super().__init__()
        if num_patches is None or num_patches <= 1:
            raise ValueError(f"the 'mlp' head needs a fixed num_patches >= 2, got {num_patches}")
        self.dim, self.num_patches, self.out_dim = dim, num_patches, out_dim
        n_out = num_patches * num_patches * out_dim
        if hidden_dim:
            self.fc1 = nn.Linear(num_patches * dim, hidden_dim)
            self.fc2 = nn.Linear(hidden_dim, n_out)
        else:
            self.fc1 = nn.Linear(num_patches * dim, n_out)
            self.fc2 = None

    def forward(self, x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        _check_pairs(x, pairs)
        b, n, d = x.shape
        if n != self.num_patches:
            raise ValueError(f"the 'mlp' head was built for num_patches={self.num_patches}, got {n} patches")
        y = self.fc1(x.reshape(b, n * d))
        if self.fc2 is not None:
            y = self.fc2(F.gelu(y))
        table = y.reshape(b, n * n, self.out_dim)  # entry i * N + j is the pair (i, j)
        flat = pairs[..., 0] * n + pairs[..., 1]
        return gather_tokens(table, flat)


HEADS = ("cross_attention", "cross_attention_reference", "pairwise_mlp", "pairwise_mlp_reference", "mlp")


def build_head(
    name: str,
    dim: int,
    out_dim: int = 2,
    num_heads: int | None = None,
    num_patches: int | None = None,
    hidden_dim: int | None = None,
) -> nn.Module:
    """Build a relative encoder by name.

    ``cross_attention`` / ``pairwise_mlp`` give the fast exact implementations when available (see
    :mod:`part.models.fast_heads`); the ``*_reference`` names force the plain implementations above.
    ``num_heads`` defaults to ``max(1, d // 64)``.
    """
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; choose one of {list(HEADS)}")
    heads = num_heads or max(1, dim // 64)
    if name == "cross_attention_reference":
        return CrossAttentionHead(dim, heads, out_dim)
    if name == "pairwise_mlp_reference":
        return PairwiseMLPHead(dim, out_dim, hidden_dim)
    if name == "mlp":
        return FullMLPHead(dim, num_patches, out_dim, hidden_dim or 0)
    try:  # fast exact implementations (same parameters, same state-dict keys)
        from . import fast_heads
    except ImportError:
        fast_heads = None
    if name == "cross_attention":
        cls = getattr(fast_heads, "FusedCrossAttentionHead", CrossAttentionHead)
        return cls(dim, heads, out_dim)
    cls = getattr(fast_heads, "FusedPairwiseMLPHead", PairwiseMLPHead)
    return cls(dim, out_dim, hidden_dim)


__all__ = [
    "CrossAttentionHead", "PairwiseMLPHead", "FullMLPHead", "build_head", "HEADS",
    "gather_tokens", "gather_pair_embeddings",
]
