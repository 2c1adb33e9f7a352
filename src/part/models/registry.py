"""Relative encoders by name: the one table of heads (paper §4, §5.3 Tab. 5).

==================================  ===================================================================
name                                head
==================================  ===================================================================
``cross_attention``                 multi-head cross-attention with q/k/v/output projections (fused)
``cross_attention_paper``           the paper's §4 equation: one head, no projections (fused)
``cross_attention_index``           the authors' variant: sin-cos index-code query, one head (fused)
``pairwise_mlp``                    two-layer MLP on ``concat(x_i, x_j)`` (fused first layer)
``pairwise_linear``                 the paper's pairwise encoder: one linear map ``2d -> k`` (Tab. 5)
``mlp``                             fully connected ``N d -> N^2 k`` (Tab. 5), needs a fixed N
``<name>_reference``                the plain implementation of each fused head (the test oracle)
==================================  ===================================================================

Each entry is ``(class, fixed keyword arguments)``; a head's options are its constructor's keyword
arguments (``num_heads``, ``hidden_dim``, ``num_patches``, ``path``, ...) minus the fixed ones, with the
constructor's defaults. Options a head does not take raise ``ValueError`` naming them.
"""

from __future__ import annotations

import inspect

import torch.nn as nn

from .fast_heads import (
    FusedCrossAttentionHead,
    FusedIndexCrossAttentionHead,
    FusedPairwiseMLPHead,
    FusedPaperCrossAttentionHead,
)
from .heads import (
    CrossAttentionHead,
    FullMLPHead,
    IndexCrossAttentionHead,
    PairwiseMLPHead,
    PaperCrossAttentionHead,
)

HEADS: dict[str, tuple[type, dict]] = {
    "cross_attention": (FusedCrossAttentionHead, {}),
    "cross_attention_reference": (CrossAttentionHead, {}),
    "cross_attention_paper": (FusedPaperCrossAttentionHead, {}),
    "cross_attention_paper_reference": (PaperCrossAttentionHead, {}),
    "cross_attention_index": (FusedIndexCrossAttentionHead, {}),
    "cross_attention_index_reference": (IndexCrossAttentionHead, {}),
    "pairwise_mlp": (FusedPairwiseMLPHead, {}),
    "pairwise_mlp_reference": (PairwiseMLPHead, {}),
    "pairwise_linear": (FusedPairwiseMLPHead, {"hidden_dim": 0}),
    "pairwise_linear_reference": (PairwiseMLPHead, {"hidden_dim": 0}),
    "mlp": (FullMLPHead, {}),
}


def head_names() -> list[str]:
    """The names :func:`build_head` accepts."""
    return list(HEADS)


def _lookup(name: str) -> tuple[type, dict]:
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; choose one of {head_names()}")
    return HEADS[name]


def head_options(name: str) -> list[str]:
    """Keyword options of head ``name`` (its constructor's, minus ``dim``, ``out_dim`` and fixed ones)."""
    cls, fixed = _lookup(name)
    params = list(inspect.signature(cls.__init__).parameters)[1:]  # drop self
    return [p for p in params if p not in ("dim", "out_dim") and p not in fixed]


def build_head(name: str, dim: int, out_dim: int = 2, **options) -> nn.Module:
    """Build relative encoder ``name`` for embeddings of width ``dim`` and ``out_dim`` = k outputs.

    ``options`` are the head's keyword options (:func:`head_options`); a ``None`` value means the
    constructor's default. Raises ``ValueError`` for an unknown name and for a non-``None`` option the head
    does not take (e.g. ``num_heads`` for the single-head heads, ``hidden_dim`` for the attention heads).
    """
    cls, fixed = _lookup(name)
    valid = head_options(name)
    given = {k: v for k, v in options.items() if v is not None}
    unknown = sorted(set(given) - set(valid))
    if unknown:
        raise ValueError(f"head {name!r} does not take option(s) {unknown}; its options: {valid}")
    return cls(dim=dim, out_dim=out_dim, **fixed, **given)


__all__ = ["HEADS", "build_head", "head_names", "head_options"]
