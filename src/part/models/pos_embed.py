"""Position embeddings: fixed sin-cos codes, and resampling learnable ones to another patch grid.

**Sin-cos codes** (Vaswani et al. 2017; MAE's 2D table), shared by the grid baselines (MAE, DropPos) and the
index-code relative encoder. ``sincos_1d(pos, dim)`` is the one formula: ``[sin(p w_k), cos(p w_k)]`` with
``w_k = 10000^(-k / (dim / 2))``, ``k = 0 .. dim/2 - 1``. A 2D code is two 1D codes of half the width side by
side (x first, then y), which is MAE's ``get_2d_sincos_pos_embed``.

**Resampling.** Fine-tuning adds learnable position embeddings to the PART-pretrained ViT (paper §4
"Supervised finetuning"); they belong to one patch grid ``(H/P, W/P)``. Fine-tuning or evaluating at another
image size (e.g. ViTDet-style transfer at a larger resolution) needs them on the new grid. This follows the
semantics of timm's ``resample_abs_pos_embed`` so that a model exported to timm and resampled there gives the
same numbers as here:

* the ``num_prefix_tokens`` leading embeddings (the CLS token's) are kept unchanged;
* the grid embeddings ``(1, gh*gw, d)`` are read row-major as a ``(d, gh, gw)`` image and resized with
  bicubic interpolation, ``align_corners=False`` and anti-aliasing (which only acts when shrinking);
* the computation runs in float32 and returns the input dtype;
* an unchanged grid returns the input tensor itself.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F


# --- fixed sin-cos codes ---------------------------------------------------------------------------------
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
    return sincos_table(dim, (grid_h, grid_w), num_prefix)


def sincos_table(dim: int, grid: Sequence[int], num_prefix: int = 0) -> torch.Tensor:
    """The sin-cos position table of a patch grid, ``(num_prefix + prod(grid), dim)`` float32, prefix rows zero:
    ``grid = (gh, gw)`` gives :func:`sincos_pos_embed_2d`'s 2D table, ``grid = (n,)`` (a 1D signal's windows) the
    1D code of positions ``0 .. n - 1``."""
    if len(grid) == 2:
        ys, xs = torch.meshgrid(
            torch.arange(grid[0], dtype=torch.float64), torch.arange(grid[1], dtype=torch.float64), indexing="ij"
        )
        table = sincos_2d(xs.reshape(-1), ys.reshape(-1), dim)
    elif len(grid) == 1:
        table = sincos_1d(torch.arange(grid[0], dtype=torch.float64), dim)
    else:
        raise ValueError(f"a sin-cos table needs a 1D or 2D patch grid, got {tuple(grid)}")
    return torch.cat([torch.zeros(num_prefix, dim, dtype=torch.float64), table], dim=0).float()


# --- resampling learnable embeddings ------------------------------------------------------------------
def grid_pair(size: int | Sequence[int], name: str = "grid") -> tuple[int, int]:
    """``7`` or ``(7, 5)`` -> ``(7, 5)``-style ``(rows, cols)``; rejects non-positive sizes."""
    pair = (int(size), int(size)) if isinstance(size, int) else tuple(int(s) for s in size)
    if len(pair) != 2 or min(pair) <= 0:
        raise ValueError(f"{name} must be a positive int or (rows, cols), got {size!r}")
    return pair  # type: ignore[return-value]


def resample_abs_pos_embed(
    posemb: torch.Tensor,
    new_size: int | Sequence[int],
    old_size: int | Sequence[int] | None = None,
    num_prefix_tokens: int = 1,
    interpolation: str = "bicubic",
    antialias: bool = True,
) -> torch.Tensor:
    """Position embeddings of one grid -> another.

    Args:
        posemb: ``(1, num_prefix_tokens + gh*gw, d)`` embeddings, grid row-major.
        new_size: target grid ``(gh', gw')`` (an int means square).
        old_size: source grid ``(gh, gw)``; None means square (``gh*gw`` must be a perfect square).
        num_prefix_tokens: leading tokens without a grid position (1 for a CLS token), kept as they are.
        interpolation: ``F.interpolate`` mode (``bicubic`` as timm; ``bilinear`` also works).
        antialias: anti-aliased resize (acts only when the grid shrinks).
    Returns:
        ``(1, num_prefix_tokens + gh'*gw', d)`` in the dtype of ``posemb``.
    """
    if posemb.dim() != 3 or posemb.shape[0] != 1:
        raise ValueError(f"posemb must be (1, tokens, d), got shape {tuple(posemb.shape)}")
    new = grid_pair(new_size, "new_size")
    n_grid = posemb.shape[1] - num_prefix_tokens
    if old_size is None:
        side = math.isqrt(max(n_grid, 0))
        if side * side != n_grid:
            raise ValueError(f"posemb has {n_grid} grid tokens, not a square grid; give old_size=(rows, cols)")
        old = (side, side)
    else:
        old = grid_pair(old_size, "old_size")
        if old[0] * old[1] != n_grid:
            raise ValueError(f"old_size {old} has {old[0] * old[1]} positions but posemb has {n_grid} grid tokens")
    if old == new:
        return posemb
    prefix, grid = posemb[:, :num_prefix_tokens], posemb[:, num_prefix_tokens:]
    d = grid.shape[-1]
    img = grid.float().reshape(1, old[0], old[1], d).permute(0, 3, 1, 2)  # (1, d, gh, gw)
    img = F.interpolate(img, size=new, mode=interpolation, align_corners=False, antialias=antialias)
    grid = img.permute(0, 2, 3, 1).reshape(1, new[0] * new[1], d).to(posemb.dtype)
    return torch.cat([prefix, grid], dim=1)


__all__ = ["sincos_1d", "sincos_2d", "sincos_pos_embed_2d", "sincos_table", "resample_abs_pos_embed", "grid_pair"]
