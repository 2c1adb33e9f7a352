"""Negative symmetry of the prediction matrices (paper §5.1 "Symmetry", Figure 6): tensors.

Entry ``(i, j)`` of the ``N x N`` matrix is the predicted translation from reference i to target j,
``theta_ij = (c_j - c_i) / s_i``. For equal-sized boxes (off-grid and grid sampling) the truth is
negatively symmetric, ``theta_ji = -theta_ij``; the paper shows the model learns this. We measure

* ``neg_symmetry``: Pearson correlation of ``P_ij`` with ``-P_ji`` over all off-diagonal entries, per
  image and axis (1 for a perfectly negatively symmetric matrix; ~0 for unrelated noise);
* ``corr_gt``: Pearson correlation of ``P_ij`` with the true ``theta_ij`` over the off-diagonal entries.

Matrices are shown with patches ordered top-left -> bottom-right (sorted by ``(cy, cx)``) and in a
random order. Only the translation components (dx, dy) are used; with the scale/aspect sampler the truth
itself is only negatively symmetric up to the size ratio ``s_i / s_j``. A correlation is NaN when one
side is constant (no variance).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..targets import relative_matrix
from .reconstruct import PredictFn, sample_and_predict

__all__ = ["Symmetry", "order_top_left", "random_order", "permute_matrix", "offdiag_corr",
           "negative_symmetry_score", "symmetry", "symmetry_from_predictions"]


def order_top_left(boxes: torch.Tensor, row_height: float | None = None) -> torch.Tensor:
    """Permutation sorting patches top-left -> bottom-right, ``(B, N, 4)`` -> ``(B, N)`` int64.

    Lexicographic on ``(cy, cx)``: by centre row first, then column. With ``row_height`` set, ``cy`` is
    first binned into rows ``floor(cy / row_height)`` so off-grid patches of one band read left to right.
    For grid boxes both give the row-major order.
    """
    cx, cy = boxes[..., 0].float(), boxes[..., 1].float()
    if row_height is not None:
        if row_height <= 0:
            raise ValueError(f"row_height must be positive, got {row_height}")
        cy = torch.floor(cy / row_height)
    by_x = torch.argsort(cx, dim=1, stable=True)
    cy_sorted = torch.gather(cy, 1, by_x)
    by_y = torch.argsort(cy_sorted, dim=1, stable=True)
    return torch.gather(by_x, 1, by_y)


def random_order(batch: int, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """A random permutation per image, ``(B, N)`` int64 (drawn on the generator's device)."""
    gdev = generator.device if generator is not None else device
    return torch.rand((batch, n), generator=generator, device=gdev).argsort(dim=1).to(device)


def permute_matrix(mat: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """Reorder rows and columns: ``out[b, i, j] = mat[b, perm[b, i], perm[b, j]]``.

    ``mat (B, N, N, ...)``, ``perm (B, N)`` -> ``(B, N, N, ...)``.
    """
    bidx = torch.arange(mat.shape[0], device=mat.device)[:, None, None]
    return mat[bidx, perm[:, :, None], perm[:, None, :]]


def offdiag_corr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of the off-diagonal entries, per image and component.

    ``a``, ``b``: ``(B, N, N, k)`` -> ``(B, k)``; NaN where either side has zero variance.
    """
    n = a.shape[1]
    off = ~torch.eye(n, dtype=torch.bool, device=a.device)
    x0 = a.double()[:, off]  # (B, N(N-1), k)
    y0 = b.double()[:, off]
    x = x0 - x0.mean(1, keepdim=True)
    y = y0 - y0.mean(1, keepdim=True)
    ssx, ssy = x.pow(2).sum(1), y.pow(2).sum(1)
    corr = (x * y).sum(1) / (ssx * ssy).sqrt()
    # zero variance up to rounding (relative to the raw magnitudes) -> undefined
    flat = (ssx <= 1e-20 * x0.pow(2).sum(1)) | (ssy <= 1e-20 * y0.pow(2).sum(1)) | (ssx == 0) | (ssy == 0)
    return corr.masked_fill(flat, float("nan")).float()


def negative_symmetry_score(pred: torch.Tensor) -> torch.Tensor:
    """``corr(P, -P^T)`` over off-diagonal entries: ``(B, N, N, k)`` -> ``(B, min(k, 2))``."""
    p = pred[..., :2]
    return offdiag_corr(p, -p.transpose(1, 2))


@dataclass
class Symmetry:
    """Tensors behind the symmetry figure.

    boxes ``(B, N, 4)``, pred / target ``(B, N, N, 2)`` (translations; target from
    :func:`part.targets.relative_matrix`), order / shuffle ``(B, N)`` permutations, the four displayed
    matrices ``pred_ordered``, ``target_ordered``, ``pred_shuffled``, ``target_shuffled`` ``(B, N, N, 2)``;
    ``neg_symmetry``, ``neg_symmetry_target``, ``corr_gt`` ``(B, 2)`` (x, y); metrics per image ``(B,)``.
    """

    boxes: torch.Tensor
    pred: torch.Tensor
    target: torch.Tensor
    order: torch.Tensor
    shuffle: torch.Tensor
    pred_ordered: torch.Tensor
    target_ordered: torch.Tensor
    pred_shuffled: torch.Tensor
    target_shuffled: torch.Tensor
    neg_symmetry: torch.Tensor
    neg_symmetry_target: torch.Tensor
    corr_gt: torch.Tensor
    metrics: dict = field(default_factory=dict)


def symmetry_from_predictions(
    boxes: torch.Tensor,
    pred: torch.Tensor,
    generator: torch.Generator | None = None,
    row_height: float | None = None,
) -> Symmetry:
    """Symmetry tensors from boxes ``(B, N, 4)`` and predictions ``(B, N, N, k)``.

    ``generator`` draws the shuffled order; ``row_height`` see :func:`order_top_left`. Metrics per image
    ``(B,)``: ``neg_symmetry_x``, ``neg_symmetry_y``, ``corr_gt_x``, ``corr_gt_y``, and
    ``mae_gt`` (mean absolute error of the off-diagonal translations, in reference-box units).
    """
    boxes = boxes.float()
    pred = pred[..., :2].float()
    target = relative_matrix(boxes)
    b, n = boxes.shape[:2]
    order = order_top_left(boxes, row_height)
    shuffle = random_order(b, n, generator, boxes.device)
    neg = negative_symmetry_score(pred)
    neg_t = negative_symmetry_score(target)
    corr = offdiag_corr(pred, target)
    off = ~torch.eye(n, dtype=torch.bool, device=boxes.device)
    mae = (pred - target).abs()[:, off].mean(dim=(1, 2))
    metrics = {
        "neg_symmetry_x": neg[:, 0], "neg_symmetry_y": neg[:, 1],
        "corr_gt_x": corr[:, 0], "corr_gt_y": corr[:, 1],
        "mae_gt": mae,
    }
    return Symmetry(
        boxes, pred, target, order, shuffle,
        permute_matrix(pred, order), permute_matrix(target, order),
        permute_matrix(pred, shuffle), permute_matrix(target, shuffle),
        neg, neg_t, corr, metrics,
    )


def symmetry(
    model,
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    sampler=None,
    num_patches: int | None = None,
    predict_fn: PredictFn | None = None,
    row_height: float | None = None,
) -> Symmetry:
    """Figure 6 as tensors: the predicted N x N matrices (ordered, shuffled), ground truth, scores.

    Args:
        model: PART objective (see :func:`part.visualization.reconstruct.sample_and_predict`).
        images: ``(B, C, H, W)`` in the model's input space.
        generator: seeds the patch positions, then the shuffled order.
        sampler, num_patches, predict_fn: as in ``sample_and_predict``.
        row_height: optional row binning for the top-left -> bottom-right order.
    Returns:
        :class:`Symmetry`.
    """
    p = sample_and_predict(model, images, generator, sampler, num_patches, predict_fn)
    return symmetry_from_predictions(p.boxes, p.pred, generator, row_height)
