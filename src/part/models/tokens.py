"""Token gathers shared by the relative encoders and the grid baselines.

``x (B, N, d)`` token embeddings; ``index (B, M)`` token indices per image; ``pairs (B, M, 2)`` index pairs
``(ref, tgt)`` (paper §4: ``S_0``, ``S_1``).
"""

from __future__ import annotations

import torch


def gather_tokens(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Rows of ``x`` per image: ``x (B, N, d)``, ``index (B, M)`` int64 -> ``(B, M, d)``."""
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


def gather_pair_embeddings(x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """``concat(X'_ref, X'_tgt)`` (paper §4): ``x (B, N, d)``, ``pairs (B, M, 2)`` -> ``(B, M, 2d)``."""
    return torch.cat([gather_tokens(x, pairs[..., 0]), gather_tokens(x, pairs[..., 1])], dim=-1)


def check_pairs(x: torch.Tensor, pairs: torch.Tensor) -> None:
    """Validate a relative encoder's inputs: ``x (B, N, d)`` and ``pairs (B, M, 2)`` with the same B.

    Raises ``ValueError`` naming ``embeddings`` or ``pairs`` and the shape received.
    """
    if x.dim() != 3:
        raise ValueError(f"embeddings must be (B, N, d), got shape {tuple(x.shape)}")
    if pairs.dim() != 3 or pairs.shape[-1] != 2 or pairs.shape[0] != x.shape[0]:
        raise ValueError(f"pairs must be (B, M, 2) with B={x.shape[0]}, got shape {tuple(pairs.shape)}")


__all__ = ["gather_tokens", "gather_pair_embeddings", "check_pairs"]
