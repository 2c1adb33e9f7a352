import pytest
import torch

from part.models import ViTConfig, VisionTransformer, num_params, vit_base, vit_custom, vit_small, vit_tiny
from part.sampling import patchify


def tiny(**kw):
    return vit_custom(32, 2, 2, img_size=16, patch_size=4, in_chans=3, **kw)


@pytest.mark.slow
def test_sizes():
    for fn, d, heads in [(vit_tiny, 192, 3), (vit_small, 384, 6), (vit_base, 768, 12)]:
        cfg = ViTConfig(embed_dim=d, depth=12, num_heads=heads)
        m = fn(img_size=32, patch_size=4)
        assert m.embed_dim == d and len(m.blocks) == 12 and m.blocks[0].attn.num_heads == heads
        assert cfg.embed_dim == m.config.embed_dim
    assert 5.4e6 < num_params(vit_tiny(img_size=224, patch_size=16)) < 5.8e6  # ViT-Ti/16 ~5.7M


def test_timm_parameter_names():
    keys = set(tiny(num_classes=10).state_dict())
    for k in ["cls_token", "patch_embed.proj.weight", "patch_embed.proj.bias", "blocks.0.norm1.weight",
              "blocks.0.attn.qkv.weight", "blocks.0.attn.qkv.bias", "blocks.0.attn.proj.weight",
              "blocks.0.norm2.weight", "blocks.0.mlp.fc1.weight", "blocks.0.mlp.fc2.weight",
              "blocks.1.mlp.fc2.bias", "norm.weight", "norm.bias", "head.weight", "head.bias"]:
        assert k in keys, k
    assert "pos_embed" not in keys
    m = tiny()
    m.enable_pos_embed()
    assert m.state_dict()["pos_embed"].shape == (1, 17, 32)
    assert m.state_dict()["patch_embed.proj.weight"].shape == (32, 3, 4, 4)


def test_patch_embed_is_conv_on_grid():
    m = tiny()
    x = torch.rand(2, 3, 16, 16)
    conv = m.patch_embed.proj(x).flatten(2).transpose(1, 2)
    lin = m.patch_embed(patchify(x, 4))
    torch.testing.assert_close(conv, lin, rtol=1e-5, atol=1e-5)


def test_permutation_equivariant_without_pos_embed():
    torch.manual_seed(0)
    m = tiny().eval()
    patches = torch.rand(2, 16, 3, 4, 4)
    perm = torch.randperm(16)
    out = m.patch_tokens(m.forward_patches(patches))
    out_perm = m.patch_tokens(m.forward_patches(patches[:, perm]))
    torch.testing.assert_close(out_perm, out[:, perm], rtol=1e-5, atol=1e-5)


def test_not_equivariant_with_pos_embed():
    torch.manual_seed(0)
    m = tiny().eval()
    m.enable_pos_embed()
    patches = torch.rand(2, 16, 3, 4, 4)
    perm = torch.randperm(16)
    out = m.patch_tokens(m.forward_patches(patches))
    out_perm = m.patch_tokens(m.forward_patches(patches[:, perm]))
    assert not torch.allclose(out_perm, out[:, perm], atol=1e-3)


def test_classifier_forward_and_pooling():
    m = tiny(num_classes=5)
    x = torch.rand(3, 3, 16, 16)
    assert m(x).shape == (3, 5)
    m.reset_classifier(7, global_pool="avg")
    assert m(x).shape == (3, 7)
    assert m.forward_features(x).shape == (3, 17, 32)


def test_gradients_reach_patch_embedding():
    m = tiny()
    m.patch_tokens(m.forward_patches(torch.rand(2, 9, 3, 4, 4))).pow(2).mean().backward()
    assert m.patch_embed.proj.weight.grad is not None and m.patch_embed.proj.weight.grad.abs().sum() > 0


def test_errors():
    with pytest.raises(ValueError, match="embed_dim=30.*num_heads=4"):
        vit_custom(30, 1, 4)
    with pytest.raises(ValueError, match="global_pool='token'.*class_token=True"):
        vit_custom(32, 1, 2, class_token=False)
    m = tiny()
    with pytest.raises(ValueError, match="patch embedding expects"):
        m.forward_patches(torch.rand(1, 4, 1, 4, 4))
    m.enable_pos_embed()
    with pytest.raises(ValueError, match="4x4.*5"):
        m.forward_patches(torch.rand(1, 5, 3, 4, 4))
    with pytest.raises(ValueError, match="images must be 4D"):
        m.forward_features(torch.rand(3, 16, 16))


def test_no_class_token_avg_pool():
    m = vit_custom(32, 1, 2, img_size=8, patch_size=4, class_token=False, global_pool="avg", num_classes=3)
    assert m(torch.rand(2, 3, 8, 8)).shape == (2, 3)
    assert isinstance(m, VisionTransformer) and m.num_prefix_tokens == 0
