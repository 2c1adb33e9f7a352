import pytest
import torch
import torch.nn.functional as F

from part.objectives.supervised import SupervisedObjective
from part.sampling.crop import patchify

from .helpers import overfit, tiny_backbone


@pytest.mark.parametrize("pos_embed", [True, False])
@pytest.mark.parametrize("pool", ["token", "avg"])
def test_supervised_step_and_metrics(pos_embed, pool):
    torch.manual_seed(0)
    obj = SupervisedObjective(tiny_backbone(), num_classes=7, pos_embed=pos_embed, global_pool=pool,
                              label_smoothing=0.1)
    assert SupervisedObjective.uses_labels is True
    assert (obj.backbone.pos_embed is not None) == pos_embed
    x, y = torch.rand(4, 3, 16, 16), torch.tensor([0, 3, 6, 2])
    out = obj(x, y, torch.Generator().manual_seed(0))
    assert out.logits.shape == (4, 7)
    torch.testing.assert_close(out.loss.detach(), F.cross_entropy(out.logits.detach(), y, label_smoothing=0.1))
    torch.testing.assert_close(out.metrics["acc1"], (out.logits.argmax(-1) == y).float().mean())
    top5 = out.logits.topk(5, -1).indices
    torch.testing.assert_close(out.metrics["acc5"], (top5 == y[:, None]).any(1).float().mean())
    out.loss.backward()
    assert obj.backbone.head.weight.grad.abs().sum() > 0


def test_without_pos_embed_ignores_existing_table():
    bb = tiny_backbone()
    bb.enable_pos_embed()
    obj = SupervisedObjective(bb, num_classes=3, pos_embed=False).eval()
    x, y = torch.rand(2, 3, 16, 16), torch.tensor([0, 1])
    a = obj(x, y).logits
    with torch.no_grad():
        bb.pos_embed.add_(3.0)
    torch.testing.assert_close(obj(x, y).logits, a)


def test_supervised_errors():
    with pytest.raises(ValueError, match="num_classes.*int.*2"):
        SupervisedObjective(tiny_backbone(), num_classes=1)
    with pytest.raises(ValueError, match="global_pool.*'token'.*'avg'"):
        SupervisedObjective(tiny_backbone(), num_classes=3, global_pool="max")
    with pytest.raises(ValueError, match="label_smoothing"):
        SupervisedObjective(tiny_backbone(), num_classes=3, label_smoothing=1.0)
    with pytest.raises(ValueError, match="global_pool='token'"):
        SupervisedObjective(tiny_backbone(class_token=False, global_pool="avg"), num_classes=3)
    obj = SupervisedObjective(tiny_backbone(), num_classes=3)
    x = torch.rand(2, 3, 16, 16)
    with pytest.raises(ValueError, match="labels.*B=2"):
        obj(x, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="labels.*integer"):
        obj(x, torch.tensor([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"labels.*range \[0, 3\]"):
        obj(x, torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="14x14.*patch_size=4"):
        obj(torch.rand(2, 3, 14, 14), torch.tensor([0, 1]))
    fixed = SupervisedObjective(tiny_backbone(dynamic_img_size=False), num_classes=3)
    with pytest.raises(ValueError, match="images.*12x12"):
        fixed(torch.rand(2, 3, 12, 12), torch.tensor([0, 1]))


def test_supervised_other_image_size_resamples_pos_embed():
    """dynamic_img_size (default): 12x12 images give a 3x3 grid; the 4x4 position table is resampled."""
    from part.models.pos_embed import resample_abs_pos_embed

    torch.manual_seed(0)
    obj = SupervisedObjective(tiny_backbone(), num_classes=3).eval()
    x = torch.rand(2, 3, 12, 12)
    bb = obj.backbone
    with torch.no_grad():
        tokens = bb.patch_embed(patchify(x, 4))
        tokens = torch.cat([bb.cls_token.expand(2, -1, -1), tokens], 1)
        tokens = tokens + resample_abs_pos_embed(bb.pos_embed, (3, 3), (4, 4), num_prefix_tokens=1)
        ref = bb.head(bb.norm(bb.blocks(tokens))[:, 0])
        torch.testing.assert_close(obj.logits(x), ref)


def test_supervised_overfits_real_images(real_images):
    from tests.conftest import load_fixture_images  # tests/conftest.py: the real IDX fixture reader

    _, labels = load_fixture_images()
    y = torch.from_numpy(labels[:8].astype("int64"))
    torch.manual_seed(0)
    obj = SupervisedObjective(tiny_backbone(img=28, patch=7, chans=1), num_classes=10, label_smoothing=0.0)
    losses = overfit(obj, real_images[:8], steps=60, lr=3e-3, labels=y)
    assert sum(losses[-5:]) / 5 < 0.2 * losses[0], (losses[0], losses[-5:])
    assert float(obj(real_images[:8], y).metrics["acc1"]) == 1.0
