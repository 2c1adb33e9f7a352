"""Fixed sin-cos codes (Vaswani et al. 2017; MAE's 2D table), shared by the grid baselines and the
index-code relative encoder.

``sincos_1d(pos, dim)`` is the one formula: ``[sin(p w_k), cos(p w_k)]`` with ``w_k = 10000^(-k / (dim / 2))``,
``k = 0 .. dim/2 - 1``. A 2D code is two 1D codes of half the width side by side (x first, then y), which is
MAE's ``get_2d_sincos_pos_embed``.
"""

from __future__ import annotations

import torch


def sincos_1d(pos: torch.Tensor, dim: int) -> torch.Tensor:
    """Sin-cos code of positions: ``pos (...)`` (any real dtype) -> ``(..., dim)`` float64; dim must be even."""
    if dim % 2 or dim <= 0:
        raise ValueError(f"sin-cos code width dim={dim} must be a positive even number")
    half = dim // 2
    omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64, device=pos.device) / half)  # (dim/2,)
    angles = pos.to(torch.float64).unsqueeze(-1) * omega  # (..., dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def sincos_2d(x: torch.Tensor, y: torch.Tensor, dim: int) -> torch.Tensor:
    """2D sin-cos code of positions ``(x, y)``, each ``(...)`` -> ``(..., dim)`` float64: the first ``dim / 2``
    channels encode x, the last ``dim / 2`` y. dim must be divisible by 4."""
    if dim % 4:
        raise ValueError(f"embed_dim={dim} must be divisible by 4 for 2D sin-cos codes")
    return torch.cat([sincos_1d(x, dim // 2), sincos_1d(y, dim // 2)], dim=-1)


def sincos_pos_embed_2d(dim: int, grid_h: int, grid_w: int, num_prefix: int = 0) -> torch.Tensor:
    """Fixed 2D sin-cos position table (MAE ``get_2d_sincos_pos_embed``), ``(num_prefix + gh * gw, dim)`` float32.

    Row-major over the grid; the first ``dim / 2`` channels encode the column (x), the last ``dim / 2`` the
    row (y). Prefix (CLS) rows are zero.
    """
    ys, xs = torch.meshgrid(
        torch.arange(grid_h, dtype=torch.float64), torch.arange(grid_w, dtype=torch.float64), indexing="ij"
    )
    table = sincos_2d(xs.reshape(-1), ys.reshape(-1), dim)
    table = torch.cat([torch.zeros(num_prefix, dim, dtype=torch.float64), table], dim=0)
    return table.float()


__all__ = ["sincos_1d", "sincos_2d", "sincos_pos_embed_2d"]
