import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from part.sampling import (
    GridSampler,
    OffGridSampler,
    ScaleAspectSampler,
    boxes_to_corners,
    build_sampler,
    crop_patches,
    grid_boxes,
    offgrid_boxes,
    patchify,
    unpatchify,
)


def _inside(boxes, h, w, tol=1e-4):
    c = boxes_to_corners(boxes)
    return bool((c[..., 0] >= -tol).all() and (c[..., 1] >= -tol).all()
                and (c[..., 2] <= w + tol).all() and (c[..., 3] <= h + tol).all())


@settings(max_examples=40, deadline=None)
@given(h=st.integers(4, 40), w=st.integers(4, 40), p=st.integers(1, 4), n=st.integers(1, 20),
       seed=st.integers(0, 2**31 - 1))
def test_offgrid_boxes_inside_image(h, w, p, n, seed):
    g = torch.Generator().manual_seed(seed)
    boxes = offgrid_boxes(3, h, w, n, float(p), generator=g)
    assert boxes.shape == (3, n, 4)
    assert _inside(boxes, h, w)
    assert torch.all(boxes[..., 2:] == p)


@settings(max_examples=40, deadline=None)
@given(h=st.integers(8, 40), w=st.integers(8, 40), p=st.integers(2, 4), lo=st.floats(0.25, 1.0),
       hi=st.floats(1.0, 3.0), seed=st.integers(0, 2**31 - 1))
def test_scale_boxes_inside_and_in_range(h, w, p, lo, hi, seed):
    g = torch.Generator().manual_seed(seed)
    s = ScaleAspectSampler(p, num_patches=12, scale_range=(lo, hi))
    boxes = s.boxes(torch.zeros(2, 1, h, w), g)
    assert _inside(boxes, h, w)
    assert (boxes[..., 2] >= lo * p - 1e-4).all() and (boxes[..., 2] <= min(hi * p, w) + 1e-4).all()
    assert (boxes[..., 3] >= lo * p - 1e-4).all() and (boxes[..., 3] <= min(hi * p, h) + 1e-4).all()


def test_scale_width_height_independent():
    g = torch.Generator().manual_seed(0)
    boxes = ScaleAspectSampler(8, num_patches=4000).boxes(torch.zeros(1, 1, 64, 64), g)
    w, h = boxes[0, :, 2], boxes[0, :, 3]
    assert abs(torch.corrcoef(torch.stack([w, h]))[0, 1]) < 0.05
    # uniform in [P/2, 2P] = [4, 16]: mean 10, spread over the whole range
    assert abs(w.mean().item() - 10) < 0.3 and w.min() < 4.1 and w.max() > 15.9


def test_grid_roundtrip_is_exact():
    x = torch.rand(2, 3, 16, 24)
    patches, boxes = GridSampler(4)(x)
    assert patches.shape == (2, 24, 3, 4, 4) and boxes.shape == (2, 24, 4)
    assert torch.equal(unpatchify(patches, 16, 24), x)
    # the bilinear crop at grid boxes lands exactly on pixel centres too
    cropped = crop_patches(x, boxes, 4)
    torch.testing.assert_close(cropped, patches, rtol=0, atol=1e-5)


def test_grid_boxes_row_major_centres():
    b = grid_boxes(1, 8, 12, 4)[0]
    assert b.shape == (6, 4)
    assert b[0].tolist() == [2.0, 2.0, 4.0, 4.0]
    assert b[1].tolist() == [6.0, 2.0, 4.0, 4.0]
    assert b[3].tolist() == [2.0, 6.0, 4.0, 4.0]


def test_crop_hand_computed_pixels():
    # image value = 10 * row + col; a 2x2 box with top-left (1, 2) cropped at P=2 hits pixel centres
    img = (torch.arange(6)[:, None] * 10 + torch.arange(6)[None, :]).float()[None, None]
    boxes = torch.tensor([[[2.0 + 1.0, 1.0 + 1.0, 2.0, 2.0]]])  # cx = x0 + w/2, cy = y0 + h/2
    out = crop_patches(img, boxes, 2)[0, 0, 0]
    torch.testing.assert_close(out, torch.tensor([[12.0, 13.0], [22.0, 23.0]]))
    # half-pixel shift to the right -> bilinear mean of neighbouring columns
    boxes = torch.tensor([[[3.5, 2.0, 2.0, 2.0]]])
    out = crop_patches(img, boxes, 2)[0, 0, 0]
    torch.testing.assert_close(out, torch.tensor([[12.5, 13.5], [22.5, 23.5]]))
    # a 4x4 box resized to 2x2 samples at x0 + (u + 0.5) * 2 -> pixel edges, i.e. 2x2 means
    boxes = torch.tensor([[[2.0, 2.0, 4.0, 4.0]]])
    out = crop_patches(img, boxes, 2)[0, 0, 0]
    torch.testing.assert_close(out, torch.tensor([[5.5, 7.5], [25.5, 27.5]]))


def test_crop_multichannel_and_batch_independent():
    x = torch.rand(3, 2, 10, 10)
    g = torch.Generator().manual_seed(1)
    s = OffGridSampler(3, num_patches=7)
    patches, boxes = s(x, g)
    for b in range(3):
        single = crop_patches(x[b : b + 1], boxes[b : b + 1], 3)
        torch.testing.assert_close(patches[b : b + 1], single)


def test_default_n_and_fewer_patches():
    x = torch.rand(2, 1, 28, 28)
    assert OffGridSampler(4)(x)[0].shape == (2, 49, 1, 4, 4)
    assert OffGridSampler(4, num_patches=10)(x)[0].shape == (2, 10, 1, 4, 4)


def test_seeded_generator_reproducible():
    x = torch.rand(2, 1, 16, 16)
    a = OffGridSampler(4)(x, torch.Generator().manual_seed(3))[1]
    b = OffGridSampler(4)(x, torch.Generator().manual_seed(3))[1]
    c = OffGridSampler(4)(x, torch.Generator().manual_seed(4))[1]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_boxes_differ_per_image():
    boxes = OffGridSampler(4)(torch.rand(2, 1, 16, 16), torch.Generator().manual_seed(0))[1]
    assert not torch.equal(boxes[0], boxes[1])


def test_patchify_errors():
    with pytest.raises(ValueError, match="divisible.*patch_size=4"):
        patchify(torch.rand(1, 1, 10, 12), 4)
    with pytest.raises(ValueError, match="divisible.*patch_size=4"):
        GridSampler(4).boxes(torch.rand(1, 1, 10, 12))


def test_patch_larger_than_image():
    with pytest.raises(ValueError, match="patch_size=8.*larger"):
        OffGridSampler(8)(torch.rand(1, 1, 6, 6))


def test_unknown_sampler_and_unused_args():
    with pytest.raises(ValueError, match="unknown sampler 'random'"):
        build_sampler("random", 4)
    with pytest.raises(ValueError, match="num_patches.*'grid'"):
        build_sampler("grid", 4, num_patches=10)
    with pytest.raises(ValueError, match="scale_range"):
        build_sampler("scale", 4, scale_range=(2.0, 1.0))


def test_bad_image_inputs():
    s = OffGridSampler(4)
    with pytest.raises(ValueError, match=r"images must be 4D"):
        s.check(torch.rand(3, 16, 16))
    x = torch.rand(1, 1, 8, 8)
    x[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="images contain NaN"):
        s.check(x)
    with pytest.raises(ValueError, match="floating-point"):
        s.check(torch.zeros(1, 1, 8, 8, dtype=torch.uint8))


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 10_000), bad=st.sampled_from([None, float("nan"), float("inf"), -float("inf")]),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16, torch.float16]),
       scale=st.sampled_from([1.0, 1e30, 3e38]))
def test_all_finite_equals_isfinite_all(seed, bad, dtype, scale):
    # the one-pass sum test must agree with the elementwise test, also when the sum of finite values overflows
    from part.sampling.boxes import all_finite

    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(3, 2, 5, 7, generator=g) * scale).to(dtype)  # bf16/fp16: scale may already give inf
    if bad is not None:
        x.view(-1)[int(torch.randint(0, x.numel(), (1,), generator=g))] = bad
    assert all_finite(x) == bool(torch.isfinite(x).all())
