import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from part.targets import (
    SPARSE_DRAW_RATIO,
    all_pairs,
    flat_to_pair,
    max_pairs,
    parse_num_pairs,
    relative_matrix,
    relative_targets,
    sample_pairs,
    subset_by_draws,
    subset_by_keys,
)


def test_hand_computed_translation():
    # ref centre (10, 20) size 4x4; tgt centre (18, 14) size 4x4 -> ((18-10)/4, (14-20)/4) = (2, -1.5)
    boxes = torch.tensor([[[10.0, 20.0, 4.0, 4.0], [18.0, 14.0, 4.0, 4.0]]])
    pairs = torch.tensor([[[0, 1], [1, 0]]])
    theta = relative_targets(boxes, pairs)
    torch.testing.assert_close(theta, torch.tensor([[[2.0, -1.5], [-2.0, 1.5]]]))


def test_hand_computed_with_scale():
    # ref (10, 20, w=4, h=8), tgt (16, 12, w=2, h=16): dx = 6/4, dy = -8/8, w ratio 0.5, h ratio 2
    boxes = torch.tensor([[[10.0, 20.0, 4.0, 8.0], [16.0, 12.0, 2.0, 16.0]]])
    theta = relative_targets(boxes, torch.tensor([[[0, 1]]]), with_scale=True)
    torch.testing.assert_close(theta, torch.tensor([[[1.5, -1.0, 0.5, 2.0]]]))


def test_one_dimensional_boxes():
    boxes = torch.tensor([[[50.0, 100.0], [250.0, 100.0]]])  # (t_centre, L)
    torch.testing.assert_close(relative_targets(boxes, torch.tensor([[[0, 1]]])), torch.tensor([[[2.0]]]))


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(2, 12))
def test_negative_symmetry(seed, n):
    g = torch.Generator().manual_seed(seed)
    b = 2
    c = torch.rand(b, n, 2, generator=g) * 30
    s = 1 + torch.rand(b, n, 2, generator=g) * 5
    boxes = torch.cat([c, s], -1)
    pairs = sample_pairs(b, n, min(10, n * (n - 1)), g)
    fwd = relative_targets(boxes, pairs)
    bwd = relative_targets(boxes, pairs.flip(-1))
    ref, tgt = pairs[..., 0], pairs[..., 1]
    s_ref = torch.gather(s, 1, ref[..., None].expand(-1, -1, 2))
    s_tgt = torch.gather(s, 1, tgt[..., None].expand(-1, -1, 2))
    # theta(i, j) = -theta(j, i) * s_j / s_i
    torch.testing.assert_close(fwd, -bwd * s_tgt / s_ref)
    # equal sizes -> exactly negative
    eq = torch.cat([c, torch.full_like(s, 4.0)], -1)
    assert torch.equal(relative_targets(eq, pairs), -relative_targets(eq, pairs.flip(-1)))


def test_relative_matrix_matches_pairs():
    boxes = torch.cat([torch.rand(2, 5, 2) * 10, torch.full((2, 5, 2), 3.0)], -1)
    mat = relative_matrix(boxes)
    pairs = all_pairs(5).expand(2, -1, -1)
    flat = relative_targets(boxes, pairs)
    torch.testing.assert_close(mat[:, pairs[0, :, 0], pairs[0, :, 1]], flat)
    assert torch.all(mat.diagonal(dim1=1, dim2=2) == 0)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(2, 30), seed=st.integers(0, 1000), frac=st.floats(0.001, 1.0))
def test_sample_pairs_distinct_without_replacement(n, seed, frac):
    m = max(1, int(frac * n * (n - 1)))
    pairs = sample_pairs(3, n, m, torch.Generator().manual_seed(seed))
    assert pairs.shape == (3, m, 2) and pairs.dtype == torch.int64
    assert (pairs[..., 0] != pairs[..., 1]).all()
    assert pairs.min() >= 0 and pairs.max() < n
    for b in range(3):
        codes = pairs[b, :, 0] * n + pairs[b, :, 1]
        assert codes.unique().numel() == m  # no pair repeated


def subset_counts(rows: torch.Tensor, total: int) -> torch.Tensor:
    """How often each 2-subset ``{a, b}`` of ``[0, total)`` was drawn: ``(R, 2)`` -> ``(total * (total - 1) / 2,)``."""
    lo, hi = rows.min(dim=1).values, rows.max(dim=1).values
    assert (lo < hi).all()  # distinct within a row
    code = lo * total + hi
    upper = torch.triu_indices(total, total, offset=1)
    counts = torch.bincount(code, minlength=total * total)
    return counts[upper[0] * total + upper[1]]


def chi_square(counts: torch.Tensor) -> float:
    expected = counts.sum().item() / counts.numel()
    return float(((counts - expected) ** 2 / expected).sum())


@pytest.mark.parametrize("extra", [None, 0])
def test_subset_by_draws_is_uniform_over_subsets(extra):
    # Every 2-subset of 10 indices equally likely (45 cells), as with the reference sampler; extra=0 makes most
    # rows fall short and take the rejection path. Chi-square with 44 dof: mean 44, sd 9.4; 100 is p < 1e-5.
    total, rows = 10, 20_000
    g = torch.Generator().manual_seed(0)
    drawn = subset_by_draws(rows, total, 2, g, "cpu", extra=extra)
    assert drawn.shape == (rows, 2) and drawn.dtype == torch.int64
    assert chi_square(subset_counts(drawn, total)) < 100
    assert chi_square(subset_counts(subset_by_keys(rows, total, 2, g, "cpu"), total)) < 100


def test_subset_by_draws_distinct_and_rejections_refilled():
    g = torch.Generator().manual_seed(1)
    drawn = subset_by_draws(64, 12, 9, g, "cpu", extra=0)  # 9 draws of 12 values: nearly every row falls short
    assert drawn.shape == (64, 9)
    assert all(row.unique().numel() == 9 for row in drawn)
    assert drawn.min() >= 0 and drawn.max() < 12


def test_sample_pairs_takes_the_draw_path_only_for_sparse_subsets():
    # The paper's shapes: M 2048 of N 196 or 576 draw; M 2048 of N 64's 4032 pairs rank keys.
    assert 2048 * SPARSE_DRAW_RATIO <= max_pairs(196) and 2048 * SPARSE_DRAW_RATIO > max_pairs(64)
    pairs = sample_pairs(4, 196, 2048, torch.Generator().manual_seed(0))
    codes = pairs[..., 0] * 196 + pairs[..., 1]
    assert all(row.unique().numel() == 2048 for row in codes) and (pairs[..., 0] != pairs[..., 1]).all()


def test_flat_to_pair_bijective():
    n = 7
    pairs = flat_to_pair(torch.arange(max_pairs(n)), n)
    codes = pairs[:, 0] * n + pairs[:, 1]
    assert codes.unique().numel() == n * (n - 1)
    assert (pairs[:, 0] != pairs[:, 1]).all()


def test_all_pairs_and_string_all():
    p = sample_pairs(2, 4, "all")
    assert p.shape == (2, 12, 2)
    assert torch.equal(p[0], all_pairs(4))


def test_pairs_seeded():
    a = sample_pairs(2, 8, 20, torch.Generator().manual_seed(0))
    b = sample_pairs(2, 8, 20, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)


@pytest.mark.parametrize("bad", [0, -3])
def test_num_pairs_nonpositive(bad):
    with pytest.raises(ValueError, match="num_pairs.*positive"):
        sample_pairs(1, 5, bad)


def test_num_pairs_too_many():
    with pytest.raises(ValueError, match="num_pairs=21.*20.*num_patches=5"):
        sample_pairs(1, 5, 21)


def test_num_pairs_bad_type():
    with pytest.raises(ValueError, match="num_pairs.*'all'"):
        sample_pairs(1, 5, "most")


# --- self-pairs: the N^2 universe (issue 18) -------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 12), frac=st.floats(0.01, 1.0), seed=st.integers(0, 2**31 - 1))
def test_self_pairs_universe_without_replacement(n, frac, seed):
    m = max(1, int(frac * n * n))
    pairs = sample_pairs(3, n, m, torch.Generator().manual_seed(seed), self_pairs=True)
    assert pairs.shape == (3, m, 2) and pairs.min() >= 0 and pairs.max() < n
    flat = pairs[..., 0] * n + pairs[..., 1]
    assert all(len(set(row.tolist())) == m for row in flat)  # distinct pairs per image


def test_self_pairs_all_and_flat_bijection():
    n = 5
    p = all_pairs(n, self_pairs=True)
    assert p.shape == (25, 2) and max_pairs(n, self_pairs=True) == 25
    assert sorted(map(tuple, p.tolist())) == [(i, j) for i in range(n) for j in range(n)]
    torch.testing.assert_close(flat_to_pair(torch.arange(25), n, self_pairs=True), p)
    full = sample_pairs(2, n, "all", self_pairs=True)
    assert torch.equal(full[1], p)


def test_fig8_4096_pairs_need_self_pairs():
    """Fig. 8's 4096 = 64^2 pairs: the N^2 universe has them, the N(N-1) one (4032) does not."""
    assert sample_pairs(1, 64, 4096, torch.Generator().manual_seed(0), self_pairs=True).shape == (1, 4096, 2)
    with pytest.raises(ValueError, match="num_pairs=4096.*4032.*self_pairs"):
        sample_pairs(1, 64, 4096)


def test_self_pair_target_is_identity():
    boxes = torch.tensor([[[3.0, 4.0, 2.0, 5.0], [7.0, 1.0, 4.0, 2.0]]])
    t = relative_targets(boxes, torch.tensor([[[1, 1], [0, 0]]]), with_scale=True)
    torch.testing.assert_close(t, torch.tensor([[[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]]]))


def test_parse_num_pairs_reads_flag_text():
    assert parse_num_pairs("all") == "all" and parse_num_pairs(" 2048 ") == 2048
    for bad in ("0", "-3", "x", "1.5", ""):
        with pytest.raises(ValueError, match="num_pairs must be"):
            parse_num_pairs(bad)
