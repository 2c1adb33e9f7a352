"""Pictures for the capability tools (paper §5.1, Figures 4, 5, 6): matplotlib, Agg canvas, no pyplot.

Every figure is a :class:`matplotlib.figure.Figure` drawn on a ``FigureCanvasAgg`` (so nothing touches
the global pyplot backend or opens windows) with ``layout="constrained"`` (no overlapping labels), and
saved as PNG. Axes showing the image plane use image pixel coordinates (x right, y down).

Display: images, patches and canvases are in the model's input space; :class:`Display` maps them back
to ``[0, 1]`` for showing (un-normalising with the training ``mean``/``std`` when given). 1-channel
images are drawn with a gray colour map, 3-channel ones as RGB.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PatchCollection
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

__all__ = [
    "Display", "new_figure", "save_figure", "show_image", "show_canvas", "draw_boxes", "patch_mosaic",
    "show_matrix", "plot_reconstruction", "plot_uncertainty", "plot_symmetry", "UNCOVERED_COLOR",
    "AMBIGUOUS_COLOR",
]

UNCOVERED_COLOR = "#b9c7d8"  # light steel blue: canvas pixels no patch covers (distinct from black/white)
REF_COLOR = "#ff7f0e"  # orange
CERTAIN_COLOR = "#ff7f0e"
UNCERTAIN_COLOR = "#e3007d"
AMBIGUOUS_COLOR = "#9467bd"  # purple: patches without contrast (no recoverable position)


# --------------------------------------------------------------------------------------------
# Display mapping
# --------------------------------------------------------------------------------------------

@dataclass
class Display:
    """Maps model-space tensors ``(..., C, H, W)`` to displayable arrays ``(..., H, W, C)`` in [0, 1].

    ``x * std + mean`` per channel (when given), then ``(x - lo) / (hi - lo)`` clipped to [0, 1]. Build
    it with :meth:`fit` from the image so its patches and canvases share the image's mapping.
    """

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    lo: float = 0.0
    hi: float = 1.0

    @classmethod
    def fit(cls, image: torch.Tensor, mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
            tol: float = 0.02) -> "Display":
        """A mapping for ``image`` ``(C, H, W)``: un-normalise, then keep [0, 1] when the values lie there
        (within ``tol``), else stretch the image's own min..max to [0, 1] (e.g. normalised images whose
        statistics were not given)."""
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std (the training normalisation), or neither")
        d = cls(None if mean is None else tuple(float(m) for m in mean),
                None if std is None else tuple(float(s) for s in std))
        x = d._unnormalize(image.detach().float().cpu())
        lo, hi = float(x.min()), float(x.max())
        if lo < -tol or hi > 1 + tol:
            d.lo, d.hi = lo, hi if hi > lo else lo + 1.0
        return d

    def _unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        if self.mean is None:
            return x
        c = x.shape[-3]
        if len(self.mean) not in (1, c) or len(self.std) not in (1, c):
            raise ValueError(f"mean/std have {len(self.mean)}/{len(self.std)} entries but the images have {c} channels")
        shape = (-1, 1, 1)
        return x * torch.tensor(self.std).view(shape) + torch.tensor(self.mean).view(shape)

    def __call__(self, x: torch.Tensor) -> np.ndarray:
        """``(..., C, H, W)`` tensor -> ``(..., H, W, C)`` float numpy array in [0, 1]."""
        x = self._unnormalize(x.detach().float().cpu())
        x = ((x - self.lo) / (self.hi - self.lo)).clamp(0, 1)
        return x.movedim(-3, -1).numpy()


# --------------------------------------------------------------------------------------------
# Generic helpers
# --------------------------------------------------------------------------------------------

def new_figure(nrows: int, ncols: int, panel: float = 3.2, **subplot_kw) -> tuple[Figure, np.ndarray]:
    """A constrained-layout figure on an Agg canvas with ``nrows x ncols`` axes (2D array)."""
    fig = Figure(figsize=(panel * ncols + 0.6, panel * nrows + 0.5), layout="constrained", dpi=110)
    FigureCanvasAgg(fig)
    axes = np.asarray(fig.subplots(nrows, ncols, squeeze=False, **subplot_kw))
    return fig, axes


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Save ``fig`` as PNG at ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    return path


def _image_axes(ax, height: int, width: int, margin: float = 0.0, labels: bool = True) -> None:
    ax.set_xlim(-margin, width + margin)
    ax.set_ylim(height + margin, -margin)
    ax.set_aspect("equal")
    if labels:
        ax.set_xlabel("x (px)")
        ax.set_ylabel("y (px)")


def show_image(ax, img: np.ndarray, title: str | None = None, alpha: float = 1.0, labels: bool = True):
    """Show ``img`` ``(H, W, C)`` in [0, 1] in pixel coordinates (gray colour map for C = 1)."""
    h, w, c = img.shape
    extent = (0, w, h, 0)
    if c == 1:
        im = ax.imshow(img[..., 0], cmap="gray", vmin=0.0, vmax=1.0, extent=extent, alpha=alpha,
                       interpolation="nearest")
    else:
        im = ax.imshow(img, extent=extent, alpha=alpha, interpolation="nearest")
    _image_axes(ax, h, w, labels=labels)
    if title:
        ax.set_title(title)
    return im


def show_canvas(ax, canvas: np.ndarray, coverage: np.ndarray, image_size: tuple[int, int], margin: int = 0,
                title: str | None = None, labels: bool = True):
    """Show a painted canvas ``(H', W', C)`` in [0, 1]; pixels with ``coverage`` ``(H', W')`` 0 show as
    :data:`UNCOVERED_COLOR`. Axes are image pixel coordinates (the canvas starts at ``-margin``)."""
    h, w = image_size
    rgb = np.repeat(canvas, 3, axis=-1) if canvas.shape[-1] == 1 else canvas
    rgba = np.concatenate([rgb, (coverage > 0)[..., None].astype(rgb.dtype)], axis=-1)
    ax.set_facecolor(UNCOVERED_COLOR)
    ax.imshow(rgba, extent=(-margin, w + margin, h + margin, -margin), interpolation="nearest")
    _image_axes(ax, h, w, margin, labels)
    if margin:
        ax.add_patch(Rectangle((0, 0), w, h, fill=False, ls=":", lw=0.8, ec="k"))
    if title:
        ax.set_title(title)


def draw_boxes(ax, boxes: np.ndarray, color="tab:cyan", lw: float = 0.8, alpha: float = 0.9, ls="-",
               label: str | None = None) -> None:
    """Outline boxes ``(N, 4)`` (cx, cy, w, h) px."""
    boxes = np.asarray(boxes, dtype=float).reshape(-1, 4)
    rects = [Rectangle((cx - bw / 2, cy - bh / 2), bw, bh) for cx, cy, bw, bh in boxes]
    ax.add_collection(PatchCollection(rects, facecolor="none", edgecolor=color, linewidth=lw, alpha=alpha,
                                      linestyle=ls, label=label))


def patch_mosaic(patches: np.ndarray, gap: int = 1) -> tuple[np.ndarray, int]:
    """Tile patches ``(N, P, P, C)`` in [0, 1] into one image with ``gap``-pixel white separators.

    Returns the mosaic ``(rows*(P+gap)-gap, cols*(P+gap)-gap, C)`` and the number of columns.
    """
    n, p, _, c = patches.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    step = p + gap
    out = np.ones((rows * step - gap, cols * step - gap, c), dtype=np.float32)
    for k in range(n):  # display only: N small tiles
        r, q = divmod(k, cols)
        out[r * step:r * step + p, q * step:q * step + p] = patches[k]
    return out, cols


def show_matrix(ax, mat: np.ndarray, title: str, vmax: float, cmap: str = "gray"):
    """Show an ``N x N`` matrix with a symmetric colour range ``[-vmax, vmax]`` (0 = mid gray, paper Fig. 6)."""
    im = ax.imshow(mat, cmap=cmap, vmin=-vmax, vmax=vmax, interpolation="nearest")
    ax.set_title(title)
    ax.set_xlabel("target patch j")
    ax.set_ylabel("reference patch i")
    return im


def _fmt(x: float, digits: int = 2) -> str:
    return "nan" if not np.isfinite(x) else f"{x:.{digits}f}"


def _cloud_limits(h: int, w: int, pts: np.ndarray, pad: float, cap: float = 0.5):
    """Axis limits covering the image and ``pts`` ``(M, 2)`` (capped at ``cap`` image sizes outside)."""
    pts = pts[np.isfinite(pts).all(-1)] if pts.size else pts
    x0, x1, y0, y1 = 0.0, float(w), 0.0, float(h)
    if pts.size:
        x0 = max(min(x0, pts[:, 0].min() - pad), -cap * w)
        x1 = min(max(x1, pts[:, 0].max() + pad), (1 + cap) * w)
        y0 = max(min(y0, pts[:, 1].min() - pad), -cap * h)
        y1 = min(max(y1, pts[:, 1].max() + pad), (1 + cap) * h)
    return x0, x1, y0, y1


def _set_limits(ax, lims) -> None:
    x0, x1, y0, y1 = lims
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    ax.set_aspect("equal")
    ax.set_xlabel("x (px)")
    ax.set_ylabel("y (px)")


# --------------------------------------------------------------------------------------------
# Figure 4: reconstruction
# --------------------------------------------------------------------------------------------

def plot_reconstruction(rec, index: int, image: torch.Tensor, display: Display, path: str | Path,
                        title: str | None = None) -> Path:
    """Figure 4 for image ``index`` of a :class:`~part.visualization.reconstruct.Reconstruction`.

    Panels: input with the sampled boxes (reference in orange; ambiguous patches, those without contrast,
    dashed purple), the input patches (ambiguous ones framed purple), ground-truth placement, placement from
    one reference, least-squares placement from all references (errors over all and over informative
    patches), and the per-patch displacement (true centre -> predicted centre; ambiguous patches hollow,
    dashed). ``image``: ``(C, H, W)`` model space.
    """
    b = index
    h, w = rec.image_size
    m = rec.margin
    ref = int(rec.reference[b])
    boxes = rec.boxes[b].cpu().numpy()
    n = boxes.shape[0]
    good = rec.informative[b].cpu().numpy().astype(bool)
    metrics = {k: float(v[b]) for k, v in rec.metrics.items()}
    amb_label = f"ambiguous (std ≤ {rec.informative_std:g})"

    fig, ax = new_figure(2, 3)
    show_image(ax[0, 0], display(image), f"input: {n} patches, {int(good.sum())} informative")
    draw_boxes(ax[0, 0], boxes[good], color="tab:cyan", lw=0.7, label="informative")
    if (~good).any():
        draw_boxes(ax[0, 0], boxes[~good], color=AMBIGUOUS_COLOR, lw=0.9, ls="--", label=amb_label)
    draw_boxes(ax[0, 0], boxes[ref], color=REF_COLOR, lw=2.0, label="reference")
    ax[0, 0].legend(loc="best", fontsize="x-small", framealpha=0.8, handletextpad=0.2, borderpad=0.3)

    p = rec.patches.shape[-1]
    mosaic, cols = patch_mosaic(display(rec.patches[b]))
    if mosaic.shape[-1] == 1:
        ax[0, 1].imshow(mosaic[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax[0, 1].imshow(mosaic, interpolation="nearest")
    for k in np.flatnonzero(~good):  # display only: frame the ambiguous tiles
        r, q = divmod(int(k), cols)
        ax[0, 1].add_patch(Rectangle((q * (p + 1) - 0.5, r * (p + 1) - 0.5), p, p, fill=False,
                                     ec=AMBIGUOUS_COLOR, lw=1.2, ls="--"))
    ax[0, 1].set_title(f"input patches ({n}, as the model sees them)")
    ax[0, 1].set_xticks([])
    ax[0, 1].set_yticks([])
    ax[0, 1].set_xlabel(f"sampling order, {cols} per row; ambiguous framed")

    def canvas(a, cv, cov, ttl):
        show_canvas(a, display(cv[b]), cov[b, 0].cpu().numpy(), (h, w), m, ttl)

    def errors(key):
        return (f"error {_fmt(metrics[key])} px ({_fmt(100 * metrics[key.replace('px', 'frac')], 1)}% of image)"
                f"\ninformative only {_fmt(metrics[key + '_informative'])} px")

    canvas(ax[0, 2], rec.gt_canvas, rec.gt_coverage, "ground-truth placement")
    ref_tag = "" if good[ref] else " (ambiguous!)"
    canvas(ax[1, 0], rec.pred_canvas, rec.pred_coverage, f"predicted from reference #{ref}{ref_tag}\n"
           + errors("error_px"))
    draw_boxes(ax[1, 0], boxes[ref], color=REF_COLOR, lw=1.5)
    canvas(ax[1, 1], rec.lsq_canvas, rec.lsq_coverage, "least squares, all references\n" + errors("lsq_error_px"))

    a = ax[1, 2]
    true_c = boxes[:, :2]
    pred_c = rec.centres[b].cpu().numpy()
    lsq_c = rec.centres_lsq[b].cpu().numpy()
    show_image(a, display(image), None, alpha=0.35)
    segs = np.stack([true_c, pred_c], axis=1)
    for k, s in enumerate(segs):  # display only
        a.plot(s[:, 0], s[:, 1], color=REF_COLOR if good[k] else AMBIGUOUS_COLOR, lw=0.8, alpha=0.8,
               ls="-" if good[k] else "--")
    a.scatter(true_c[good, 0], true_c[good, 1], s=12, c="k", label="true centre", zorder=3)
    if (~good).any():
        a.scatter(true_c[~good, 0], true_c[~good, 1], s=16, facecolors="none", edgecolors=AMBIGUOUS_COLOR,
                  label="true centre, ambiguous", zorder=3)
    a.scatter(pred_c[:, 0], pred_c[:, 1], s=18, c=REF_COLOR, marker="x", label="one reference", zorder=4)
    a.scatter(lsq_c[:, 0], lsq_c[:, 1], s=18, c="tab:blue", marker="+", label="least squares", zorder=4)
    _set_limits(a, _cloud_limits(h, w, np.concatenate([pred_c, lsq_c]), pad=2.0))
    a.set_title("patch centres: truth vs predicted")
    a.legend(loc="best", fontsize="x-small", framealpha=0.8, handletextpad=0.2, borderpad=0.3)
    fig.suptitle(title or f"Off-grid reconstruction (blue-gray: no patch; anchor: {rec.anchor})")
    out = save_figure(fig, path)
    return out


# --------------------------------------------------------------------------------------------
# Figure 5: uncertainty
# --------------------------------------------------------------------------------------------

def plot_uncertainty(unc, index: int, image: torch.Tensor, display: Display, path: str | Path,
                     targets: Sequence[int] | None = None, title: str | None = None) -> Path:
    """Figure 5 for image ``index`` of an :class:`~part.visualization.uncertainty.Uncertainty`.

    Panels: the image with all sampled boxes and two target patches (default: most and least certain),
    each target's cloud of positions predicted from every other reference, and the heat map of patch
    uncertainty. ``image``: ``(C, H, W)`` model space.
    """
    b = index
    h, w = unc.image_size
    boxes = unc.boxes[b].cpu().numpy()
    spread = unc.spread[b].cpu().numpy()
    n = boxes.shape[0]
    tags = ["", ""]
    if targets is None:
        order = np.argsort(np.nan_to_num(spread, nan=np.inf))
        targets = [int(order[0]), int(order[-1])] if n > 1 else [0]
        tags = [" (most certain)", " (least certain)"]  # by the heat-map measure
    for t in targets:
        if not 0 <= int(t) < n:
            raise ValueError(f"targets must be patch indices in [0, {n}), got {list(targets)}")
    colors = [CERTAIN_COLOR, UNCERTAIN_COLOR]
    img = display(image)
    unit = "px" if unc.measure == "median_dist" else "px²"
    measure_name = "mean distance to median" if unc.measure == "median_dist" else "trace of covariance"

    ncols = max(2, len(targets))
    fig, ax = new_figure(2, ncols, panel=3.6)
    show_image(ax[0, 0], img, f"input: {n} patches, {len(targets)} targets")
    draw_boxes(ax[0, 0], boxes, color="tab:cyan", lw=0.6, alpha=0.7)
    positions = unc.positions[b].cpu().numpy()  # (N_ref, N_tgt, 2)
    for k, t in enumerate(targets):
        col = colors[k % len(colors)]
        draw_boxes(ax[0, 0], boxes[t], color=col, lw=2.0)
        a = ax[1, k]
        cloud = np.delete(positions[:, t], t, axis=0)
        show_image(a, img, None, alpha=0.35)
        draw_boxes(a, boxes[t], color=col, lw=1.5)
        a.scatter(cloud[:, 0], cloud[:, 1], s=12, c=col, alpha=0.8, label="from each reference", zorder=3)
        a.scatter([boxes[t, 0]], [boxes[t, 1]], s=90, c="k", marker="*", label="true centre", zorder=4)
        med = unc.median[b, t].cpu().numpy()
        a.scatter([med[0]], [med[1]], s=50, c="tab:blue", marker="x", label="median", zorder=5)
        _set_limits(a, _cloud_limits(h, w, cloud, pad=2.0))
        a.set_title(f"target #{t}{tags[k] if k < len(tags) else ''}\n"
                    f"spread {_fmt(float(spread[t]))} {unit}, trace cov {_fmt(float(unc.trace_cov[b, t]), 1)} px²")
        a.legend(loc="best", fontsize="x-small", framealpha=0.8, handletextpad=0.2, borderpad=0.3)
    for k in range(len(targets), ncols):
        ax[1, k].set_axis_off()

    a = ax[0, 1]
    show_image(a, img, None, alpha=0.5)
    heat = unc.heatmap[b].cpu().numpy()
    im = a.imshow(np.ma.masked_invalid(heat), cmap="viridis", alpha=0.85, extent=(0, w, h, 0),
                  interpolation="nearest")
    _image_axes(a, h, w)
    a.set_title("uncertainty per patch box\n(overlaps averaged; no patch: image)")
    fig.colorbar(im, ax=a, shrink=0.9, label=f"{measure_name} ({unit})")
    for k in range(2, ncols):
        ax[0, k].set_axis_off()
    mean_spread = float(unc.metrics["mean_median_dist_px"][b])
    fig.suptitle(title or f"Patch uncertainty: mean distance to median {_fmt(mean_spread)} px")
    return save_figure(fig, path)


# --------------------------------------------------------------------------------------------
# Figure 6: symmetry
# --------------------------------------------------------------------------------------------

def plot_symmetry(sym, index: int, path: str | Path, title: str | None = None) -> Path:
    """Figure 6 for image ``index`` of a :class:`~part.visualization.symmetry.Symmetry`.

    Two rows (x, y translations), four columns: prediction and ground truth with patches ordered
    top-left -> bottom-right, then both with a random order. One colour scale per row, centred at 0
    (bright positive, dark negative, gray zero), in units of the reference box size.
    """
    b = index
    fig, ax = new_figure(2, 4, panel=2.9)
    names = ("x", "y")
    for r in range(2):
        mats = [
            (sym.pred_ordered[b, ..., r], "predicted, ordered"),
            (sym.target_ordered[b, ..., r], "ground truth, ordered"),
            (sym.pred_shuffled[b, ..., r], "predicted, shuffled"),
            (sym.target_shuffled[b, ..., r], "ground truth, shuffled"),
        ]
        vmax = float(max(sym.target[b, ..., r].abs().max(), 1e-6))
        im = None
        for c, (mat, ttl) in enumerate(mats):
            im = show_matrix(ax[r, c], mat.cpu().numpy(), f"Δ{names[r]}: {ttl}", vmax)
            if c:
                ax[r, c].set_ylabel("")
        fig.colorbar(im, ax=ax[r, :].tolist(), shrink=0.85,
                     label=f"Δ{names[r]} (reference box {'widths' if r == 0 else 'heights'})")
    neg = sym.neg_symmetry[b].cpu().numpy()
    corr = sym.corr_gt[b].cpu().numpy()
    mt = {k: float(v[b]) for k, v in sym.metrics.items()}
    n = sym.pred.shape[1]
    k = int(sym.informative[b].sum())
    fig.suptitle(title or (
        f"{n}x{n} prediction matrices: negative symmetry corr(P, -Pᵀ) x {_fmt(neg[0], 3)}, y {_fmt(neg[1], 3)}; "
        f"corr with truth x {_fmt(corr[0], 3)}, y {_fmt(corr[1], 3)}\n"
        f"pairs of the {k} informative patches: negative symmetry x {_fmt(mt['neg_symmetry_x_informative'], 3)}, "
        f"y {_fmt(mt['neg_symmetry_y_informative'], 3)}; corr with truth x {_fmt(mt['corr_gt_x_informative'], 3)}, "
        f"y {_fmt(mt['corr_gt_y_informative'], 3)}"))
    return save_figure(fig, path)
