"""Off-grid reconstruction from predicted relative translations (paper §5.1 "Off-grid reconstruction",
Figure 4): tensors only; the pictures live in :mod:`part.visualization.plots`.

Geometry (paper §4 "Relative translation parameterization"): for a pair (reference i, target j) the model
predicts ``theta_ij = (c_j - c_i) / s_i`` in units of the reference box size ``s_i = (w_i, h_i)``. Knowing
the reference box, a target is placed at::

    c_j = c_i + theta_ij * s_i                                     (pixels)

* Single reference (the paper's figure): fix one reference patch at its true position and place every
  other patch from its row of the prediction matrix (:func:`place_from_reference`).
* All references (robust): choose the centres that best agree with ALL ``N (N - 1)`` predicted offsets,
  ``min_c sum_{i != j} w_ij || c_j - c_i - theta_ij * s_i ||^2`` (:func:`least_squares_centres`). The
  solution is defined up to one common translation (the gauge); by default the mean of the solved
  centres is anchored to the mean of the true centres (``anchor="mean"``, the translation that minimises
  the squared placement error), or the reference patch to its true centre (``anchor="reference"``).

Ambiguous patches: a patch with (almost) no contrast, e.g. blank background, looks the same wherever it is
taken from, so no model can recover its position. :func:`informative_patches` marks the patches whose pixel
std exceeds ``informative_std`` (default :data:`INFORMATIVE_STD`), and every placement error is reported for
all patches and for the informative ones (``*_informative``).

Patches are painted back onto a canvas at their boxes, each resized from ``P x P`` to its box size with
the same bilinear convention as the crop (:mod:`part.sampling.crop`), overlaps averaged
(:func:`paint_patches`). Boxes are ``(B, N, 4)`` = ``(cx, cy, w, h)`` in pixels everywhere.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn as nn

from ..sampling.samplers import build_sampler

__all__ = [
    "INFORMATIVE_STD", "patch_contrast", "informative_patches",
    "Predictions", "Reconstruction", "sample_and_predict", "choose_reference", "place_from_reference",
    "least_squares_centres", "placement_errors", "paint_patches", "paint_values", "reconstruct",
    "reconstruct_from_predictions", "masked_mean",
]

PredictFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

# A patch is informative when its pixel std exceeds this, in the model's input space: after the training
# normalisation, units of the dataset's per-channel pixel std (0.1 = about 9 grey levels on Fashion-MNIST,
# 7 on CIFAR/ImageNet). Blank background (std 0) is ambiguous; on Fashion-MNIST 7x7 off-grid patches about
# 15% fall below 0.1.
INFORMATIVE_STD = 0.1


# --------------------------------------------------------------------------------------------
# Informative vs ambiguous patches
# --------------------------------------------------------------------------------------------

def patch_contrast(patches: torch.Tensor) -> torch.Tensor:
    """RMS contrast of each patch: the root mean over channels of each channel's pixel variance (population),
    ``(B, N, C, P, P) -> (B, N)``. A flat patch (any colour) has 0."""
    if patches.dim() != 5:
        raise ValueError(f"patches must be (B, N, C, P, P), got shape {tuple(patches.shape)}")
    var = patches.float().flatten(3).var(dim=-1, unbiased=False)  # (B, N, C)
    return var.mean(-1).sqrt()


def informative_patches(patches: torch.Tensor, informative_std: float = INFORMATIVE_STD) -> torch.Tensor:
    """``(B, N)`` bool: patches whose :func:`patch_contrast` exceeds ``informative_std`` (>= 0; in the model's
    input space, see :data:`INFORMATIVE_STD`). The others (blank background, flat colour) have no
    recoverable position."""
    if isinstance(informative_std, bool) or not isinstance(informative_std, (int, float)) or not informative_std >= 0:
        raise ValueError(f"informative_std must be a number >= 0, got {informative_std!r}")
    return patch_contrast(patches) > float(informative_std)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values (B, N)`` over ``mask (B, N)`` per image, ``(B,)``; NaN where the mask is empty."""
    m = mask.to(values.dtype)
    count = m.sum(1)
    out = (values * m).sum(1) / count.clamp(min=1)
    return out.masked_fill(count == 0, float("nan"))


# --------------------------------------------------------------------------------------------
# Running the model
# --------------------------------------------------------------------------------------------

@dataclass
class Predictions:
    """Patches, their boxes and the model's full prediction matrix for a batch.

    images ``(B, C, H, W)`` (model space, i.e. normalised if the model was trained so), patches
    ``(B, N, C, P, P)``, boxes ``(B, N, 4)`` (cx, cy, w, h) px, pred ``(B, N, N, k)``: entry ``[b, i, j]``
    is the predicted transform from reference i to target j (``k = 2`` translations, ``k = 4`` with
    size ratios for the scale/aspect sampler).
    """

    images: torch.Tensor
    patches: torch.Tensor
    boxes: torch.Tensor
    pred: torch.Tensor


@contextmanager
def _eval_mode(model):
    """Run ``model`` in eval mode (no dropout / drop-path) and restore its previous mode afterwards."""
    if not isinstance(model, nn.Module):
        yield
        return
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _resolve_sampler(model, sampler, num_patches: int | None):
    own = getattr(model, "sampler", None)
    if sampler is None:
        if num_patches is not None:  # the model's own kind of sampler with another N
            return _resolve_sampler(model, getattr(own, "name", "offgrid"), num_patches)
        if model is None or not hasattr(model, "sample"):
            raise ValueError("model must have a sample(images, generator) method, or pass sampler=")
        return model.sample
    if isinstance(sampler, str):
        patch_size = getattr(getattr(model, "backbone", None), "patch_size", None)
        if patch_size is None:
            raise ValueError(f"sampler={sampler!r} needs the model's backbone.patch_size; pass a sampler object")
        if sampler == "grid" and num_patches is not None:
            raise ValueError("num_patches cannot be set for sampler='grid' (the grid fixes N = H W / P^2)")
        kwargs = {} if sampler == "grid" else {"num_patches": num_patches}
        if own is not None and getattr(own, "name", None) == sampler:  # keep the model's box settings
            for key in ("box_size", "scale_range", "positions"):
                if getattr(own, key, None) is not None:
                    kwargs[key] = getattr(own, key)
        return build_sampler(sampler, patch_size, **kwargs)
    if not callable(sampler):
        raise ValueError(f"sampler must be None, a sampler name or a callable, got {type(sampler).__name__}")
    return sampler


@torch.no_grad()
def sample_and_predict(
    model,
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    sampler=None,
    num_patches: int | None = None,
    predict_fn: PredictFn | None = None,
) -> Predictions:
    """Sample patches from ``images`` and predict the transform of every ordered pair.

    Args:
        model: a PART objective (``sample(images, generator)`` and ``predict_matrix(patches)``), e.g.
            :class:`part.PARTModel`; run in eval mode and restored afterwards. May be ``None`` when both
            ``sampler`` (a callable) and ``predict_fn`` are given.
        images: ``(B, C, H, W)`` float, in the model's input space.
        generator: optional ``torch.Generator`` for the patch positions.
        sampler: ``None`` (the model's own sampler), ``"offgrid"`` / ``"grid"`` / ``"scale"`` (built with the
            backbone's patch size) or a callable ``(images, generator) -> (patches, boxes)``.
        num_patches: N for a named or the model's off-grid sampler (fewer patches = sparser pictures).
        predict_fn: optional ``(patches (B,N,C,P,P), boxes (B,N,4)) -> (B,N,N,k)`` used instead of
            ``model.predict_matrix`` (hook for oracles and custom models).
    Returns:
        :class:`Predictions` with everything on the images' device.
    """
    if predict_fn is None and (model is None or not hasattr(model, "predict_matrix")):
        name = type(model).__name__
        raise ValueError(
            f"model must be a PART objective with sample() and predict_matrix() (got {name}); "
            "the capability tools need pairwise relative predictions"
        )
    sample = _resolve_sampler(model, sampler, num_patches)
    with _eval_mode(model):
        patches, boxes = sample(images, generator)
        if boxes.dim() != 3 or boxes.shape[-1] != 4:
            raise ValueError(f"the visualisations are for 2D images with boxes (B, N, 4); got boxes {tuple(boxes.shape)}")
        pred = predict_fn(patches, boxes) if predict_fn is not None else model.predict_matrix(patches)
    b, n = boxes.shape[:2]
    if pred.dim() != 4 or tuple(pred.shape[:3]) != (b, n, n) or pred.shape[-1] < 2:
        raise ValueError(f"predictions must have shape (B, N, N, k>=2) = ({b}, {n}, {n}, k); got {tuple(pred.shape)}")
    return Predictions(images, patches, boxes.float(), pred.float())


# --------------------------------------------------------------------------------------------
# Placement
# --------------------------------------------------------------------------------------------

def choose_reference(
    boxes: torch.Tensor,
    reference: int | str | torch.Tensor = "random",
    generator: torch.Generator | None = None,
    image_size: tuple[int, int] | None = None,
    informative: torch.Tensor | None = None,
) -> torch.Tensor:
    """The reference patch index per image, ``(B,)`` int64.

    ``reference``: an int (same index for every image), ``"random"`` (uniform, from ``generator``, as in
    the paper: "fixing one random reference patch"), ``"informative"`` (uniform among the ``informative``
    ``(B, N)`` bool patches, all patches for an image with none; a blank reference has no known position
    to place the others from), ``"center"`` (the patch nearest the image centre; needs
    ``image_size=(H, W)``) or a ``(B,)`` tensor of indices. ``boxes``: ``(B, N, 4)``.
    """
    b, n = boxes.shape[:2]
    device = boxes.device
    if isinstance(reference, torch.Tensor):
        ref = reference.to(device=device, dtype=torch.long).reshape(-1)
        if ref.numel() != b:
            raise ValueError(f"reference tensor must have one index per image ({b}), got shape {tuple(reference.shape)}")
    elif isinstance(reference, bool):
        raise ValueError(f"reference must be an int, 'random', 'informative', 'center' or a tensor, got {reference!r}")
    elif isinstance(reference, int):
        ref = torch.full((b,), reference, dtype=torch.long, device=device)
    elif reference == "random":
        gdev = generator.device if generator is not None else device
        ref = torch.randint(0, n, (b,), generator=generator, device=gdev).to(device)
    elif reference == "informative":
        if informative is None or tuple(informative.shape) != (b, n):
            raise ValueError(f"reference='informative' needs informative=(B, N) = ({b}, {n}) bool patches")
        weights = informative.to(device=device, dtype=torch.float64)
        weights = torch.where(weights.sum(1, keepdim=True) > 0, weights, torch.ones_like(weights))
        gdev = generator.device if generator is not None else device
        ref = torch.multinomial(weights.to(gdev), 1, generator=generator)[:, 0].to(device)
    elif reference == "center":
        if image_size is None:
            raise ValueError("reference='center' needs image_size=(H, W)")
        h, w = image_size
        centre = torch.tensor([w / 2.0, h / 2.0], device=device)
        ref = (boxes[..., :2] - centre).norm(dim=-1).argmin(dim=1)
    else:
        raise ValueError(f"reference must be an int, 'random', 'informative', 'center' or a tensor, got {reference!r}")
    if bool(((ref < 0) | (ref >= n)).any()):
        raise ValueError(f"reference index out of range for N={n} patches: {ref.tolist()}")
    return ref


def _gather_rows(x: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``x (B, N, ...)``, ``index (B,)`` -> ``x[b, index[b]]`` ``(B, ...)``."""
    return x[torch.arange(x.shape[0], device=x.device), index]


def place_from_reference(
    pred: torch.Tensor, boxes: torch.Tensor, reference: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Place every patch relative to one reference: ``c_j = c_ref + theta_ref,j * s_ref``.

    Args:
        pred: ``(B, N, N, k)`` predicted transforms (reference, target).
        boxes: ``(B, N, 4)`` true boxes; only the reference box is read for the centres.
        reference: ``(B,)`` reference indices (see :func:`choose_reference`).
    Returns:
        centres ``(B, N, 2)`` px (the reference keeps its true centre) and sizes ``(B, N, 2)`` px: the
        predicted sizes ``s_ref * (w_t / w_r, h_t / h_r)`` when ``k >= 4`` (scale/aspect model), else the
        sampled box sizes (all equal for off-grid and grid sampling).
    """
    b, n = boxes.shape[:2]
    ref_box = _gather_rows(boxes, reference)  # (B, 4)
    row = _gather_rows(pred, reference)  # (B, N, k)
    c_ref, s_ref = ref_box[:, None, :2], ref_box[:, None, 2:]
    centres = c_ref + row[..., :2] * s_ref
    is_ref = torch.arange(n, device=boxes.device)[None, :] == reference[:, None]  # (B, N)
    centres = torch.where(is_ref[..., None], c_ref.expand(b, n, 2), centres)
    if pred.shape[-1] >= 4:
        sizes = torch.where(is_ref[..., None], s_ref.expand(b, n, 2), row[..., 2:4] * s_ref)
    else:
        sizes = boxes[..., 2:]
    return centres, sizes


def least_squares_centres(
    pred: torch.Tensor,
    boxes: torch.Tensor,
    weights: torch.Tensor | None = None,
    anchor: str = "mean",
    reference: torch.Tensor | None = None,
) -> torch.Tensor:
    """Centres that agree best with ALL predicted pairwise offsets (robust reconstruction).

    Solves, per image and per axis, ``min_c sum_{i != j} w_ij (c_j - c_i - d_ij)^2`` with
    ``d_ij = theta_ij * s_i`` (pixels; ``s_i`` the true size of reference i). Setting the gradient to
    zero gives the graph-Laplacian system ``L c = r`` with ``A = W + W^T`` (zero diagonal),
    ``L = diag(A 1) - A`` and ``r_k = sum_i w_ik d_ik - sum_j w_kj d_kj``. ``L`` has the constant vector
    in its null space (a common translation changes nothing), so we solve ``(L + 1 1^T) c = r``, whose
    solution has zero mean (``1^T r = 0``), then fix the gauge:

    * ``anchor="mean"`` (default): shift so the mean solved centre equals the mean true centre;
    * ``anchor="reference"``: shift so ``c[reference]`` equals the true centre of that patch.

    For unit weights the solution is closed-form, ``c_k = mean + (sum_i d_ik - sum_j d_kj) / (2 N)``.

    Args:
        pred: ``(B, N, N, k)``; only the first two components (dx, dy) are used.
        boxes: ``(B, N, 4)`` true boxes (reference sizes and the gauge).
        weights: optional ``(B, N, N)`` or ``(N, N)`` non-negative pair weights (diagonal ignored);
            default 1 for every ordered pair. Must keep the patches connected.
        anchor: ``"mean"`` or ``"reference"``.
        reference: ``(B,)`` indices, needed for ``anchor="reference"``.
    Returns:
        ``(B, N, 2)`` centres in pixels.
    """
    if anchor not in ("mean", "reference"):
        raise ValueError(f"anchor must be 'mean' or 'reference', got {anchor!r}")
    if anchor == "reference" and reference is None:
        raise ValueError("anchor='reference' needs the reference indices (reference=)")
    b, n = boxes.shape[:2]
    dtype = torch.float64  # small N x N systems; double keeps the oracle exact to ~1e-12 px
    d = pred[..., :2].to(dtype) * boxes[:, :, None, 2:].to(dtype)  # (B, N, N, 2): offset i -> j in px
    eye = torch.eye(n, dtype=torch.bool, device=boxes.device)
    if weights is None:
        w = (~eye).to(dtype).expand(b, n, n)
    else:
        w = weights.to(device=boxes.device, dtype=dtype)
        if w.dim() == 2 and tuple(w.shape) == (n, n):
            w = w.expand(b, n, n)
        if tuple(w.shape) != (b, n, n):
            raise ValueError(f"weights must have shape (B, N, N) = ({b}, {n}, {n}) or (N, N), got {tuple(weights.shape)}")
        if bool((w < 0).any()) or not bool(torch.isfinite(w).all()):
            raise ValueError("weights must be finite and non-negative")
        w = w.masked_fill(eye, 0.0)
    a = w + w.transpose(1, 2)
    lap = torch.diag_embed(a.sum(-1)) - a
    rhs = torch.einsum("bik,bikc->bkc", w, d) - torch.einsum("bkj,bkjc->bkc", w, d)  # (B, N, 2)
    if weights is not None and n > 1:
        # Connected iff the Laplacian's second-smallest eigenvalue (algebraic connectivity) is > 0.
        ev = torch.linalg.eigvalsh(lap)
        if bool((ev[:, 1] <= 1e-9 * ev[:, -1].clamp(min=1e-300)).any()):
            raise ValueError(
                "weights leave some patches unconnected to the others; the least-squares placement is undefined"
            )
    centres = torch.linalg.solve(lap + 1.0, rhs)  # lap + 1 1^T: non-singular for a connected graph
    true_c = boxes[..., :2].to(dtype)
    if anchor == "mean":
        centres = centres - centres.mean(1, keepdim=True) + true_c.mean(1, keepdim=True)
    else:
        centres = centres - _gather_rows(centres, reference)[:, None] + _gather_rows(true_c, reference)[:, None]
    return centres.to(torch.float32)


def placement_errors(
    centres: torch.Tensor, boxes: torch.Tensor, image_size: tuple[int, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-patch placement error.

    Args:
        centres: ``(B, N, 2)`` placed centres (px); boxes ``(B, N, 4)`` the truth; image_size ``(H, W)``.
    Returns:
        ``(err_px (B, N), err_frac (B, N))``: Euclidean distance in pixels, and the same distance with x
        measured in units of the image width and y in units of the image height (for a square image:
        ``err_px / H``).
    """
    h, w = image_size
    diff = centres.float() - boxes[..., :2].float()
    scale = torch.tensor([float(w), float(h)], device=diff.device)
    return diff.norm(dim=-1), (diff / scale).norm(dim=-1)


# --------------------------------------------------------------------------------------------
# Painting
# --------------------------------------------------------------------------------------------

def _axis_weights(lo: torch.Tensor, size: torch.Tensor, coords: torch.Tensor, p: int) -> torch.Tensor:
    """Bilinear weights mapping P patch pixels onto canvas positions along one axis.

    ``lo``/``size`` ``(B, N)`` box start and extent, ``coords`` ``(L,)`` canvas pixel centres.
    Returns ``(B, N, L, P)``: row ``l`` holds the interpolation weights of canvas pixel ``l`` over the
    patch's pixels (``F.grid_sample`` bilinear, ``align_corners=False``, border clamp), zero when the
    pixel centre lies outside ``[lo, lo + size)``.
    """
    u = (coords[None, None, :] - lo[..., None]) / size[..., None]  # (B, N, L) in [0, 1) inside
    inside = (u >= 0) & (u < 1)
    t = (u * p - 0.5).clamp(0, p - 1)  # continuous patch-pixel index
    i0 = t.floor().clamp(max=p - 1)
    frac = t - i0
    i0 = i0.long()
    i1 = (i0 + 1).clamp(max=p - 1)
    wts = torch.zeros(*u.shape, p, device=u.device, dtype=u.dtype)
    wts.scatter_add_(-1, i0[..., None], (1 - frac)[..., None])
    wts.scatter_add_(-1, i1[..., None], frac[..., None])
    return wts * inside[..., None]


def _canvas_coords(height: int, width: int, margin: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    ys = torch.arange(height + 2 * margin, device=device, dtype=torch.float32) + 0.5 - margin
    xs = torch.arange(width + 2 * margin, device=device, dtype=torch.float32) + 0.5 - margin
    return ys, xs


def paint_patches(
    patches: torch.Tensor,
    centres: torch.Tensor,
    sizes: torch.Tensor,
    image_size: tuple[int, int],
    margin: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Paint ``P x P`` patches onto a canvas at boxes ``(centres, sizes)``, averaging overlaps.

    Each patch is resized to its box (bilinear, the inverse of :func:`part.sampling.crop_patches`, so a
    grid patch at its grid box reproduces the image pixels exactly). A canvas pixel takes the mean of
    every patch whose box contains its centre. The canvas covers the image ``(H, W)`` plus ``margin``
    pixels on each side (canvas pixel ``(r, q)`` is the image point ``(q + 0.5 - margin, r + 0.5 - margin)``),
    so patches predicted outside the image stay visible.

    Args:
        patches: ``(B, N, C, P, P)``; centres, sizes: ``(B, N, 2)`` px; image_size: ``(H, W)``.
    Returns:
        canvas ``(B, C, H + 2m, W + 2m)`` (0 where nothing is painted) and coverage
        ``(B, 1, H + 2m, W + 2m)``: how many patches cover each pixel.
    """
    b, n, c, p, _ = patches.shape
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    ys, xs = _canvas_coords(*image_size, margin, patches.device)
    centres, sizes = centres.float(), sizes.float()
    wy = _axis_weights(centres[..., 1] - sizes[..., 1] / 2, sizes[..., 1], ys, p)  # (B, N, H', P)
    wx = _axis_weights(centres[..., 0] - sizes[..., 0] / 2, sizes[..., 0], xs, p)  # (B, N, W', P)
    total = torch.einsum("bnhp,bncpq,bnwq->bchw", wy, patches.float(), wx)
    count = torch.einsum("bnh,bnw->bhw", wy.sum(-1).gt(0).float(), wx.sum(-1).gt(0).float())[:, None]
    return total / count.clamp(min=1), count


def paint_values(
    values: torch.Tensor,
    centres: torch.Tensor,
    sizes: torch.Tensor,
    image_size: tuple[int, int],
    margin: int = 0,
) -> torch.Tensor:
    """Paint one number per box (e.g. a patch's uncertainty) and average where boxes overlap.

    Args:
        values: ``(B, N)``; centres, sizes: ``(B, N, 2)`` px; image_size ``(H, W)``.
    Returns:
        ``(B, H + 2m, W + 2m)``: mean value of the boxes covering each pixel, NaN where none does.
    """
    ys, xs = _canvas_coords(*image_size, margin, values.device)
    centres, sizes = centres.float(), sizes.float()
    iy = _inside(centres[..., 1] - sizes[..., 1] / 2, sizes[..., 1], ys)  # (B, N, H')
    ix = _inside(centres[..., 0] - sizes[..., 0] / 2, sizes[..., 0], xs)  # (B, N, W')
    total = torch.einsum("bn,bnh,bnw->bhw", values.float().nan_to_num(0.0), iy, ix)
    count = torch.einsum("bnh,bnw->bhw", iy, ix)
    out = total / count.clamp(min=1)
    return out.masked_fill(count == 0, float("nan"))


def _inside(lo: torch.Tensor, size: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    u = (coords[None, None, :] - lo[..., None]) / size[..., None]
    return ((u >= 0) & (u < 1)).float()


# --------------------------------------------------------------------------------------------
# The whole figure's tensors
# --------------------------------------------------------------------------------------------

@dataclass
class Reconstruction:
    """Tensors behind the reconstruction figure (all on CPU-or-input device, float32).

    boxes ``(B, N, 4)``, patches ``(B, N, C, P, P)``, pred ``(B, N, N, k)``, reference ``(B,)``;
    centres ``(B, N, 2)`` (single reference), sizes ``(B, N, 2)``, centres_lsq ``(B, N, 2)`` (all
    references, least squares); canvases ``(B, C, H', W')`` with coverage ``(B, 1, H', W')``
    (``H' = H + 2 margin``): gt (true boxes), pred (single reference), lsq; errors ``(B, N)`` px and as a
    fraction of the image size; informative ``(B, N)`` bool (:func:`informative_patches` at
    ``informative_std``). ``metrics``: per-image ``(B,)`` tensors, see :func:`reconstruct_from_predictions`.
    """

    boxes: torch.Tensor
    patches: torch.Tensor
    pred: torch.Tensor
    reference: torch.Tensor
    centres: torch.Tensor
    sizes: torch.Tensor
    centres_lsq: torch.Tensor
    gt_canvas: torch.Tensor
    gt_coverage: torch.Tensor
    pred_canvas: torch.Tensor
    pred_coverage: torch.Tensor
    lsq_canvas: torch.Tensor
    lsq_coverage: torch.Tensor
    error_px: torch.Tensor
    error_frac: torch.Tensor
    lsq_error_px: torch.Tensor
    lsq_error_frac: torch.Tensor
    image_size: tuple[int, int]
    margin: int
    anchor: str
    informative: torch.Tensor
    informative_std: float
    metrics: dict = field(default_factory=dict)


def reconstruct_from_predictions(
    patches: torch.Tensor,
    boxes: torch.Tensor,
    pred: torch.Tensor,
    image_size: tuple[int, int],
    reference: int | str | torch.Tensor = "random",
    generator: torch.Generator | None = None,
    anchor: str = "mean",
    margin: int = 0,
    informative_std: float = INFORMATIVE_STD,
) -> Reconstruction:
    """Reconstruction tensors from given patches ``(B,N,C,P,P)``, boxes ``(B,N,4)``, pred ``(B,N,N,k)``.

    ``image_size`` is ``(H, W)``; ``reference``/``generator`` pick the single reference
    (:func:`choose_reference`); ``anchor`` fixes the least-squares gauge (:func:`least_squares_centres`);
    ``margin`` pads the canvases; ``informative_std`` separates informative from ambiguous patches
    (:func:`informative_patches`). Metrics (per image, ``(B,)``):

    * ``error_px`` / ``error_frac``: mean placement error of the non-reference patches, single reference
      (pixels; fraction of the image size, see :func:`placement_errors`);
    * ``lsq_error_px`` / ``lsq_error_frac``: the same for the least-squares placement, over all patches;
    * ``*_informative``: the same four over the informative patches only (NaN when an image has none);
    * ``informative_fraction``: the share of informative patches; ``reference_informative``: 1 when the
      single reference is informative, else 0 (a blank reference misplaces every patch alike).
    """
    boxes, pred = boxes.float(), pred.float()
    b, n = boxes.shape[:2]
    informative = informative_patches(patches, informative_std).to(boxes.device)
    ref = choose_reference(boxes, reference, generator, image_size, informative)
    centres, sizes = place_from_reference(pred, boxes, ref)
    centres_lsq = least_squares_centres(pred, boxes, anchor=anchor, reference=ref)
    gt_canvas, gt_cov = paint_patches(patches, boxes[..., :2], boxes[..., 2:], image_size, margin)
    pred_canvas, pred_cov = paint_patches(patches, centres, sizes, image_size, margin)
    lsq_canvas, lsq_cov = paint_patches(patches, centres_lsq, boxes[..., 2:], image_size, margin)
    err_px, err_frac = placement_errors(centres, boxes, image_size)
    lsq_px, lsq_frac = placement_errors(centres_lsq, boxes, image_size)
    not_ref = torch.arange(n, device=boxes.device)[None, :] != ref[:, None]
    denom = not_ref.float().sum(1).clamp(min=1)
    metrics = {
        "error_px": (err_px * not_ref).sum(1) / denom,
        "error_frac": (err_frac * not_ref).sum(1) / denom,
        "lsq_error_px": lsq_px.mean(1),
        "lsq_error_frac": lsq_frac.mean(1),
        "error_px_informative": masked_mean(err_px, not_ref & informative),
        "error_frac_informative": masked_mean(err_frac, not_ref & informative),
        "lsq_error_px_informative": masked_mean(lsq_px, informative),
        "lsq_error_frac_informative": masked_mean(lsq_frac, informative),
        "informative_fraction": informative.float().mean(1),
        "reference_informative": _gather_rows(informative, ref).float(),
    }
    return Reconstruction(
        boxes, patches, pred, ref, centres, sizes, centres_lsq, gt_canvas, gt_cov, pred_canvas, pred_cov,
        lsq_canvas, lsq_cov, err_px, err_frac, lsq_px, lsq_frac, tuple(image_size), margin, anchor,
        informative, float(informative_std), metrics,
    )


def reconstruct(
    model,
    images: torch.Tensor,
    generator: torch.Generator | None = None,
    reference: int | str | torch.Tensor = "random",
    sampler=None,
    num_patches: int | None = None,
    predict_fn: PredictFn | None = None,
    anchor: str = "mean",
    margin: int = 0,
    informative_std: float = INFORMATIVE_STD,
) -> Reconstruction:
    """Figure 4 as tensors: sample patches, predict all pairs, place them, paint the canvases.

    Args:
        model: PART objective (see :func:`sample_and_predict`).
        images: ``(B, C, H, W)`` in the model's input space.
        generator: seeds the patch positions, then the random reference.
        reference: ``"random"`` (paper), ``"informative"``, ``"center"``, an int or a ``(B,)`` tensor.
        sampler, num_patches, predict_fn: see :func:`sample_and_predict` (e.g. ``sampler="grid"``).
        anchor: least-squares gauge, ``"mean"`` or ``"reference"``.
        margin: canvas padding in pixels around the image.
        informative_std: patch std above which a patch is informative (:data:`INFORMATIVE_STD`).
    Returns:
        :class:`Reconstruction`.
    """
    p = sample_and_predict(model, images, generator, sampler, num_patches, predict_fn)
    return reconstruct_from_predictions(
        p.patches, p.boxes, p.pred, tuple(images.shape[-2:]), reference, generator, anchor, margin,
        informative_std,
    )
