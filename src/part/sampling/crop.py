"""One batched crop-and-resize of every box to ``P x P`` (paper §4: "Each sampled patch of shape D x D
is then resized to P x P"), plus the exact grid patchify/unpatchify used for grid sampling.

Convention: ``F.grid_sample`` with ``align_corners=False`` and bilinear interpolation. Output pixel
``(v, u)`` of a box ``(x0, y0, w, h)`` samples the continuous image point
``(x0 + (u + 0.5) * w / P, y0 + (v + 0.5) * h / P)``, i.e. the centres of a ``P x P`` grid laid over the
box. For a grid box (``w = h = P`` at integer offsets) those points are exactly pixel centres, so the
crop reproduces the pixels. ``padding_mode="border"`` only matters for the half-pixel rim of a box
touching the image edge.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_patches(images: torch.Tensor, boxes: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Crop every box from its image and resize it to ``patch_size`` in one ``grid_sample`` call.

    Args:
        images: ``(B, C, H, W)`` float.
        boxes: ``(B, N, 4)`` as (cx, cy, w, h) in pixels.
        patch_size: output side P.
    Returns:
        ``(B, N, C, P, P)`` patches, same dtype as ``images``.
    """
    b, c, h, w = images.shape
    n = boxes.shape[1]
    p = patch_size
    boxes = boxes.to(torch.float32)
    offs = (torch.arange(p, device=images.device, dtype=torch.float32) + 0.5) / p  # (P,)
    x0 = boxes[..., 0] - boxes[..., 2] / 2
    y0 = boxes[..., 1] - boxes[..., 3] / 2
    xs = x0[..., None] + offs * boxes[..., 2:3]  # (B, N, P) pixel coordinates
    ys = y0[..., None] + offs * boxes[..., 3:4]
    gx = xs * (2.0 / w) - 1.0  # normalised, align_corners=False
    gy = ys * (2.0 / h) - 1.0
    grid = torch.stack(
        [gx[:, :, None, :].expand(b, n, p, p), gy[:, :, :, None].expand(b, n, p, p)], dim=-1
    )  # (B, N, P, P, 2)
    grid = grid.reshape(b, n * p, p, 2).to(images.dtype)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # (B, C, N*P, P) -> (B, N, C, P, P)
    return out.reshape(b, c, n, p, p).permute(0, 2, 1, 3, 4).contiguous()


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Exact non-overlapping grid patches, row-major. ``(B, C, H, W)`` -> ``(B, N, C, P, P)``."""
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(
            f"image size {h}x{w} is not divisible by patch_size={p}, which grid sampling needs"
        )
    x = images.reshape(b, c, h // p, p, w // p, p)
    return x.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c, p, p)


def unpatchify(patches: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Inverse of :func:`patchify`. ``(B, N, C, P, P)`` -> ``(B, C, H, W)``."""
    b, n, c, p, _ = patches.shape
    gh, gw = height // p, width // p
    if gh * gw != n:
        raise ValueError(f"{n} patches of size {p} do not tile a {height}x{width} image")
    x = patches.reshape(b, gh, gw, c, p, p)
    return x.permute(0, 3, 1, 4, 2, 5).reshape(b, c, height, width)
