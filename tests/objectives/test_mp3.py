import math

import pytest
import torch

from part.objectives.mp3 import MP3Objective, masked_key_block

from .helpers import identity_patch_embed, index_image, overfit, tiny_backbone


def capture_encoder_input(obj):
    """Record the first block's input (B, prefix + N, d) via a hook on its norm1."""
    seen = {}
    handle = obj.backbone.blocks[0].norm1.register_forward_pre_hook(lambda m, a: seen.setdefault("x", a[0].detach()))
    return seen, handle


@pytest.mark.parametrize("shuffle", [True, False])
def test_labels_are_grid_indices_of_fed_tokens(shuffle):
    # 1 channel, patch 4, d = 16 = C P P with an identity patch embedding: token content = patch pixels,
    # and every pixel of a patch holds row * gw + col (computed from pixel coordinates).
    bb = tiny_backbone(img=16, patch=4, chans=1, dim=16, heads=2)
    identity_patch_embed(bb)
    obj = MP3Objective(bb, mask_ratio=0.5, shuffle=shuffle)
    seen, handle = capture_encoder_input(obj)
    out = obj(index_image(3, 16, 4), torch.Generator().manual_seed(0))
    handle.remove()
    fed = seen["x"][:, 1:]  # drop CLS: (B, N, 16)
    content = fed.mean(-1)
    assert torch.equal(fed, content[..., None].expand_as(fed))  # constant patches
    assert torch.equal(content.long(), out.labels)  # label of token i = grid index of its patch
    assert out.logits.shape == (3, 16, 16)
    if shuffle:
        assert not torch.equal(out.labels, torch.arange(16).expand(3, 16))
        assert torch.equal(out.labels.sort(dim=1).values, torch.arange(16).expand(3, 16))
    else:
        assert torch.equal(out.labels, torch.arange(16).expand(3, 16))


def test_context_count_and_loss_definition():
    obj = MP3Objective(tiny_backbone(), mask_ratio=0.75)
    out = obj(torch.rand(2, 3, 16, 16), torch.Generator().manual_seed(1))
    assert torch.equal(out.context.sum(1), torch.full((2,), 4))  # N - int(0.75 N) = 16 - 12 keys
    logp = out.logits.detach().log_softmax(-1)
    ce = -logp.gather(-1, out.labels[..., None]).mean()
    torch.testing.assert_close(out.loss.detach(), ce)
    hit = out.logits.argmax(-1) == out.labels
    torch.testing.assert_close(out.metrics["acc"], hit.float().mean())
    torch.testing.assert_close(out.metrics["acc_context"], hit[out.context].float().mean())
    torch.testing.assert_close(out.metrics["acc_masked"], hit[~out.context].float().mean())


def _encode(obj, tokens, ctx):
    with torch.no_grad():
        return obj.encode(tokens, ctx)


@pytest.mark.parametrize("attention", ["gather", "mask"])
def test_masked_tokens_do_not_influence_other_tokens(attention):
    # The property implemented: a token outside the context is never a key/value, so changing its
    # content changes only its own output; changing a context token changes the others.
    torch.manual_seed(0)
    obj = MP3Objective(tiny_backbone(depth=3), attention=attention).eval()
    tokens = torch.randn(2, 16, 32)
    ctx = torch.tensor([[0, 3, 5, 9], [1, 2, 14, 15]])
    base = _encode(obj, tokens, ctx)
    masked_tok = 7  # not in either context set
    t2 = tokens.clone()
    t2[:, masked_tok] += 5 * torch.randn(2, 32)
    out = _encode(obj, t2, ctx)
    others = [i for i in range(16) if i != masked_tok]
    torch.testing.assert_close(out[:, others], base[:, others], rtol=1e-5, atol=1e-5)
    assert (out[:, masked_tok] - base[:, masked_tok]).abs().max() > 1e-2
    t3 = tokens.clone()
    t3[0, 3] += 5 * torch.randn(32)  # a context token of sample 0
    out = _encode(obj, t3, ctx)
    assert (out[0, others] - base[0, others]).abs().max() > 1e-2


def test_gather_path_equals_mask_reference():
    torch.manual_seed(0)
    bb = tiny_backbone(depth=2)
    fast, ref = MP3Objective(bb, attention="gather"), MP3Objective(bb, attention="mask")
    ref.head = fast.head
    x = torch.rand(2, 3, 16, 16)
    a = fast(x, torch.Generator().manual_seed(3))
    b = ref(x, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a.logits, b.logits, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(a.loss, b.loss, rtol=1e-5, atol=1e-5)
    ga = torch.autograd.grad(a.loss, bb.blocks[0].attn.qkv.weight)[0]
    gb = torch.autograd.grad(b.loss, bb.blocks[0].attn.qkv.weight)[0]
    torch.testing.assert_close(ga, gb, rtol=1e-4, atol=1e-6)


def test_unmasked_block_equals_plain_block():
    torch.manual_seed(0)
    blk = tiny_backbone().blocks[0].eval()
    x = torch.randn(2, 17, 32)
    every = torch.arange(17).expand(2, 17)
    torch.testing.assert_close(masked_key_block(blk, x), blk(x), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(masked_key_block(blk, x, key_index=every), blk(x), rtol=1e-5, atol=1e-5)


def test_no_position_embeddings_used():
    bb = tiny_backbone()
    bb.enable_pos_embed()
    obj = MP3Objective(bb, shuffle=False).eval()
    x = torch.rand(1, 3, 16, 16)
    a = obj(x, torch.Generator().manual_seed(0)).logits
    with torch.no_grad():
        bb.pos_embed.add_(10.0)
    b = obj(x, torch.Generator().manual_seed(0)).logits
    torch.testing.assert_close(a, b)


def test_mp3_errors():
    with pytest.raises(ValueError, match="attention.*'gather'.*'mask'"):
        MP3Objective(tiny_backbone(), attention="flash")
    with pytest.raises(ValueError, match="mask_ratio"):
        MP3Objective(tiny_backbone(), mask_ratio=0)
    with pytest.raises(ValueError, match="images.*32x32"):
        MP3Objective(tiny_backbone())(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="images must be 4D"):
        MP3Objective(tiny_backbone())(torch.rand(3, 16, 16))


def test_mp3_overfits_real_images(real_images):
    torch.manual_seed(0)
    obj = MP3Objective(tiny_backbone(img=28, patch=7, chans=1))
    losses = overfit(obj, real_images[:8], steps=80, lr=3e-3)
    assert losses[0] == pytest.approx(math.log(16), rel=0.1)  # chance level at the start
    assert sum(losses[-5:]) / 5 < 0.4 * math.log(16), losses[-5:]
