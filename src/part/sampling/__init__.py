"""Patch sampling: where patches come from (boxes) and how they are cut out (one batched crop).

2D: :class:`OffGridSampler` (PART), :class:`GridSampler` (PART-grid, fine-tuning),
:class:`ScaleAspectSampler` (scale/aspect extension). Boxes are ``(B, N, 4)`` (cx, cy, w, h) in pixels.
"""

from .boxes import boxes_to_corners, default_num_patches, grid_boxes, offgrid_boxes, scale_aspect_boxes
from .crop import crop_patches, patchify, unpatchify
from .samplers import SAMPLERS, GridSampler, OffGridSampler, ScaleAspectSampler, build_sampler, check_images

__all__ = [
    "boxes_to_corners", "default_num_patches", "grid_boxes", "offgrid_boxes", "scale_aspect_boxes",
    "crop_patches", "patchify", "unpatchify",
    "SAMPLERS", "GridSampler", "OffGridSampler", "ScaleAspectSampler", "build_sampler", "check_images",
]
