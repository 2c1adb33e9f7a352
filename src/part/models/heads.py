"""Relative encoders (paper §4 "Cross-attention relative encoder", §5.3 "Impact of relative encoder").

Every head maps patch embeddings ``x (B, N, d)`` and index pairs ``pairs (B, M, 2)`` (ref, tgt) to
predictions ``(B, M, k)``, k = 2 (dx, dy), 4 (+ w/h ratios), or 1-2 in 1D.

* :class:`CrossAttentionHead` (``cross_attention``) — ``concat(X'_ref, X'_tgt)`` -> linear 2d -> d -> query of
  a multi-head cross-attention (q/k/v/output projections) whose keys/values are all N embeddings -> linear to k.
* :class:`PaperCrossAttentionHead` (``cross_attention_paper``) — exactly the paper's equation (§4): one head,
  no q/k/v projections: ``theta = W_o softmax(X_hat X'^T / sqrt(d)) X' + b_o`` with
  ``X_hat = Linear(concat(X'_ref, X'_tgt))`` (2d -> d).
* :class:`IndexCrossAttentionHead` (``cross_attention_index``) — the variant in the authors' public model code:
  the query is a fixed 2-D sin-cos code of the pair's token indices (i, j), the keys get a 1-D sin-cos code of
  the token index; one head. Attention is told *which* two tokens, not what they contain.
* :class:`PairwiseMLPHead` (``pairwise_mlp``, ``pairwise_linear``) — an MLP on ``concat(X'_ref, X'_tgt)`` with
  shared weights; sees only the two patches. ``hidden_dim=0`` is the paper's single linear map (§5.3).
* :class:`FullMLPHead` (``mlp``) — fully connected: sees all N embeddings flattened and predicts all N^2 pairs.

The classes here are the straightforward *reference* implementations: gather the pair embeddings, then
compute, exactly as written. They are the test oracles of :mod:`part.models.fast_heads`; heads are built by
name in :mod:`part.models.registry`.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .pos_embed import sincos_1d, sincos_2d
from .tokens import check_pairs, gather_pair_embeddings, gather_tokens


class CrossAttentionHead(nn.Module):
    """The cross-attention relative encoder (§4) with multi-head q/k/v/output projections, reference.

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
        check_pairs(x, pairs)
        b, n, d = x.shape
        m = pairs.shape[1]
        h, dh = self.num_heads, self.head_dim
        query = self.query_proj(gather_pair_embeddings(x, pairs))  # (B, M, d)
        q = self.q(query).reshape(b, m, h, dh).transpose(1, 2)  # (B, H, M, dh)
        k, v = self.kv(x).reshape(b, n, 2, h, dh).permute(2, 0, 3, 1, 4).unbind(0)  # (B, H, N, dh)
        attn = F.scaled_dot_product_attention(q, k, v)  # softmax(q k^T / sqrt(dh)) v
        attn = attn.transpose(1, 2).reshape(b, m, d)
        return self.out(self.proj(attn))


class PaperCrossAttentionHead(nn.Module):
    """The paper's relative encoder, equation for equation (§4 "Cross-attention relative encoder"), reference.

    ``X_hat = query_proj(concat(X'_S0, X'_S1))`` (2d -> d); ``A = softmax(X_hat X'^T / sqrt(d))`` over all N
    tokens (one head, keys and values are the embeddings themselves, no projections); ``theta = out(A X')``
    (d -> k, the map from the attended embedding to the translation the paper's ``theta in R^{2 x #pairs}``
    implies). Keys: ``query_proj``, ``out``.
    """

    def __init__(self, dim: int, out_dim: int = 2):
        super().__init__()
        self.dim, self.out_dim = dim, out_dim
        self.query_proj = nn.Linear(2 * dim, dim)
        self.out = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """``x (B, N, d)``, ``pairs (B, M, 2)`` -> ``(B, M, k)``."""
        check_pairs(x, pairs)
        query = self.query_proj(gather_pair_embeddings(x, pairs))  # (B, M, d)
        scores = query @ x.transpose(1, 2) / self.dim**0.5  # (B, M, N)
        return self.out(torch.softmax(scores, dim=-1) @ x)  # (B, M, d) -> (B, M, k)


def pair_index_code(pairs: torch.Tensor, dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos code of each pair's token indices: ``pairs (B, M, 2)`` -> ``(B, M, dim)`` float64;
    the first ``dim / 2`` channels encode the reference index i, the last ``dim / 2`` the target index j."""
    return sincos_2d(pairs[..., 0], pairs[..., 1], dim)


def token_index_code(num_tokens: int, dim: int, device=None) -> torch.Tensor:
    """Fixed 1-D sin-cos code of the token indices ``0 .. N-1``: ``(N, dim)`` float64."""
    return sincos_1d(torch.arange(num_tokens, device=device), dim)


class IndexCrossAttentionHead(nn.Module):
    """The authors' index-code variant of the relative encoder (their public model code), reference.

    One attention head whose query is the fixed 2-D sin-cos code of the pair's indices (i, j)
    (:func:`pair_index_code`) and whose keys are the embeddings plus a fixed 1-D sin-cos code of the token
    index (:func:`token_index_code`); values are the embeddings. With learned projections::

        q_m = W_q code(i, j) + b_q            k_n = W_k (x_n + pe(n)) + b_k        v_n = W_v x_n + b_v
        theta_m = out(proj(softmax(q_m K^T / sqrt(d)) V))

    The query says *which* two tokens to read, not what they contain. d must be divisible by 4.
    Keys: ``q`` (d -> d), ``kv`` (d -> 2d), ``proj`` (d -> d), ``out`` (d -> k).
    """

    def __init__(self, dim: int, out_dim: int = 2, qkv_bias: bool = True):
        super().__init__()
        if dim % 4:
            raise ValueError(f"head dim={dim} must be divisible by 4 for the cross_attention_index head's 2-D code")
        self.dim, self.out_dim = dim, out_dim
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """``x (B, N, d)``, ``pairs (B, M, 2)`` -> ``(B, M, k)``."""
        check_pairs(x, pairs)
        b, n, d = x.shape
        q = self.q(pair_index_code(pairs, d).to(x.dtype))  # (B, M, d)
        w_k, w_v = self.kv.weight.split(d)
        b_k, b_v = (None, None) if self.kv.bias is None else self.kv.bias.split(d)
        k = F.linear(x + token_index_code(n, d, x.device).to(x.dtype), w_k, b_k)  # (B, N, d)
        v = F.linear(x, w_v, b_v)
        attn = torch.softmax(q @ k.transpose(1, 2) / d**0.5, dim=-1) @ v  # (B, M, d)
        return self.out(self.proj(attn))


class PairwiseMLPHead(nn.Module):
    """MLP on ``concat(X'_ref, X'_tgt)`` with weights shared over pairs (§5.3, Tab. 5), reference.

    ``hidden_dim=0`` gives the paper's pairwise encoder, the single linear map ``2d -> k`` whose ``2*d*2``
    parameter count the paper quotes (registry name ``pairwise_linear``); the default ``hidden_dim=None``
    uses one hidden layer of width d (``pairwise_mlp``).
    Keys: ``fc1`` (2d -> hidden), ``fc2`` (hidden -> k); with ``hidden_dim=0`` only ``fc1`` (2d -> k).
    """

    def __init__(self, dim: int, out_dim: int = 2, hidden_dim: int | None = None):
        super().__init__()
        self.dim, self.out_dim = dim, out_dim
        hidden = dim if hidden_dim is None else hidden_dim
        if hidden < 0:
            raise ValueError(f"head hidden_dim must be >= 0 (0: a single linear map), got {hidden}")
        self.hidden_dim = hidden
        if hidden == 0:
            self.fc1 = nn.Linear(2 * dim, out_dim)
            self.fc2 = None
        else:
            self.fc1 = nn.Linear(2 * dim, hidden)
            self.fc2 = nn.Linear(hidden, out_dim)

    def forward(self, x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """``x (B, N, d)``, ``pairs (B, M, 2)`` -> ``(B, M, k)``."""
        check_pairs(x, pairs)
        y = self.fc1(gather_pair_embeddings(x, pairs))
        return y if self.fc2 is None else self.fc2(F.gelu(y))


class FullMLPHead(nn.Module):
    """Fully connected relative encoder (§5.3): all N embeddings flattened -> all N^2 pair predictions.

    With ``hidden_dim=0`` (default) it is the single linear map ``N*d -> N*N*k`` the paper describes
    (``N*d*N^2*2`` weights); ``hidden_dim > 0`` inserts one hidden layer. Needs a fixed N.
    """

    def __init__(self, dim: int, num_patches: int | None = None, out_dim: int = 2, hidden_dim: int = 0):
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
        """``x (B, N, d)``, ``pairs (B, M, 2)`` -> ``(B, M, k)``."""
        check_pairs(x, pairs)
        b, n, d = x.shape
        if n != self.num_patches:
            raise ValueError(f"the 'mlp' head was built for num_patches={self.num_patches}, got {n} patches")
        y = self.fc1(x.reshape(b, n * d))
        if self.fc2 is not None:
            y = self.fc2(F.gelu(y))
        table = y.reshape(b, n * n, self.out_dim)  # entry i * N + j is the pair (i, j)
        flat = pairs[..., 0] * n + pairs[..., 1]
        return gather_tokens(table, flat)


__all__ = [
    "CrossAttentionHead", "PaperCrossAttentionHead", "IndexCrossAttentionHead", "PairwiseMLPHead", "FullMLPHead",
    "pair_index_code", "token_index_code",
]
