"""1D window samplers (paper §5.2, App. 8.1): geometry, exact crops, targets, seeding, bad inputs."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from part.sampling.windows1d import (
    GridWindowSampler,
    OffGridWindowSampler,
    ScaleWindowSampler,
    build_window_sampler,
    check_signals,
    crop_windows,
    grid_windows,
    offgrid_windows,
    patchify1d,
    unpatchify1d,
)
from part.targets import all_pairs, relative_matrix, relative_targets


def _inside(boxes, t, tol=1e-4):
    start = boxes[..., 0] - boxes[..., 1] / 2
    end = boxes[..., 0] + boxes[..., 1] / 2
    return bool((start >= -tol).all() and (end <= t + tol).all())


# --- targets --------------------------------------------------------------------------------------
def test_dt_targets_hand_checked():
    """dt = (t_tgt - t_ref) / L_ref and L_tgt / L_ref for (t_centre, length) boxes, computed by hand."""
    boxes = torch.tensor([[[150.0, 100.0], [475.0, 50.0], [50.0, 200.0]]])  # (1, 3, 2)
    pairs = torch.tensor([[[0, 1], [1, 0], [2, 0], [0, 2]]])
    dt = relative_targets(boxes, pairs)
    assert dt.shape == (1, 4, 1)
    torch.testing.assert_close(dt[0, :, 0], torch.tensor([3.25, -6.5, 0.5, -1.0]))
    # (475-150)/100, (150-475)/50, (150-50)/200, (50-150)/100
    full = relative_targets(boxes, pairs, with_scale=True)
    torch.testing.assert_close(full[0, :, 1], torch.tensor([0.5, 2.0, 0.5, 2.0]))


def test_grid_dt_targets_are_index_differences():
    """On the 1-s grid of a 30-s window, dt between windows i and j is exactly j - i."""
    x = torch.zeros(1, 6, 3000)
    _, boxes = GridWindowSampler(100)(x)
    pairs = all_pairs(30).unsqueeze(0)
    dt = relative_targets(boxes, pairs)[0, :, 0]
    torch.testing.assert_close(dt, (pairs[0, :, 1] - pairs[0, :, 0]).float())
    m = relative_matrix(boxes)[0, :, :, 0]
    torch.testing.assert_close(m, -m.T)  # negative symmetry in 1D


# --- grid -----------------------------------------------------------------------------------------
def test_grid_tiles_the_window_exactly():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 600, generator=g)
    sampler = GridWindowSampler(50)
    patches, boxes = sampler(x)
    assert patches.shape == (2, 12, 3, 50) and boxes.shape == (2, 12, 2)
    assert torch.equal(unpatchify1d(patches), x)  # reconstruct the signal
    for j in (0, 5, 11):
        assert torch.equal(patches[:, j], x[:, :, 50 * j : 50 * (j + 1)])
    torch.testing.assert_close(boxes[0, :, 0], torch.arange(12.0) * 50 + 25)
    assert torch.all(boxes[..., 1] == 50)
    # the boxes describe the patches: cropping the grid boxes gives the same patches
    assert torch.equal(crop_windows(x, boxes, 50), patches)
    assert sampler.num_patches_for(600) == 12 and sampler.target_dim == 1 and sampler.spatial_dims == 1


# --- off-grid -------------------------------------------------------------------------------------
def test_paper_setting():
    """Forty 1-second patches (L = 100) from a 30-s, 6-channel window at 100 Hz (App. 8.1); without
    num_patches N is the grid's count T // L, as H W / P^2 in 2D."""
    sampler = OffGridWindowSampler(num_patches=40)
    x = torch.randn(2, 6, 3000)
    patches, boxes = sampler(x, torch.Generator().manual_seed(0))
    assert patches.shape == (2, 40, 6, 100) and boxes.shape == (2, 40, 2)
    assert OffGridWindowSampler()(x)[0].shape == (2, 30, 6, 100)
    assert sampler.patch_size == sampler.patch_len == 100 and sampler.target_dim == 1
    assert sampler.spatial_dims == 1 and sampler.name == "offgrid"


@settings(max_examples=40, deadline=None)
@given(extra=st.integers(0, 400), l_=st.integers(1, 120), n=st.integers(1, 30), seed=st.integers(0, 2**31 - 1),
       integer=st.booleans())
def test_offgrid_windows_inside_record(extra, l_, n, seed, integer):
    t = l_ + extra  # the record is at least one window long (T = L allowed)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, 2, t, generator=g)
    sampler = OffGridWindowSampler(l_, num_patches=n, positions="integer" if integer else "continuous")
    patches, boxes = sampler(x, g)
    assert patches.shape == (2, n, 2, l_) and boxes.shape == (2, n, 2)
    assert _inside(boxes, t)
    assert torch.all(boxes[..., 1] == l_)
    if integer:
        start = boxes[..., 0] - l_ / 2
        assert torch.equal(start, start.round())
        s = start.long()
        # patches are the raw samples x[b, :, s : s + L]
        idx = s[..., None] + torch.arange(l_)  # (2, n, L)
        expect = torch.stack([x[b][:, idx[b]] for b in range(2)])  # (2, C, n, L)
        assert torch.equal(patches, expect.permute(0, 2, 1, 3))


def test_offgrid_starts_uniform_unequally_spaced_and_overlapping():
    g = torch.Generator().manual_seed(1)
    boxes = offgrid_windows(4, 3000, 1000, 100.0, generator=g)
    start = boxes[..., 0] - 50
    # uniform on {0, ..., 2900}: mean 1450, std 2901 / sqrt(12) ~ 837
    assert abs(start.mean().item() - 1450) < 40 and abs(start.std().item() - 837.5) < 30
    assert start.min() < 10 and start.max() > 2890
    assert (start % 100 != 0).float().mean() > 0.95  # off the 1-s grid
    gaps = torch.diff(start[0].sort().values)
    assert gaps.std() > 1.0 and (gaps < 100).any()  # unequally spaced, overlapping windows


def test_offgrid_window_len_resamples_to_patch_len():
    """window_len = 2L with integer starts, anti-aliased: output sample k averages samples s+2k-1 .. s+2k+2
    with triangle weights 1, 3, 3, 1 (/ 8), renormalised inside the record (PIL's BILINEAR reduction)."""
    x = torch.randn(1, 2, 200, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sampler = OffGridWindowSampler(10, num_patches=5, window_len=20)
    patches, boxes = sampler(x, torch.Generator().manual_seed(0))
    assert torch.all(boxes[..., 1] == 20)
    s = (boxes[0, :, 0] - 10).long()
    for j in range(5):
        for k in range(10):
            taps = [(i, w) for i, w in zip(range(s[j] + 2 * k - 1, s[j] + 2 * k + 3), (1, 3, 3, 1)) if 0 <= i < 200]
            expected = sum(w * x[0, :, i] for i, w in taps) / sum(w for _, w in taps)
            torch.testing.assert_close(patches[0, j, :, k], expected)


def test_crop_is_linear_interpolation_at_fractional_positions():
    """On a ramp x[i] = 3 i + 1 the lerp crop is exact: sample k reads index s + (k + 0.5) W / L - 0.5."""
    t = 100
    x = (3.0 * torch.arange(t, dtype=torch.float64) + 1).reshape(1, 1, t)
    boxes = torch.tensor([[[30.25 + 6.5 / 2, 6.5], [50.7 + 13.0 / 2, 13.0]]], dtype=torch.float64)
    out = crop_windows(x, boxes, 5)[0, :, 0]  # (2, 5)
    k = torch.arange(5, dtype=torch.float64)
    pos = torch.stack([30.25 + (k + 0.5) * 6.5 / 5 - 0.5, 50.7 + (k + 0.5) * 13.0 / 5 - 0.5])
    torch.testing.assert_close(out, 3 * pos + 1, rtol=0, atol=1e-4)


# --- scale ----------------------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(t=st.integers(20, 400), l_=st.integers(2, 10), lo=st.floats(0.25, 1.0), hi=st.floats(1.0, 3.0),
       seed=st.integers(0, 2**31 - 1))
def test_scale_windows_in_range_and_inside(t, l_, lo, hi, seed):
    g = torch.Generator().manual_seed(seed)
    sampler = ScaleWindowSampler(l_, num_patches=16, scale_range=(lo, hi))
    patches, boxes = sampler(torch.randn(2, 3, t), g)
    assert patches.shape == (2, 16, 3, l_) and sampler.target_dim == 2
    assert _inside(boxes, t)
    assert (boxes[..., 1] >= lo * l_ - 1e-4).all() and (boxes[..., 1] <= min(hi * l_, t) + 1e-4).all()


def test_scale_lengths_cover_range():
    boxes = ScaleWindowSampler(100, num_patches=4000).boxes(torch.zeros(1, 1, 3000), torch.Generator().manual_seed(0))
    w = boxes[0, :, 1]
    # uniform in [L/2, 2L] = [50, 200]: mean 125
    assert abs(w.mean().item() - 125) < 3 and w.min() < 51 and w.max() > 199


# --- seeding --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["offgrid", "scale"])
def test_seeded_reproducibility(name):
    x = torch.randn(2, 3, 500, generator=torch.Generator().manual_seed(0))
    sampler = build_window_sampler(name, patch_len=20, num_patches=10)
    pa, ba = sampler(x, torch.Generator().manual_seed(7))
    pb, bb = sampler(x, torch.Generator().manual_seed(7))
    pc, bc = sampler(x, torch.Generator().manual_seed(8))
    assert torch.equal(pa, pb) and torch.equal(ba, bb)
    assert not torch.equal(ba, bc)


def test_build_window_sampler():
    assert isinstance(build_window_sampler("offgrid", 50, num_patches=None), OffGridWindowSampler)
    assert isinstance(build_window_sampler("grid", 50, num_patches=None), GridWindowSampler)
    s = build_window_sampler("scale", 50, num_patches=7, scale_range=(0.75, 1.5))
    assert isinstance(s, ScaleWindowSampler) and s.scale_range == (0.75, 1.5) and s.num_patches == 7
    assert build_window_sampler("offgrid", 50, num_patches=None).num_patches_for(3000) == 60  # T // L
    assert OffGridWindowSampler(50, num_patches=None).num_patches_for(3000) == 60


def test_grid_windows_match_patchify():
    x = torch.randn(3, 2, 90)
    assert torch.equal(crop_windows(x, grid_windows(3, 90, 9), 9), patchify1d(x, 9))


# --- bad inputs -----------------------------------------------------------------------------------
def test_bad_signals():
    sampler = OffGridWindowSampler(10, num_patches=4)
    with pytest.raises(ValueError, match=r"signals.*shape \(6, 300\)"):
        sampler.check(torch.randn(6, 300))
    with pytest.raises(ValueError, match=r"signals must be 3D"):
        sampler(torch.randn(6, 300))  # also without check()
    x = torch.randn(2, 6, 300)
    x[1, 3, 17] = float("nan")
    with pytest.raises(ValueError, match="signals contain NaN or infinite values"):
        sampler.check(x)
    with pytest.raises(ValueError, match="signals must be a floating-point tensor"):
        sampler.check(torch.ones(1, 2, 300, dtype=torch.int64))
    with pytest.raises(ValueError, match="signals.*torch.Tensor"):
        check_signals([[1.0, 2.0]])


def test_window_longer_than_record():
    with pytest.raises(ValueError, match="patch_len=100.*T=80"):
        OffGridWindowSampler(100).check(torch.randn(1, 6, 80))
    with pytest.raises(ValueError, match="window_len=120.*T=100"):
        OffGridWindowSampler(50, window_len=120)(torch.randn(1, 6, 100))
    with pytest.raises(ValueError, match="longer.*T=40"):
        ScaleWindowSampler(100, scale_range=(0.5, 2.0))(torch.randn(1, 6, 40))
    with pytest.raises(ValueError, match="patch_len=100.*T=50"):
        GridWindowSampler(100)(torch.randn(1, 6, 50))


def test_grid_not_divisible():
    with pytest.raises(ValueError, match="T=3050.*patch_len=100"):
        GridWindowSampler(100)(torch.randn(1, 6, 3050))
    with pytest.raises(ValueError, match="T=3050.*patch_len=100"):
        GridWindowSampler(100).check(torch.randn(1, 6, 3050))
    with pytest.raises(ValueError, match="divisible.*patch_len=7"):
        patchify1d(torch.randn(1, 1, 20), 7)


def test_bad_settings():
    with pytest.raises(ValueError, match="patch_len.*0"):
        OffGridWindowSampler(0)
    with pytest.raises(ValueError, match="num_patches.*-3"):
        OffGridWindowSampler(10, num_patches=-3)
    with pytest.raises(ValueError, match="window_len.*0"):
        OffGridWindowSampler(10, window_len=0)
    with pytest.raises(ValueError, match=r"scale_range.*satisfy.*0.*\(2.0, 1.0\)"):
        ScaleWindowSampler(10, scale_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="sampler.*'random'.*'grid'.*'offgrid'"):
        build_window_sampler("random", 10)
    with pytest.raises(ValueError, match="num_patches.*'grid'"):
        build_window_sampler("grid", 10, num_patches=5)
    with pytest.raises(ValueError, match="window_len.*'scale'"):
        build_window_sampler("scale", 10, window_len=20)
    with pytest.raises(ValueError, match="option.*'box_size'"):
        build_window_sampler("offgrid", 10, box_size=20)
    with pytest.raises(ValueError, match=r"patches must be 4D \(B, N, C, L\)"):
        unpatchify1d(torch.randn(2, 3, 4))
