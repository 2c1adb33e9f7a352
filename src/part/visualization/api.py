"""``visualize(kind, model_or_run, images, out_dir)``: PART's capabilities as pictures + numbers (paper §5.1).

The user-facing entry point behind ``part visualize {reconstruct,uncertainty,symmetry} --run RUN
--images PATH --out DIR``. It loads a pretrained PART objective (a run folder or a model object), reads
images (tensor, image file, folder of images, IDX or ``.npz`` file), runs the tensor function of the
chosen capability, and writes one PNG per image plus one JSON with the numbers:

* ``reconstruct`` (Fig. 4): :func:`part.visualization.reconstruct.reconstruct` -> ``reconstruct_000.png``...,
  ``reconstruct.json`` (placement error in px and as a fraction of the image size, single reference and
  least squares, over all patches and over the informative ones: blank patches have no recoverable position,
  ``informative_std``);
* ``uncertainty`` (Fig. 5): :func:`part.visualization.uncertainty.uncertainty` -> ``uncertainty_*.png``,
  ``uncertainty.json`` (per-patch spread of the predicted positions);
* ``symmetry`` (Fig. 6): :func:`part.visualization.symmetry.symmetry` -> ``symmetry_*.png``,
  ``symmetry.json`` (negative-symmetry score corr(P, -P^T), correlation with the truth; all pairs and the
  pairs of two informative patches).

Images read from files are taken as ``[0, 1]`` pixels and normalised with the training ``mean``/``std``
before the model sees them; pictures show them un-normalised.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np
import torch
import torch.nn as nn

from ..data.errors import DatasetFormatError, missing_path
from ..data.images import (
    IMAGE_EXTENSIONS,
    NpzDataset,
    convert_channels,
    find_images,
    fit_image_size,
    read_idx,
    read_image,
    to_unit_float,
)
from ..data.transforms import size_pair
from ..engine import check_writer, data_defaults, load_run, writes_into
from ..engine.resolve import resolve
from ..evaluation.metrics import save_results_json
from .plots import Display, plot_reconstruction, plot_symmetry, plot_uncertainty
from .reconstruct import INFORMATIVE_STD, reconstruct
from .symmetry import symmetry
from .uncertainty import uncertainty

__all__ = ["KINDS", "PARTLike", "VisualizationOutput", "visualize", "load_images", "load_model"]

KINDS = ("reconstruct", "uncertainty", "symmetry")


@runtime_checkable
class PARTLike(Protocol):
    """What :func:`visualize` needs of a model object (an ``nn.Module``), e.g. :class:`part.PARTModel`.

    * ``sample(images (B, C, H, W), generator) -> (patches, boxes (B, N, 4))`` and
      ``predict_matrix(patches) -> (B, N, N, k)``: the pairwise relative predictions;
    * ``backbone``: ``patch_size`` (the smallest image side), ``img_size`` (``(H, W)`` images are resized
      to, or ``None`` for any size) and ``patch_embed.in_chans`` (channels, or ``None``);
    * ``sampler``: the patch sampler, whose ``name`` goes into the JSON.
    """

    backbone: Any
    sampler: Any

    def sample(self, images: torch.Tensor, generator: torch.Generator | None = None): ...

    def predict_matrix(self, patches: torch.Tensor) -> torch.Tensor: ...


@dataclass
class VisualizationOutput:
    """What :func:`visualize` wrote and computed.

    kind; figures: one PNG path per image; json_path; summary: metric -> mean over images;
    per_image: one dict of numbers per image; result: the tensor dataclass (``Reconstruction``,
    ``Uncertainty`` or ``Symmetry``) for scripting.
    """

    kind: str
    figures: list[Path]
    json_path: Path
    summary: dict[str, float]
    per_image: list[dict[str, Any]]
    result: Any = field(repr=False, default=None)


# --------------------------------------------------------------------------------------------
# Model / run folder
# --------------------------------------------------------------------------------------------

def load_model(model_or_run) -> tuple[Any, dict[str, Any], str]:
    """Resolve ``model_or_run`` to ``(model, data_settings, description)``.

    A path is a run folder written by ``part pretrain`` (``config.yaml`` and weights: ``weights.safetensors``
    or a checkpoint) or a folder of ``part export --relative-encoder``, found by
    :func:`part.engine.resolve.resolve` and loaded with :func:`part.engine.load_run`;
    ``data_settings`` then holds the config's ``data`` fields ``image_size``, ``channels``, ``mean``,
    ``std``, with unset ones resolved as training resolved them (:func:`part.engine.data_defaults`).
    Any other object is used as the model itself (empty settings).
    """
    if not isinstance(model_or_run, (str, os.PathLike)):
        if model_or_run is None:
            raise ValueError("model_or_run must be a PART model or a run folder path, got None")
        return model_or_run, {}, type(model_or_run).__name__
    run = Path(model_or_run)
    if not run.exists():
        raise missing_path(run, "run folder")
    if not run.is_dir():
        raise ValueError(f"run must be a run folder written by `part pretrain`, got a file: {run}")
    src = resolve(run, "run")  # the one resolver: a run folder without weights fails here, naming them
    if src.kind not in ("run", "published"):
        why = "has no config.yaml; cannot rebuild the model" if not (run / "config.yaml").is_file() else "has no weights"
        raise ValueError(f"run folder {run} {why} (an export of the backbone alone has no relative encoder; "
                         "pass a run folder or a folder of part export --relative-encoder)")
    model, config = load_run(run)
    data = data_defaults(config)  # unset fields as training resolved them (model size, dataset statistics)
    settings = {"image_size": data.image_size, "channels": data.channels, "mean": data.mean, "std": data.std}
    return model, settings, str(run)


def _model_geometry(model: PARTLike) -> tuple[int, int | None, tuple[int, int] | None]:
    """``(patch_size, in_channels, img_size)`` of the model's backbone (see :class:`PARTLike`)."""
    backbone = model.backbone
    size = backbone.img_size
    return backbone.patch_size, backbone.patch_embed.in_chans, (tuple(size) if size is not None else None)


def _read_file(path: Path, channels: int | None, limit: int | None) -> tuple[list[torch.Tensor], list[str]]:
    """The images of one file: an image (Pillow), an ``.npz`` archive or an IDX file (plain or gzip)."""
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return [to_unit_float(read_image(path, "L" if channels == 1 else "RGB"))], [path.name]
    if suffix == ".npz":
        ds = NpzDataset(path, max_samples=limit)
        return [ds[i][0] for i in range(len(ds))], [f"{path.name}[{i}]" for i in range(len(ds))]
    try:  # anything else must be an IDX file (plain or gzip), e.g. t10k-images-idx3-ubyte.gz
        arr = read_idx(path)
    except DatasetFormatError as exc:
        raise ValueError(
            f"images: {path} is not an image ({', '.join(e.lstrip('.') for e in IMAGE_EXTENSIONS)}), "
            f"IDX or .npz file ({exc})"
        ) from None
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise ValueError(f"images: IDX file {path} must hold images (N, H, W), got shape {arr.shape}")
    arr = arr[:limit] if limit else arr
    imgs = [to_unit_float(torch.from_numpy(a)).unsqueeze(0) for a in arr]
    return imgs, [f"{path.name}[{i}]" for i in range(len(imgs))]


def load_images(
    source,
    channels: int | None = None,
    image_size: int | Sequence[int] | None = None,
    num_images: int | None = None,
    min_size: int | None = None,
) -> tuple[torch.Tensor, list[str]]:
    """Read images into one ``(B, C, H, W)`` float tensor in ``[0, 1]`` (tensors are passed through).

    Files are read by :mod:`part.data.images`' readers, the same ones training uses.

    Args:
        source: a tensor ``(B, C, H, W)`` / ``(C, H, W)`` / ``(H, W)`` (uint8 is divided by 255), an image
            file (png/jpg/jpeg/bmp/webp, via Pillow), a folder (its image files, recursively, sorted), an
            ``.npz`` archive (:class:`part.data.images.NpzDataset` keys) or an IDX file (plain or ``.gz``).
        channels: 1 or 3 to convert to (None keeps the source's).
        image_size: int or ``(H, W)`` to resize to (bilinear, antialiased); None keeps the size, which
            must then agree across images.
        num_images: keep the first k images.
        min_size: smallest accepted side (the patch size): smaller images raise ``ValueError``.
    Returns:
        ``(images (B, C, H, W), names)``, names identifying each image's source.
    """
    if num_images is not None and (isinstance(num_images, bool) or not isinstance(num_images, int) or num_images <= 0):
        raise ValueError(f"num_images must be a positive int, got {num_images!r}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1, 3 or None, got {channels!r}")
    size = None if image_size is None else size_pair(image_size, "image_size")
    if isinstance(source, torch.Tensor):
        t = source.detach()
        if t.dim() == 2:
            t = t[None, None]
        elif t.dim() == 3:
            t = t[None]
        if t.dim() != 4:
            raise ValueError(f"images tensor must be (B, C, H, W), (C, H, W) or (H, W), got shape {tuple(source.shape)}")
        t = to_unit_float(t)
        imgs = list(t[:num_images] if num_images else t)
        names = [f"tensor[{i}]" for i in range(len(imgs))]
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise missing_path(path, "images path")
        if path.is_dir():
            files = find_images(path)
            if not files:
                raise ValueError(
                    f"images: folder {path} holds no image files ({', '.join(IMAGE_EXTENSIONS)})"
                )
            files = files[:num_images] if num_images else files
            imgs = [to_unit_float(read_image(f, "L" if channels == 1 else "RGB")) for f in files]
            names = [str(f.relative_to(path)) for f in files]
        else:
            imgs, names = _read_file(path, channels, num_images)
    else:
        raise ValueError(f"images must be a tensor or a path, got {type(source).__name__}")
    if not imgs:
        raise ValueError(f"images: no images found in {source if not isinstance(source, torch.Tensor) else 'tensor'}")

    out = []
    for img, name in zip(imgs, names):
        h, w = img.shape[-2:]
        if min_size is not None and (h < min_size or w < min_size):
            raise ValueError(f"images: {name} is {h}x{w} pixels, smaller than the patch size {min_size}")
        if img.shape[0] not in (1, 3):
            raise ValueError(f"images: {name} has {img.shape[0]} channels; expected 1 or 3")
        img = convert_channels(img, channels)
        out.append(fit_image_size(img, size))
    shapes = {tuple(i.shape) for i in out}
    if len(shapes) > 1:
        raise ValueError(f"images have different shapes {sorted(shapes)}; pass image_size to resize them")
    return torch.stack(out), names


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------

def _per_image(metrics: dict[str, torch.Tensor], b: int) -> dict[str, float]:
    return {k: float(v[b]) for k, v in metrics.items()}


def _summary(per_image: list[dict[str, Any]], keys: Sequence[str]) -> dict[str, float]:
    out = {}
    for k in keys:
        vals = np.array([d[k] for d in per_image], dtype=float)
        out[k] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
    return out


def visualize(
    kind: str,
    model_or_run,
    images,
    out_dir: str | os.PathLike,
    num_images: int = 4,
    seed: int = 0,
    *,
    reference: int | str = "random",
    sampler: str | None = None,
    num_patches: int | None = None,
    anchor: str = "mean",
    margin: int = 0,
    measure: str = "median_dist",
    targets: Sequence[int] | None = None,
    row_height: float | None = None,
    informative_std: float = INFORMATIVE_STD,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    image_size: int | Sequence[int] | None = None,
    channels: int | None = None,
    images_normalized: bool = False,
    predict_fn=None,
    device: str | torch.device | None = None,
) -> VisualizationOutput:
    """Draw one of PART's capabilities (paper §5.1) for a few images and save PNGs + a JSON of numbers.

    Args:
        kind: ``"reconstruct"`` (Fig. 4), ``"uncertainty"`` (Fig. 5) or ``"symmetry"`` (Fig. 6).
        model_or_run: a run folder (``config.yaml`` + ``weights.safetensors``, loaded with
            :func:`part.engine.load_run`; image size, channels and mean/std come from its ``data``
            config) or a PART objective (an ``nn.Module`` with the members of :class:`PARTLike`).
        images: tensor, image file, folder of images, IDX or ``.npz`` file (see :func:`load_images`).
        out_dir: folder for ``<kind>_<i>.png`` and ``<kind>.json`` (created).
        num_images: how many images (the first ones) to draw.
        seed: seeds patch positions, the random reference and the shuffled order.
        reference: reconstruction reference (``"random"``, ``"informative"``, ``"center"`` or an index).
        sampler: override the model's sampler (``"offgrid"``, ``"grid"``); num_patches: N for it.
        anchor: least-squares gauge, ``"mean"`` or ``"reference"``; margin: canvas padding (px).
        measure: uncertainty heat-map spread, ``"median_dist"`` or ``"trace_cov"``; targets: patch
            indices whose clouds to draw (default: the most and least certain).
        row_height: symmetry ordering row binning (default: exact ``(cy, cx)`` order).
        informative_std: reconstruction and symmetry numbers are also reported over the patches whose
            pixel std (model input space, i.e. normalised) exceeds this
            (:data:`part.visualization.reconstruct.INFORMATIVE_STD`); the figure marks the others.
        mean, std: training normalisation (override the run's); image_size, channels: likewise.
        images_normalized: a tensor ``images`` is already normalised (only un-normalised for display).
        predict_fn: optional ``(patches, boxes) -> (B, N, N, k)`` replacing ``model.predict_matrix``.
        device: where to run (the model is moved there when given); default: the model's device.
    Returns:
        :class:`VisualizationOutput`.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an int, got {seed!r}")
    run = Path(model_or_run) if isinstance(model_or_run, (str, os.PathLike)) else None
    check_writer(run, out_dir)  # fails now, not after the work, while the run is in use
    model, settings, model_desc = load_model(model_or_run)
    if not (isinstance(model, nn.Module) and isinstance(model, PARTLike)):
        raise ValueError(
            f"model_or_run must be a PART objective with sample() and predict_matrix() (an nn.Module with "
            f"backbone and sampler, e.g. part.PARTModel); got {type(model).__name__}"
        )
    mean = mean if mean is not None else settings.get("mean")
    std = std if std is not None else settings.get("std")
    model, x, names = _inputs(model, images, num_images, mean, std, channels or settings.get("channels"),
                              image_size if image_size is not None else settings.get("image_size"),
                              images_normalized, device)
    common = dict(sampler=sampler, num_patches=num_patches, predict_fn=predict_fn)
    res = _compute(kind, model, x, seed, common, reference=reference, anchor=anchor, margin=margin,
                   measure=measure, row_height=row_height, informative_std=informative_std)
    chosen = {"reference": reference if not isinstance(reference, torch.Tensor) else "tensor",
                "sampler": sampler or model.sampler.name, "anchor": anchor, "margin": margin, "measure": measure,
                "row_height": row_height, "informative_std": informative_std,
                "mean": list(mean) if mean is not None else None, "std": list(std) if std is not None else None}
    head = {"kind": kind, "model": model_desc,
            "images": str(images) if not isinstance(images, torch.Tensor) else "tensor"}
    with writes_into(run, Path(out_dir)):  # one writer per run folder (part.engine.runfolder)
        return _write(kind, res, x, names, Path(out_dir), mean, std, targets, head, seed, chosen)


def _compute(kind: str, model: nn.Module, x: torch.Tensor, seed: int, common: dict, *, reference, anchor: str,
             margin: int, measure: str, row_height, informative_std: float):
    """The numbers of one capability for images ``x`` ``(B, C, H, W)`` (normalised), on the CPU: patch positions
    and the random reference drawn from a generator seeded with ``seed``; ``common``: sampler, num_patches,
    predict_fn."""
    gen = torch.Generator().manual_seed(seed)
    if kind == "reconstruct":
        res = reconstruct(model, x, gen, reference=reference, anchor=anchor, margin=margin,
                          informative_std=informative_std, **common)
    elif kind == "uncertainty":
        res = uncertainty(model, x, gen, measure=measure, **common)
    else:
        res = symmetry(model, x, gen, row_height=row_height, informative_std=informative_std, **common)
    return _to_cpu(res)


def _inputs(model, images, num_images, mean, std, channels, size, images_normalized: bool, device):
    """``(model on device, x (B, C, H, W) as the model sees them, names)``: images read at the model's (or the
    given) size and channels, normalised with ``mean`` / ``std`` unless ``images_normalized``."""
    patch, model_chans, model_size = _model_geometry(model)
    if (mean is None) != (std is None):
        raise ValueError(f"give both mean and std or neither (mean={mean!r}, std={std!r})")
    size = model_size if size is None else size_pair(size, "image_size")
    raw, names = load_images(images, channels or model_chans, size, num_images, min_size=patch)
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    else:
        model = model.to(device)
    raw = raw.to(device)
    if mean is None or images_normalized:
        return model, raw, names
    c = raw.shape[1]
    mt = torch.tensor([float(m) for m in mean], device=device)
    st = torch.tensor([float(s) for s in std], device=device)
    if mt.numel() not in (1, c) or st.numel() not in (1, c):
        raise ValueError(f"mean/std have {mt.numel()}/{st.numel()} entries but the images have {c} channels")
    return model, (raw - mt.view(1, -1, 1, 1)) / st.view(1, -1, 1, 1), names


def _write(kind: str, res, x: torch.Tensor, names: list[str], out_dir: Path, mean, std, targets, head: dict,
           seed: int, settings: dict) -> VisualizationOutput:
    """One PNG per image and ``<kind>.json`` (numbers per image and their means) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    figures, per_image = [], []
    x_cpu = x.detach().cpu()
    for b in range(x_cpu.shape[0]):
        path = out_dir / f"{kind}_{b:03d}.png"
        display = Display.fit(x_cpu[b], mean, std)
        if kind == "reconstruct":
            plot_reconstruction(res, b, x_cpu[b], display, path)
            extra = {"reference": int(res.reference[b]),
                     "patch_error_px": res.error_px[b], "patch_lsq_error_px": res.lsq_error_px[b],
                     "patch_informative": res.informative[b].tolist()}
        elif kind == "uncertainty":
            plot_uncertainty(res, b, x_cpu[b], display, path, targets=targets)
            extra = {"patch_median_dist_px": res.median_dist[b], "patch_trace_cov_px2": res.trace_cov[b]}
        else:
            plot_symmetry(res, b, path)
            extra = {"patch_informative": res.informative[b].tolist()}
        figures.append(path)
        per_image.append({"index": b, "name": names[b], "figure": path.name, **_per_image(res.metrics, b), **extra})
    summary = _summary(per_image, list(res.metrics))
    results = {**head, "num_images": len(per_image), "image_size": list(x.shape[-2:]), "channels": int(x.shape[1]),
               "num_patches": int(res.boxes.shape[1]), "seed": seed, "settings": settings, "units": _UNITS[kind],
               "summary": summary, "per_image": per_image}
    json_path = save_results_json(out_dir / f"{kind}.json", results)
    return VisualizationOutput(kind, figures, json_path, summary, per_image, res)


_UNITS = {
    "reconstruct": {
        "error_px": "mean distance (px) of the non-reference patches' predicted centres to the truth, one reference",
        "error_frac": "the same with dx over image width and dy over image height",
        "lsq_error_px": "mean distance (px), least-squares placement from all pairwise predictions (gauge: anchor)",
        "lsq_error_frac": "the same as a fraction of the image size",
        "error_px_informative": "error_px over the informative patches (pixel std > settings.informative_std)",
        "error_frac_informative": "error_frac over the informative patches",
        "lsq_error_px_informative": "lsq_error_px over the informative patches",
        "lsq_error_frac_informative": "lsq_error_frac over the informative patches",
        "informative_fraction": "share of patches with pixel std > settings.informative_std (model input space); "
                                "the others (e.g. blank background) have no recoverable position",
        "reference_informative": "1 when the single reference patch is informative, else 0",
    },
    "uncertainty": {
        "mean_median_dist_px": "mean over patches of the mean distance (px) of the per-reference estimates to their median",
        "mean_median_dist_frac": "the same over the image diagonal",
        "mean_trace_cov_px2": "mean over patches of the trace of the estimates' covariance (px^2)",
        "consensus_error_px": "mean distance (px) of the median estimate to the true centre",
    },
    "symmetry": {
        "neg_symmetry_x": "Pearson corr(P_ij, -P_ji) over off-diagonal entries, x translations",
        "neg_symmetry_y": "the same for y",
        "corr_gt_x": "Pearson corr of predicted and true x translations (off-diagonal)",
        "corr_gt_y": "the same for y",
        "mae_gt": "mean absolute error of the off-diagonal translations (reference-box units)",
        "neg_symmetry_x_informative": "neg_symmetry_x over the pairs of two informative patches",
        "neg_symmetry_y_informative": "neg_symmetry_y over the pairs of two informative patches",
        "corr_gt_x_informative": "corr_gt_x over the pairs of two informative patches",
        "corr_gt_y_informative": "corr_gt_y over the pairs of two informative patches",
        "mae_gt_informative": "mae_gt over the pairs of two informative patches",
        "informative_fraction": "share of patches with pixel std > settings.informative_std (model input space)",
    },
}


def _to_cpu(obj):
    """Move every tensor field of a result dataclass (and its metrics dict) to the CPU."""
    for name, value in vars(obj).items():
        if isinstance(value, torch.Tensor):
            setattr(obj, name, value.detach().cpu())
        elif isinstance(value, dict):
            setattr(obj, name, {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in value.items()})
    return obj
