import pytest
import torch

from part.models.heads import CrossAttentionHead, FullMLPHead, PairwiseMLPHead
from part.models.registry import HEADS, build_head, head_options
from part.models.tokens import gather_pair_embeddings
from part.targets import sample_pairs


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("k", [2, 4])
def test_head_shapes(name, k):
    torch.manual_seed(0)
    options = {"num_heads": 2, "num_patches": 9}
    head = build_head(name, dim=16, out_dim=k, **{o: v for o, v in options.items() if o in head_options(name)})
    x = torch.randn(3, 9, 16, requires_grad=True)
    pairs = sample_pairs(3, 9, 20, torch.Generator().manual_seed(0))
    y = head(x, pairs)
    assert y.shape == (3, 20, k)
    y.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_unknown_head():
    with pytest.raises(ValueError, match="unknown head 'transformer'"):
        build_head("transformer", 16)


def test_gather_pair_embeddings():
    x = torch.arange(2 * 3 * 2).float().reshape(2, 3, 2)
    pairs = torch.tensor([[[0, 2]], [[1, 0]]])
    out = gather_pair_embeddings(x, pairs)
    torch.testing.assert_close(out, torch.tensor([[[0.0, 1.0, 4.0, 5.0]], [[8.0, 9.0, 6.0, 7.0]]]))


def test_cross_attention_matches_manual_formula():
    """Single head: softmax(q k^T / sqrt(d)) v computed by hand equals the module."""
    torch.manual_seed(0)
    head = CrossAttentionHead(8, num_heads=1, out_dim=2)
    x = torch.randn(1, 5, 8)
    pairs = torch.tensor([[[0, 3], [4, 1]]])
    q = head.q(head.query_proj(torch.cat([x[0, pairs[0, :, 0]], x[0, pairs[0, :, 1]]], -1)))
    k, v = head.kv(x[0]).split(8, dim=-1)
    a = torch.softmax(q @ k.T / 8**0.5, dim=-1) @ v
    expected = head.out(head.proj(a))
    torch.testing.assert_close(head(x, pairs)[0], expected, rtol=1e-5, atol=1e-6)


def test_cross_attention_sees_all_tokens_pairwise_does_not():
    torch.manual_seed(0)
    x = torch.randn(1, 6, 16)
    pairs = torch.tensor([[[0, 1]]])
    x2 = x.clone()
    x2[0, 4] += 3.0  # change a token outside the pair
    ca = CrossAttentionHead(16, 2, 2)
    pm = PairwiseMLPHead(16, 2)
    assert not torch.allclose(ca(x, pairs), ca(x2, pairs))
    torch.testing.assert_close(pm(x, pairs), pm(x2, pairs))


def test_pairwise_linear_parameter_count():
    assert sum(p.numel() for p in PairwiseMLPHead(16, 2, hidden_dim=0).parameters()) == 2 * 16 * 2 + 2


def test_full_mlp_needs_fixed_n():
    with pytest.raises(ValueError, match="num_patches"):
        FullMLPHead(16, None)
    head = FullMLPHead(16, 4)
    with pytest.raises(ValueError, match="num_patches=4.*5"):
        head(torch.randn(1, 5, 16), torch.tensor([[[0, 1]]]))


def test_full_mlp_pair_indexing():
    head = FullMLPHead(2, 3, out_dim=1)
    torch.nn.init.zeros_(head.fc1.weight)
    with torch.no_grad():
        head.fc1.bias.copy_(torch.arange(9).float())  # output for pair (i, j) = 3 i + j
    out = head(torch.zeros(1, 3, 2), torch.tensor([[[2, 1], [0, 2]]]))
    assert out.flatten().tolist() == [7.0, 2.0]


def test_bad_pairs_shape():
    head = CrossAttentionHead(8, 1, 2)
    with pytest.raises(ValueError, match=r"pairs must be \(B, M, 2\)"):
        head(torch.randn(2, 4, 8), torch.zeros(2, 3, dtype=torch.long))
