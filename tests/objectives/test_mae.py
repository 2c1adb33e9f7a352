import math

import pytest
import torch

from part.models.pos_embed import sincos_pos_embed_2d
from part.objectives.mae import MAEObjective, check_ratio, random_masking, unshuffle_tokens
from part.sampling import patchify

from .helpers import overfit, tiny_backbone


# --- masking -------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,keep", [(16, 4), (49, 12), (10, 1), (10, 9)])
def test_random_masking_counts_and_inverse(n, keep):
    m = random_masking(5, n, keep, torch.Generator().manual_seed(n))
    assert m.ids_keep.shape == (5, keep)
    assert torch.equal(m.mask.sum(1), torch.full((5,), n - keep))  # exact count per sample
    ar = torch.arange(n).expand(5, n)
    # ids_restore is the inverse permutation of ids_shuffle, both ways
    assert torch.equal(m.ids_shuffle.gather(1, m.ids_restore), ar)
    assert torch.equal(m.ids_restore.gather(1, m.ids_shuffle), ar)
    # kept tokens are exactly the unmasked ones
    kept = torch.zeros(5, n, dtype=torch.bool).scatter_(1, m.ids_keep, True)
    assert torch.equal(kept, ~m.mask)
    # per-sample shuffling: the samples do not share one permutation
    assert not all(torch.equal(m.ids_shuffle[0], m.ids_shuffle[i]) for i in range(1, 5))


def test_random_masking_is_seeded():
    a = random_masking(3, 16, 4, torch.Generator().manual_seed(1))
    b = random_masking(3, 16, 4, torch.Generator().manual_seed(1))
    c = random_masking(3, 16, 4, torch.Generator().manual_seed(2))
    assert torch.equal(a.ids_shuffle, b.ids_shuffle) and not torch.equal(a.ids_shuffle, c.ids_shuffle)


def test_unshuffle_restores_grid_order():
    n, keep = 9, 3
    m = random_masking(2, n, keep, torch.Generator().manual_seed(3))
    visible = m.ids_keep.float().unsqueeze(-1)  # each kept token carries its own grid index
    fill = torch.full((1, 1, 1), -1.0)
    full = unshuffle_tokens(visible, fill, m.ids_restore)[..., 0]  # (B, N)
    expected = torch.where(m.mask, torch.tensor(-1.0), torch.arange(n).float().expand(2, n))
    assert torch.equal(full, expected)


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_check_ratio_range(ratio):
    with pytest.raises(ValueError, match="mask_ratio"):
        check_ratio("mask_ratio", ratio)


def test_check_ratio_keeps_and_masks_something():
    assert check_ratio("mask_ratio", 0.75, 16) == 4
    assert check_ratio("mask_ratio", 0.75, 196) == 49  # int(196 * 0.25), as MAE
    with pytest.raises(ValueError, match="keeps 0 of 3 tokens"):
        check_ratio("mask_ratio", 0.9, 3)
    with pytest.raises(ValueError, match="keeps 4 of 4 tokens"):
        check_ratio("mask_ratio", 1e-17, 4)  # 1 - 1e-17 rounds to 1.0: nothing would be masked


# --- sin-cos table -------------------------------------------------------------------------------
def test_sincos_hand_values():
    t = sincos_pos_embed_2d(8, 2, 3, num_prefix=1)  # dim 8 -> omega = [1, 1/100]
    assert t.shape == (1 + 6, 8)
    assert torch.equal(t[0], torch.zeros(8))  # CLS row
    # grid cell row=1, col=2 is token 1 + 1*3 + 2 = 6: x-half encodes 2, y-half encodes 1
    x, y = 2.0, 1.0
    exp = [math.sin(x), math.sin(x / 100), math.cos(x), math.cos(x / 100),
           math.sin(y), math.sin(y / 100), math.cos(y), math.cos(y / 100)]
    torch.testing.assert_close(t[6], torch.tensor(exp), rtol=1e-6, atol=1e-6)


def test_sincos_needs_dim_multiple_of_4():
    with pytest.raises(ValueError, match="embed_dim=30.*4"):
        sincos_pos_embed_2d(30, 2, 2)
    with pytest.raises(ValueError, match="embed_dim=30.*4"):
        MAEObjective(tiny_backbone(dim=30, heads=2))


# --- the objective -------------------------------------------------------------------------------
def test_mae_pos_embed_sincos_frozen_and_backbone_untouched():
    torch.manual_seed(0)
    bb = tiny_backbone()
    before = {k: v.clone() for k, v in bb.state_dict().items()}
    obj = MAEObjective(bb)
    after = bb.state_dict()
    assert set(after) - set(before) == {"pos_embed"}
    for k in before:
        assert torch.equal(before[k], after[k]), k  # decoder init must not touch the encoder
    torch.testing.assert_close(bb.pos_embed[0], sincos_pos_embed_2d(32, 4, 4, 1))
    assert not bb.pos_embed.requires_grad
    assert MAEObjective(tiny_backbone(), freeze_pos_embed=False).backbone.pos_embed.requires_grad
    assert obj.decoder_pos_embed.shape == (1, 17, 32)


def test_mae_mask_ratio_exact_and_loss_on_masked_only():
    torch.manual_seed(0)
    obj = MAEObjective(tiny_backbone(), mask_ratio=0.75, decoder_dim=16, decoder_heads=2)
    x = torch.rand(3, 3, 16, 16)
    out = obj(x, torch.Generator().manual_seed(0))
    assert out.mask.shape == (3, 16) and torch.equal(out.mask.sum(1), torch.full((3,), 12))
    assert out.pred.shape == out.target.shape == (3, 16, 48)
    t = patchify(x, 4).flatten(2)
    t = (t - t.mean(-1, keepdim=True)) / (t.var(-1, keepdim=True) + 1e-6).sqrt()
    torch.testing.assert_close(out.target, t)
    per = (out.pred.detach() - t).pow(2).mean(-1)
    torch.testing.assert_close(out.loss.detach(), per[out.mask].mean())
    torch.testing.assert_close(out.metrics["mse_visible"], per[~out.mask].mean())
    assert float(out.metrics["mask_ratio"]) == 0.75
    # gradient of the loss w.r.t. predictions is zero on visible patches
    pred = out.pred
    pred.retain_grad()
    out.loss.backward()
    assert pred.grad[~out.mask].abs().max() == 0 and pred.grad[out.mask].abs().max() > 0


def test_mae_raw_pixel_target_and_seeding():
    obj = MAEObjective(tiny_backbone(), norm_pix_loss=False)
    x = torch.rand(2, 3, 16, 16)
    a = obj(x, torch.Generator().manual_seed(4))
    b = obj(x, torch.Generator().manual_seed(4))
    torch.testing.assert_close(a.target, patchify(x, 4).flatten(2))
    assert torch.equal(a.mask, b.mask)
    torch.testing.assert_close(a.loss, b.loss)


def test_mae_errors():
    with pytest.raises(ValueError, match="images.*20x20.*img_size"):
        MAEObjective(tiny_backbone())(torch.rand(1, 3, 20, 20))
    with pytest.raises(ValueError, match="decoder_dim=30.*decoder_heads=4"):
        MAEObjective(tiny_backbone(), decoder_dim=30, decoder_heads=4)
    with pytest.raises(ValueError, match="decoder_depth must be >= 1"):
        MAEObjective(tiny_backbone(), decoder_depth=0)
    with pytest.raises(ValueError, match="mask_ratio"):
        MAEObjective(tiny_backbone(), mask_ratio=1.0)


def test_mae_overfits_real_images(real_images):
    torch.manual_seed(0)
    obj = MAEObjective(tiny_backbone(img=28, patch=7, chans=1), decoder_depth=1)
    losses = overfit(obj, real_images[:8], steps=80, lr=2e-3)
    start, end = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert end < 0.6 * start, (start, end)
