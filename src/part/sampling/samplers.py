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

from .boxes import (
    SCALE_RANGE,
    all_finite,
    check_positions,
    check_scale_range,
    default_num_patches,
    grid_boxes,
    integer_sizes,
    offgrid_boxes,
    scale_aspect_boxes,
)
from .crop import copy_patches, crop_patches, crop_patches_antialiased, patchify

__all__ = ["OffGridSampler", "GridSampler", "ScaleAspectSampler", "build_sampler", "SAMPLERS"]


def check_images(images: torch.Tensor, check_finite: bool = True) -> None:
    """Validate a batch of images ``(B, C, H, W)``; raises ``ValueError`` naming ``images``."""
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be a torch.Tensor of shape (B, C, H, W), got {type(images).__name__}")
    if images.dim() != 4:
        raise ValueError(f"images must be 4D (B, C, H, W), got shape {tuple(images.shape)}")
    if not images.is_floating_point():
        raise ValueError(f"images must be a floating-point tensor, got dtype {images.dtype}")
    if check_finite and not all_finite(images):
        raise ValueError("images contain NaN or infinite values")


class OffGridSampler:
    """N random square boxes of side D (default D = P), resized to P x P (paper §4).

    Args:
        patch_size: ViT patch size P.
        num_patches: N; default ``H * W / P^2`` (the grid's count). Fewer patches means more masking.
        box_size: D in pixels; default P.
        positions: ``"integer"`` (default: whole-pixel corners, as the authors' code; with D = P the patches
            are exact pixel copies, no resampling blur) or ``"continuous"`` (real corners, the literal
            reading of §4 "uniformly sampled"). Why integer is the default: :data:`~part.sampling.boxes.POSITIONS`.

    Cropping: exact copies for integer positions with D = P, the anti-aliased crop for D > P, bilinear
    :func:`~part.sampling.crop.crop_patches` otherwise.
    """

    target_dim = 2
    spatial_dims = 2
    name = "offgrid"
    check = staticmethod(check_images)

    def __init__(
        self,
        patch_size: int,
        num_patches: int | None = None,
        box_size: float | None = None,
        positions: str = "integer",
    ):
        if patch_size <= 0:
            raise ValueError(f"patch_size must be positive, got {patch_size}")
        if num_patches is not None and num_patches <= 0:
            raise ValueError(f"num_patches must be positive, got {num_patches}")
        if box_size is not None and box_size <= 0:
            raise ValueError(f"box_size must be positive, got {box_size}")
        self.patch_size = int(patch_size)
        self.num_patches = num_patches
        self.box_size = box_size
        self.positions = check_positions(positions)

    def num_patches_for(self, height: int, width: int) -> int:
        return self.num_patches or default_num_patches(height, width, self.patch_size)

    def boxes(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = images.shape
        default_num_patches(h, w, self.patch_size)  # validates patch vs image size
        d = float(self.box_size or self.patch_size)
        return offgrid_boxes(b, h, w, self.num_patches_for(h, w), d, generator, images.device, self.positions)

    def crop(self, images: torch.Tensor, boxes: torch.Tensor, check: bool = True) -> torch.Tensor:
        """``(B, C, H, W)``, ``(B, N, 4)`` -> ``(B, N, C, P, P)`` with the crop that fits the boxes.

        ``check=False`` skips the validation of the pixel-copy boxes (host syncs on CUDA); ``__call__`` uses
        it for the boxes it has just drawn on the pixel grid itself.
        """
        d = float(self.box_size or self.patch_size)
        if d == self.patch_size and self.positions == "integer":
            return copy_patches(images, boxes, self.patch_size, check=check)
        if d > self.patch_size:
            return crop_patches_antialiased(images, boxes, self.patch_size, max_size=d)
        return crop_patches(images, boxes, self.patch_size)

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None):
        """``images (B, C, H, W)`` -> ``(patches (B, N, C, P, P), boxes (B, N, 4))``."""
        boxes = self.boxes(images, generator)
        return self.crop(images, boxes, check=False), boxes

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(patch_size={self.patch_size}, num_patches={self.num_patches}, "
            f"box_size={self.box_size}, positions={self.positions!r})"
        )


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
    """Boxes with independent width and height in ``[s0 P, s1 P]`` (paper §5.1), resized to P x P with the
    anti-aliased crop (boxes up to ``s1 P`` are shrunk by a stretched triangle filter, not point-sampled).

    The target then has 4 components: (dx, dy, w_t / w_r, h_t / h_r). ``positions="integer"`` snaps box
    sizes and corners to whole pixels (:func:`~part.sampling.boxes.scale_aspect_boxes`).
    """

    target_dim = 4
    name = "scale"

    def __init__(
        self,
        patch_size: int,
        num_patches: int | None = None,
        scale_range: tuple[float, float] = SCALE_RANGE,
        positions: str = "continuous",
    ):
        super().__init__(patch_size, num_patches, positions=positions)
        self.scale_range = check_scale_range(scale_range)
        if self.positions == "integer":
            integer_sizes(self.scale_range, self.patch_size)  # fails now, not at the first batch

    def boxes(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        b, _, h, w = images.shape
        default_num_patches(h, w, self.patch_size)
        n = self.num_patches_for(h, w)
        return scale_aspect_boxes(
            b, h, w, n, self.patch_size, self.scale_range, generator, images.device, self.positions
        )

    def crop(self, images: torch.Tensor, boxes: torch.Tensor, check: bool = True) -> torch.Tensor:
        """The anti-aliased crop, its window sized by the largest box ``s1 P`` (``check``: unused here)."""
        return crop_patches_antialiased(images, boxes, self.patch_size, max_size=self.scale_range[1] * self.patch_size)

    def __repr__(self) -> str:
        return (
            f"ScaleAspectSampler(patch_size={self.patch_size}, num_patches={self.num_patches}, "
            f"scale_range={self.scale_range}, positions={self.positions!r})"
        )


SAMPLERS = {"offgrid": OffGridSampler, "grid": GridSampler, "scale": ScaleAspectSampler}


def build_sampler(name: str, patch_size: int, **kwargs):
    """Build a sampler by name: ``"offgrid"``, ``"grid"`` or ``"scale"``; unset (None) options take defaults.

    Options: ``num_patches``, ``box_size`` (offgrid), ``scale_range`` (scale), ``positions`` (offgrid, scale).
    Setting an option the named sampler does not use raises ``ValueError`` naming it.
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose one of {sorted(SAMPLERS)}")
    unused = {
        "grid": ("num_patches", "box_size", "scale_range", "positions"),
        "offgrid": ("scale_range",),
        "scale": ("box_size",),
    }
    for key in unused[name]:
        if kwargs.pop(key, None) is not None:
            raise ValueError(f"{key} is not used by the {name!r} sampler; leave it unset (None)")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    return SAMPLERS[name](patch_size, **kwargs)
