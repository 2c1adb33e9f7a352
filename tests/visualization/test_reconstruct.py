"""Reconstruction tensors (paper §5.1, Fig. 4): placement, least squares, painting, oracle vs random model."""

import pytest
import torch
import torch.nn.functional as F

from part.sampling import GridSampler, OffGridSampler, ScaleAspectSampler
from part.targets import relative_matrix
from part.visualization.reconstruct import (
    choose_reference,
    least_squares_centres,
    paint_patches,
    paint_values,
    place_from_reference,
    placement_errors,
    reconstruct,
    sample_and_predict,
)

from .conftest import Oracle


def hand_case():
    """Three 10x10 boxes on a row at x = 0, 10, 20 (y = 5); predictions exact except d_02 = 26 px (truth 20)."""
    boxes = torch.tensor([[[0.0, 5, 10, 10], [10, 5, 10, 10], [20, 5, 10, 10]]])
    dx = torch.tensor([[0.0, 10, 26], [-10, 0, 10], [-20, -10, 0]])  # d_ij in px, reference i -> target j
    pred = torch.zeros(1, 3, 3, 2)
    pred[..., 0] = dx / 10.0  # theta in units of the reference width
    return boxes, pred


def test_least_squares_hand_case():
    boxes, pred = hand_case()
    # Normal equations for unit weights: c_k = mean + (sum_i d_ik - sum_j d_kj) / (2N), N = 3, mean x = 10:
    # c_0 = 10 + (-30 - 36) / 6 = -1, c_1 = 10 + 0 = 10, c_2 = 10 + (36 - (-30)) / 6 = 21.
    c = least_squares_centres(pred, boxes)
    torch.testing.assert_close(c, torch.tensor([[[-1.0, 5.0], [10.0, 5.0], [21.0, 5.0]]]))
    # gauge on reference 0 instead: the same shape shifted so c_0 = 0.
    c_ref = least_squares_centres(pred, boxes, anchor="reference", reference=torch.tensor([0]))
    torch.testing.assert_close(c_ref, torch.tensor([[[0.0, 5.0], [11.0, 5.0], [22.0, 5.0]]]))
    # one reference (patch 0) takes the outlier at face value: c_2 = 0 + 2.6 * 10 = 26.
    c_one, sizes = place_from_reference(pred, boxes, torch.tensor([0]))
    torch.testing.assert_close(c_one, torch.tensor([[[0.0, 5.0], [10.0, 5.0], [26.0, 5.0]]]))
    torch.testing.assert_close(sizes, boxes[..., 2:])
    err, frac = placement_errors(c_one, boxes, (10, 40))
    torch.testing.assert_close(err, torch.tensor([[0.0, 0.0, 6.0]]))
    torch.testing.assert_close(frac, torch.tensor([[0.0, 0.0, 6.0 / 40]]))


def test_least_squares_two_patches_splits_disagreement():
    # d_01 = 12 px and d_10 = -8 px disagree; the minimiser of (δ-12)^2 + (δ-8)^2 is δ = 10.
    boxes = torch.tensor([[[0.0, 0, 4, 4], [10, 0, 4, 4]]])
    pred = torch.zeros(1, 2, 2, 2)
    pred[0, 0, 1, 0], pred[0, 1, 0, 0] = 12 / 4, -8 / 4
    c = least_squares_centres(pred, boxes)
    torch.testing.assert_close(c[0, :, 0], torch.tensor([0.0, 10.0]))


def test_least_squares_matches_explicit_lstsq_with_weights():
    """The Laplacian solver equals a plain least-squares solve of the explicit residual equations."""
    g = torch.Generator().manual_seed(1)
    b, n = 2, 5
    boxes = torch.cat([torch.rand(b, n, 2, generator=g) * 30, 3 + torch.rand(b, n, 2, generator=g) * 5], -1)
    pred = torch.randn(b, n, n, 2, generator=g)
    w = torch.rand(b, n, n, generator=g)
    got = least_squares_centres(pred, boxes, weights=w, anchor="reference", reference=torch.tensor([2, 4]))
    for bi, ref in enumerate([2, 4]):
        for axis in range(2):
            rows, rhs = [], []
            for i in range(n):
                for j in range(n):
                    if i != j:
                        r = torch.zeros(n, dtype=torch.float64)
                        r[j], r[i] = 1.0, -1.0
                        s = w[bi, i, j].double().sqrt()
                        rows.append(r * s)
                        rhs.append(s * pred[bi, i, j, axis].double() * boxes[bi, i, 2 + axis].double())
            # gauge row: c_ref = true centre (heavily weighted so it is met exactly)
            r = torch.zeros(n, dtype=torch.float64)
            r[ref] = 1e6
            rows.append(r)
            rhs.append(1e6 * boxes[bi, ref, axis].double())
            sol = torch.linalg.lstsq(torch.stack(rows), torch.stack(rhs)[:, None]).solution[:, 0]
            torch.testing.assert_close(got[bi, :, axis].double(), sol, atol=1e-4, rtol=0)


def test_least_squares_unit_weights_closed_form():
    g = torch.Generator().manual_seed(2)
    boxes = torch.cat([torch.rand(3, 6, 2, generator=g) * 20, torch.full((3, 6, 2), 4.0)], -1)
    pred = torch.randn(3, 6, 6, 2, generator=g)
    d = pred * boxes[:, :, None, 2:]
    eye = torch.eye(6, dtype=torch.bool)[None, :, :, None]
    d = d.masked_fill(eye, 0)
    expected = boxes[..., :2].mean(1, keepdim=True) + (d.sum(1) - d.sum(2)) / (2 * 6)
    torch.testing.assert_close(least_squares_centres(pred, boxes), expected, atol=1e-5, rtol=0)


def test_least_squares_bad_inputs():
    boxes, pred = hand_case()
    with pytest.raises(ValueError, match="anchor must be"):
        least_squares_centres(pred, boxes, anchor="median")
    with pytest.raises(ValueError, match="needs the reference"):
        least_squares_centres(pred, boxes, anchor="reference")
    with pytest.raises(ValueError, match="weights must have shape"):
        least_squares_centres(pred, boxes, weights=torch.ones(4, 4))
    with pytest.raises(ValueError, match="non-negative"):
        least_squares_centres(pred, boxes, weights=-torch.ones(3, 3))
    w = torch.zeros(3, 3)
    w[0, 1] = 1.0  # patch 2 is linked to nobody
    with pytest.raises(ValueError, match="unconnected"):
        least_squares_centres(pred, boxes, weights=w)


def test_choose_reference():
    boxes = torch.tensor([[[2.0, 2, 4, 4], [8, 8, 4, 4], [14, 2, 4, 4]]]).repeat(2, 1, 1)
    assert choose_reference(boxes, 1).tolist() == [1, 1]
    assert choose_reference(boxes, "center", image_size=(16, 16)).tolist() == [1, 1]
    a = choose_reference(boxes, "random", torch.Generator().manual_seed(3))
    b = choose_reference(boxes, "random", torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.shape == (2,) and bool(((a >= 0) & (a < 3)).all())
    assert choose_reference(boxes, torch.tensor([0, 2])).tolist() == [0, 2]
    with pytest.raises(ValueError, match="out of range"):
        choose_reference(boxes, 3)
    with pytest.raises(ValueError, match="reference must be"):
        choose_reference(boxes, "middle")
    with pytest.raises(ValueError, match="one index per image"):
        choose_reference(boxes, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="needs image_size"):
        choose_reference(boxes, "center")


def _paint_reference(patches, centres, sizes, image_size, margin):
    """Plain reference painter: one F.grid_sample per patch, loop over patches (test only)."""
    b, n, c, p, _ = patches.shape
    h, w = image_size
    ys = torch.arange(h + 2 * margin) + 0.5 - margin
    xs = torch.arange(w + 2 * margin) + 0.5 - margin
    total = torch.zeros(b, c, h + 2 * margin, w + 2 * margin)
    count = torch.zeros(b, 1, h + 2 * margin, w + 2 * margin)
    for bi in range(b):
        for k in range(n):
            x0 = centres[bi, k, 0] - sizes[bi, k, 0] / 2
            y0 = centres[bi, k, 1] - sizes[bi, k, 1] / 2
            u = (xs - x0) / sizes[bi, k, 0]
            v = (ys - y0) / sizes[bi, k, 1]
            grid = torch.stack(torch.meshgrid(v * 2 - 1, u * 2 - 1, indexing="ij")[::-1], -1)[None]
            val = F.grid_sample(patches[bi, k][None], grid, mode="bilinear", padding_mode="border",
                                align_corners=False)[0]
            inside = ((v >= 0) & (v < 1))[:, None] & ((u >= 0) & (u < 1))[None, :]
            total[bi] += val * inside
            count[bi, 0] += inside
    return total / count.clamp(min=1), count


def test_paint_patches_matches_plain_reference():
    g = torch.Generator().manual_seed(4)
    patches = torch.rand(2, 5, 3, 4, 4, generator=g)
    centres = torch.rand(2, 5, 2, generator=g) * 20
    sizes = 2 + torch.rand(2, 5, 2, generator=g) * 8
    got, cov = paint_patches(patches, centres, sizes, (18, 20), margin=3)
    ref, ref_cov = _paint_reference(patches, centres, sizes, (18, 20), 3)
    assert got.shape == (2, 3, 24, 26) and cov.shape == (2, 1, 24, 26)
    torch.testing.assert_close(cov, ref_cov)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=0)


def test_paint_patches_inverts_the_grid_crop(real_images):
    """Grid patches painted at their grid boxes give back the image exactly (and full coverage)."""
    x = real_images[:2]
    patches, boxes = GridSampler(7)(x)
    canvas, cov = paint_patches(patches, boxes[..., :2], boxes[..., 2:], (28, 28))
    torch.testing.assert_close(canvas, x)
    assert bool((cov == 1).all())


def test_paint_values_averages_overlaps():
    centres = torch.tensor([[[3.0, 3.0], [5.0, 3.0]]])  # boxes [1,5) and [3,7) in x, [1,5) in y
    sizes = torch.full((1, 2, 2), 4.0)
    out = paint_values(torch.tensor([[1.0, 3.0]]), centres, sizes, (8, 8))
    assert out[0, 2, 1] == 1.0 and out[0, 2, 3] == 2.0 and out[0, 2, 4] == 2.0 and out[0, 2, 5] == 3.0
    assert torch.isnan(out[0, 0, 0]) and torch.isnan(out[0, 6, 3])


@pytest.mark.parametrize("oracle_name", ["oracle_offgrid", "oracle_grid"])
def test_oracle_reconstruction_is_exact(oracle_name, request, fmnist):
    oracle = request.getfixturevalue(oracle_name)
    rec = reconstruct(oracle, fmnist, torch.Generator().manual_seed(0))
    for k in ("error_px", "error_frac", "lsq_error_px", "lsq_error_frac"):
        assert rec.metrics[k].shape == (4,)
        assert float(rec.metrics[k].max()) < 1e-4, k
    torch.testing.assert_close(rec.pred_canvas, rec.gt_canvas, atol=1e-5, rtol=0)
    torch.testing.assert_close(rec.lsq_canvas, rec.gt_canvas, atol=1e-5, rtol=0)
    assert torch.equal(rec.pred_coverage, rec.gt_coverage)
    if oracle_name == "oracle_grid":  # the grid covers the image: the canvas IS the image
        torch.testing.assert_close(rec.gt_canvas, fmnist)


def test_random_model_reconstruction_is_clearly_worse(random_model, oracle_offgrid, fmnist):
    g = torch.Generator().manual_seed(0)
    rec = reconstruct(random_model, fmnist, g, reference="center")
    good = reconstruct(oracle_offgrid, fmnist, torch.Generator().manual_seed(0), reference="center")
    assert float(rec.metrics["error_px"].mean()) > 2.0  # several pixels off on a 28 px image
    assert float(rec.metrics["lsq_error_px"].mean()) > 2.0
    assert float(good.metrics["error_px"].mean()) < 1e-4
    assert float((rec.pred_canvas - rec.gt_canvas).abs().mean()) > 0.05


def test_scale_sampler_oracle_places_and_sizes_boxes(fmnist):
    oracle = Oracle(ScaleAspectSampler(7, num_patches=8), with_scale=True)
    rec = reconstruct(oracle, fmnist[:2], torch.Generator().manual_seed(1), margin=4)
    torch.testing.assert_close(rec.sizes, rec.boxes[..., 2:], atol=1e-4, rtol=0)
    assert float(rec.metrics["error_px"].max()) < 1e-4
    assert rec.gt_canvas.shape == (2, 1, 36, 36)
    torch.testing.assert_close(rec.pred_canvas, rec.gt_canvas, atol=1e-4, rtol=0)


def test_sample_and_predict_restores_mode_and_checks_model(random_model, fmnist):
    random_model.train()
    p = sample_and_predict(random_model, fmnist[:2], torch.Generator().manual_seed(0))
    assert random_model.training  # eval only during the call
    assert p.pred.shape == (2, 12, 12, 2) and p.boxes.shape == (2, 12, 4)
    with pytest.raises(ValueError, match="predict_matrix"):
        sample_and_predict(torch.nn.Linear(2, 2), fmnist)
    with pytest.raises(ValueError, match=r"predictions must have shape"):
        sample_and_predict(random_model, fmnist, predict_fn=lambda patches, boxes: torch.zeros(4, 12, 2))
    # sampler override by name, grid: N = (28 / 7)^2 = 16
    p = sample_and_predict(random_model, fmnist[:1], sampler="grid")
    assert p.boxes.shape == (1, 16, 4)
    with pytest.raises(ValueError, match="num_patches.*cannot"):
        sample_and_predict(random_model, fmnist[:1], sampler="grid", num_patches=4)


def test_predict_fn_hook_equals_oracle(fmnist):
    sampler = OffGridSampler(7, num_patches=6)
    rec = reconstruct(None, fmnist[:2], torch.Generator().manual_seed(2), sampler=sampler,
                      predict_fn=lambda patches, boxes: relative_matrix(boxes))
    assert float(rec.metrics["lsq_error_px"].max()) < 1e-4


def test_num_patches_override_keeps_the_models_sampler_settings(fmnist):
    import part

    backbone = part.vit_custom(32, 1, 2, img_size=28, patch_size=7, in_chans=1)
    model = part.PARTModel(backbone, num_pairs=10, sampler="scale", num_patches=8, scale_range=(0.9, 1.1))
    p = sample_and_predict(model, fmnist[:2], torch.Generator().manual_seed(0), num_patches=5)
    assert p.boxes.shape == (2, 5, 4) and p.pred.shape == (2, 5, 5, 4)
    assert float(p.boxes[..., 2:].min()) >= 0.9 * 7 - 1e-4 and float(p.boxes[..., 2:].max()) <= 1.1 * 7 + 1e-4
