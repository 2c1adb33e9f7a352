"""Informative vs ambiguous patches in the capability numbers: blank patches have no recoverable position, so
reconstruction and symmetry are reported over all patches and over the informative ones (issue 18)."""

import json

import numpy as np
import pytest
import torch

from part.sampling import GridSampler, OffGridSampler
from part.targets import relative_matrix
from part.visualization import visualize
from part.visualization.reconstruct import (
    INFORMATIVE_STD,
    choose_reference,
    informative_patches,
    masked_mean,
    patch_contrast,
    reconstruct_from_predictions,
)
from part.visualization.symmetry import offdiag_corr, pair_mask, symmetry_from_predictions

from .conftest import Oracle


def test_patch_contrast_equals_a_plain_loop():
    g = torch.Generator().manual_seed(0)
    patches = torch.randn(2, 5, 3, 4, 4, generator=g) * torch.rand(2, 5, 1, 1, 1, generator=g)
    patches[0, 1] = torch.tensor([0.3, -2.0, 5.0]).view(3, 1, 1)  # flat, a different value per channel
    ref = np.zeros((2, 5))
    for b in range(2):
        for n in range(5):
            ref[b, n] = np.sqrt(np.mean([np.var(patches[b, n, c].numpy()) for c in range(3)]))
    np.testing.assert_allclose(patch_contrast(patches).numpy(), ref, rtol=1e-5, atol=1e-7)
    assert patch_contrast(patches)[0, 1] == 0  # a flat colour is not contrast
    checker = (torch.arange(16).view(4, 4) % 2 * 2 - 1).float().expand(1, 1, 1, 4, 4)  # +-1 columns
    assert patch_contrast(checker).item() == pytest.approx(1.0)
    mask = informative_patches(patches, 0.5)
    assert torch.equal(mask, patch_contrast(patches) > 0.5)
    for bad in (-0.1, "x", True, float("nan")):
        with pytest.raises(ValueError, match="informative_std.*0"):
            informative_patches(patches, bad)
    with pytest.raises(ValueError, match=r"\(B, N, C, P, P\)"):
        patch_contrast(torch.zeros(2, 3, 4, 4))


def test_masked_mean_and_empty_masks():
    v = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    m = torch.tensor([[True, False, True], [False, False, False]])
    out = masked_mean(v, m)
    assert out[0] == 2.0 and torch.isnan(out[1])


def half_blank(real_images):
    """Fashion-MNIST images with the left half set to the background, in the normalised space."""
    x = real_images[:3].clone()
    x[..., :14] = 0.0
    return (x - 0.286) / 0.353


def garbled_oracle(boxes, informative, seed=0):
    """True transforms, except every pair touching an ambiguous patch gets noise (its position is unknowable)."""
    truth = relative_matrix(boxes)
    noise = torch.randn(truth.shape, generator=torch.Generator().manual_seed(seed)) * 2.0
    bad = ~pair_mask(informative)
    return torch.where(bad[..., None], truth + noise, truth)


def test_reconstruction_reports_informative_patches_apart(real_images):
    x = half_blank(real_images)
    patches, boxes = OffGridSampler(7, num_patches=20)(x, torch.Generator().manual_seed(1))
    informative = informative_patches(patches)
    assert 0 < informative.float().mean() < 1  # both kinds present
    pred = garbled_oracle(boxes, informative)
    rec = reconstruct_from_predictions(patches, boxes, pred, (28, 28), reference="informative",
                                       generator=torch.Generator().manual_seed(2))
    mt = rec.metrics
    assert torch.equal(rec.informative, informative) and rec.informative_std == INFORMATIVE_STD
    assert bool(informative[torch.arange(3), rec.reference].all())  # the reference is an informative patch
    assert torch.equal(mt["reference_informative"], torch.ones(3))
    # one informative reference places informative targets exactly; blank ones are off
    assert mt["error_px_informative"].abs().max() < 1e-4 and (mt["error_px"] > 0.5).all()
    torch.testing.assert_close(mt["informative_fraction"], informative.float().mean(1))
    # least squares mixes every pair, so blank patches pull informative ones a little, never more than all
    assert (mt["lsq_error_px_informative"] < mt["lsq_error_px"]).all()
    for key in ("error_frac_informative", "lsq_error_frac_informative"):
        assert mt[key].shape == (3,) and torch.isfinite(mt[key]).all()
    # a blank reference: the metric says so
    blank = int((~informative[0]).nonzero()[0])
    rec2 = reconstruct_from_predictions(patches, boxes, pred, (28, 28), reference=blank)
    assert rec2.metrics["reference_informative"][0] == 0
    # a threshold above every patch's contrast: nothing informative, the informative numbers are NaN
    rec3 = reconstruct_from_predictions(patches, boxes, pred, (28, 28), informative_std=1e6)
    assert torch.isnan(rec3.metrics["error_px_informative"]).all() and (rec3.metrics["informative_fraction"] == 0).all()


def test_choose_reference_informative_draws_only_informative_and_falls_back():
    boxes = torch.zeros(2, 6, 4)
    informative = torch.tensor([[False, True, False, False, True, False], [False] * 6])
    g = torch.Generator().manual_seed(0)
    picks = torch.stack([choose_reference(boxes, "informative", g, informative=informative) for _ in range(200)])
    assert set(picks[:, 0].tolist()) == {1, 4}  # uniform among the informative ones
    assert len(set(picks[:, 1].tolist())) == 6  # none informative: all patches
    a = choose_reference(boxes, "informative", torch.Generator().manual_seed(5), informative=informative)
    b = choose_reference(boxes, "informative", torch.Generator().manual_seed(5), informative=informative)
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="reference='informative' needs informative"):
        choose_reference(boxes, "informative")


def test_offdiag_corr_with_a_mask_equals_numpy():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2, 7, 7, 2, generator=g), torch.randn(2, 7, 7, 2, generator=g)
    b = b + a  # correlated
    informative = torch.rand(2, 7, generator=g) > 0.4
    mask = pair_mask(informative)
    got = offdiag_corr(a, b, mask)
    for i in range(2):
        keep = mask[i] & ~torch.eye(7, dtype=torch.bool)
        for k in range(2):
            ref = np.corrcoef(a[i][keep][:, k].numpy(), b[i][keep][:, k].numpy())[0, 1]
            assert got[i, k].item() == pytest.approx(ref, abs=1e-6)
    full = offdiag_corr(a, b)
    ones = offdiag_corr(a, b, torch.ones(2, 7, 7, dtype=torch.bool))
    torch.testing.assert_close(full, ones)
    one_pair = torch.zeros(2, 7, 7, dtype=torch.bool)
    one_pair[:, 0, 1] = True
    assert torch.isnan(offdiag_corr(a, b, one_pair)).all()  # fewer than two entries


def test_symmetry_reports_informative_pairs_apart(real_images):
    x = half_blank(real_images)
    patches, boxes = OffGridSampler(7, num_patches=20)(x, torch.Generator().manual_seed(3))
    informative = informative_patches(patches)
    pred = garbled_oracle(boxes, informative, seed=4)
    sym = symmetry_from_predictions(boxes, pred, torch.Generator().manual_seed(0), informative=informative)
    mt = sym.metrics
    for axis in ("x", "y"):
        assert (mt[f"neg_symmetry_{axis}_informative"] > 0.9999).all()
        assert (mt[f"corr_gt_{axis}_informative"] > 0.9999).all()
        assert (mt[f"corr_gt_{axis}"] < 0.99).all()  # the blank patches' pairs pull the all-pairs score down
    assert mt["mae_gt_informative"].abs().max() < 1e-5 and (mt["mae_gt"] > 0.1).all()
    torch.testing.assert_close(mt["informative_fraction"], informative.float().mean(1))
    plain = symmetry_from_predictions(boxes, pred, torch.Generator().manual_seed(0))  # no mask: all patches
    for key in ("neg_symmetry_x", "corr_gt_y", "mae_gt"):
        torch.testing.assert_close(plain.metrics[key + "_informative"], plain.metrics[key])
    with pytest.raises(ValueError, match=r"informative must be \(B, N\)"):
        symmetry_from_predictions(boxes, pred, informative=informative[:, :3])


@pytest.mark.parametrize("kind", ["reconstruct", "symmetry"])
def test_visualize_json_and_figure_carry_both_numbers(kind, tmp_path, real_images):
    x = half_blank(real_images)
    out = visualize(kind, Oracle(GridSampler(7)), x, tmp_path, num_images=2, images_normalized=True,
                    informative_std=0.2, reference="informative")
    data = json.loads(out.json_path.read_text())
    assert data["settings"]["informative_std"] == 0.2
    keys = (["error_px_informative", "lsq_error_px_informative", "reference_informative"] if kind == "reconstruct"
            else ["neg_symmetry_x_informative", "corr_gt_y_informative", "mae_gt_informative"])
    for key in keys + ["informative_fraction"]:
        assert key in data["summary"] and key in data["units"]
    # the left half is blank: at least 8 of the 16 grid patches are ambiguous (and some background ones)
    assert 0.0 < data["summary"]["informative_fraction"] <= 0.5
    flags = data["per_image"][0]["patch_informative"]
    assert len(flags) == 16 and not all(flags) and any(flags)
    assert all(f.stat().st_size > 10_000 for f in out.figures)


def test_reconstruction_figure_marks_informative_and_ambiguous_patches(monkeypatch, tmp_path, real_images):
    """The figure (issue 18: "the demo's reconstruction figure marks which is which"): the input panel outlines
    the informative boxes and, dashed in the ambiguous colour, exactly the ambiguous ones; the mosaic frames
    every ambiguous tile; the legend names both with the threshold."""
    from matplotlib.collections import PatchCollection
    from matplotlib.colors import to_rgb

    from part.visualization import plots

    figures = []
    real_save = plots.save_figure
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: figures.append(fig) or real_save(fig, path))
    x = half_blank(real_images)
    out = visualize("reconstruct", Oracle(GridSampler(7)), x, tmp_path, num_images=2, images_normalized=True,
                    informative_std=0.2, reference="informative")
    assert len(figures) == 2
    for fig, flags in zip(figures, (img["patch_informative"] for img in out.per_image)):
        good, amb = sum(flags), len(flags) - sum(flags)
        assert good > 0 and amb >= 8  # the blank left half: at least 8 of the 16 grid patches
        ax_input, ax_mosaic = fig.axes[0], fig.axes[1]
        by_label = {c.get_label(): c for c in ax_input.collections if isinstance(c, PatchCollection)}
        assert len(by_label["informative"].get_paths()) == good
        ambiguous = by_label["ambiguous (std ≤ 0.2)"]
        assert len(ambiguous.get_paths()) == amb
        assert np.allclose(ambiguous.get_edgecolor()[0][:3], to_rgb(plots.AMBIGUOUS_COLOR))
        legend = [t.get_text() for t in ax_input.get_legend().get_texts()]
        assert "informative" in legend and "ambiguous (std ≤ 0.2)" in legend and "reference" in legend
        assert f"{good} informative" in ax_input.get_title()
        frames = [p for p in ax_mosaic.patches if p.get_linestyle() == "--"]
        assert len(frames) == amb
