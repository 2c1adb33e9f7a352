"""1D ViT (paper App. 8.1): shapes, parameter count, patch embedding, equivariance, pos-embed masking."""

import pytest
import torch
import torch.nn.functional as F

from part.models.vit import Block
from part.models.vit1d import ViT1DConfig, VisionTransformer1D, num_params, vit1d, vit1d_custom, vit1d_paper, vit1d_tiny
from part.sampling.windows1d import patchify1d


def small(**kw):
    kw = {"signal_len": 120, "patch_len": 10, "in_chans": 3, **kw}
    return vit1d_custom(32, 2, 2, **kw)


def test_shapes_and_protocol():
    torch.manual_seed(0)
    m = small(num_classes=5)
    x = torch.randn(2, 3, 120)
    tokens = m.forward_features(x)
    assert tokens.shape == (2, 13, 32)
    assert m.patch_tokens(tokens).shape == (2, 12, 32)
    assert m(x).shape == (2, 5)
    assert m.forward_patches(torch.randn(2, 40, 3, 10)).shape == (2, 41, 32)  # any number of windows
    assert (m.patch_size, m.img_size, m.num_patches, m.embed_dim, m.num_heads, m.spatial_dims) == (10, (120,), 12, 32, 2, 1)
    assert isinstance(m.blocks[0], Block)  # the very same transformer blocks as the 2D ViT
    m.reset_classifier(0, global_pool="avg")
    assert m(x).shape == (2, 32)
    torch.testing.assert_close(m(x), m.patch_tokens(m.forward_features(x)).mean(1))


def test_paper_preset_parameter_count():
    """App. 8.1: "a 1D ViT backbone with 12.9M parameters". Preset: d=512, depth 4, 8 heads, 6 x 100 patches."""
    m = vit1d_paper()
    d, depth, c, length = 512, 4, 6, 100
    block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)  # norms, qkv, proj, fc1, fc2
    expect = depth * block + (c * length * d + d) + d + 2 * d  # blocks, patch_embed, cls, final norm
    n = num_params(m)
    print(f"vit1d_paper: {n:,} parameters (embed_dim=512, depth=4, num_heads=8)")
    assert n == expect
    assert round(n / 1e6, 1) == 12.9
    m.enable_pos_embed()
    assert num_params(m) == n + 31 * d
    assert (m.config.signal_len, m.config.patch_len, m.config.in_chans) == (3000, 100, 6)
    assert num_params(vit1d_tiny()) < 200_000


def test_patch_embedding_is_linear_over_channels_times_length():
    """``patch_embed.proj`` (Conv1d storage) applied as a linear layer on flattened C x L equals the Conv1d on
    the signal's grid windows, and is linear in the patch."""
    torch.manual_seed(0)
    m = small()
    x = torch.randn(2, 3, 120)
    emb = m.patch_embed(patchify1d(x, 10))
    conv = m.patch_embed.proj(x).transpose(1, 2)  # (B, N, d)
    torch.testing.assert_close(emb, conv, rtol=1e-5, atol=1e-5)
    assert m.patch_embed.proj.weight.shape == (32, 3, 10)
    p, q = torch.randn(1, 4, 3, 10), torch.randn(1, 4, 3, 10)
    bias = m.patch_embed.proj.bias
    torch.testing.assert_close(m.patch_embed(p + q) - bias, (m.patch_embed(p) - bias) + (m.patch_embed(q) - bias))


def test_permutation_equivariance_without_pos_embed():
    torch.manual_seed(0)
    m = small().eval()
    patches = torch.randn(2, 12, 3, 10)
    perm = torch.randperm(12)
    with torch.no_grad():
        a = m.forward_patches(patches)
        b = m.forward_patches(patches[:, perm])
    torch.testing.assert_close(m.patch_tokens(b), m.patch_tokens(a)[:, perm], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(b[:, 0], a[:, 0], rtol=1e-5, atol=1e-5)  # CLS is order-invariant
    # with position embeddings (eval mode: none masked) the order matters
    m.enable_pos_embed()
    with torch.no_grad():
        c = m.forward_patches(patches)
        d = m.forward_patches(patches[:, perm])
    assert not torch.allclose(m.patch_tokens(d), m.patch_tokens(c)[:, perm], atol=1e-3)


def _masked_positions(m, patches, generator=None):
    """With depth 0 the output is LayerNorm(embedding [+ pos]); a token equal to LN(embedding) got no pos."""
    with torch.no_grad():
        with_pos = m.patch_tokens(m.forward_patches(patches, generator=generator))
        without = m.patch_tokens(m.forward_patches(patches, pos_embed=False))
    return (with_pos - without).abs().amax(-1) == 0  # (B, N) True where masked


def test_pos_embed_masking_only_in_training_and_at_ratio():
    torch.manual_seed(0)
    m = vit1d_custom(16, 0, 2, signal_len=300, patch_len=10, in_chans=2)  # 30 patches, default ratio 0.2
    m.enable_pos_embed()
    patches = patchify1d(torch.randn(8, 2, 300), 10)
    m.train()
    masked = _masked_positions(m, patches)
    assert torch.equal(masked.sum(1), torch.full((8,), 6))  # round(0.2 * 30) per sample
    assert len({tuple(row.tolist()) for row in masked}) > 1  # a fresh choice per sample
    m.eval()
    assert not _masked_positions(m, patches).any()  # eval: every position gets its embedding
    m.train()
    m.set_pos_embed_mask_ratio(0.5)
    assert torch.equal(_masked_positions(m, patches).sum(1), torch.full((8,), 15))
    m.set_pos_embed_mask_ratio(0.0)
    assert not _masked_positions(m, patches).any()
    m.set_pos_embed_mask_ratio(0.2)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(_masked_positions(m, patches, g1), _masked_positions(m, patches, g2))


def test_pos_embed_mask_is_uniform_over_positions():
    m = vit1d_custom(16, 0, 2, signal_len=300, patch_len=10, in_chans=2, pos_embed_mask_ratio=0.2)
    mask = m.sample_pos_embed_mask(4000, 30, torch.Generator().manual_seed(0))
    freq = mask.float().mean(0)
    assert torch.equal(mask.sum(1), torch.full((4000,), 6))
    assert (freq - 0.2).abs().max() < 0.03  # every position masked about 20% of the time


def test_masked_positions_get_no_pos_embed_gradient():
    torch.manual_seed(0)
    m = vit1d_custom(16, 1, 2, signal_len=100, patch_len=10, in_chans=1, num_classes=3)
    m.enable_pos_embed()
    m.train()
    x = torch.randn(1, 1, 100)
    g = torch.Generator().manual_seed(5)
    mask = m.sample_pos_embed_mask(1, 10, torch.Generator().manual_seed(5))
    m.forward_head(m.forward_patches(patchify1d(x, 10), generator=g)).sum().backward()
    grad = m.pos_embed.grad[0, 1:].abs().sum(-1)  # patch positions (CLS excluded)
    assert torch.all(grad[mask[0]] == 0) and torch.all(grad[~mask[0]] > 0)
    assert m.pos_embed.grad[0, 0].abs().sum() > 0  # the CLS position embedding is never masked


def test_state_dict_names_follow_timm():
    m = small(num_classes=4, pos_embed=True)
    keys = set(m.state_dict())
    for k in ("cls_token", "pos_embed", "patch_embed.proj.weight", "patch_embed.proj.bias", "blocks.0.norm1.weight",
              "blocks.0.attn.qkv.weight", "blocks.0.attn.proj.weight", "blocks.1.mlp.fc1.weight",
              "blocks.1.mlp.fc2.bias", "norm.weight", "head.weight"):
        assert k in keys
    assert m.no_weight_decay() == {"pos_embed", "cls_token"}
    rebuilt = VisionTransformer1D(ViT1DConfig(**m.config.to_dict()))
    rebuilt.load_state_dict(m.state_dict())  # the saved config rebuilds the same architecture


def test_pos_embed_and_dtype():
    m = small()
    m.enable_pos_embed()
    pe = m.pos_embed
    m.enable_pos_embed()  # idempotent
    assert m.pos_embed is pe and pe.shape == (1, 13, 32) and m.config.pos_embed
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = m.eval()(torch.randn(2, 3, 120))
    assert torch.isfinite(out.float()).all()


def test_bad_inputs():
    m = small()
    with pytest.raises(ValueError, match=r"signals.*shape \(3, 120\)"):
        m(torch.randn(3, 120))
    with pytest.raises(ValueError, match="T=125.*patch_len=10"):
        m(torch.randn(1, 3, 125))
    with pytest.raises(ValueError, match="patches.*C=2.*10.*C=3"):
        m(torch.randn(1, 2, 120))
    with pytest.raises(ValueError, match=r"patches must be 4D \(B, N, C, L\)"):
        m.forward_patches(torch.randn(2, 3, 10))
    with pytest.raises(ValueError, match="pos_embed=True"):
        m.forward_patches(torch.randn(1, 12, 3, 10), pos_embed=True)
    m.enable_pos_embed()
    with pytest.raises(ValueError, match="12.*signal_len=120.*patch_len=10.*40"):
        m.forward_patches(torch.randn(1, 40, 3, 10))
    with pytest.raises(ValueError, match="signal_len=125.*patch_len=10"):
        small(signal_len=125)
    with pytest.raises(ValueError, match="pos_embed_mask_ratio.*1.0"):
        small(pos_embed_mask_ratio=1.0)
    with pytest.raises(ValueError, match="pos_embed_mask_ratio.*-0.1"):
        m.set_pos_embed_mask_ratio(-0.1)
    with pytest.raises(ValueError, match="global_pool='token'.*class_token=True"):
        small(class_token=False)
    with pytest.raises(ValueError, match="patch_len.*0"):
        small(patch_len=0)
    with pytest.raises(ValueError, match="embed_dim=32.*num_heads=3"):
        vit1d_custom(32, 1, 3, signal_len=120, patch_len=10)
    with pytest.raises(ValueError, match="'huge'.*'paper'.*'tiny'"):
        vit1d("huge")
    with pytest.raises(ValueError, match="pass either a ViT1DConfig or keyword arguments, not both"):
        VisionTransformer1D(ViT1DConfig(), depth=2)
    with pytest.raises(ValueError, match="global_pool='token'"):
        small(class_token=False, global_pool="avg").reset_classifier(3, global_pool="token")


def test_avg_pool_without_class_token_matches_mean():
    torch.manual_seed(0)
    m = small(class_token=False, global_pool="avg", num_classes=2).eval()
    x = torch.randn(2, 3, 120)
    tokens = m.forward_features(x)
    assert tokens.shape == (2, 12, 32)
    torch.testing.assert_close(m(x), F.linear(tokens.mean(1), m.head.weight, m.head.bias))
