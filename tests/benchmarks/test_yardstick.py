"""The benchmarks' yardstick (``benchmarks/yardstick.py``): the textbook plain ViT every PART cost is divided
by. Its size is the project's ViT's, its attention is the textbook softmax, its closed-form FLOPs are what
``torch.utils.flop_counter`` counts, and a step trains it."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from part import vit_custom

from .scripts import load_script


@pytest.fixture(scope="module")
def ys():
    return load_script("yardstick")


def test_plain_vit_is_the_same_size_as_the_backbone(ys):
    """The yardstick differs from the project's ViT only by what a classifier needs (position embedding,
    1000-way head) and PART's CLS token: same patch embedding, blocks and norm."""
    plain = ys.PlainViT(32, 4, 64, 2, 2)
    ours = vit_custom(64, 2, 2, img_size=32, patch_size=4)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(plain) - plain.pos.numel() - count(plain.head) == count(ours) - ours.cls_token.numel()
    assert plain(torch.rand(3, 3, 32, 32)).shape == (3, ys.NUM_CLASSES)


def test_block_attention_is_the_textbook_softmax(ys):
    torch.manual_seed(0)
    block = ys.PlainBlock(16, 4)
    x = torch.randn(2, 5, 16)
    q, k, v = block.qkv(block.norm1(x)).reshape(2, 5, 3, 4, 4).permute(2, 0, 3, 1, 4)
    att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4), dim=-1) @ v  # (B, heads, T, d/heads)
    h = x + block.proj(att.transpose(1, 2).reshape(2, 5, 16))
    want = h + block.fc2(F.gelu(block.fc1(block.norm2(h))))
    torch.testing.assert_close(block(x), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mlp_ratio,in_chans", [(4.0, 3), (2.0, 1)])
def test_closed_form_flops_equal_the_counted_ones(ys, mlp_ratio, in_chans):
    """On the CPU the counter does not see the fused attention kernel: the closed form without attention."""
    model = ys.PlainViT(32, 8, 32, 2, 2, 10, in_chans, mlp_ratio)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    step = ys.plain_step(model, opt, torch.rand(4, in_chans, 32, 32), torch.randint(0, 10, (4,)))
    with FlopCounterMode(display=False) as counter:
        step()
    want = ys.plain_step_flops(4, 32, 8, 32, 2, mlp_ratio, in_chans, 10, attention=False)
    assert counter.get_total_flops() == want


def test_closed_form_of_vit_b16(ys):
    # ViT-B/16 at 224 px: about 17.5 GMACs forward per image = 35 GFLOPs; a training step ~3x that
    step = ys.plain_step_flops(1, 224, 16, 768, 12, 4.0, 3, 1000)
    assert 104e9 < step < 106e9


def test_a_step_trains_it(ys):
    torch.manual_seed(0)
    model = ys.PlainViT(16, 4, 32, 1, 2, 3)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    images, labels = torch.rand(6, 3, 16, 16), torch.tensor([0, 1, 2, 0, 1, 2])
    before = F.cross_entropy(model(images), labels).item()
    step = ys.plain_step(model, opt, images, labels)
    for _ in range(20):
        step()
    assert F.cross_entropy(model(images), labels).item() < 0.5 * before
