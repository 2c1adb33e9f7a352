"""Patch uncertainty from the agreement of references (paper §5.1 "Patch uncertainty", Figure 5): tensors.

PART predicts the transform of every ordered pair, so each target patch j gets ``N - 1`` position
estimates, one per reference i (placed from the reference's true box, §4 parameterisation)::

    x_ij = c_i + theta_ij * s_i                                    (pixels)

If the references agree (a tight cloud) the model is certain where j belongs; a scattered cloud means
the patch is ambiguous (e.g. it resembles other regions). Per target we report two spreads over its
references ``i != j``:

* ``trace_cov``: trace of the (population) covariance of the cloud, ``var(x) + var(y)`` in px^2;
* ``median_dist``: mean Euclidean distance to the coordinate-wise median of the cloud, in px (robust
  to a few wild references). With an even number of references torch's median is the lower median.

``median`` itself is a consensus position; ``consensus_error_px`` is its distance to the truth.
A per-image heat map paints every box with its patch's spread, averaged where boxes overlap
(:func:`part.visualization.reconstruct.paint_values`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .reconstruct import PredictFn, paint_values, sample_and_predict

__all__ = ["Uncertainty", "predicted_positions", "position_spread", "uncertainty_map", "uncertainty",
           "uncertainty_from_predictions", "SPREAD_MEASURES"]

SPREAD_MEASURES = ("median_dist", "trace_cov")


def predicted_positions(pred: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
    """Every reference's estimate of every target's centre.

    Args:
        pred: ``(B, N, N, k)``, entry ``[b, i, j]`` the transform reference i -> target j.
        boxes: ``(B, N, 4)`` true boxes ``(cx, cy, w, h)`` px.
    Returns:
        ``(B, N_ref, N_tgt, 2)`` positions ``c_i + theta_ij[:2] * s_i`` in pixels. The diagonal (a patch
        as its own reference) is included here; :func:`position_spread` leaves it out.
    """
    c, s = boxes[..., :2].float(), boxes[..., 2:].float()
    return c[:, :, None, :] + pred[..., :2].float() * s[:, :, None, :]


def position_spread(positions: torch.Tensor) -> dict[str, torch.Tensor]:
    """Spread of each target's cloud of estimates over the references ``i != j``.

    Args:
        positions: ``(B, N_ref, N_tgt, 2)`` from :func:`predicted_positions` (square: N_ref = N_tgt = N).
    Returns:
        dict with ``trace_cov`` ``(B, N)`` px^2 (population covariance), ``median_dist`` ``(B, N)`` px,
        ``mean`` and ``median`` ``(B, N, 2)`` px. With N = 1 every entry is NaN (no other reference).
    """
    b, n = positions.shape[:2]
    cloud = positions.transpose(1, 2).float()  # (B, N_tgt, N_ref, 2)
    eye = torch.eye(n, dtype=torch.bool, device=positions.device)
    cloud = cloud.masked_fill(eye[None, :, :, None], float("nan"))
    mean = cloud.nanmean(dim=2)  # (B, N, 2)
    trace_cov = (cloud - mean[:, :, None]).pow(2).nanmean(dim=2).sum(-1)
    median = cloud.nanmedian(dim=2).values
    median_dist = (cloud - median[:, :, None]).norm(dim=-1).nanmean(dim=2)
    return {"trace_cov": trace_cov, "median_dist": median_dist, "mean": mean, "median": median}


def uncertainty_map(
    spread: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int], margin: int = 0
) -> torch.Tensor:
    """Per-image heat map: each true box painted with its patch's spread, overlaps averaged.

    ``spread (B, N)``, ``boxes (B, N, 4)``, ``image_size (H, W)`` -> ``(B, H + 2m, W + 2m)``, NaN where no
    patch was sampled.
    """
    return paint_values(spread, boxes[..., :2], boxes[..., 2:], image_size, margin)


@dataclass
class Uncertainty:
    """Tensors behind the uncertainty figure.

    boxes ``(B, N, 4)``, patches ``(B, N, C, P, P)``, pred ``(B, N, N, k)``, positions
    ``(B, N_ref, N_tgt, 2)`` px, trace_cov / median_dist ``(B, N)``, median ``(B, N, 2)``,
    heatmap ``(B, H, W)`` of ``measure``; metrics: per-image ``(B,)`` tensors (see :func:`uncertainty`).
    """

    boxes: torch.Tensor
    patches: torch.Tensor
    pred: torch.Tensor
    positions: torch.Tensor
    trace_cov: torch.Tensor
    median_dist: torch.Tensor
    median: torch.Tensor
    heatmap: torch.Tensor
    measure: str
    image_size: tuple[int, int]
    metrics: dict = field(default_factory=dict)

    @property
    def spread(self) -> torch.Tensor:
        """``(B, N)``: the spread used for the heat map (``measure``)."""
        return getattr(self, self.measure)


def uncertainty_from_predictions(
    patches: torch.Tensor,
    boxes: torch.Tensor,
    pred: torch.Tensor,
    image_size: tuple[int, int],
    measure: str = "median_dist",
) -> Uncertainty:
    """Uncertainty tensors from patches ``(B,N,C,P,P)``, boxes ``(B,N,4)`` and pred ``(B,N,N,k)``.

    ``measure`` (``"median_dist"`` or ``"trace_cov"``) selects what the heat map shows. Metrics per image
    ``(B,)``: ``mean_median_dist_px``, ``mean_trace_cov_px2``, ``mean_median_dist_frac`` (distance over the
    image diagonal), ``consensus_error_px`` (mean distance of the median estimate to the true centre).
    """
    if measure not in SPREAD_MEASURES:
        raise ValueError(f"measure must be one of {SPREAD_MEASURES}, got {measure!r}")
    boxes = boxes.float()
    positions = predicted_positions(pred, boxes)
    s = position_spread(positions)
    heat = uncertainty_map(s[measure], boxes, image_size)
    h, w = image_size
    diag = float(h * h + w * w) ** 0.5
    metrics = {
        "mean_median_dist_px": s["median_dist"].mean(1),
        "mean_median_dist_frac": s["median_dist"].mean(1) / diag,
        "mean_trace_cov_px2": s["trace_cov"].mean(1),
        "consensus_error_px": (s["median"] - boxes[..., :2]).norm(dim=-1).mean(1),
    }
    return Uncertainty(boxes, patches, pred.float(), positions, s["trace_cov"], s["median_dist"], s["median"],
                       heat, measure, tuple(image_size), metrics)


def uncertainty(
    model,
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    sampler=None,
    num_patches: int | None = None,
    predict_fn: PredictFn | None = None,
    measure: str = "median_dist",
) -> Uncertainty:
    """Figure 5 as tensors: every target's positions predicted from every reference, their spread and a heat map.

    Args:
        model: PART objective (see :func:`part.visualization.reconstruct.sample_and_predict`).
        images: ``(B, C, H, W)`` in the model's input space.
        generator, sampler, num_patches, predict_fn: as in ``sample_and_predict``.
        measure: spread shown in the heat map, ``"median_dist"`` (px) or ``"trace_cov"`` (px^2).
    Returns:
        :class:`Uncertainty`.
    """
    if measure not in SPREAD_MEASURES:
        raise ValueError(f"measure must be one of {SPREAD_MEASURES}, got {measure!r}")
    p = sample_and_predict(model, images, generator, sampler, num_patches, predict_fn)
    return uncertainty_from_predictions(p.patches, p.boxes, p.pred, tuple(images.shape[-2:]), measure)
