"""The yardstick of the benchmarks: a textbook plain ViT classifier step, the unit every PART cost is a ratio of.

``bench_decomposed.py`` (CPU ratios) and ``bench_gpu.py`` (img/s and MFU on a GPU) time PART against this one
model, so their "plain step" means the same thing: a pre-norm ViT of the same width / depth / heads, linear
embedding of unfolded grid patches, learnt position embeddings, fused QKV + SDPA, no CLS token (mean pool),
a linear head, cross-entropy, AdamW. It is written here, not taken from ``part.models``, so an optimisation
of the library's ViT cannot move the unit. ``plain_step_flops`` is its closed-form FLOP count, which
``tests/benchmarks/test_yardstick.py`` holds equal to ``torch.utils.flop_counter``'s count.

    from yardstick import PlainViT, plain_step, plain_step_flops   # from a script of benchmarks/
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["NUM_CLASSES", "PlainBlock", "PlainViT", "plain_step", "plain_step_flops"]

NUM_CLASSES = 1000  # the head of the supervised step a throughput is usually quoted for (ImageNet-1k)


class PlainBlock(nn.Module):
    """Pre-norm transformer block: ``x + attn(LN(x))``, ``x + MLP(LN(x))``; fused QKV + SDPA. ``(B, T, d)``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.fc1 = nn.Linear(dim, int(dim * mlp_ratio))
        self.fc2 = nn.Linear(int(dim * mlp_ratio), dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        x = x + self.proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class PlainViT(nn.Module):
    """Textbook ViT classifier: ``images (B, C, H, W)`` -> logits ``(B, classes)``; ``N = (H / P)^2`` tokens,
    no CLS token (mean pool)."""

    def __init__(self, img_size: int, patch_size: int, dim: int, depth: int, heads: int,
                 classes: int = NUM_CLASSES, in_chans: int = 3, mlp_ratio: float = 4.0):
        super().__init__()
        self.patch_size = patch_size
        n = (img_size // patch_size) ** 2
        self.embed = nn.Linear(in_chans * patch_size * patch_size, dim)
        self.pos = nn.Parameter(torch.randn(1, n, dim) * 0.02)
        self.blocks = nn.Sequential(*[PlainBlock(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head = nn.Linear(dim, classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b, c, h, w = images.shape
        p = self.patch_size
        x = images.reshape(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5).reshape(b, -1, c * p * p)
        x = self.norm(self.blocks(self.embed(x) + self.pos))
        return self.head(x.mean(dim=1))


def plain_step(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor, labels: torch.Tensor,
               amp=nullcontext):
    """A closure running one training step of ``model`` (forward under ``amp()``, cross-entropy in fp32,
    backward, ``optimizer.step()``); ``step(net)`` runs it through ``net`` instead (e.g. a compiled copy)."""

    def step(net: nn.Module | None = None) -> None:
        optimizer.zero_grad(set_to_none=True)
        with amp():
            loss = F.cross_entropy((model if net is None else net)(images).float(), labels)
        loss.backward()
        optimizer.step()

    return step


def plain_step_flops(batch: int, img_size: int, patch_size: int, dim: int, depth: int, mlp_ratio: float = 4.0,
                     in_chans: int = 3, classes: int = NUM_CLASSES, attention: bool = True) -> int:
    """Closed-form matmul FLOPs of one :class:`PlainViT` training step (images need no gradient): the blocks
    and the head cost 3 x their forward (forward, input and weight gradients), the patch embedding 2 x (no
    input gradient). Forward per block and image, ``T = (img / P)^2`` tokens, ``r`` the MLP ratio:
    ``2 T d^2 (4 + 2 r)`` (qkv, projection, MLP) plus attention ``4 T^2 d`` (``attention=False`` leaves it out:
    ``FlopCounterMode`` does not see the CPU's fused attention kernel; it counts CUDA's); patch embedding
    ``2 T (P^2 C) d``; head ``2 d K``. Normalisation, GELU, pooling and the optimiser are not counted."""
    tokens = (img_size // patch_size) ** 2
    hidden = int(dim * mlp_ratio)
    block = 2 * tokens * (4 * dim * dim + 2 * dim * hidden) + (4 * tokens * tokens * dim if attention else 0)
    embed = 2 * tokens * patch_size * patch_size * in_chans * dim
    return batch * (3 * (depth * block + 2 * dim * classes) + 2 * embed)
