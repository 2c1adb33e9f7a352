"""Patch samplers: images in, ``(patches, boxes)`` out.

A sampler is a small callable object (no parameters, no state besides its settings) so the objective
can swap strategies by name: ``"offgrid"`` (PART, paper §4), ``"grid"`` (PART-grid ablation §5.3 and
fine-tuning) and ``"scale"`` (scale/aspect extension §5.1).

``sampler(images, generator) -> (patches (B, N, C, P, P), boxes (B, N, 4))`` with boxes as
(cx, cy, w, h) in input pixels. ``sampler.target_dim`` is the size of the relative target
(2 for translations only, 4 when sizes vary and (w_t/w_r, h_t/h_r) are predicted too).
"""

from __future__ import annotations

import torch

from .boxes import default_num_patches, grid_boxes, offgrid_boxes, scale_aspect_boxes
from .crop import crop_patches, patchify

__all__ = ["OffGridSampler", "GridSampler", "ScaleAspectSampler", "build_sampler", "SAMPLERS"]


def check_images(images: torch.Tensor, check_finite: bool = True) -> None:
    """Validate a batch of images ``(B, C, H, W)``; raises ``ValueError`` naming ``images``."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must be 4D (B, C, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a floating-point tensor, got dtype {images.dtype}")
    if check_finite and not bool(torch.isfinite(images).all()):
        raise ValueError("images contain NaN or infinite values")


class OffGridSampler:
    """N random square boxes of side D (default D = P), resized to P x P (paper §4).

    Args:
        patch_size: ViT patch size P.
        num_patches: N; default ``H * W / P^2``. Fewer patches means more masking.
        box_size: D in pixels; default P.
    """

    target_dim = 2
    spatial_dims = 2
    name = "offgrid"
    check = staticmethod(check_images)

    def __init__(self, patch_size: int, num_patches: int | None = None, box_size: float | None = None):
        if patch_size <= 0:
            raise ValueError(f"patch_size must be positive, got {patch_size}")
        if num_patches is not None and num_patches <= 0:
            raise ValueError(f"num_patches must be positive, got {num_patches}")
        if box_size is not None and box_size <= 0:
            raise ValueError(f"box_size must be positive, got {box_size}")
        self.patch_size = int(patch_size)
        self.num_patches = num_patches
        self.box_size = box_size

    def num_patches_for(self, height: int, width: int) -> int:
        return self.num_patches or default_num_patches(height, width, self.patch_size)

    def boxes(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = images.shape
        default_num_patches(h, w, self.patch_size)  # validates patch vs image size
        d = float(self.box_size or self.patch_size)
        return offgrid_boxes(b, h, w, self.num_patches_for(h, w), d, generator, images.device)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None):
        boxes = self.boxes(images, generator)
        return crop_patches(images, boxes, self.patch_size), boxes

    def __repr__(self) -> str:
        return f"{type(self).__name__}(patch_size={self.patch_size}, num_patches={self.num_patches}, box_size={self.box_size})"


class GridSampler:
    """The fixed P x P grid (PART-grid, §5.3; fine-tuning, §4). Exact patchify, no interpolation."""

    target_dim = 2
    spatial_dims = 2
    name = "grid"
    check = staticmethod(check_images)

    def __init__(self, patch_size: int):
        self.patch_size = int(patch_size)

    def num_patches_for(self, height: int, width: int) -> int:
        return (height // self.patch_size) * (width // self.patch_size)

    def boxes(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = images.shape
        return grid_boxes(b, h, w, self.patch_size, images.device)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None):
        boxes = self.boxes(images)
        return patchify(images, self.patch_size), boxes

    def __repr__(self) -> str:
        return f"GridSampler(patch_size={self.patch_size})"


class ScaleAspectSampler(OffGridSampler):
    """Boxes with independent width and height in ``[s0 P, s1 P]`` (paper §5.1), resized to P x P.

    The target then has 4 components: (dx, dy, w_t / w_r, h_t / h_r).
    """

    target_dim = 4
    name = "scale"

    def __init__(
        self, patch_size: int, num_patches: int | None = None, scale_range: tuple[float, float] = (0.5, 2.0)
    ):
        super().__init__(patch_size, num_patches)
        lo, hi = float(scale_range[0]), float(scale_range[1])
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {tuple(scale_range)}")
        self.scale_range = (lo, hi)

    def boxes(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = images.shape
        default_num_patches(h, w, self.patch_size)
        n = self.num_patches_for(h, w)
        return scale_aspect_boxes(b, h, w, n, self.patch_size, self.scale_range, generator, images.device)

    def __repr__(self) -> str:
        return f"ScaleAspectSampler(patch_size={self.patch_size}, num_patches={self.num_patches}, scale_range={self.scale_range})"


SAMPLERS = {"offgrid": OffGridSampler, "grid": GridSampler, "scale": ScaleAspectSampler}


def build_sampler(name: str, patch_size: int, **kwargs):
    """Build a sampler by name: ``"offgrid"``, ``"grid"`` or ``"scale"``; unset (None) options take defaults."""
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    unused = {"grid": ("num_patches", "box_size", "scale_range"), "offgrid": ("scale_range",), "scale": ("box_size",)}
    for key in unused[name]:
        if kwargs.pop(key, None) is not None:
            raise ValueError(f"{key} is not used by the {name!r} sampler; leave it unset (None)")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return SAMPLERS[name](patch_size, **kwargs)
