"""One batched crop-and-resize of every box to ``P x P`` (paper §4: "Each sampled patch of shape D x D
is then resized to P x P"), plus the exact grid patchify/unpatchify used for grid sampling.

Convention: ``F.grid_sample`` with ``align_corners=False`` and bilinear interpolation. Output pixel
``(v, u)`` of a box ``(x0, y0, w, h)`` samples the continuous image point
``(x0 + (u + 0.5) * w / P, y0 + (v + 0.5) * h / P)``, i.e. the centres of a ``P x P`` grid laid over the
box. For a grid box (``w = h = P`` at integer offsets) those points are exactly pixel centres, so the
crop reproduces the pixels. ``padding_mode="border"`` only matters for the half-pixel rim of a box
touching the image edge.

Two more crops share that convention:

* :func:`copy_patches` — boxes of exactly ``P x P`` at whole-pixel offsets (``positions="integer"``, D = P):
  the pixels themselves, gathered, no resampling (bit-exact).
* :func:`crop_patches_antialiased` — boxes larger than P (the scale mode, §5.1, and D > P) are shrunk with a
  triangle filter stretched by the scale factor, as PIL's ``resize(BILINEAR)`` (and
  ``F.interpolate(antialias=True)``) do: output sample ``u`` at ``c_u = x0 + (u + 0.5) s`` (``s = w / P``)
  averages the pixels ``j`` with weights ``max(0, 1 - |j + 0.5 - c_u| / max(s, 1))``, renormalised over the
  pixels inside the image. For ``s <= 1`` that is exactly bilinear interpolation with border padding, i.e.
  :func:`crop_patches`. Plain bilinear sampling of a 2x larger box would read one pixel in four and alias.
  Separable and banded: each box reads a ``K x K`` window (``K ~ (P - 1) s_max + 2 max(s_max, 1) + 2``)
  and applies two small matrices; :func:`crop_patches_antialiased_reference` is the dense oracle.
"""

from __future__ import annotations

import math

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


#: From this patch size on :func:`copy_patches` gathers whole windows of a strided view instead of pixels.
#: Both give the same bits; ``python benchmarks/bench_kernels.py --threads 1 --clock cpu`` times them (one
#: thread: P = 16, N = 196 / 576: 5.7 -> 4.0 ms, 4.1 -> 3.3 ms; P = 4, N = 64: 0.7 ms per pixel vs 1.2 ms).
UNFOLD_MIN_PATCH = 8


def copy_patches(images: torch.Tensor, boxes: torch.Tensor, patch_size: int, check: bool = True) -> torch.Tensor:
    """Copy the pixels of ``P x P`` boxes at whole-pixel offsets: no interpolation, bit-exact; one gather.

    Args:
        images: ``(B, C, H, W)``.
        boxes: ``(B, N, 4)`` (cx, cy, w, h) with ``w = h = P`` and integer top-left corners inside the image.
        patch_size: P.
        check: validate the boxes (three reads back to the host, i.e. syncs on CUDA); a sampler that drew
            the boxes itself on the pixel grid passes False.
    Returns:
        ``(B, N, C, P, P)``, same dtype as ``images``. Raises ``ValueError`` for other boxes (``check=True``).
    """
    b, c, h, w = images.shape
    n, p = boxes.shape[1], patch_size
    x0 = boxes[..., 0] - boxes[..., 2] / 2
    y0 = boxes[..., 1] - boxes[..., 3] / 2
    if check:
        corners = torch.stack([x0, y0], dim=-1)
        if not (bool((boxes[..., 2:] == p).all()) and bool((corners == corners.round()).all())):
            raise ValueError("copy_patches needs P x P boxes at whole-pixel offsets (positions='integer', D = P)")
    x0, y0 = x0.round().long(), y0.round().long()
    if check and bool((x0 < 0).any() | (y0 < 0).any() | (x0 + p > w).any() | (y0 + p > h).any()):
        raise ValueError("copy_patches: a box lies outside the image")
    if p >= UNFOLD_MIN_PATCH:
        # every P x P window as a strided view, then one block gather per patch: index tensors of (B, N),
        # not (B, N, P, P) (faster for P = 16 on the CPU; per-pixel indices win for small P)
        windows = images.unfold(2, p, 1).unfold(3, p, 1)  # (B, C, H - P + 1, W - P + 1, P, P), a view
        rows = torch.arange(b, device=images.device)[:, None].expand_as(x0)
        return windows[rows, :, y0, x0]  # (B, N, C, P, P)
    ar = torch.arange(p, device=images.device)
    flat = (y0[..., None, None] + ar[:, None]) * w + (x0[..., None, None] + ar)  # (B, N, P, P)
    out = images.reshape(b, c, h * w).gather(2, flat.reshape(b, 1, n * p * p).expand(b, c, -1))
    return out.reshape(b, c, n, p, p).permute(0, 2, 1, 3, 4).contiguous()


def tent_weights(
    start: torch.Tensor, size: torch.Tensor, patch_size: int, length: int, first: torch.Tensor, window: int
) -> torch.Tensor:
    """Anti-aliased resampling weights of one axis, over a window of pixels.

    Args:
        start, size: ``(...)`` box start and size along the axis, in pixels.
        patch_size: P output samples; sample u is centred at ``start + (u + 0.5) size / P``.
        length: the image's size along the axis (pixels outside ``[0, length)`` get weight 0).
        first: ``(...)`` int64, the window's first pixel; ``window``: its length K.
    Returns:
        ``(..., P, K)`` weights (rows sum to 1) of pixels ``first .. first + K - 1``.
    """
    dtype = size.dtype
    scale = size / patch_size
    radius = scale.clamp(min=1.0)
    u = torch.arange(patch_size, device=size.device, dtype=dtype)
    centres = start[..., None] + (u + 0.5) * scale[..., None]  # (..., P)
    pix = first[..., None] + torch.arange(window, device=size.device)  # (..., K)
    dist = (pix.to(dtype) + 0.5)[..., None, :] - centres[..., :, None]  # (..., P, K)
    wts = (1.0 - dist.abs() / radius[..., None, None]).clamp(min=0.0)
    wts = wts * ((pix >= 0) & (pix < length)).to(dtype)[..., None, :]
    return wts / wts.sum(dim=-1, keepdim=True)


def window_start(start: torch.Tensor, size: torch.Tensor, patch_size: int) -> torch.Tensor:
    """First pixel of the window that covers every tap of an axis: ``floor(c_0 - r - 0.5)``, ``(...)`` int64."""
    scale = size / patch_size
    return torch.floor(start + 0.5 * scale - scale.clamp(min=1.0) - 0.5).long()


def window_size(max_size: float, patch_size: int) -> int:
    """K: pixels an axis window needs for boxes up to ``max_size`` pixels (taps span ``(P - 1) s + 2 r``)."""
    s = max_size / patch_size
    return int(math.ceil((patch_size - 1) * s + 2 * max(s, 1.0))) + 2


def crop_patches_antialiased(
    images: torch.Tensor, boxes: torch.Tensor, patch_size: int, max_size: float | None = None
) -> torch.Tensor:
    """Crop every box and resize it to ``P x P`` with anti-aliasing when shrinking (see module docstring).

    Args:
        images: ``(B, C, H, W)`` float.
        boxes: ``(B, N, 4)`` (cx, cy, w, h) in pixels, inside the image.
        patch_size: P.
        max_size: an upper bound on every box side (sizes the window without reading the boxes back;
            default: the largest side in ``boxes``).
    Returns:
        ``(B, N, C, P, P)``, same dtype as ``images``. Equals :func:`crop_patches` for boxes no larger than P.
    """
    b, c, h, w = images.shape
    n, p = boxes.shape[1], patch_size
    dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
    boxes = boxes.to(device=images.device, dtype=dtype)
    if max_size is None:
        max_size = float(boxes[..., 2:].max()) if boxes.numel() else float(p)
    k = window_size(max_size, p)
    x0 = boxes[..., 0] - boxes[..., 2] / 2
    y0 = boxes[..., 1] - boxes[..., 3] / 2
    fx, fy = window_start(x0, boxes[..., 2], p), window_start(y0, boxes[..., 3], p)
    wx = tent_weights(x0, boxes[..., 2], p, w, fx, k)  # (B, N, P, K)
    wy = tent_weights(y0, boxes[..., 3], p, h, fy, k)
    ar = torch.arange(k, device=images.device)
    ix = (fx[..., None] + ar).clamp(0, w - 1)  # (B, N, K); out-of-image taps carry weight 0
    iy = (fy[..., None] + ar).clamp(0, h - 1)
    flat = iy[..., :, None] * w + ix[..., None, :]  # (B, N, K, K)
    win = images.reshape(b, c, h * w).gather(2, flat.reshape(b, 1, n * k * k).expand(b, c, -1))
    win = win.reshape(b, c, n, k, k).permute(0, 2, 1, 3, 4).to(dtype)  # (B, N, C, K, K)
    out = wy.unsqueeze(2) @ win @ wx.unsqueeze(2).transpose(-1, -2)  # (B, N, C, P, P)
    return out.to(images.dtype)


def crop_patches_antialiased_reference(images: torch.Tensor, boxes: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Dense oracle of :func:`crop_patches_antialiased`: full-width weight matrices, ``O(P (H + W))`` per box
    row. ``(B, C, H, W)``, ``(B, N, 4)`` -> ``(B, N, C, P, P)``."""
    b, c, h, w = images.shape
    dtype = torch.float64 if images.dtype == torch.float64 else torch.float32
    boxes = boxes.to(device=images.device, dtype=dtype)
    x0 = boxes[..., 0] - boxes[..., 2] / 2
    y0 = boxes[..., 1] - boxes[..., 3] / 2
    zero = torch.zeros_like(x0, dtype=torch.long)
    wx = tent_weights(x0, boxes[..., 2], patch_size, w, zero, w)  # (B, N, P, W)
    wy = tent_weights(y0, boxes[..., 3], patch_size, h, zero, h)  # (B, N, P, H)
    out = torch.einsum("bnvy,bcyx,bnux->bncvu", wy, images.to(dtype), wx)
    return out.to(images.dtype)


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
