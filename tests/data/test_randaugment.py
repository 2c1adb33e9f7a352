"""RandAugment on tensors: every op against Pillow (what timm calls), timm's magnitude table and strings,
and the policy's shape, range, seeded determinism and effect."""

import math

import numpy as np
import pytest
import torch
from PIL import Image, ImageEnhance, ImageOps

from part.data import randaugment as R


def photo(h: int = 24, w: int = 20, c: int = 3, seed: int = 0) -> np.ndarray:
    """A uint8 ``(H, W, C)`` image with smooth structure (random walks along rows) and full-range noise."""
    g = np.random.default_rng(seed)
    walk = np.cumsum(g.normal(0, 20, (h, w, c)), axis=1) + 128
    return np.clip(walk, 0, 255).astype(np.uint8)


def to_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float() / 255.0


def from_pil(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(img)
    return to_tensor(arr if arr.ndim == 3 else arr[..., None])


def pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(arr if arr.shape[2] == 3 else arr[..., 0])


IMAGES = [photo(), photo(c=1, seed=1), (np.random.default_rng(2).random((16, 16, 3)) * 255).astype(np.uint8),
          np.full((8, 8, 3), 77, np.uint8)]


# ---------------------------------------------------------------------------------------------------------
# ops against Pillow
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arr", IMAGES)
def test_level_ops_equal_pillow_exactly(arr):
    im, x = pil(arr), to_tensor(arr)
    assert torch.equal(R.auto_contrast(x), from_pil(ImageOps.autocontrast(im)))
    assert torch.equal(R.equalize(x), from_pil(ImageOps.equalize(im)))
    assert torch.allclose(R.invert(x), from_pil(ImageOps.invert(im)), atol=1e-6)  # float: 1 - x
    for bits in range(1, 8):
        assert torch.equal(R.posterize(x, bits), from_pil(ImageOps.posterize(im, bits))), bits
    assert torch.equal(R.posterize(x, 8), x) and not R.posterize(x, 0).any()  # Pillow 13 refuses 0 bits
    for thresh in (0, 26, 128, 200, 256):
        assert torch.equal(R.solarize(x, thresh), from_pil(ImageOps.solarize(im, thresh))), thresh
    for add in (0, 50, 110):  # timm's solarize_add is a Pillow lookup table
        lut = [min(255, i + add) if i < 128 else i for i in range(256)]
        assert torch.equal(R.solarize_add(x, add), from_pil(im.point(lut * len(im.getbands())))), add


def test_level_ops_round_off_grid_values_to_levels():
    x = torch.tensor([0.1, 0.5, 0.9]).view(1, 1, 3)  # 25.5, 127.5, 229.5 -> levels 26, 128, 230
    assert torch.allclose(R.solarize(x, 128) * 255, torch.tensor([26.0, 127.0, 25.0]).view(1, 1, 3))


@pytest.mark.parametrize("arr", IMAGES[:3])
@pytest.mark.parametrize("factor", [0.1, 0.5, 1.0, 1.6, 1.9])
def test_blend_ops_within_one_level_of_pillow(arr, factor):
    im, x = pil(arr), to_tensor(arr)
    for ours, theirs in ((R.adjust_color, ImageEnhance.Color), (R.adjust_contrast, ImageEnhance.Contrast),
                         (R.adjust_brightness, ImageEnhance.Brightness), (R.adjust_sharpness, ImageEnhance.Sharpness)):
        diff = (ours(x, factor) - from_pil(theirs(im).enhance(factor))).abs() * 255
        # Pillow rounds the degenerate image and the blend to 8 bits; this stays in float
        assert diff.max() <= 1.5 and diff.mean() <= 0.6, (theirs.__name__, factor, diff.max())
    assert torch.equal(R.adjust_color(x, 0.2), x) if x.shape[0] == 1 else True  # grey has no saturation


def _inside(matrix, h, w, margin=2.0):
    """Output pixels whose source lies at least ``margin`` pixels inside the image (Pillow clamps at the
    border, these ops blend towards the fill)."""
    a, b, c, d, e, f = matrix
    yy, xx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    xi, yi = a * xx + b * yy + c, d * xx + e * yy + f
    return (xi > margin) & (xi < w - margin) & (yi > margin) & (yi < h - margin)


def _rotation_matrix(deg, h, w):
    t = -math.radians(deg)
    cos, sin = math.cos(t), math.sin(t)
    cx, cy = w / 2, h / 2
    return (cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)


@pytest.mark.parametrize("interpolation,resample", [("bilinear", Image.BILINEAR), ("bicubic", Image.BICUBIC)])
@pytest.mark.parametrize("arr", IMAGES[:2])
def test_geometric_ops_equal_pillow_inside_the_image(interpolation, resample, arr):
    im, x = pil(arr), to_tensor(arr)
    h, w = arr.shape[:2]
    fill8 = (10, 200, 30)[: arr.shape[2]]
    fill = tuple(v / 255 for v in fill8)
    fill_arg = fill8 if len(fill8) == 3 else fill8[0]
    cases = [
        (R.rotate(x, 20, fill, interpolation), im.rotate(20, resample=resample, fillcolor=fill_arg),
         _rotation_matrix(20, h, w)),
        (R.rotate(x, -27, fill, interpolation), im.rotate(-27, resample=resample, fillcolor=fill_arg),
         _rotation_matrix(-27, h, w)),
    ]
    for fn, m in ((R.shear_x, (1, 0.27, 0, 0, 1, 0)), (R.shear_y, (1, 0, 0, -0.2, 1, 0)),
                  (R.translate_x, (1, 0, 3.4, 0, 1, 0)), (R.translate_y, (1, 0, 0, 0, 1, -4.5))):
        arg = {R.shear_x: m[1], R.shear_y: m[3], R.translate_x: m[2], R.translate_y: m[5]}[fn]
        cases.append((fn(x, arg, fill, interpolation),
                      im.transform(im.size, Image.AFFINE, m, resample=resample, fillcolor=fill_arg), m))
    for ours, theirs, m in cases:
        inside = _inside(m, h, w)
        assert inside.sum() > 0.4 * h * w
        diff = (ours - from_pil(theirs)).abs()[:, inside] * 255
        assert diff.max() <= 1.0 + 1e-3, (m, diff.max())  # Pillow's 8-bit rounding only
        assert ours.min() >= 0 and ours.max() <= 1


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
def test_whole_pixel_translation_is_exact_and_fills_the_rest(interpolation):
    x = torch.rand(3, 9, 11, generator=torch.Generator().manual_seed(0))
    fill = (0.1, 0.2, 0.3)
    out = R.translate_x(x, 3, fill, interpolation)  # content moves 3 pixels left
    assert torch.allclose(out[:, :, :8], x[:, :, 3:], atol=1e-6)
    assert torch.allclose(out[:, :, 8:], torch.tensor(fill).view(3, 1, 1).expand(3, 9, 3), atol=1e-6)
    out = R.translate_y(x, -2, 0.5, interpolation)  # content moves 2 pixels down
    assert torch.allclose(out[:, 2:], x[:, :7], atol=1e-6) and torch.allclose(out[:, :2], torch.full((3, 2, 11), 0.5))
    assert torch.allclose(R.rotate(x, 0.0, fill, interpolation), x, atol=1e-6)
    assert torch.allclose(R.rotate(x, 360.0, fill, interpolation), x, atol=1e-5)


def test_ops_take_a_batch_like_one_image_each():
    xs = torch.stack([to_tensor(photo(seed=s)) for s in range(3)])
    for fn in (R.auto_contrast, R.equalize, lambda t: R.rotate(t, 13, (0.2, 0.3, 0.4)),
               lambda t: R.adjust_sharpness(t, 1.7), lambda t: R.adjust_contrast(t, 0.4)):
        assert torch.allclose(fn(xs), torch.stack([fn(x) for x in xs]), atol=1e-6)


# ---------------------------------------------------------------------------------------------------------
# magnitudes and strings (timm auto_augment.py)
# ---------------------------------------------------------------------------------------------------------
def test_level_to_argument_table_is_timms():
    args = {name: R.op_arguments(name, 9) for name in R.RAND_OPS + R.RAND_INCREASING_OPS}
    assert args["Rotate"] == pytest.approx(27.0) and R.op_arguments("Rotate", 9, negate=True) == pytest.approx(-27.0)
    assert args["Posterize"] == 3 and args["PosterizeIncreasing"] == 1
    assert args["Solarize"] == 230 and args["SolarizeIncreasing"] == 26 and args["SolarizeAdd"] == 99
    assert args["Color"] == pytest.approx(1.72) and args["ColorIncreasing"] == pytest.approx(1.81)
    assert R.op_arguments("ContrastIncreasing", 9, negate=True) == pytest.approx(0.19)
    assert R.op_arguments("BrightnessIncreasing", 10, negate=True) == pytest.approx(0.1)  # floor 0.1
    assert args["ShearX"] == pytest.approx(0.27) and args["TranslateYRel"] == pytest.approx(0.405)
    assert args["AutoContrast"] is None and args["Equalize"] is None and args["Invert"] is None
    assert R.op_arguments("SolarizeIncreasing", 0) == 256 and R.op_arguments("PosterizeIncreasing", 0) == 4
    with pytest.raises(ValueError, match="Cutout"):
        R.op_arguments("Cutout", 5)


def test_parse_deit_string_and_errors():
    spec = R.parse_randaugment("rand-m9-mstd0.5-inc1")
    assert (spec.magnitude, spec.num_layers, spec.magnitude_std, spec.increasing, spec.prob) == (9, 2, 0.5, True, 0.5)
    spec = R.parse_randaugment("rand-n3-m7-mstd101-inc0-mmax12")
    assert (spec.num_layers, spec.magnitude, spec.magnitude_max, spec.increasing) == (3, 7, 12, False)
    assert math.isinf(spec.magnitude_std)
    assert R.parse_randaugment("rand") == R.RandAugmentSpec()
    for bad, words in (("augmix-m3", "start with 'rand'"), ("rand-m9-w0", "'w0'"), ("rand-x3", "'x3'"),
                       ("rand-n0", "n must"), ("rand-m11", "m must"), ("rand-n1.5", "whole number")):
        with pytest.raises(ValueError, match=words):
            R.parse_randaugment(bad)


# ---------------------------------------------------------------------------------------------------------
# the policy
# ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28), (3, 17, 40)])
def test_randaugment_shape_range_and_effect(shape):
    ra = R.RandAugment("rand-m9-mstd0.5-inc1", fill=0.5, generator=torch.Generator().manual_seed(0))
    x = torch.rand(shape, generator=torch.Generator().manual_seed(1))
    changed = 0
    for _ in range(40):
        out = ra(x)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert out.min() >= 0 and out.max() <= 1 and torch.isfinite(out).all()
        changed += not torch.equal(out, x)
    # each of 2 ops is applied with prob 1/2: unchanged ~1/4 of the time (plus no-op draws)
    assert 20 <= changed <= 38


def test_every_increasing_op_changes_an_image_at_magnitude_9():
    x = 0.2 + 0.6 * to_tensor(photo())  # low contrast, so auto-contrast has work to do
    for name in R.RAND_INCREASING_OPS:
        for negate in (False, True):
            out = R.apply_op(x, name, 9, negate, fill=(0.5, 0.4, 0.3))
            assert out.shape == x.shape and (out - x).abs().mean() > 1e-3, (name, negate)
            assert out.min() >= 0 and out.max() <= 1


def test_randaugment_is_deterministic_under_a_seed():
    x = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(0))
    a = R.RandAugment("rand-m9-mstd0.5-inc1", generator=torch.Generator().manual_seed(5))
    b = R.RandAugment("rand-m9-mstd0.5-inc1", generator=torch.Generator().manual_seed(5))
    outs_a, outs_b = [a(x) for _ in range(10)], [b(x) for _ in range(10)]
    assert all(torch.equal(p, q) for p, q in zip(outs_a, outs_b))
    assert len({p.sum().item() for p in outs_a}) > 3  # the calls differ from each other
    ra = R.RandAugment("rand-m9-mstd0.5-inc1")  # the global RNG, as SeededItems seeds it per item
    torch.manual_seed(3)
    first = [ra(x) for _ in range(5)]
    torch.manual_seed(3)
    assert all(torch.equal(p, ra(x)) for p in first)


def test_magnitude_noise_is_clipped_and_uniform_mode():
    ra = R.RandAugment("rand-m9-mstd0.5")
    noise = torch.randn(10000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m = ra.magnitudes(noise, torch.rand(10000, dtype=torch.float64))
    assert m.max() == 10 and m.min() > 6 and abs(m.mean().item() - 9) < 0.1  # N(9, 0.5) clipped at 10
    uni = R.RandAugment("rand-m9-mstd101").magnitudes(noise, torch.linspace(0, 1, 10000, dtype=torch.float64))
    assert uni.min() == 0 and uni.max() == 9
    assert torch.equal(R.RandAugment("rand-m7").magnitudes(noise, noise), torch.full_like(noise, 7.0))


def test_randaugment_bad_arguments_named():
    with pytest.raises(ValueError, match="interpolation"):
        R.RandAugment("rand-m9", interpolation="nearest")
    with pytest.raises(ValueError, match="fill"):
        R.RandAugment("rand-m9", fill=(0.5, 2.0, 0.1))
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        R.RandAugment("rand-m9")(torch.rand(2, 3, 8, 8))
    with pytest.raises(ValueError, match="fill.*2.*3"):
        R.rotate(torch.rand(3, 8, 8), 10, (0.1, 0.2))
