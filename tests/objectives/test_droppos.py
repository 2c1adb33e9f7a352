import math

import pytest
import torch
import torch.nn.functional as F

from part.objectives.droppos import DropPosObjective, smoothing_matrix
from part.models.pos_embed import sincos_pos_embed_2d

from .helpers import identity_patch_embed, index_image, overfit, tiny_backbone


def test_labels_and_dropped_positions_on_hand_case():
    # identity patch embedding (d = C P P = 16): encoder input of a visible token = its patch pixels (all equal
    # to its grid index row * gw + col) + either its own sin-cos position or the [MASK] position token.
    bb = tiny_backbone(img=16, patch=4, chans=1, dim=16, heads=2)
    identity_patch_embed(bb)
    obj = DropPosObjective(bb, mask_ratio=0.5, pos_mask_ratio=0.5, attentive=False)
    seen = {}
    h = bb.blocks[0].norm1.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0].detach()))
    out = obj(index_image(3, 16, 4), torch.Generator().manual_seed(0))
    h.remove()
    k = 8  # int(16 * 0.5) visible
    assert out.labels.shape == (3, k) and out.logits.shape == (3, k, 16)
    assert torch.equal(out.pos_dropped.sum(1), torch.full((3,), 4))  # K - int(K * 0.5)
    table = sincos_pos_embed_2d(16, 4, 4, 1)
    fed = seen["x"][:, 1:]  # (B, K, d)
    pos = torch.where(out.pos_dropped[..., None], obj.mask_pos_token.detach().expand(3, k, 16), table[1 + out.labels])
    content = fed - pos
    torch.testing.assert_close(content, out.labels[..., None].float().expand(3, k, 16), rtol=0, atol=1e-5)
    # visible tokens are distinct grid cells
    assert all(len(set(row.tolist())) == k for row in out.labels)


def test_smoothing_matrix_hand_values():
    s = smoothing_matrix(2, 2, sigma=1.0)
    row0 = torch.tensor([1.0, math.exp(-1), math.exp(-1), math.exp(-2)])
    torch.testing.assert_close(s[0], row0 / row0.sum())
    torch.testing.assert_close(s.sum(1), torch.ones(4))
    torch.testing.assert_close(s, s.T)
    assert torch.equal(smoothing_matrix(3, 2, sigma=0.0), torch.eye(6))
    # the grid is row-major: cell 1 = (row 0, col 1) neighbours cell 3 = (row 1, col 1), not cell 2
    s = smoothing_matrix(2, 3, sigma=0.5)
    assert s[1, 4] > s[1, 3]


def test_loss_is_ce_on_dropped_positions_without_extras():
    torch.manual_seed(0)
    obj = DropPosObjective(tiny_backbone(), sigma=0.0, attentive=False)
    out = obj(torch.rand(2, 3, 16, 16), torch.Generator().manual_seed(2))
    ce = F.cross_entropy(out.logits.detach().reshape(-1, 16), out.labels.reshape(-1), reduction="none")
    d = out.pos_dropped.reshape(-1)
    torch.testing.assert_close(out.loss.detach(), ce[d].mean())
    torch.testing.assert_close(out.weights, out.pos_dropped.float())
    hit = out.logits.argmax(-1) == out.labels
    torch.testing.assert_close(out.metrics["acc"], hit[out.pos_dropped].float().mean())


def test_smoothed_targets_and_sigma_decay():
    torch.manual_seed(0)
    obj = DropPosObjective(tiny_backbone(), sigma=1.0, attentive=False)
    out = obj(torch.rand(2, 3, 16, 16), torch.Generator().manual_seed(2))
    soft = smoothing_matrix(4, 4, 1.0)[out.labels]
    per = -(soft * out.logits.detach().log_softmax(-1)).sum(-1)
    torch.testing.assert_close(out.loss.detach(), per[out.pos_dropped].mean())
    assert float(out.metrics["sigma"]) == 1.0
    obj.set_progress(0.75)
    assert obj.sigma == pytest.approx(0.25)
    obj.set_progress(1.0)
    assert obj.sigma == 0.0
    assert DropPosObjective(tiny_backbone(), sigma=1.0, sigma_decay=False).sigma == 1.0
    with pytest.raises(ValueError, match="progress.*1.5"):
        obj.set_progress(1.5)


def test_attentive_weights():
    torch.manual_seed(0)
    obj = DropPosObjective(tiny_backbone(), attentive=True)
    x = torch.rand(2, 3, 16, 16)
    out = obj(x, torch.Generator().manual_seed(5))
    w = out.weights
    assert (w[~out.pos_dropped] == 0).all() and (w[out.pos_dropped] > 0).all()
    full = obj.attentive_weights(torch.nn.functional.unfold(x, 4, stride=4).transpose(1, 2).reshape(2, 16, 3, 4, 4))
    torch.testing.assert_close(full.sum(1), torch.ones(2))
    vis = full.gather(1, out.labels)
    torch.testing.assert_close(w, out.pos_dropped.float() * vis / vis.sum(1, keepdim=True))
    per = -(smoothing_matrix(4, 4, 1.0)[out.labels] * out.logits.detach().log_softmax(-1)).sum(-1)
    torch.testing.assert_close(out.loss.detach(), (per * w).sum() / w.sum())


def test_droppos_backbone_and_errors():
    bb = tiny_backbone()
    DropPosObjective(bb)
    torch.testing.assert_close(bb.pos_embed[0], sincos_pos_embed_2d(32, 4, 4, 1))
    assert not bb.pos_embed.requires_grad
    with pytest.raises(ValueError, match="attentive=True"):
        DropPosObjective(tiny_backbone(class_token=False, global_pool="avg"))
    DropPosObjective(tiny_backbone(class_token=False, global_pool="avg"), attentive=False)(torch.rand(1, 3, 16, 16))
    with pytest.raises(ValueError, match="pos_mask_ratio"):
        DropPosObjective(tiny_backbone(), pos_mask_ratio=1.0)
    with pytest.raises(ValueError, match="pos_mask_ratio=0.9.*keeps.*0.*4"):
        DropPosObjective(tiny_backbone(), pos_mask_ratio=0.9)  # K = 4 visible tokens
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        DropPosObjective(tiny_backbone(), sigma=-1)
    with pytest.raises(ValueError, match="attn_temperature.*positive"):
        DropPosObjective(tiny_backbone(), attn_temperature=0)
    with pytest.raises(ValueError, match="images.*8x8"):
        DropPosObjective(tiny_backbone())(torch.rand(1, 3, 8, 8))


@pytest.mark.slow
def test_droppos_overfits_real_images(real_images):
    # hard targets (sigma=0) so the loss can approach 0; attentive weights on (DropPos default)
    torch.manual_seed(0)
    obj = DropPosObjective(tiny_backbone(img=28, patch=7, chans=1), mask_ratio=0.5, sigma=0.0)
    losses = overfit(obj, real_images[:8], steps=100, lr=3e-3)
    start, end = sum(losses[:5]) / 5, sum(losses[-10:]) / 10
    assert end < 0.6 * start, (start, end)
