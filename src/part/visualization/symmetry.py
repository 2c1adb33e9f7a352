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

Every score is also reported over the pairs of two informative patches (``*_informative``;
:func:`part.visualization.reconstruct.informative_patches`): a blank patch's position, hence any offset to
or from it, cannot be recovered, and such pairs would dilute the correlations.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..targets import relative_matrix
from .reconstruct import INFORMATIVE_STD, PredictFn, informative_patches, sample_and_predict

__all__ = ["Symmetry", "order_top_left", "random_order", "permute_matrix", "offdiag_corr", "pair_mask",
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


def pair_mask(informative: torch.Tensor) -> torch.Tensor:
    """``(B, N)`` bool patches -> ``(B, N, N)`` bool: pairs ``(i, j)`` of two informative patches."""
    return informative[:, :, None] & informative[:, None, :]


def offdiag_corr(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Pearson correlation of the off-diagonal entries (those of ``mask`` ``(B, N, N)`` bool when given),
    per image and component.

    ``a``, ``b``: ``(B, N, N, k)`` -> ``(B, k)``; NaN where either side has zero variance or fewer than two
    entries count.
    """
    bsz, n = a.shape[:2]
    keep = ~torch.eye(n, dtype=torch.bool, device=a.device).expand(bsz, n, n)
    if mask is not None:
        keep = keep & mask.to(a.device)
    w = keep.double()[..., None]  # (B, N, N, 1)
    count = w.sum((1, 2))  # (B, 1)
    x0, y0 = a.double() * w, b.double() * w
    x = (a.double() - x0.sum((1, 2), keepdim=True) / count.clamp(min=1)[:, None, None]) * w
    y = (b.double() - y0.sum((1, 2), keepdim=True) / count.clamp(min=1)[:, None, None]) * w
    ssx, ssy = x.pow(2).sum((1, 2)), y.pow(2).sum((1, 2))
    corr = (x * y).sum((1, 2)) / (ssx * ssy).sqrt()
    # zero variance up to rounding (relative to the raw magnitudes) -> undefined
    flat = ((ssx <= 1e-20 * x0.pow(2).sum((1, 2))) | (ssy <= 1e-20 * y0.pow(2).sum((1, 2))) | (ssx == 0)
            | (ssy == 0) | (count < 2))
    return corr.masked_fill(flat, float("nan")).float()


def negative_symmetry_score(pred: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """``corr(P, -P^T)`` over off-diagonal entries (of ``mask`` ``(B, N, N)`` when given):
    ``(B, N, N, k)`` -> ``(B, min(k, 2))``."""
    p = pred[..., :2]
    return offdiag_corr(p, -p.transpose(1, 2), mask)


@dataclass
class Symmetry:
    """Tensors behind the symmetry figure.

    boxes ``(B, N, 4)``, pred / target ``(B, N, N, 2)`` (translations; target from
    :func:`part.targets.relative_matrix`), order / shuffle ``(B, N)`` permutations, the four displayed
    matrices ``pred_ordered``, ``target_ordered``, ``pred_shuffled``, ``target_shuffled`` ``(B, N, N, 2)``;
    ``neg_symmetry``, ``neg_symmetry_target``, ``corr_gt`` ``(B, 2)`` (x, y); informative ``(B, N)`` bool
    (all True when no patches were given); metrics per image ``(B,)``.
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
    informative: torch.Tensor
    metrics: dict = field(default_factory=dict)


def symmetry_from_predictions(
    boxes: torch.Tensor,
    pred: torch.Tensor,
    generator: torch.Generator | None = None,
    row_height: float | None = None,
    informative: torch.Tensor | None = None,
) -> Symmetry:
    """Symmetry tensors from boxes ``(B, N, 4)`` and predictions ``(B, N, N, k)``.

    ``generator`` draws the shuffled order; ``row_height`` see :func:`order_top_left`; ``informative``
    ``(B, N)`` bool marks the informative patches (default: all). Metrics per image ``(B,)``:
    ``neg_symmetry_x``, ``neg_symmetry_y``, ``corr_gt_x``, ``corr_gt_y``, ``mae_gt`` (mean absolute error
    of the off-diagonal translations, in reference-box units); the same five over the pairs of two
    informative patches (``*_informative``, NaN when fewer than two such pairs), and
    ``informative_fraction``.
    """
    boxes = boxes.float()
    pred = pred[..., :2].float()
    target = relative_matrix(boxes)
    b, n = boxes.shape[:2]
    if informative is None:
        informative = torch.ones(b, n, dtype=torch.bool, device=boxes.device)
    elif tuple(informative.shape) != (b, n):
        raise ValueError(f"informative must be (B, N) = ({b}, {n}) bool, got shape {tuple(informative.shape)}")
    informative = informative.to(device=boxes.device, dtype=torch.bool)
    order = order_top_left(boxes, row_height)
    shuffle = random_order(b, n, generator, boxes.device)
    neg = negative_symmetry_score(pred)
    neg_t = negative_symmetry_score(target)
    corr = offdiag_corr(pred, target)
    off = ~torch.eye(n, dtype=torch.bool, device=boxes.device)
    mae = (pred - target).abs()[:, off].mean(dim=(1, 2))
    pairs = pair_mask(informative) & off
    neg_i = negative_symmetry_score(pred, pairs)
    corr_i = offdiag_corr(pred, target, pairs)
    count = pairs.sum((1, 2))
    mae_i = ((pred - target).abs().mean(-1) * pairs).sum((1, 2)) / count.clamp(min=1)
    mae_i = mae_i.masked_fill(count == 0, float("nan"))
    metrics = {
        "neg_symmetry_x": neg[:, 0], "neg_symmetry_y": neg[:, 1],
        "corr_gt_x": corr[:, 0], "corr_gt_y": corr[:, 1],
        "mae_gt": mae,
        "neg_symmetry_x_informative": neg_i[:, 0], "neg_symmetry_y_informative": neg_i[:, 1],
        "corr_gt_x_informative": corr_i[:, 0], "corr_gt_y_informative": corr_i[:, 1],
        "mae_gt_informative": mae_i,
        "informative_fraction": informative.float().mean(1),
    }
    return Symmetry(
        boxes, pred, target, order, shuffle,
        permute_matrix(pred, order), permute_matrix(target, order),
        permute_matrix(pred, shuffle), permute_matrix(target, shuffle),
        neg, neg_t, corr, informative, metrics,
    )


def symmetry(
    model,
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    sampler=None,
    num_patches: int | None = None,
    predict_fn: PredictFn | None = None,
    row_height: float | None = None,
    informative_std: float = INFORMATIVE_STD,
) -> Symmetry:
    """Figure 6 as tensors: the predicted N x N matrices (ordered, shuffled), ground truth, scores.

    Args:
        model: PART objective (see :func:`part.visualization.reconstruct.sample_and_predict`).
        images: ``(B, C, H, W)`` in the model's input space.
        generator: seeds the patch positions, then the shuffled order.
        sampler, num_patches, predict_fn: as in ``sample_and_predict``.
        row_height: optional row binning for the top-left -> bottom-right order.
        informative_std: patch std above which a patch is informative
            (:data:`part.visualization.reconstruct.INFORMATIVE_STD`).
    Returns:
        :class:`Symmetry`.
    """
    p = sample_and_predict(model, images, generator, sampler, num_patches, predict_fn)
    return symmetry_from_predictions(p.boxes, p.pred, generator, row_height,
                                     informative_patches(p.patches, informative_std))
