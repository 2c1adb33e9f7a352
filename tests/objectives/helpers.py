"""Shared builders for the objective tests (tiny models, hand-made images)."""

import torch

import part


def tiny_backbone(img=16, patch=4, chans=3, dim=32, depth=2, heads=2, **kw):
    return part.vit_custom(dim, depth, heads, img_size=img, patch_size=patch, in_chans=chans, **kw)


def index_image(batch: int, img: int, patch: int) -> torch.Tensor:
    """(B, 1, H, W) images whose pixel (y, x) holds the grid index row * gw + col of its patch, computed
    from pixel coordinates (independently of patchify)."""
    gw = img // patch
    ys, xs = torch.meshgrid(torch.arange(img), torch.arange(img), indexing="ij")
    grid = (ys // patch) * gw + (xs // patch)
    return grid.float().expand(batch, 1, img, img).clone()


def identity_patch_embed(backbone) -> None:
    """Make the patch embedding an exact copy of the flattened patch (needs embed_dim = C P P)."""
    w = backbone.patch_embed.proj.weight
    d = w.shape[0]
    assert d == w[0].numel(), "identity patch embedding needs embed_dim == C * P * P"
    with torch.no_grad():
        w.copy_(torch.eye(d).reshape(w.shape))
        backbone.patch_embed.proj.bias.zero_()


def overfit(objective, images, steps, lr=3e-3, labels=None, seed=0):
    """Train on a fixed batch with Adam; returns the per-step losses. Masks vary per step (one seeded
    generator), so the objective is learnt, not a single mask memorised."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam([p for p in objective.parameters() if p.requires_grad], lr=lr)
    losses = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest and immune to a busy shared CPU
    try:
        for _ in range(steps):
            out = objective(images, labels, gen) if labels is not None else objective(images, gen)
            opt.zero_grad()
            out.loss.backward()
            opt.step()
            losses.append(float(out.loss.detach()))
    finally:
        torch.set_num_threads(threads)
    return losses
