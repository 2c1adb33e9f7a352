"""Patch sampling: where patches come from (boxes) and how they are cut out (one batched crop).

1D windows of multichannel signals (paper §5.2) live beside 2D: :class:`OffGridWindowSampler` etc.,
boxes ``(B, N, 2)`` (t_centre, length) in samples.

2D: :class:`OffGridSampler` (PART), :class:`GridSampler` (PART-grid, fine-tuning),
:class:`ScaleAspectSampler` (scale/aspect extension). Boxes are ``(B, N, 4)`` (cx, cy, w, h) in pixels.
Defaults shared by both live in :mod:`part.sampling.boxes` (:data:`SCALE_RANGE`, :data:`POSITIONS`).
"""

from .boxes import (
    POSITIONS,
    SCALE_RANGE,
    boxes_to_corners,
    check_positions,
    check_scale_range,
    default_num_patches,
    grid_boxes,
    offgrid_boxes,
    scale_aspect_boxes,
)
from .crop import (
    copy_patches,
    crop_patches,
    crop_patches_antialiased,
    crop_patches_antialiased_reference,
    patchify,
    unpatchify,
)
from .samplers import SAMPLERS, GridSampler, OffGridSampler, ScaleAspectSampler, build_sampler, check_images
from .windows1d import (
    WINDOW_SAMPLERS,
    GridWindowSampler,
    OffGridWindowSampler,
    ScaleWindowSampler,
    build_window_sampler,
    check_signals,
    crop_windows,
    crop_windows_antialiased,
    grid_windows,
    offgrid_windows,
    patchify1d,
    scale_windows,
    unpatchify1d,
)

__all__ = [
    "POSITIONS", "SCALE_RANGE", "boxes_to_corners", "check_positions", "check_scale_range", "default_num_patches",
    "grid_boxes", "offgrid_boxes", "scale_aspect_boxes",
    "copy_patches", "crop_patches", "crop_patches_antialiased", "crop_patches_antialiased_reference", "patchify",
    "unpatchify",
    "WINDOW_SAMPLERS", "GridWindowSampler", "OffGridWindowSampler", "ScaleWindowSampler", "build_window_sampler",
    "check_signals", "crop_windows", "crop_windows_antialiased", "grid_windows", "offgrid_windows", "patchify1d",
    "scale_windows", "unpatchify1d",
    "SAMPLERS", "GridSampler", "OffGridSampler", "ScaleAspectSampler", "build_sampler", "check_images",
]
