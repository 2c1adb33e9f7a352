"""Patch boxes for 2D images (paper §4 "Random off-grid sampling", §5.1 "Extension to other aspect
ratios and scales", §5.3 "Sampling strategies").

Every function returns boxes as a float tensor ``(B, N, 4)`` holding ``(cx, cy, w, h)`` in input-pixel
units, where pixel ``i`` covers the continuous interval ``[i, i + 1)`` (so its centre is ``i + 0.5``).
A box with top-left ``(x0, y0)`` and size ``(w, h)`` has centre ``(x0 + w / 2, y0 + h / 2)``.
All sampling is vectorised over the batch and runs on the requested device.
"""

from __future__ import annotations

import math

import torch

#: Box sizes of the scale/aspect sampler, in units of the patch size P (paper §5.1: "Patch width and height
#: are constrained to between half and twice the ViT patch size"). The one home of this default (2D and 1D).
SCALE_RANGE: tuple[float, float] = (0.5, 2.0)

#: Where off-grid boxes may start: ``"continuous"`` (uniform real offsets, paper §4 "uniformly sampled") or
#: ``"integer"`` (whole pixels/samples, as the authors' code; with D = P the crop is an exact pixel copy, and
#: no patch is blurred by a sub-pixel resampling, which would tell the model the fractional part of its
#: position and differ from the sharp grid patches of fine-tuning).
#:
#: Default of the off-grid samplers, 2D and 1D alike: ``"integer"`` (issue 18, docs/relative_encoders_and_positions.md).
#: In the positions x head grid (Fashion-MNIST, 2 seeds x 4 heads, full CPU budget) the two modes tie within the
#: seed spread (mean over the heads, integer minus continuous: linear probe +0.4, kNN +0.1, fine-tune +0.5
#: points), while continuous positions hand the model a position cue (blur probe: offset R^2 0.19; patches
#: told from the fine-tuning grid's 0.79 vs 0.67 of the time) and cost a resampling. The scale samplers keep
#: ``"continuous"``: their boxes are resized anyway, and that mode was not in the grid.
POSITIONS = ("continuous", "integer")


def all_finite(x: torch.Tensor) -> bool:
    """``torch.isfinite(x).all()`` in one pass over ``x`` in the common case (the input check of every step).

    A NaN or an infinity anywhere makes the sum NaN or infinite, so a finite sum proves every element finite;
    only a non-finite sum (a real NaN/inf, or an overflow of large finite values) needs the exact elementwise
    test, which costs four passes (``isfinite`` is ``x == x`` and ``|x| != inf``)."""
    total = x.sum(dtype=torch.float64) if x.dtype == torch.float64 else x.sum(dtype=torch.float32)
    return bool(torch.isfinite(total)) or bool(torch.isfinite(x).all())


def check_positions(positions: str) -> str:
    """Validate a ``positions`` mode (:data:`POSITIONS`); raises ``ValueError`` naming ``positions``."""
    if positions not in POSITIONS:
        raise ValueError(f"positions must be one of {list(POSITIONS)}, got {positions!r}")
    return positions


def check_scale_range(scale_range) -> tuple[float, float]:
    """``(low, high)`` with ``0 < low <= high`` as floats; raises ``ValueError`` naming ``scale_range``."""
    try:
        lo, hi = (float(v) for v in scale_range)
    except (TypeError, ValueError):
        raise ValueError(f"scale_range must be two numbers [low, high], got {scale_range!r}") from None
    if not 0 < lo <= hi:
        raise ValueError(f"scale_range must satisfy 0 < low <= high, got {tuple(scale_range)}")
    return lo, hi


def integer_sizes(scale_range: tuple[float, float], patch_size: int) -> tuple[int, int]:
    """The whole-pixel sizes ``ceil(s0 P) .. floor(s1 P)`` of a scale range (``positions="integer"``)."""
    lo, hi = math.ceil(scale_range[0] * patch_size - 1e-9), math.floor(scale_range[1] * patch_size + 1e-9)
    if lo > hi:
        raise ValueError(
            f"scale_range={tuple(scale_range)} x patch size {patch_size} contains no whole-pixel size, which "
            "positions='integer' needs; widen scale_range or use positions='continuous'"
        )
    return lo, hi


def integer_draw(u: torch.Tensor, count: torch.Tensor | float) -> torch.Tensor:
    """Uniform integers ``0 .. count - 1`` from uniforms ``u`` in ``[0, 1)`` (as float, same shape)."""
    count = torch.as_tensor(count, dtype=u.dtype, device=u.device)
    return torch.minimum(torch.floor(u * count), count - 1)


def _check_image_size(height: int, width: int, patch_size: int) -> None:
    if patch_size <= 0:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    if height < patch_size or width < patch_size:
        raise ValueError(
            f"patch_size={patch_size} is larger than the image ({height}x{width}); "
            "use a smaller patch_size or larger images"
        )


def default_num_patches(height: int, width: int, patch_size: int) -> int:
    """``N = H * W / P^2`` as in the paper (§4), rounded down when the image is not a multiple of P."""
    _check_image_size(height, width, patch_size)
    return max(1, (height * width) // (patch_size * patch_size))


def grid_boxes(
    batch: int, height: int, width: int, patch_size: int, device: torch.device | str | None = None
) -> torch.Tensor:
    """The regular non-overlapping ``P x P`` grid, row-major (top-left to bottom-right).

    Returns ``(B, N, 4)`` with ``N = (H / P) * (W / P)``. H and W must be multiples of P.
    """
    _check_image_size(height, width, patch_size)
    if height % patch_size or width % patch_size:
        raise ValueError(
            f"image size {height}x{width} is not divisible by patch_size={patch_size}, "
            "which grid sampling needs"
        )
    gh, gw = height // patch_size, width // patch_size
    ys = (torch.arange(gh, device=device, dtype=torch.float32) + 0.5) * patch_size
    xs = (torch.arange(gw, device=device, dtype=torch.float32) + 0.5) * patch_size
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    size = torch.full_like(cx, float(patch_size))
    boxes = torch.stack([cx, cy, size, size], dim=-1).reshape(1, gh * gw, 4)
    return boxes.expand(batch, -1, -1).contiguous()


def offgrid_boxes(
    batch: int,
    height: int,
    width: int,
    num_patches: int,
    box_size: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    positions: str = "integer",
) -> torch.Tensor:
    """Square ``D x D`` boxes whose top-left corner is uniform so that the box lies inside the image.

    Paper §4: ``(x_s, y_s)`` uniform across the image, bottom-right ``(x_s + D, y_s + D)``. Boxes may
    overlap and need not cover the image (that partial coverage is PART's masking).
    ``positions="integer"`` (default, see :data:`POSITIONS`): ``x_s`` uniform over the whole pixels
    ``0 .. floor(W - D)``; ``"continuous"``: uniform in ``[0, W - D]`` (same for y). Returns ``(B, N, 4)``.
    """
    check_positions(positions)
    if num_patches <= 0:
        raise ValueError(f"num_patches must be positive, got {num_patches}")
    if box_size <= 0 or box_size > min(height, width):
        raise ValueError(f"box_size={box_size} must be in (0, min(H, W)={min(height, width)}]")
    u = draw_uniform((batch, num_patches, 2), generator, device)
    if positions == "integer":
        x0 = integer_draw(u[..., 0], math.floor(width - box_size) + 1)
        y0 = integer_draw(u[..., 1], math.floor(height - box_size) + 1)
    else:
        x0 = u[..., 0] * (width - box_size)
        y0 = u[..., 1] * (height - box_size)
    d = torch.full_like(x0, float(box_size))
    return torch.stack([x0 + d / 2, y0 + d / 2, d, d], dim=-1)


def scale_aspect_boxes(
    batch: int,
    height: int,
    width: int,
    num_patches: int,
    patch_size: int,
    scale_range: tuple[float, float] = SCALE_RANGE,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    positions: str = "continuous",
) -> torch.Tensor:
    """Boxes with width and height drawn independently, each uniform in ``[s0 * P, s1 * P]``.

    Paper §5.1: "Patch width and height are constrained to between half and twice the ViT patch size";
    the default :data:`SCALE_RANGE` is that rule. Sizes are capped at the image size so the box stays
    inside; the top-left is then uniform over the valid positions. ``positions="integer"`` snaps boxes to
    the pixel grid: whole-pixel sizes uniform in ``ceil(s0 P) .. floor(s1 P)`` and whole-pixel corners.
    Returns ``(B, N, 4)``.
    """
    lo, hi = check_scale_range(scale_range)
    check_positions(positions)
    if num_patches <= 0:
        raise ValueError(f"num_patches must be positive, got {num_patches}")
    u = draw_uniform((batch, num_patches, 4), generator, device)
    if positions == "integer":
        s_lo, s_hi = integer_sizes((lo, hi), patch_size)
        w = (s_lo + integer_draw(u[..., 0], s_hi - s_lo + 1)).clamp(max=float(width))
        h = (s_lo + integer_draw(u[..., 1], s_hi - s_lo + 1)).clamp(max=float(height))
        x0 = integer_draw(u[..., 2], width - w + 1)
        y0 = integer_draw(u[..., 3], height - h + 1)
    else:
        w = ((lo + (hi - lo) * u[..., 0]) * patch_size).clamp(max=float(width))
        h = ((lo + (hi - lo) * u[..., 1]) * patch_size).clamp(max=float(height))
        x0 = u[..., 2] * (width - w)
        y0 = u[..., 3] * (height - h)
    return torch.stack([x0 + w / 2, y0 + h / 2, w, h], dim=-1)


def boxes_to_corners(boxes: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` (cx, cy, w, h) -> ``(..., 4)`` (x0, y0, x1, y1)."""
    c, s = boxes[..., :2], boxes[..., 2:]
    return torch.cat([c - s / 2, c + s / 2], dim=-1)


def draw_uniform(shape, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Uniform ``[0, 1)`` float32 draws of ``shape`` on ``device`` from ``generator`` (any device)."""
    if generator is not None:
        # Draw on the generator's device, then move: keeps a CPU generator usable for CUDA images.
        return torch.rand(shape, generator=generator, device=generator.device).to(device)
    return torch.rand(shape, device=device)
