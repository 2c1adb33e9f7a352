"""RandAugment on tensors (no torchvision, no PIL), as timm's ``rand-m9-mstd0.5-inc1`` in DeiT's recipe.

Paper App. 8.1: fine-tuning "adhere[s] strictly to the supervised training protocols recommended in DeiT",
whose training augmentation is RandAugment ``rand-m9-mstd0.5-inc1`` (timm's notation), random erasing
and repeated augmentation. This module is the RandAugment part; :class:`part.data.transforms.RandomErasing`
and :class:`part.engine.loader.RepeatedAugmentation` are the others.

Images are float tensors in [0, 1] of shape ``(..., C, H, W)`` (one image ``(C, H, W)`` or a batch
``(B, C, H, W)``, one parameter for all); every op returns the same shape, in [0, 1]. The ops follow timm's
(which call Pillow) op for op:

* level ops (:func:`auto_contrast`, :func:`equalize`, :func:`posterize`, :func:`solarize`,
  :func:`solarize_add`) act on the 256 8-bit levels: the image is rounded to ``k / 255`` first and the result
  is on that grid, equal to Pillow's output on the rounded image (``tests/data/test_randaugment.py`` holds
  them equal to Pillow);
* blend ops (:func:`adjust_color`, :func:`adjust_contrast`, :func:`adjust_brightness`,
  :func:`adjust_sharpness`) blend with Pillow's "degenerate" image (grey luma, mean grey, black, 3x3 SMOOTH
  filter with the border kept) in float; Pillow rounds to 8 bits after each step, this does not (within one
  level of Pillow);
* geometric ops (:func:`rotate`, :func:`shear_x`, :func:`shear_y`, :func:`translate_x`,
  :func:`translate_y`) use Pillow's affine convention (output pixel centre ``(x + 1/2, y + 1/2)`` maps to
  input ``(a x + b y + c, d x + e y + f)``) and fill uncovered pixels with ``fill`` (DeiT: the dataset mean);
  sampling is bilinear or Pillow's bicubic (clamped to [0, 1]), the image treated as padded with ``fill``
  (inside the image within one level of Pillow; Pillow clamps to the edge pixel near the border instead).

Magnitudes (timm ``auto_augment.py``): a level ``m`` in [0, 10]; ``mstd`` adds Gaussian noise of that std
to ``m`` each time an op is applied (``mstd`` > 100: uniform in [0, m]), clipped to [0, ``mmax`` = 10];
each chosen op is applied with probability 1/2; ``n`` ops are drawn with replacement. ``inc1`` selects the
"increasing" op set, whose strength grows with ``m`` for every op.

Randomness: every draw comes from the ``torch.Generator`` given, or the global torch RNG (what
:class:`part.engine.loader.SeededItems` seeds per item), a fixed number of draws per call.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "RAND_OPS",
    "RAND_INCREASING_OPS",
    "LEVEL_DENOM",
    "RandAugmentSpec",
    "parse_randaugment",
    "RandAugment",
    "op_arguments",
    "apply_op",
    "auto_contrast",
    "equalize",
    "invert",
    "posterize",
    "solarize",
    "solarize_add",
    "adjust_color",
    "adjust_contrast",
    "adjust_brightness",
    "adjust_sharpness",
    "affine",
    "rotate",
    "shear_x",
    "shear_y",
    "translate_x",
    "translate_y",
]

LEVEL_DENOM = 10.0  # magnitude m is a level out of 10 (timm's _LEVEL_DENOM)

# timm's _RAND_TRANSFORMS and _RAND_INCREASING_TRANSFORMS (Cutout is random erasing, separately)
RAND_OPS: tuple[str, ...] = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd", "Color",
    "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel",
)
RAND_INCREASING_OPS: tuple[str, ...] = (
    "AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing", "SolarizeAdd",
    "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY",
    "TranslateXRel", "TranslateYRel",
)

INTERPOLATIONS = ("bilinear", "bicubic")
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, Pillow's convert("L")


# ------------------------------------------------------------------------------------------------------
# level ops: on the 8-bit grid
# ------------------------------------------------------------------------------------------------------
def _levels(img: Tensor) -> Tensor:
    """``(..., C, H, W)`` in [0, 1] -> int64 levels 0..255 of the same shape."""
    return (img * 255.0).round().clamp(0, 255).to(torch.int64)


def _from_levels(q: Tensor, like: Tensor) -> Tensor:
    return q.to(like.dtype) / 255.0


def _apply_lut(q: Tensor, lut: Tensor) -> Tensor:
    """``q (..., C, H, W)`` levels through per-(image, channel) tables ``lut (R, 256)``, R = prod(...)*C."""
    flat = q.reshape(-1, q.shape[-2] * q.shape[-1])
    return lut.gather(1, flat).reshape(q.shape)


def _histograms(q: Tensor) -> Tensor:
    """``(R, 256)`` int64 histograms of each image channel of the levels ``q (..., C, H, W)``."""
    flat = q.reshape(-1, q.shape[-2] * q.shape[-1])
    return torch.zeros(flat.shape[0], 256, dtype=torch.int64, device=q.device).scatter_add_(
        1, flat, torch.ones_like(flat))


def auto_contrast(img: Tensor) -> Tensor:
    """Stretch each channel's levels from [lo, hi] to [0, 255] (Pillow ``ImageOps.autocontrast``, cutoff 0):
    ``floor((v - lo) * 255 / (hi - lo))``; a channel with one level is unchanged. ``(..., C, H, W)``."""
    q = _levels(img)
    hist = _histograms(q)
    present = hist > 0
    lo = present.to(torch.int64).argmax(1)
    hi = 255 - present.flip(1).to(torch.int64).argmax(1)
    scale = 255.0 / (hi - lo).clamp(min=1).to(torch.float64)
    offset = -lo.to(torch.float64) * scale
    ramp = torch.arange(256, dtype=torch.float64, device=q.device)
    lut = torch.trunc(ramp * scale[:, None] + offset[:, None]).clamp(0, 255).to(torch.int64)
    lut = torch.where((hi > lo)[:, None], lut, ramp.to(torch.int64))
    return _from_levels(_apply_lut(q, lut), img)


def equalize(img: Tensor) -> Tensor:
    """Histogram equalisation per channel (Pillow ``ImageOps.equalize``): with ``step = (pixels - count of
    the top level) // 255``, level ``i`` maps to ``(step // 2 + #pixels below i) // step``; a channel with one
    level (or step 0) is unchanged. ``(..., C, H, W)``."""
    q = _levels(img)
    hist = _histograms(q)
    total = hist.sum(1)
    top = 255 - (hist > 0).flip(1).to(torch.int64).argmax(1)
    step = (total - hist.gather(1, top[:, None])[:, 0]) // 255
    below = hist.cumsum(1) - hist
    lut = ((step[:, None] // 2 + below) // step.clamp(min=1)[:, None]).clamp(0, 255)
    keep = ((hist > 0).sum(1) <= 1) | (step == 0)
    lut = torch.where(keep[:, None], torch.arange(256, device=q.device), lut)
    return _from_levels(_apply_lut(q, lut), img)


def invert(img: Tensor) -> Tensor:
    """``1 - x`` (Pillow ``ImageOps.invert``). ``(..., C, H, W)``."""
    return 1.0 - img


def posterize(img: Tensor, bits: int) -> Tensor:
    """Keep the ``bits`` most significant bits of each 8-bit level (0 bits: black; 8 or more: unchanged)."""
    if bits >= 8:
        return img
    mask = ~(2 ** (8 - max(int(bits), 0)) - 1) & 0xFF
    return _from_levels(_levels(img) & mask, img)


def solarize(img: Tensor, threshold: int) -> Tensor:
    """Levels at or above ``threshold`` (0..256) are inverted (``255 - v``); 256 leaves the image unchanged."""
    q = _levels(img)
    return _from_levels(torch.where(q >= threshold, 255 - q, q), img)


def solarize_add(img: Tensor, add: int, threshold: int = 128) -> Tensor:
    """Levels below ``threshold`` get ``+ add``, clipped at 255 (timm ``solarize_add``)."""
    q = _levels(img)
    return _from_levels(torch.where(q < threshold, (q + add).clamp(max=255), q), img)


# ------------------------------------------------------------------------------------------------------
# blend ops (Pillow ImageEnhance): out = degenerate + factor * (img - degenerate), clipped
# ------------------------------------------------------------------------------------------------------
def _grey(img: Tensor) -> Tensor:
    """``(..., 1, H, W)`` luma of RGB (Pillow ``convert("L")``); the channel mean for other channel counts."""
    if img.shape[-3] == 3:
        w = torch.tensor(_LUMA, dtype=img.dtype, device=img.device).view(3, 1, 1)
        return (img * w).sum(-3, keepdim=True)
    return img.mean(-3, keepdim=True)


def _blend(degenerate: Tensor, img: Tensor, factor: float) -> Tensor:
    return (degenerate + float(factor) * (img - degenerate)).clamp(0.0, 1.0)


def adjust_color(img: Tensor, factor: float) -> Tensor:
    """Saturation: blend with the grey image (factor 0: grey, 1: unchanged). One channel: unchanged."""
    return _blend(_grey(img).expand_as(img), img, factor)


def adjust_contrast(img: Tensor, factor: float) -> Tensor:
    """Blend with the image's mean grey level (rounded to 8 bits, as Pillow) (factor 0: flat grey)."""
    mean = (_grey(img).mean((-3, -2, -1), keepdim=True) * 255.0).round() / 255.0
    return _blend(mean.expand_as(img), img, factor)


def adjust_brightness(img: Tensor, factor: float) -> Tensor:
    """Blend with black: ``factor * x`` clipped (factor 0: black)."""
    return _blend(torch.zeros_like(img), img, factor)


def adjust_sharpness(img: Tensor, factor: float) -> Tensor:
    """Blend with Pillow's SMOOTH filter (3x3 kernel ``[[1,1,1],[1,5,1],[1,1,1]] / 13``, border pixels kept)
    (factor 0: smoothed, 2: sharpened). Images smaller than 3x3 are unchanged."""
    h, w = img.shape[-2:]
    if h < 3 or w < 3:
        return img
    c = img.shape[-3]
    flat = img.reshape(-1, c, h, w)
    kernel = torch.ones(3, 3, dtype=img.dtype, device=img.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / 13.0).expand(c, 1, 3, 3)
    smooth = flat.clone()
    smooth[..., 1:-1, 1:-1] = F.conv2d(flat, kernel, groups=c)
    return _blend(smooth.reshape(img.shape), img, factor)


# ------------------------------------------------------------------------------------------------------
# geometric ops: Pillow's affine convention, uncovered pixels filled
# ------------------------------------------------------------------------------------------------------
def _fill_tensor(fill: float | Sequence[float], img: Tensor) -> Tensor:
    c = img.shape[-3]
    vals = [float(fill)] if isinstance(fill, (int, float)) else [float(v) for v in fill]
    if len(vals) not in (1, c):
        raise ValueError(f"fill has {len(vals)} values but the image has {c} channels")
    return torch.tensor(vals, dtype=img.dtype, device=img.device).expand(c).view(c, 1, 1)


def _cubic_weights(t: Tensor, a: float = -1.0) -> Tensor:
    """Cubic convolution weights of the taps at offsets -1, 0, 1, 2 from ``floor``; ``t`` the fraction in
    [0, 1), any shape -> ``(*t.shape, 4)``. ``a = -1`` is the kernel of Pillow's affine ``BICUBIC``
    (``Geometry.c``; its resize uses -0.5, torch's ``grid_sample`` -0.75)."""
    d = torch.stack((t + 1.0, t, 1.0 - t, 2.0 - t), dim=-1).abs()
    near = ((a + 2.0) * d - (a + 3.0)) * d * d + 1.0
    far = ((a * d - 5.0 * a) * d + 8.0 * a) * d - 4.0 * a
    return torch.where(d <= 1.0, near, torch.where(d < 2.0, far, torch.zeros_like(d)))


def _bicubic_sample(img: Tensor, x_in: Tensor, y_in: Tensor, fill: Tensor) -> Tensor:
    """Sample ``img (R, C, H, W)`` at pixel coordinates ``x_in, y_in (Ho, Wo)`` (centres at ``k + 1/2``) with
    Pillow's bicubic kernel, the image padded with ``fill (C, 1, 1)``: a gather of the 4 x 4 taps."""
    r, c, h, w = img.shape
    padded = F.pad(img, (2, 2, 2, 2))
    border = torch.ones(1, 1, h, w, dtype=img.dtype, device=img.device)
    border = 1.0 - F.pad(border, (2, 2, 2, 2))
    padded = padded + border * fill.to(img.dtype)  # the image inside a 2-pixel band of fill
    u, v = x_in - 0.5, y_in - 0.5
    x0, y0 = torch.floor(u), torch.floor(v)
    wx, wy = _cubic_weights(u - x0), _cubic_weights(v - y0)  # (Ho, Wo, 4)
    taps = torch.arange(-1, 3, device=img.device)
    # indices into the padded image, clamped into its fill band: far outside reads fill only
    xi = (x0.long()[..., None] + taps + 2).clamp(0, w + 3)  # (Ho, Wo, 4)
    yi = (y0.long()[..., None] + taps + 2).clamp(0, h + 3)
    ho, wo = x_in.shape
    flat = padded.reshape(r, c, -1)
    index = (yi[..., :, None] * (w + 4) + xi[..., None, :]).reshape(1, 1, -1).expand(r, c, -1)
    vals = flat.gather(2, index).reshape(r, c, ho, wo, 4, 4)
    weights = (wy[..., :, None] * wx[..., None, :]).to(img.dtype)  # (Ho, Wo, 4, 4)
    return (vals * weights).sum((-2, -1))


def affine(img: Tensor, matrix: Sequence[float], fill: float | Sequence[float] = 0.5,
           interpolation: str = "bicubic") -> Tensor:
    """Pillow's ``Image.transform(size, AFFINE, matrix)``: the output pixel with centre ``(x, y)`` (pixel
    units, ``x = col + 1/2``) takes the input at ``(a x + b y + c, d x + e y + f)``, ``matrix = (a, b, c, d,
    e, f)``. The image is sampled as if padded with ``fill`` (one value or one per channel): ``bilinear``, or
    ``bicubic`` with Pillow's affine kernel (cubic convolution, a = -1), overshoot clamped to [0, 1]. Inside the image this is
    Pillow's result up to its 8-bit rounding; within two pixels of the border Pillow clamps to the edge
    pixel where this blends towards ``fill``. Shapes: ``(..., C, H, W) -> (..., C, H, W)``."""
    if interpolation not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {list(INTERPOLATIONS)}, got {interpolation!r}")
    a, b, c, d, e, f = (float(v) for v in matrix)
    shape = img.shape
    h, w = shape[-2:]
    flat = img.reshape(-1, shape[-3], h, w)
    dtype = flat.dtype if flat.dtype.is_floating_point else torch.float32
    ys = torch.arange(h, dtype=dtype, device=img.device) + 0.5
    xs = torch.arange(w, dtype=dtype, device=img.device) + 0.5
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    x_in = a * xx + b * yy + c
    y_in = d * xx + e * yy + f
    fill_t = _fill_tensor(fill, img)
    if interpolation == "bicubic":
        res = _bicubic_sample(flat, x_in, y_in, fill_t)
    else:
        grid = torch.stack((2.0 * x_in / w - 1.0, 2.0 * y_in / h - 1.0), dim=-1)  # align_corners=False units
        grid = grid.unsqueeze(0).expand(flat.shape[0], h, w, 2)
        # sampling the image padded with `fill` == sampling it zero-padded + fill * (1 - sampled coverage),
        # since the interpolation weights sum to one
        both = torch.cat((flat, torch.ones_like(flat[:, :1])), dim=1)
        out = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        res = out[:, :-1] + (1.0 - out[:, -1:]) * fill_t
    return res.clamp(0.0, 1.0).reshape(shape)


def rotate(img: Tensor, degrees: float, fill: float | Sequence[float] = 0.5,
           interpolation: str = "bicubic") -> Tensor:
    """Rotate counter-clockwise by ``degrees`` about the image centre (Pillow ``Image.rotate``)."""
    h, w = img.shape[-2:]
    t = -math.radians(degrees)
    cos, sin = math.cos(t), math.sin(t)
    cx, cy = w / 2.0, h / 2.0
    # input = R (out - centre) + centre, R = [[cos, sin], [-sin, cos]]
    matrix = (cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)
    return affine(img, matrix, fill, interpolation)


def shear_x(img: Tensor, factor: float, fill: float | Sequence[float] = 0.5,
            interpolation: str = "bicubic") -> Tensor:
    """``x_in = x + factor * y`` (Pillow affine ``(1, factor, 0, 0, 1, 0)``)."""
    return affine(img, (1.0, factor, 0.0, 0.0, 1.0, 0.0), fill, interpolation)


def shear_y(img: Tensor, factor: float, fill: float | Sequence[float] = 0.5,
            interpolation: str = "bicubic") -> Tensor:
    """``y_in = factor * x + y`` (Pillow affine ``(1, 0, 0, factor, 1, 0)``)."""
    return affine(img, (1.0, 0.0, 0.0, factor, 1.0, 0.0), fill, interpolation)


def translate_x(img: Tensor, pixels: float, fill: float | Sequence[float] = 0.5,
                interpolation: str = "bicubic") -> Tensor:
    """``x_in = x + pixels``: the content moves ``pixels`` to the left (timm ``translate_x_abs``)."""
    return affine(img, (1.0, 0.0, pixels, 0.0, 1.0, 0.0), fill, interpolation)


def translate_y(img: Tensor, pixels: float, fill: float | Sequence[float] = 0.5,
                interpolation: str = "bicubic") -> Tensor:
    """``y_in = y + pixels``: the content moves ``pixels`` up."""
    return affine(img, (1.0, 0.0, 0.0, 0.0, 1.0, pixels), fill, interpolation)


# ------------------------------------------------------------------------------------------------------
# magnitude -> argument (timm auto_augment.py LEVEL_TO_ARG), and one op applied by name
# ------------------------------------------------------------------------------------------------------
def _signed(v: float, negate: bool) -> float:
    return -v if negate else v


def _enhance_increasing(level: float, negate: bool) -> float:
    return max(0.1, 1.0 + _signed(level / LEVEL_DENOM * 0.9, negate))


_LEVEL_TO_ARG: dict[str, Callable[[float, bool], float | None]] = {
    "AutoContrast": lambda lv, neg: None,
    "Equalize": lambda lv, neg: None,
    "Invert": lambda lv, neg: None,
    "Rotate": lambda lv, neg: _signed(lv / LEVEL_DENOM * 30.0, neg),
    "Posterize": lambda lv, neg: int(lv / LEVEL_DENOM * 4),
    "PosterizeIncreasing": lambda lv, neg: 4 - int(lv / LEVEL_DENOM * 4),
    "Solarize": lambda lv, neg: int(lv / LEVEL_DENOM * 256),
    "SolarizeIncreasing": lambda lv, neg: 256 - int(lv / LEVEL_DENOM * 256),
    "SolarizeAdd": lambda lv, neg: int(lv / LEVEL_DENOM * 110),
    "Color": lambda lv, neg: lv / LEVEL_DENOM * 1.8 + 0.1,
    "ColorIncreasing": _enhance_increasing,
    "Contrast": lambda lv, neg: lv / LEVEL_DENOM * 1.8 + 0.1,
    "ContrastIncreasing": _enhance_increasing,
    "Brightness": lambda lv, neg: lv / LEVEL_DENOM * 1.8 + 0.1,
    "BrightnessIncreasing": _enhance_increasing,
    "Sharpness": lambda lv, neg: lv / LEVEL_DENOM * 1.8 + 0.1,
    "SharpnessIncreasing": _enhance_increasing,
    "ShearX": lambda lv, neg: _signed(lv / LEVEL_DENOM * 0.3, neg),
    "ShearY": lambda lv, neg: _signed(lv / LEVEL_DENOM * 0.3, neg),
    "TranslateXRel": lambda lv, neg: _signed(lv / LEVEL_DENOM * 0.45, neg),
    "TranslateYRel": lambda lv, neg: _signed(lv / LEVEL_DENOM * 0.45, neg),
}


def op_arguments(name: str, level: float, negate: bool = False) -> float | None:
    """The argument timm gives op ``name`` at magnitude ``level`` (0..10); ``negate``: the random sign of
    the signed ops (rotate, shear, translate, the ``*Increasing`` enhancements). None: the op takes none."""
    if name not in _LEVEL_TO_ARG:
        raise ValueError(f"unknown RandAugment op {name!r}; choose from {sorted(_LEVEL_TO_ARG)}")
    return _LEVEL_TO_ARG[name](float(level), bool(negate))


def apply_op(img: Tensor, name: str, level: float, negate: bool = False,
             fill: float | Sequence[float] = 0.5, interpolation: str = "bicubic") -> Tensor:
    """Apply RandAugment op ``name`` at magnitude ``level`` (0..10) to ``img (..., C, H, W)`` in [0, 1]."""
    arg = op_arguments(name, level, negate)
    base = name.removesuffix("Increasing")
    geo = dict(fill=fill, interpolation=interpolation)
    if base == "AutoContrast":
        return auto_contrast(img)
    if base == "Equalize":
        return equalize(img)
    if base == "Invert":
        return invert(img)
    if base == "Rotate":
        return rotate(img, arg, **geo)
    if base == "Posterize":
        return posterize(img, int(arg))
    if base == "Solarize":
        return solarize(img, int(arg))
    if base == "SolarizeAdd":
        return solarize_add(img, int(arg))
    if base == "Color":
        return adjust_color(img, arg)
    if base == "Contrast":
        return adjust_contrast(img, arg)
    if base == "Brightness":
        return adjust_brightness(img, arg)
    if base == "Sharpness":
        return adjust_sharpness(img, arg)
    if base == "ShearX":
        return shear_x(img, arg, **geo)
    if base == "ShearY":
        return shear_y(img, arg, **geo)
    if base == "TranslateXRel":
        return translate_x(img, arg * img.shape[-1], **geo)
    return translate_y(img, arg * img.shape[-2], **geo)  # TranslateYRel


# ------------------------------------------------------------------------------------------------------
# the policy
# ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RandAugmentSpec:
    """timm's RandAugment settings: ``magnitude`` m (0..mmax), ``num_layers`` n ops per image,
    ``magnitude_std`` (0: fixed m; ``inf``: uniform in [0, m]), ``magnitude_max`` (clip), ``increasing``
    (the op set whose strength grows with m), ``prob`` (each chosen op applied with this probability)."""

    magnitude: float = 10.0
    num_layers: int = 2
    magnitude_std: float = 0.0
    magnitude_max: float = LEVEL_DENOM
    increasing: bool = False
    prob: float = 0.5


_SPEC_KEYS = {"m": "magnitude", "n": "num_layers", "mstd": "magnitude_std", "mmax": "magnitude_max",
              "inc": "increasing"}


def parse_randaugment(spec: str) -> RandAugmentSpec:
    """timm's RandAugment string -> :class:`RandAugmentSpec`: ``"rand"`` then ``-``-separated ``m<int>``,
    ``n<int>``, ``mstd<float>`` (> 100: uniform), ``mmax<int>``, ``inc<0|1>``, e.g. DeiT's
    ``"rand-m9-mstd0.5-inc1"``. Raises ``ValueError`` naming the string and the part it cannot read
    (timm's ``w`` op weights are not supported)."""
    if not isinstance(spec, str) or not spec.split("-")[0] == "rand":
        raise ValueError(f"RandAugment spec {spec!r} must start with 'rand' (e.g. 'rand-m9-mstd0.5-inc1')")
    values: dict = {}
    for part in spec.split("-")[1:]:
        m = re.fullmatch(r"([a-z]+)(\d+(?:\.\d+)?)", part)
        if m is None or m.group(1) not in _SPEC_KEYS:
            raise ValueError(f"RandAugment spec {spec!r}: cannot read {part!r}; parts are m<int>, n<int>, "
                             "mstd<float>, mmax<int>, inc<0|1>")
        key, raw = _SPEC_KEYS[m.group(1)], m.group(2)
        if key in ("num_layers", "increasing") and "." in raw:
            raise ValueError(f"RandAugment spec {spec!r}: {part!r} needs a whole number")
        value = float(raw)
        if key == "magnitude_std" and value > 100:
            value = math.inf
        values[key] = bool(int(value)) if key == "increasing" else (int(value) if key == "num_layers" else value)
    out = RandAugmentSpec(**values)
    if out.num_layers < 1:
        raise ValueError(f"RandAugment spec {spec!r}: n must be at least 1")
    if not 0 < out.magnitude_max or out.magnitude > out.magnitude_max:
        raise ValueError(f"RandAugment spec {spec!r}: m must be in [0, mmax={out.magnitude_max:g}]")
    return out


class RandAugment:
    """RandAugment (Cubuk et al. 2020) as timm's ``RandAugment`` (paper App. 8.1 via DeiT).

    Per call: draw ``n`` ops uniformly with replacement from :data:`RAND_OPS` (or
    :data:`RAND_INCREASING_OPS`); apply each with probability ``prob`` at magnitude
    ``clip(m + mstd * N(0, 1), 0, mmax)`` and a random sign. Exactly ``4 n`` numbers are drawn per call.

    Args:
        spec: a timm string (``"rand-m9-mstd0.5-inc1"``) or a :class:`RandAugmentSpec`.
        fill: colour of uncovered pixels of the geometric ops, in [0, 1], one value or one per channel
            (timm/DeiT: the dataset mean).
        interpolation: ``bicubic`` (DeiT) or ``bilinear``.
        generator: RNG to draw from; ``None`` uses the global torch RNG.

    Shapes: ``(C, H, W) -> (C, H, W)`` in [0, 1].
    """

    def __init__(self, spec: str | RandAugmentSpec = "rand-m9-mstd0.5-inc1",
                 fill: float | Sequence[float] = 0.5, interpolation: str = "bicubic",
                 generator: torch.Generator | None = None):
        self.spec = parse_randaugment(spec) if isinstance(spec, str) else spec
        self.ops = RAND_INCREASING_OPS if self.spec.increasing else RAND_OPS
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"RandAugment interpolation must be one of {list(INTERPOLATIONS)}, got {interpolation!r}")
        self.fill = (float(fill),) if isinstance(fill, (int, float)) else tuple(float(v) for v in fill)
        if not self.fill or not all(0.0 <= v <= 1.0 for v in self.fill):
            raise ValueError(f"RandAugment fill must be in [0, 1], got {fill!r}")
        self.interpolation = interpolation
        self.generator = generator

    def magnitudes(self, noise: Tensor, uniform: Tensor) -> Tensor:
        """Per-op magnitudes from standard normal ``noise`` and uniform ``uniform`` draws, clipped to [0, mmax]."""
        s = self.spec
        if math.isinf(s.magnitude_std):
            m = uniform * s.magnitude
        elif s.magnitude_std > 0:
            m = s.magnitude + s.magnitude_std * noise
        else:
            m = torch.full_like(noise, s.magnitude)
        return m.clamp(0.0, s.magnitude_max)

    def __call__(self, img: Tensor) -> Tensor:
        if not isinstance(img, Tensor) or img.ndim != 3:
            shape = tuple(img.shape) if isinstance(img, Tensor) else type(img).__name__
            raise ValueError(f"RandAugment: expected one image tensor of shape (C, H, W), got {shape}")
        n, g = self.spec.num_layers, self.generator
        which = torch.randint(len(self.ops), (n,), generator=g)
        u = torch.rand(n, 3, generator=g, dtype=torch.float64)  # apply?, sign, uniform magnitude
        levels = self.magnitudes(torch.randn(n, generator=g, dtype=torch.float64), u[:, 2])
        for k in range(n):
            if u[k, 0].item() > self.spec.prob:
                continue
            img = apply_op(img, self.ops[int(which[k])], levels[k].item(), bool(u[k, 1] > 0.5),
                           fill=self.fill, interpolation=self.interpolation)
        return img

    def __repr__(self) -> str:
        s = self.spec
        return (f"RandAugment(m={s.magnitude:g}, n={s.num_layers}, mstd={s.magnitude_std:g}, "
                f"inc={int(s.increasing)}, p={s.prob:g}, interpolation={self.interpolation})")
