"""Negative symmetry (paper §5.1, Fig. 6): ordering, permutation, correlations, oracle vs random model."""

import numpy as np
import pytest
import torch

from part.sampling import ScaleAspectSampler, grid_boxes
from part.targets import relative_matrix
from part.visualization.symmetry import (
    negative_symmetry_score,
    offdiag_corr,
    order_top_left,
    permute_matrix,
    random_order,
    symmetry,
    symmetry_from_predictions,
)

from .conftest import Oracle


def test_order_top_left_recovers_row_major_grid():
    boxes = grid_boxes(1, 12, 16, 4)  # 3 x 4 grid, row-major
    perm = torch.tensor([[5, 0, 11, 3, 7, 1, 9, 2, 10, 4, 8, 6]])
    shuffled = boxes[:, perm[0]]
    order = order_top_left(shuffled)
    torch.testing.assert_close(shuffled[:, order[0]], boxes)


def test_order_top_left_hand_case_and_row_binning():
    boxes = torch.tensor([[[9.0, 1.0, 2, 2], [1.0, 2.0, 2, 2], [5.0, 1.5, 2, 2], [3.0, 9.0, 2, 2]]])
    assert order_top_left(boxes).tolist() == [[0, 2, 1, 3]]  # by cy: 1.0, 1.5, 2.0, 9.0
    # rows of height 4: the first three share row 0 and read left to right by cx
    assert order_top_left(boxes, row_height=4).tolist() == [[1, 2, 0, 3]]
    with pytest.raises(ValueError, match="row_height.*positive"):
        order_top_left(boxes, row_height=0)


def test_permute_matrix_and_random_order():
    mat = torch.arange(9.0).reshape(1, 3, 3, 1)
    out = permute_matrix(mat, torch.tensor([[2, 0, 1]]))
    assert out[0, 0, 1, 0] == mat[0, 2, 0, 0] and out[0, 2, 2, 0] == mat[0, 1, 1, 0]
    a = random_order(2, 5, torch.Generator().manual_seed(0))
    assert sorted(a[0].tolist()) == list(range(5))
    assert torch.equal(a, random_order(2, 5, torch.Generator().manual_seed(0)))


def test_offdiag_corr_matches_numpy_and_flags_constants():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 6, 6, 2, generator=g), torch.randn(2, 6, 6, 2, generator=g)
    off = ~np.eye(6, dtype=bool)
    got = offdiag_corr(a, b)
    for i in range(2):
        for k in range(2):
            ref = np.corrcoef(a[i, ..., k].numpy()[off], b[i, ..., k].numpy()[off])[0, 1]
            assert abs(float(got[i, k]) - ref) < 1e-5
    const = torch.full((1, 6, 6, 1), 0.3)
    assert torch.isnan(offdiag_corr(const, a[:1, ..., :1])).all()


def test_truth_is_negatively_symmetric_for_equal_boxes():
    g = torch.Generator().manual_seed(1)
    boxes = torch.cat([torch.rand(2, 10, 2, generator=g) * 20, torch.full((2, 10, 2), 4.0)], -1)
    score = negative_symmetry_score(relative_matrix(boxes))
    torch.testing.assert_close(score, torch.ones(2, 2))


def test_oracle_symmetry_scores_are_one(oracle_offgrid, fmnist):
    sym = symmetry(oracle_offgrid, fmnist, torch.Generator().manual_seed(0))
    for k in ("neg_symmetry_x", "neg_symmetry_y", "corr_gt_x", "corr_gt_y"):
        torch.testing.assert_close(sym.metrics[k], torch.ones(4), atol=1e-5, rtol=0)
    assert float(sym.metrics["mae_gt"].max()) < 1e-6
    torch.testing.assert_close(sym.pred_ordered, sym.target_ordered)
    torch.testing.assert_close(sym.pred_shuffled, sym.target_shuffled)
    # ordered rows really go top to bottom
    cy = torch.gather(sym.boxes[..., 1], 1, sym.order)
    assert bool((cy[:, 1:] >= cy[:, :-1]).all())


def test_noise_and_random_model_score_clearly_lower(random_model, fmnist):
    g = torch.Generator().manual_seed(0)
    boxes = torch.cat([torch.rand(4, 16, 2, generator=g) * 20, torch.full((4, 16, 2), 7.0)], -1)
    noise = symmetry_from_predictions(boxes, torch.randn(4, 16, 16, 2, generator=g), g)
    assert float(noise.neg_symmetry.abs().max()) < 0.35
    assert float(noise.corr_gt.abs().max()) < 0.35
    sym = symmetry(random_model, fmnist, torch.Generator().manual_seed(0))
    assert float(sym.neg_symmetry.mean()) < 0.5
    assert float(sym.metrics["mae_gt"].mean()) > 0.3


def test_scale_sampler_truth_is_only_approximately_negatively_symmetric(fmnist):
    oracle = Oracle(ScaleAspectSampler(7, num_patches=10), with_scale=True)
    sym = symmetry(oracle, fmnist[:2], torch.Generator().manual_seed(0))
    assert sym.pred.shape[-1] == 2  # translations only
    torch.testing.assert_close(sym.neg_symmetry, sym.neg_symmetry_target)
    assert float(sym.neg_symmetry_target.min()) < 0.999  # boxes of different sizes break exact symmetry
    torch.testing.assert_close(sym.corr_gt, torch.ones(2, 2), atol=1e-5, rtol=0)
