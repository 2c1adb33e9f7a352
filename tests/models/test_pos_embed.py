"""Position-embedding resampling (models/pos_embed.py) against a plain reference, and its use in the ViT."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import part
from part.models.pos_embed import resample_abs_pos_embed


def _cubic(x: float, a: float = -0.5) -> float:
    x = abs(x)
    if x < 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return (((x - 5) * x + 8) * x - 4) * a
    return 0.0


def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """Plain anti-aliased bicubic resampling matrix (n_out, n_in): Keys cubic (a=-0.5), half-pixel centres,
    kernel widened by the shrink factor, weights normalised per output (PIL's / torch's antialias filter)."""
    scale = n_in / n_out
    support, inv = 2.0 * max(scale, 1.0), 1.0 / max(scale, 1.0)
    m = np.zeros((n_out, n_in))
    for i in range(n_out):
        centre = (i + 0.5) * scale
        lo, hi = max(int(centre - support + 0.5), 0), min(int(centre + support + 0.5), n_in)
        w = np.array([_cubic((j - centre + 0.5) * inv) for j in range(lo, hi)])
        m[i, lo:hi] = w / w.sum()
    return m


def _reference(posemb: np.ndarray, old, new, prefix: int) -> np.ndarray:
    grid = posemb[0, prefix:].reshape(old[0], old[1], -1)  # row-major grid, (gh, gw, d)
    out = np.einsum("ia,jb,abd->ijd", _resize_matrix(old[0], new[0]), _resize_matrix(old[1], new[1]), grid)
    return np.concatenate([posemb[:, :prefix], out.reshape(1, new[0] * new[1], -1)], axis=1)


@pytest.mark.parametrize("old,new,prefix", [((4, 4), (7, 7), 1), ((6, 5), (3, 2), 1), ((4, 4), (4, 8), 0),
                                            ((8, 8), (3, 5), 2)])
def test_matches_plain_reference(old, new, prefix):
    g = torch.Generator().manual_seed(0)
    pe = torch.randn(1, prefix + old[0] * old[1], 6, generator=g, dtype=torch.float64)
    out = resample_abs_pos_embed(pe, new, old, num_prefix_tokens=prefix)
    assert out.shape == (1, prefix + new[0] * new[1], 6) and out.dtype == torch.float64
    np.testing.assert_allclose(out.numpy(), _reference(pe.numpy(), old, new, prefix), atol=1e-5)  # float32 inside
    torch.testing.assert_close(out[:, :prefix], pe[:, :prefix])  # prefix (CLS) embeddings untouched


def test_same_grid_square_default_and_dtype():
    pe = torch.randn(1, 1 + 16, 4)
    assert resample_abs_pos_embed(pe, (4, 4)) is pe  # old_size None: square 4x4 inferred
    half = pe.to(torch.bfloat16)
    assert resample_abs_pos_embed(half, 6).dtype == torch.bfloat16
    # a constant table stays constant (weights sum to one), upsampling and downsampling
    const = torch.full((1, 1 + 36, 3), 0.25)
    for size in (3, 9):
        torch.testing.assert_close(resample_abs_pos_embed(const, size), torch.full((1, 1 + size * size, 3), 0.25))


def test_errors():
    with pytest.raises(ValueError, match="15 grid tokens, not a square"):
        resample_abs_pos_embed(torch.randn(1, 16, 4), 4)
    with pytest.raises(ValueError, match="old_size.*9.*16"):
        resample_abs_pos_embed(torch.randn(1, 17, 4), 4, (3, 3))
    with pytest.raises(ValueError, match="new_size.*positive"):
        resample_abs_pos_embed(torch.randn(1, 17, 4), 0)
    with pytest.raises(ValueError, match=r"posemb must be \(1, tokens, d\)"):
        resample_abs_pos_embed(torch.randn(17, 4), 4)


def _tiny(**kw):
    torch.manual_seed(0)
    m = part.vit_custom(16, 1, 2, img_size=16, patch_size=4, in_chans=1, **kw).eval()
    m.enable_pos_embed()
    return m


def test_vit_other_image_size_uses_resampled_table():
    m = _tiny()
    x = torch.rand(2, 1, 24, 20)  # 6x5 grid instead of 4x4
    with torch.no_grad():
        got = m.forward_features(x)
        tokens = m.patch_embed(part.sampling.crop.patchify(x, 4))
        tokens = torch.cat([m.cls_token.expand(2, -1, -1), tokens], 1)
        tokens = tokens + resample_abs_pos_embed(m.pos_embed, (6, 5), (4, 4), 1)
        torch.testing.assert_close(got, m.norm(m.blocks(tokens)))
        same = torch.rand(2, 1, 16, 16)  # the model's own size: the learnt table itself
        assert m.pos_embed_for((4, 4)) is m.pos_embed
        assert m.forward_features(same).shape == (2, 17, 16)


def test_vit_resize_grid_and_fixed_size():
    m = _tiny()
    old = m.pos_embed.detach().clone()
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        before = m.forward_features(x)  # resampled on the fly
    m.resize_grid(32)
    assert m.grid_size == (8, 8) and m.img_size == (32, 32) and m.pos_embed.shape == (1, 65, 16)
    assert m.config.img_size == 32 and m.num_patches == 64
    torch.testing.assert_close(m.pos_embed.detach(), resample_abs_pos_embed(old, (8, 8), (4, 4), 1))
    with torch.no_grad():
        torch.testing.assert_close(m.forward_features(x), before)  # the same numbers either way
    with pytest.raises(ValueError, match="30x30.*patch_size=4"):
        m.resize_grid(30)
    fixed = _tiny(dynamic_img_size=False)
    with pytest.raises(ValueError, match="6x6.*dynamic_img_size=False"):
        fixed.forward_features(torch.rand(1, 1, 24, 24))
