"""Box positions (continuous | integer), exact pixel copies and the anti-aliased crop (issue 18), 2D and 1D."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from part.sampling import (
    OffGridSampler,
    OffGridWindowSampler,
    ScaleAspectSampler,
    ScaleWindowSampler,
    boxes_to_corners,
    copy_patches,
    crop_patches,
    crop_patches_antialiased,
    crop_patches_antialiased_reference,
    crop_windows,
    crop_windows_antialiased,
    offgrid_boxes,
    scale_aspect_boxes,
)
from part.sampling.windows1d import offgrid_windows, scale_windows


def _is_int(t):
    return bool((t == t.round()).all())


@settings(max_examples=30, deadline=None)
@given(h=st.integers(4, 30), w=st.integers(4, 30), d=st.integers(1, 4), n=st.integers(1, 12),
       seed=st.integers(0, 2**31 - 1))
def test_integer_offgrid_boxes_on_pixels_inside(h, w, d, n, seed):
    boxes = offgrid_boxes(2, h, w, n, float(d), torch.Generator().manual_seed(seed), positions="integer")
    c = boxes_to_corners(boxes)
    assert _is_int(c) and (c[..., :2] >= 0).all() and (c[..., 2] <= w).all() and (c[..., 3] <= h).all()
    assert torch.all(boxes[..., 2:] == d)


def test_integer_offgrid_covers_every_corner_uniformly():
    boxes = offgrid_boxes(1, 8, 8, 40000, 4.0, torch.Generator().manual_seed(0), positions="integer")
    x0 = (boxes[0, :, 0] - 2).long()
    counts = torch.bincount(x0, minlength=5)
    assert counts.numel() == 5 and (counts - 8000).abs().max() < 400  # 0..W-D, each ~1/5


@settings(max_examples=30, deadline=None)
@given(h=st.integers(8, 30), w=st.integers(8, 30), p=st.integers(2, 5), lo=st.floats(0.3, 1.0),
       hi=st.floats(1.0, 2.5), seed=st.integers(0, 2**31 - 1))
def test_integer_scale_boxes_on_pixels_in_range(h, w, p, lo, hi, seed):
    s_lo, s_hi = np.ceil(lo * p - 1e-9), np.floor(hi * p + 1e-9)
    if s_lo > s_hi:
        with pytest.raises(ValueError, match="scale_range"):
            scale_aspect_boxes(1, h, w, 3, p, (lo, hi), positions="integer")
        return
    boxes = scale_aspect_boxes(2, h, w, 10, p, (lo, hi), torch.Generator().manual_seed(seed), positions="integer")
    c = boxes_to_corners(boxes)
    assert _is_int(c) and (c[..., :2] >= 0).all() and (c[..., 2] <= w).all() and (c[..., 3] <= h).all()
    assert (boxes[..., 2] >= min(s_lo, w)).all() and (boxes[..., 2] <= s_hi).all()


def test_continuous_mode_is_unchanged():
    """The continuous mode draws exactly what the default drew before positions existed (same generator
    stream); integer is the default now (issue 18)."""
    g = torch.Generator().manual_seed(3)
    u = torch.rand((2, 5, 2), generator=g)
    boxes = offgrid_boxes(2, 20, 16, 5, 4.0, torch.Generator().manual_seed(3), positions="continuous")
    torch.testing.assert_close(boxes[..., 0], u[..., 0] * 12 + 2, rtol=0, atol=0)
    torch.testing.assert_close(boxes[..., 1], u[..., 1] * 16 + 2, rtol=0, atol=0)


@settings(max_examples=20, deadline=None)
@given(h=st.integers(10, 24), w=st.integers(10, 24), p=st.integers(1, 10), seed=st.integers(0, 2**31 - 1))
def test_integer_positions_give_exact_pixel_copies(h, w, p, seed):
    """Both gathers of copy_patches (per pixel below UNFOLD_MIN_PATCH = 8, whole windows from it on)."""
    images = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(seed))
    sampler = OffGridSampler(p, num_patches=6, positions="integer")
    patches, boxes = sampler(images, torch.Generator().manual_seed(seed))
    for b in range(2):
        for i in range(6):
            x0, y0 = int(boxes[b, i, 0] - p / 2), int(boxes[b, i, 1] - p / 2)
            assert torch.equal(patches[b, i], images[b, :, y0 : y0 + p, x0 : x0 + p])  # bit-exact


def test_copy_patches_rejects_off_pixel_boxes():
    with pytest.raises(ValueError, match="whole-pixel"):
        copy_patches(torch.zeros(1, 1, 8, 8), torch.tensor([[[2.5, 2.0, 4.0, 4.0]]]), 4)
    with pytest.raises(ValueError, match="whole-pixel"):
        copy_patches(torch.zeros(1, 1, 8, 8), torch.tensor([[[3.0, 3.0, 2.0, 2.0]]]), 4)


def test_antialiased_equals_bilinear_when_not_shrinking():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 17, 13, generator=g)
    boxes = scale_aspect_boxes(2, 17, 13, 20, 4, (0.3, 1.0), g)
    # the same function; crop_patches rounds its sample coordinates to float32 on the way to grid_sample
    torch.testing.assert_close(crop_patches_antialiased(images, boxes, 4), crop_patches(images, boxes, 4),
                               rtol=1e-5, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(p=st.integers(2, 6), lo=st.floats(0.25, 1.0), hi=st.floats(1.0, 3.0), seed=st.integers(0, 2**31 - 1))
def test_antialiased_fast_equals_dense_reference(p, lo, hi, seed):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(2, 2, 23, 19, generator=g, dtype=torch.float64)
    boxes = scale_aspect_boxes(2, 23, 19, 7, p, (lo, hi), g).double()
    fast = crop_patches_antialiased(images, boxes, p)
    torch.testing.assert_close(fast, crop_patches_antialiased_reference(images, boxes, p))
    torch.testing.assert_close(crop_patches_antialiased(images, boxes, p, max_size=hi * p), fast)


def test_antialiased_matches_pil_bilinear_reduction():
    """Independent oracle: PIL's BILINEAR resize of a float box (triangle filter stretched by the scale)."""
    g = torch.Generator().manual_seed(1)
    img = torch.rand(1, 1, 40, 36, generator=g)
    boxes = torch.tensor([[[12.3, 14.1, 17.4, 9.0], [20.0, 20.0, 16.0, 16.0], [8.7, 30.2, 6.1, 11.3],
                           [18.0, 20.0, 36.0, 40.0]]])
    ours = crop_patches_antialiased(img, boxes, 8)[0, :, 0]
    pil = Image.fromarray(img[0, 0].numpy(), mode="F")
    for i, (cx, cy, w, h) in enumerate(boxes[0].tolist()):
        ref = np.asarray(pil.resize((8, 8), Image.BILINEAR, box=(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)))
        torch.testing.assert_close(ours[i], torch.from_numpy(ref.copy()), rtol=1e-4, atol=1e-5)


def test_antialiasing_removes_aliasing():
    """A checkerboard of period 2 px shrunk 3x: point sampling hits pixel centres and shows a false coarse
    board (values 0/1), the filter returns near-uniform grey."""
    yy, xx = torch.meshgrid(torch.arange(32), torch.arange(32), indexing="ij")
    board = ((xx + yy) % 2).float().reshape(1, 1, 32, 32)
    boxes = torch.tensor([[[16.0, 16.0, 24.0, 24.0]]])  # 24 px -> 8 px
    assert crop_patches(board, boxes, 8).std() > 0.4  # aliased
    assert (crop_patches_antialiased(board, boxes, 8) - 0.5).abs().max() < 0.06  # 5/9 or 4/9
    patches, _ = ScaleAspectSampler(8, num_patches=20, scale_range=(3.0, 3.0))(board, torch.Generator().manual_seed(0))
    assert (patches - 0.5).abs().max() < 0.15  # every box is filtered, none point-sampled


# --- 1D -------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(t=st.integers(20, 200), w=st.integers(1, 20), seed=st.integers(0, 2**31 - 1))
def test_1d_positions_modes(t, w, seed):
    ints = offgrid_windows(2, t, 9, float(w), torch.Generator().manual_seed(seed), positions="integer")
    start = ints[..., 0] - ints[..., 1] / 2
    assert _is_int(start) and (start >= 0).all() and (start + w <= t).all()
    cont = offgrid_windows(2, t, 9, float(w), torch.Generator().manual_seed(seed), positions="continuous")
    start = cont[..., 0] - cont[..., 1] / 2
    assert (start >= 0).all() and (start + w <= t + 1e-4).all()


def test_positions_defaults_are_explicit():
    assert OffGridWindowSampler(10).positions == "integer" and OffGridSampler(4).positions == "integer"
    default = offgrid_boxes(2, 20, 16, 5, 4.0, torch.Generator().manual_seed(3))
    assert torch.equal(default, offgrid_boxes(2, 20, 16, 5, 4.0, torch.Generator().manual_seed(3), positions="integer"))
    assert ScaleWindowSampler(10).positions == "continuous" and ScaleAspectSampler(4).positions == "continuous"
    assert OffGridWindowSampler(10).num_patches_for(95) == 9  # T // L, as the grid
    with pytest.raises(ValueError, match="positions.*one of"):
        OffGridWindowSampler(10, positions="snap")


def test_1d_integer_scale_windows():
    boxes = scale_windows(2, 300, 50, 10, (0.5, 2.0), torch.Generator().manual_seed(0), positions="integer")
    start = boxes[..., 0] - boxes[..., 1] / 2
    assert _is_int(start) and _is_int(boxes[..., 1]) and (boxes[..., 1] >= 5).all() and (boxes[..., 1] <= 20).all()


def test_1d_antialiased_matches_pil_and_lerp():
    g = torch.Generator().manual_seed(2)
    x = torch.rand(1, 1, 120, generator=g)
    boxes = torch.tensor([[[40.5, 37.0], [70.0, 12.0], [20.0, 9.3], [60.0, 120.0]]])  # (t_centre, length)
    ours = crop_windows_antialiased(x, boxes, 12)[0, :, 0]
    row = Image.fromarray(x[0].numpy(), mode="F")  # a 1 x T image
    for i, (c, w) in enumerate(boxes[0].tolist()):
        ref = np.asarray(row.resize((12, 1), Image.BILINEAR, box=(c - w / 2, 0, c + w / 2, 1)))[0]
        torch.testing.assert_close(ours[i], torch.from_numpy(ref.copy()), rtol=1e-4, atol=1e-5)
    short = torch.tensor([[[40.5, 7.0], [70.0, 12.0], [3.0, 6.0]]])
    torch.testing.assert_close(crop_windows_antialiased(x, short, 12), crop_windows(x, short, 12))


def test_copy_patches_unchecked_is_the_same_gather():
    """check=False (the sampler's own grid-aligned boxes) skips only the validation: same pixels."""
    g = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 12, 10, generator=g)
    boxes = offgrid_boxes(2, 12, 10, 7, 4.0, g, positions="integer")
    assert torch.equal(copy_patches(images, boxes, 4, check=False), copy_patches(images, boxes, 4))
