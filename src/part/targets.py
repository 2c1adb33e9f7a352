"""Relative targets and pair sampling (paper §4 "Relative translation parameterization", §5.1).

Boxes are given in a dimension-agnostic layout ``(..., 2 * D)``: the first D entries are the centre, the
last D the size. For images (D = 2) that is ``(cx, cy, w, h)``; for 1D windows (D = 1) ``(t_centre, L)``.

For a pair (ref, tgt) the target is::

    theta = ((c_tgt - c_ref) / s_ref            # D components: (dx, dy) in 2D, dt in 1D
             [, s_tgt / s_ref])                 # D more when sizes vary (scale/aspect extension)

so in 2D ``theta = ((x_t - x_r) / w_r, (y_t - y_r) / h_r[, w_t / w_r, h_t / h_r])``.
Pairs are ``(B, M, 2)`` int64 indices ``(ref, tgt)`` into the N patches of each image.
"""

from __future__ import annotations

import torch


def max_pairs(num_patches: int) -> int:
    """Number of ordered pairs of distinct patches, ``N (N - 1)``."""
    return num_patches * (num_patches - 1)


def validate_num_pairs(num_pairs: int | str) -> None:
    """Check that ``num_pairs`` is a positive int or ``"all"`` (independent of N)."""
    if num_pairs == "all":
        return
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, int):
        raise ValueError(f"num_pairs must be a positive int or 'all', got {num_pairs!r}")
    if num_pairs <= 0:
        raise ValueError(f"num_pairs must be positive, got {num_pairs}")


def resolve_num_pairs(num_pairs: int | str, num_patches: int) -> int:
    """``num_pairs`` as an int for N patches; ``"all"`` means every ordered pair ``N (N - 1)``."""
    validate_num_pairs(num_pairs)
    limit = max_pairs(num_patches)
    if num_pairs == "all":
        if limit == 0:
            raise ValueError(f"num_pairs='all' needs at least 2 patches, got num_patches={num_patches}")
        return limit
    if num_pairs > limit:
        raise ValueError(
            f"num_pairs={num_pairs} exceeds the {limit} ordered pairs of distinct patches available "
            f"with num_patches={num_patches} (N(N-1)); lower num_pairs or use num_pairs='all'"
        )
    return num_pairs


def flat_to_pair(flat: torch.Tensor, num_patches: int) -> torch.Tensor:
    """Map indices in ``[0, N(N-1))`` to ordered pairs ``(i, j)``, ``i != j``. ``(...,)`` -> ``(..., 2)``."""
    n1 = num_patches - 1
    i = torch.div(flat, n1, rounding_mode="floor")
    r = flat - i * n1
    j = r + (r >= i).to(r.dtype)
    return torch.stack([i, j], dim=-1)


def all_pairs(num_patches: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Every ordered pair of distinct patches, ``(N (N - 1), 2)``, ref-major order."""
    return flat_to_pair(torch.arange(max_pairs(num_patches), device=device), num_patches)


def sample_pairs(
    batch: int,
    num_patches: int,
    num_pairs: int | str,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """M random ordered pairs per image, distinct indices, without replacement (paper §4: "a subset S").

    Returns ``(B, M, 2)`` int64 ``(ref, tgt)``. ``num_pairs="all"`` returns all ``N (N - 1)`` pairs (same
    order for every image). ``num_pairs > N (N - 1)`` raises ``ValueError``.
    """
    m = resolve_num_pairs(num_pairs, num_patches)
    total = max_pairs(num_patches)
    if m == total:
        return all_pairs(num_patches, device).unsqueeze(0).expand(batch, -1, -1).contiguous()
    gdev = generator.device if generator is not None else device
    scores = torch.rand((batch, total), generator=generator, device=gdev)
    flat = scores.topk(m, dim=1, sorted=False).indices.to(device)  # M distinct flat indices per image
    return flat_to_pair(flat, num_patches)


def gather_boxes(boxes: torch.Tensor, pairs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``boxes (B, N, K)``, ``pairs (B, M, 2)`` -> (ref boxes, tgt boxes), each ``(B, M, K)``."""
    k = boxes.shape[-1]
    ref = torch.gather(boxes, 1, pairs[..., 0:1].expand(-1, -1, k))
    tgt = torch.gather(boxes, 1, pairs[..., 1:2].expand(-1, -1, k))
    return ref, tgt


def relative_targets(boxes: torch.Tensor, pairs: torch.Tensor, with_scale: bool = False) -> torch.Tensor:
    """Relative transform theta for each pair.

    Args:
        boxes: ``(B, N, 2D)`` centres then sizes, e.g. ``(cx, cy, w, h)`` in pixels.
        pairs: ``(B, M, 2)`` indices ``(ref, tgt)``.
        with_scale: also return the size ratios ``s_tgt / s_ref``.
    Returns:
        ``(B, M, D)`` or ``(B, M, 2D)`` float32.
    """
    if boxes.shape[-1] % 2:
        raise ValueError(f"boxes must have an even last dimension (centres then sizes), got {boxes.shape}")
    d = boxes.shape[-1] // 2
    ref, tgt = gather_boxes(boxes.float(), pairs)
    shift = (tgt[..., :d] - ref[..., :d]) / ref[..., d:]
    if not with_scale:
        return shift
    return torch.cat([shift, tgt[..., d:] / ref[..., d:]], dim=-1)


def relative_matrix(boxes: torch.Tensor, with_scale: bool = False) -> torch.Tensor:
    """theta for ALL ordered pairs including i == j, as a matrix: ``(B, N, 2D)`` -> ``(B, N, N, D|2D)``.

    Entry ``[b, i, j]`` is the transform from reference i to target j (used by the symmetry figure).
    """
    d = boxes.shape[-1] // 2
    boxes = boxes.float()
    c, s = boxes[..., :d], boxes[..., d:]
    shift = (c[:, None, :, :] - c[:, :, None, :]) / s[:, :, None, :]
    if not with_scale:
        return shift
    return torch.cat([shift, s[:, None, :, :] / s[:, :, None, :]], dim=-1)
