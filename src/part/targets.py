"""Relative targets and pair sampling (paper §4 "Relative translation parameterization", §5.1).

Boxes are given in a dimension-agnostic layout ``(..., 2 * D)``: the first D entries are the centre, the
last D the size. For images (D = 2) that is ``(cx, cy, w, h)``; for 1D windows (D = 1) ``(t_centre, L)``.

For a pair (ref, tgt) the target is::

    theta = ((c_tgt - c_ref) / s_ref            # D components: (dx, dy) in 2D, dt in 1D
             [, s_tgt / s_ref])                 # D more when sizes vary (scale/aspect extension)

so in 2D ``theta = ((x_t - x_r) / w_r, (y_t - y_r) / h_r[, w_t / w_r, h_t / h_r])``.
Pairs are ``(B, M, 2)`` int64 indices ``(ref, tgt)`` into the N patches of each image. A self-pair
``(i, i)`` (``self_pairs=True``) has target ``0`` (and ratio ``1``).
"""

from __future__ import annotations

import torch


def max_pairs(num_patches: int, self_pairs: bool = False) -> int:
    """Size of the pair universe: ``N (N - 1)`` ordered pairs of distinct patches, or ``N^2`` with self-pairs."""
    return num_patches * num_patches if self_pairs else num_patches * (num_patches - 1)


def validate_num_pairs(num_pairs: int | str) -> None:
    """Check that ``num_pairs`` is a positive int or ``"all"`` (independent of N)."""
    if num_pairs == "all":
        return
    if isinstance(num_pairs, bool) or not isinstance(num_pairs, int):
        raise ValueError(f"num_pairs must be a positive int or 'all', got {num_pairs!r}")
    if num_pairs <= 0:
        raise ValueError(f"num_pairs must be positive, got {num_pairs}")


def parse_num_pairs(text: str) -> int | str:
    """A #pairs written as text (a command-line flag, a list item): ``"all"`` or a positive int, else
    ``ValueError`` naming the text."""
    text = str(text).strip()
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"num_pairs must be a positive int or 'all', got {text!r}") from None
    validate_num_pairs(value)
    return value


def resolve_num_pairs(num_pairs: int | str, num_patches: int, self_pairs: bool = False) -> int:
    """``num_pairs`` as an int for N patches; ``"all"`` means the whole universe (:func:`max_pairs`)."""
    validate_num_pairs(num_pairs)
    limit = max_pairs(num_patches, self_pairs)
    if num_pairs == "all":
        if limit == 0:
            raise ValueError(f"num_pairs='all' needs at least 2 patches, got num_patches={num_patches}")
        return limit
    if num_pairs > limit:
        universe = "N^2, self-pairs included" if self_pairs else "N(N-1), distinct patches"
        hint = "lower num_pairs or use num_pairs='all'" + ("" if self_pairs else " (or self_pairs=true: N^2 pairs)")
        raise ValueError(
            f"num_pairs={num_pairs} exceeds the {limit} ordered pairs available with num_patches={num_patches} "
            f"({universe}); {hint}"
        )
    return num_pairs


def flat_to_pair(flat: torch.Tensor, num_patches: int, self_pairs: bool = False) -> torch.Tensor:
    """Map flat indices to ordered pairs ``(i, j)``. ``(...,)`` -> ``(..., 2)``.

    Without self-pairs the indices are in ``[0, N(N-1))`` and ``i != j``; with self-pairs they are in
    ``[0, N^2)`` and ``flat = i N + j``.
    """
    if self_pairs:
        i = torch.div(flat, num_patches, rounding_mode="floor")
        return torch.stack([i, flat - i * num_patches], dim=-1)
    n1 = num_patches - 1
    i = torch.div(flat, n1, rounding_mode="floor")
    r = flat - i * n1
    j = r + (r >= i).to(r.dtype)
    return torch.stack([i, j], dim=-1)


def all_pairs(num_patches: int, device: torch.device | str | None = None, self_pairs: bool = False) -> torch.Tensor:
    """Every ordered pair of the universe (:func:`max_pairs`), ``(N (N - 1), 2)`` or ``(N^2, 2)``, ref-major."""
    return flat_to_pair(torch.arange(max_pairs(num_patches, self_pairs), device=device), num_patches, self_pairs)


SPARSE_DRAW_RATIO = 8
"""Pairs are drawn with replacement and deduplicated (:func:`subset_by_draws`) when the universe holds at
least this many times M pairs; below, random keys over the whole universe are ranked (:func:`subset_by_keys`).
At N 576 (331 200 pairs) ranking costs O(B N^2) per step, the draw O(B M log M); ``benchmarks/bench_kernels.py``
prints both."""


def subset_by_keys(batch: int, total: int, m: int, generator, device) -> torch.Tensor:
    """Reference sampler: M distinct indices of ``[0, total)`` per row, uniform over M-subsets, as the M
    largest of ``total`` i.i.d. uniform keys. ``(B, M)`` int64, in no particular order. O(B total)."""
    scores = torch.rand((batch, total), generator=generator, device=device)
    return scores.topk(m, dim=1, sorted=False).indices


def subset_by_draws(batch: int, total: int, m: int, generator, device, extra: int | None = None) -> torch.Tensor:
    """M distinct indices of ``[0, total)`` per row, uniform over M-subsets, in O(B M log M).

    Draw ``M + extra`` indices i.i.d. uniformly with replacement and keep the first M distinct ones in draw
    order. Relabelling the universe by any permutation leaves the law of the draws unchanged, so every ordered
    M-tuple of distinct indices is equally likely: the kept set is a uniform M-subset, exactly as
    :func:`subset_by_keys`'s. ``extra`` covers the expected number of repeats (``~ k^2 / 2 total`` for
    k draws) with a wide margin; a row that still has fewer than M distinct draws (a rejection, which keeps
    the law uniform) is drawn again by the reference sampler. ``extra`` overrides the margin (tests). ``(B, M)``
    int64.
    """
    if extra is None:
        repeats = m * m / (2 * total)
        extra = int(2 * repeats + 8 * repeats**0.5) + 16
    k = m + extra
    draws = torch.randint(total, (batch, k), generator=generator, device=device)  # (B, k)
    ordered, order = draws.sort(dim=1, stable=True)  # a value's first draw leads its run of repeats
    repeat_sorted = torch.zeros_like(ordered, dtype=torch.bool)
    repeat_sorted[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    fresh = ~torch.zeros_like(repeat_sorted).scatter_(1, order, repeat_sorted)  # (B, k) first occurrences
    keep = fresh & (fresh.cumsum(dim=1) <= m)
    short = keep.sum(dim=1) < m
    if bool(short.any()):
        keep[short] = False
        out = torch.empty((batch, m), dtype=draws.dtype, device=device)
        out[~short] = draws[~short][keep[~short]].view(-1, m)
        out[short] = subset_by_keys(int(short.sum()), total, m, generator, device)
        return out
    return draws[keep].view(batch, m)


def sample_pairs(
    batch: int,
    num_patches: int,
    num_pairs: int | str,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    self_pairs: bool = False,
) -> torch.Tensor:
    """M random ordered pairs per image, without replacement (paper §4: "a subset S").

    The universe is the ``N (N - 1)`` pairs of distinct patches, or with ``self_pairs=True`` all ``N^2`` pairs
    including ``(i, i)``, as the paper's #pairs imply (2048 = 64^2 / 2, 4096 = 64^2, 4802 = 196^2 / 8; §5.3
    Fig. 8, App. 8.1). Returns ``(B, M, 2)`` int64 ``(ref, tgt)``. ``num_pairs="all"`` returns the whole
    universe (same order for every image); more pairs than the universe raises ``ValueError``. Each image's
    subset is uniform over the M-subsets of the universe, drawn by :func:`subset_by_draws` when it is sparse
    (:data:`SPARSE_DRAW_RATIO`) and by :func:`subset_by_keys` otherwise.
    """
    m = resolve_num_pairs(num_pairs, num_patches, self_pairs)
    total = max_pairs(num_patches, self_pairs)
    if m == total:
        return all_pairs(num_patches, device, self_pairs).unsqueeze(0).expand(batch, -1, -1).contiguous()
    gdev = generator.device if generator is not None else device
    if m * SPARSE_DRAW_RATIO <= total:
        flat = subset_by_draws(batch, total, m, generator, gdev)
    else:
        flat = subset_by_keys(batch, total, m, generator, gdev)
    return flat_to_pair(flat.to(device), num_patches, self_pairs)


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
