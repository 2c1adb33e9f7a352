"""Patch uncertainty tensors (paper §5.1, Fig. 5): reference clouds, spreads, heat map."""

import math

import pytest
import torch

from part.visualization.uncertainty import (
    position_spread,
    predicted_positions,
    uncertainty,
    uncertainty_from_predictions,
    uncertainty_map,
)


def test_predicted_positions_formula():
    boxes = torch.tensor([[[10.0, 20, 4, 8], [30, 40, 2, 2]]])
    pred = torch.zeros(1, 2, 2, 2)
    pred[0, 0, 1] = torch.tensor([5.0, 2.5])  # ref 0 -> tgt 1: (10 + 5*4, 20 + 2.5*8) = (30, 40)
    pred[0, 1, 0] = torch.tensor([-1.0, 3.0])  # ref 1 -> tgt 0: (30 - 2, 40 + 6) = (28, 46)
    pos = predicted_positions(pred, boxes)
    assert pos.shape == (1, 2, 2, 2)
    torch.testing.assert_close(pos[0, 0, 1], torch.tensor([30.0, 40.0]))
    torch.testing.assert_close(pos[0, 1, 0], torch.tensor([28.0, 46.0]))


def test_spread_hand_case():
    # Three patches; target 0 is estimated at (0, 0) by ref 1 and at (2, 0) by ref 2.
    pos = torch.full((1, 3, 3, 2), 7.0)
    pos[0, 1, 0] = torch.tensor([0.0, 0.0])
    pos[0, 2, 0] = torch.tensor([2.0, 0.0])
    pos[0, 0, 0] = torch.tensor([100.0, 100.0])  # the diagonal must be ignored
    s = position_spread(pos)
    # population variance of {0, 2} is 1; y is constant -> trace 1
    assert math.isclose(float(s["trace_cov"][0, 0]), 1.0, abs_tol=1e-6)
    torch.testing.assert_close(s["mean"][0, 0], torch.tensor([1.0, 0.0]))
    # lower median of {0, 2} is 0 -> distances 0 and 2 -> mean 1
    torch.testing.assert_close(s["median"][0, 0], torch.tensor([0.0, 0.0]))
    assert math.isclose(float(s["median_dist"][0, 0]), 1.0, abs_tol=1e-6)
    # targets 1 and 2 are estimated at (7, 7) by both other references -> no spread
    assert float(s["trace_cov"][0, 1:].abs().max()) == 0.0 and float(s["median_dist"][0, 1:].abs().max()) == 0.0


def test_oracle_has_zero_uncertainty(oracle_offgrid, fmnist):
    unc = uncertainty(oracle_offgrid, fmnist, torch.Generator().manual_seed(0))
    assert unc.positions.shape == (4, 12, 12, 2) and unc.heatmap.shape == (4, 28, 28)
    assert float(unc.median_dist.max()) < 1e-4 and float(unc.trace_cov.max()) < 1e-6
    assert float(unc.metrics["consensus_error_px"].max()) < 1e-4
    covered = ~torch.isnan(unc.heatmap)
    assert bool(covered.any()) and float(unc.heatmap[covered].abs().max()) < 1e-4
    # every cloud sits on the true centre
    true = unc.boxes[..., :2][:, None].expand(-1, 12, -1, -1)
    torch.testing.assert_close(unc.positions, true, atol=1e-4, rtol=0)


def test_random_model_is_clearly_uncertain(random_model, fmnist):
    unc = uncertainty(random_model, fmnist, torch.Generator().manual_seed(0), measure="trace_cov")
    assert float(unc.metrics["mean_median_dist_px"].mean()) > 1.0
    assert float(unc.metrics["consensus_error_px"].mean()) > 1.0
    assert unc.measure == "trace_cov" and torch.equal(unc.spread, unc.trace_cov)


def test_heatmap_paints_each_box_with_its_spread():
    boxes = torch.tensor([[[2.0, 2, 4, 4], [6, 2, 4, 4]]])  # x in [0,4) and [4,8), y in [0,4)
    heat = uncertainty_map(torch.tensor([[1.5, 4.0]]), boxes, (6, 8))
    assert float(heat[0, 1, 1]) == 1.5 and float(heat[0, 1, 6]) == 4.0
    assert bool(torch.isnan(heat[0, 5]).all())


def test_uncertainty_bad_measure(oracle_offgrid, fmnist):
    with pytest.raises(ValueError, match="measure.*one of"):
        uncertainty(oracle_offgrid, fmnist, measure="entropy")
    with pytest.raises(ValueError, match="measure.*one of"):
        uncertainty_from_predictions(None, torch.zeros(1, 2, 4), torch.zeros(1, 2, 2, 2), (8, 8), "var")
