"""Fused relative encoders (issue 10) against their reference oracles in ``part.models.heads``."""

import pytest
import torch

from part import PARTModel, vit_custom
from part.models import fast_heads
from part.models.fast_heads import (
    ROWS_COST,
    TUNED,
    FusedCrossAttentionHead,
    FusedPairwiseMLPHead,
    PickPairs,
    choose_path,
    path_costs,
    table_predict,
)
from part.models.heads import CrossAttentionHead, PairwiseMLPHead
from part.models.registry import build_head
from part.targets import sample_pairs

# (batch, N, d, heads, k, #pairs): N = 15 and 10 are not squares; "all" is every ordered pair.
CASES = [
    (3, 16, 16, 2, 2, 40),
    (2, 15, 24, 3, 4, "all"),
    (2, 10, 8, 1, 2, 5),
    (1, 49, 32, 4, 4, 300),
]
PATHS = ["auto", "tune", "table", "rows", "gather"]


def twin_heads(dim, heads, k, dtype=torch.float32, seed=0, **fused_kwargs):
    """A reference head and a fused head holding the same weights (loaded through the state dict)."""
    torch.manual_seed(seed)
    ref = CrossAttentionHead(dim, heads, k).to(dtype)
    with torch.no_grad():  # non-zero biases so every folded bias term is exercised
        for name, p in ref.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
    fused = FusedCrossAttentionHead(dim, heads, k, **fused_kwargs).to(dtype)
    fused.load_state_dict(ref.state_dict())
    return ref, fused


def pairs_with_repeats(batch, n, m, seed):
    """Random pairs, then some duplicated pairs and self-pairs (i, i) written over the first entries."""
    pairs = sample_pairs(batch, n, m, torch.Generator().manual_seed(seed)).clone()
    if m >= 6:
        pairs[:, 0] = pairs[:, 1]  # duplicate
        pairs[:, 2] = pairs[:, 1]  # triplicate
        pairs[:, 3, 1] = pairs[:, 3, 0]  # self-pair
        pairs[:, 4] = 0  # (0, 0)
    return pairs


def fwd_bwd(head, x, pairs, seed=1):
    """Output and gradients (of x and every parameter) for a fixed random cotangent."""
    x = x.detach().clone().requires_grad_(True)
    head.zero_grad(set_to_none=True)
    y = head(x, pairs)
    w = torch.randn(y.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(y.dtype)
    (y * w).sum().backward()
    grads = {"x": x.grad}
    grads.update({name: p.grad for name, p in head.named_parameters()})
    return y.detach(), grads


def assert_close_scaled(actual, expected, rtol, what=""):
    """Elementwise |a - e| <= rtol * (|e| + max|e|): relative to the tensor's own scale (mathematically
    zero entries, e.g. the key-bias gradient, are rounding noise in both implementations)."""
    assert actual is not None, f"{what}: missing gradient"
    assert torch.isfinite(actual).all(), f"{what}: non-finite values"
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=rtol * scale, msg=lambda m: f"{what}: {m}")


def assert_same_function(ref, fused, x, pairs, rtol):
    y_ref, g_ref = fwd_bwd(ref, x, pairs)
    y_fused, g_fused = fwd_bwd(fused, x, pairs)
    assert y_fused.shape == y_ref.shape
    assert_close_scaled(y_fused.to(y_ref.dtype), y_ref, rtol, "output")
    assert g_ref.keys() == g_fused.keys()
    for name in g_ref:
        assert_close_scaled(g_fused[name], g_ref[name], rtol, f"grad {name}")


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("case", CASES, ids=[f"B{c[0]}-N{c[1]}-d{c[2]}-h{c[3]}-k{c[4]}-M{c[5]}" for c in CASES])
@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 1e-4), (torch.float64, 1e-9)], ids=["fp32", "fp64"])
def test_cross_attention_matches_reference(case, path, dtype, rtol):
    batch, n, d, heads, k, m = case
    ref, fused = twin_heads(d, heads, k, dtype, path=path)
    x = torch.randn(batch, n, d, generator=torch.Generator().manual_seed(2), dtype=dtype)
    pairs = sample_pairs(batch, n, m, torch.Generator().manual_seed(3))
    assert_same_function(ref, fused, x, pairs, rtol)


@pytest.mark.parametrize("path", ["table", "rows", "gather"])
def test_duplicated_and_self_pairs(path):
    ref, fused = twin_heads(24, 3, 2, torch.float64, path=path)
    x = torch.randn(2, 9, 24, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    pairs = pairs_with_repeats(2, 9, 30, seed=5)
    assert (pairs[..., 0] == pairs[..., 1]).any()
    assert_same_function(ref, fused, x, pairs, 1e-9)
    # duplicated pairs get the same predictions (to float64 rounding: the rows path may meet the two copies in
    # different BLAS blocks, which differ in the last bits on some CPUs: 1e-17 seen on an AVX2 machine)
    y = fused(x, pairs)
    torch.testing.assert_close(y[:, 0], y[:, 1], rtol=0, atol=1e-12)


def integer_twin_heads(dtype, repair="sparse", seed=0, path="table"):
    """Heads whose weights are all in {-1, 0, 1}, d = 32, 2 heads (d_h = 16, so SDPA's sqrt(1/sqrt(d_h))
    = 1/2 is exact): for integer inputs every score is an exactly representable number in both
    implementations, so they can be compared tightly even with logits in the thousands."""
    g = torch.Generator().manual_seed(seed)
    ref = CrossAttentionHead(32, 2, 2)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randint(-1, 2, p.shape, generator=g).float())
    ref = ref.to(dtype)
    fused = FusedCrossAttentionHead(32, 2, 2, path=path, repair=repair).to(dtype)
    fused.load_state_dict(ref.state_dict())
    return ref, fused


@pytest.mark.parametrize("path", ["table", "rows"])
@pytest.mark.parametrize("repair", ["sparse", "dense"])
@pytest.mark.parametrize(
    "dtype,x_max,rtol", [(torch.float32, 1, 1e-4), (torch.float64, 3, 1e-9)], ids=["fp32", "fp64"]
)
def test_huge_logits_are_repaired(dtype, x_max, rtol, repair, path):
    """Score rows of a pair that peak at different tokens by far more than exp's range (~87 in fp32,
    ~708 in fp64): the naive exp-table denominator underflows; those pairs must be detected and
    recomputed, values and gradients equal to the reference."""
    ref, fused = integer_twin_heads(dtype, repair, path=path)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(-x_max, x_max + 1, (2, 12, 32), generator=g).to(dtype)
    pairs = pairs_with_repeats(2, 12, 60, seed=2)
    sa, sb, u, out_bias = fused.token_tables(x)
    spread = (sa.amax(-1) - sa.amin(-1)).max()
    assert spread > 2 * (88 if dtype == torch.float32 else 709)
    naive, bad = table_predict(sa, sb, u, pairs, path)
    assert 0 < bad.float().mean() < 1, "the construction must produce both underflowing and normal pairs"
    y_ref = ref(x, pairs)
    # without the repair the flagged pairs are wrong, the others already right
    assert not torch.allclose((naive + out_bias)[bad], y_ref[bad], rtol=1e-2, atol=1e-2)
    torch.testing.assert_close((naive + out_bias)[~bad], y_ref[~bad], rtol=rtol, atol=rtol * y_ref.abs().max().item())
    assert_same_function(ref, fused, x, pairs, rtol)


def test_state_dicts_load_both_ways():
    ref, _ = twin_heads(16, 2, 4)
    fused = FusedCrossAttentionHead(16, 2, 4)
    assert list(fused.state_dict()) == list(ref.state_dict())
    fused.load_state_dict(ref.state_dict(), strict=True)
    back = CrossAttentionHead(16, 2, 4)
    back.load_state_dict(fused.state_dict(), strict=True)
    x = torch.randn(2, 7, 16, generator=torch.Generator().manual_seed(0))
    pairs = sample_pairs(2, 7, 20, torch.Generator().manual_seed(1))
    torch.testing.assert_close(fused(x, pairs), back(x, pairs), rtol=1e-5, atol=1e-6)

    mlp_ref = PairwiseMLPHead(16, 2)
    mlp_fused = FusedPairwiseMLPHead(16, 2)
    mlp_fused.load_state_dict(mlp_ref.state_dict(), strict=True)
    PairwiseMLPHead(16, 2).load_state_dict(mlp_fused.state_dict(), strict=True)


def test_build_head_dispatch():
    assert type(build_head("cross_attention", 16, 2, num_heads=2)) is FusedCrossAttentionHead
    assert type(build_head("cross_attention_reference", 16, 2, num_heads=2)) is CrossAttentionHead
    assert type(build_head("pairwise_mlp", 16, 2)) is FusedPairwiseMLPHead
    assert type(build_head("pairwise_mlp_reference", 16, 2)) is PairwiseMLPHead


@pytest.mark.parametrize("path", ["auto", "token", "pair"])
@pytest.mark.parametrize("hidden", [None, 0, 7])
def test_pairwise_mlp_matches_reference(hidden, path):
    torch.manual_seed(0)
    ref = PairwiseMLPHead(12, 4, hidden).double()
    fused = FusedPairwiseMLPHead(12, 4, hidden, path=path).double()
    fused.load_state_dict(ref.state_dict())
    x = torch.randn(3, 11, 12, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for m in (5, 40):  # fewer and more pairs than tokens ("auto" switches at M = N)
        pairs = pairs_with_repeats(3, 11, m, seed=m)
        assert_same_function(ref, fused, x, pairs, 1e-10)
    x32, pairs = x.float(), sample_pairs(3, 11, 40, torch.Generator().manual_seed(2))
    assert_same_function(ref.float(), fused.float(), x32, pairs, 1e-4)


@pytest.mark.parametrize("head", ["cross_attention", "pairwise_mlp"])
@pytest.mark.parametrize("num_pairs", [24, "all"])
def test_part_model_fused_equals_reference(head, num_pairs):
    """End to end: same weights, same seed -> same PART loss and the same gradients everywhere."""
    torch.manual_seed(0)
    backbone = vit_custom(32, 2, 2, img_size=16, patch_size=4)
    ref = PARTModel(backbone, head=f"{head}_reference", num_pairs=num_pairs).double()
    fused = PARTModel(vit_custom(32, 2, 2, img_size=16, patch_size=4), head=head, num_pairs=num_pairs).double()
    fused.load_state_dict(ref.state_dict(), strict=True)
    assert type(fused.head) is not type(ref.head)
    images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    outs = []
    for model in (ref, fused):
        model.zero_grad(set_to_none=True)
        out = model(images, generator=torch.Generator().manual_seed(7))
        out.loss.backward()
        outs.append((out, {n: p.grad for n, p in model.named_parameters()}))
    (out_r, g_r), (out_f, g_f) = outs
    torch.testing.assert_close(out_f.pairs, out_r.pairs)
    torch.testing.assert_close(out_f.loss, out_r.loss, rtol=1e-10, atol=0)
    assert g_r.keys() == g_f.keys()
    for name in g_r:
        assert_close_scaled(g_f[name], g_r[name], 1e-8, f"grad {name}")


def test_bf16_autocast_on_cpu():
    """Under bf16 autocast the fused head computes in float32: it equals the fp32 reference on the same
    (bf16) inputs, and is close to the reference run under autocast."""
    ref, fused = twin_heads(32, 2, 2)
    x = torch.randn(2, 16, 32, generator=torch.Generator().manual_seed(0)).bfloat16()
    pairs = sample_pairs(2, 16, 200, torch.Generator().manual_seed(1))
    xg = x.clone().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fused(xg, pairs)
        y_ref_amp = ref(x, pairs)
    y.sum().backward()
    assert y.dtype == torch.float32 and xg.grad.dtype == torch.bfloat16
    assert all(torch.isfinite(p.grad).all() for p in fused.parameters())
    y_ref32 = ref(x.float(), pairs)
    torch.testing.assert_close(y, y_ref32, rtol=1e-4, atol=1e-4 * y_ref32.abs().max().item())
    torch.testing.assert_close(y, y_ref_amp.float(), rtol=0.05, atol=0.05 * y_ref32.abs().max().item())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("path", ["table", "gather"])
def test_cuda_matches_reference_and_runs_bf16(path):
    ref, fused = twin_heads(32, 2, 4, path=path)
    ref, fused = ref.cuda(), fused.cuda()
    x = torch.randn(2, 16, 32, generator=torch.Generator().manual_seed(0)).cuda()
    pairs = sample_pairs(2, 16, "all", torch.Generator().manual_seed(1)).cuda()
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False  # TF32 matmuls would round both sides to ~1e-3
    try:
        assert_same_function(ref, fused, x, pairs, 1e-4)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    with torch.autocast("cuda", dtype=torch.bfloat16):
        y = fused(x, pairs)
    assert y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.slow
def test_torch_compile_matches_eager():
    """Both repair modes trace with dynamo (aot_eager keeps it fast): "dense" as one full graph, "sparse"
    with its single graph break; huge logits make the repair run inside the compiled call."""
    for repair, fullgraph in (("dense", True), ("sparse", False)):
        ref, fused = integer_twin_heads(torch.float32, repair)
        x = torch.randint(-1, 2, (2, 12, 32), generator=torch.Generator().manual_seed(1)).float()
        pairs = sample_pairs(2, 12, 50, torch.Generator().manual_seed(2))
        torch._dynamo.reset()
        compiled = torch.compile(fused, backend="aot_eager", fullgraph=fullgraph)
        y_ref, g_ref = fwd_bwd(ref, x, pairs)
        y_c, g_c = fwd_bwd(compiled, x, pairs)
        assert_close_scaled(y_c, y_ref, 1e-4, f"{repair} output")
        assert_close_scaled(g_c["x"], g_ref["x"], 1e-4, f"{repair} grad x")
        for name, p in fused.named_parameters():
            assert_close_scaled(p.grad, g_ref[name], 1e-4, f"{repair} grad {name}")
    torch._dynamo.reset()


def test_choose_path_rule():
    n, k = 64, 2
    boundary = n * (k + 1) / ROWS_COST  # M at which both paths cost the same: N^3 (k+1) = M N (c N)
    assert choose_path(n, int(boundary) + 1, k) == "table"
    assert choose_path(n, int(boundary) - 1, k) == "rows"
    assert choose_path(n, n * (n - 1), k) == "table"  # num_pairs="all"
    assert choose_path(n, 1, k) == "rows"
    costs = path_costs(196, 2048, 2)
    assert costs["table"] == 196**3 * 3 and costs["rows"] < costs["gather"]


def pick_reference(ea, eb, u1, ia, ja):
    """PickPairs written with plain autograd ops: the dense (N, N, c) table, then a gather."""
    g, n, _ = ea.shape
    c = u1.shape[-1]
    table = torch.einsum("gin,gjn,gnc->gijc", ea, eb, u1).reshape(g, n * n, c)
    return torch.gather(table, 1, (ia * n + ja).unsqueeze(-1).expand(-1, -1, c))


@pytest.mark.parametrize("mode", ["table", "rows"])
# one chunk; one group (table) or one pair (rows) per chunk; rows: pairs split within a group (M N = 270 > 200);
# a few groups per chunk (600)
@pytest.mark.parametrize("budget", [None, 1, 200, 600])
def test_pick_pairs_matches_autograd(mode, budget):
    """The hand-written backward of PickPairs against autograd through the plain formula, with repeated
    pairs (the backward must accumulate them) and chunks that do not divide the groups."""
    gen = torch.Generator().manual_seed(0)
    g, n, m, c = 5, 9, 30, 3
    ea, eb = torch.rand(g, n, n, generator=gen, dtype=torch.float64), torch.rand(g, n, n, generator=gen, dtype=torch.float64)
    u1 = torch.randn(g, n, c, generator=gen, dtype=torch.float64)
    ia, ja = torch.randint(0, n, (g, m), generator=gen), torch.randint(0, n, (g, m), generator=gen)
    ia[:, 1], ja[:, 1] = ia[:, 0], ja[:, 0]
    cot = torch.randn(g, m, c, generator=gen, dtype=torch.float64)
    results = []
    for fn in (pick_reference, lambda a, b, u, i, j: PickPairs.apply(a, b, u, i, j, mode, budget)):
        leaves = [t.clone().requires_grad_(True) for t in (ea, eb, u1)]
        y = fn(*leaves, ia, ja)
        y.backward(cot)
        results.append([y.detach()] + [t.grad for t in leaves])
    for got, want, what in zip(results[1], results[0], ["out", "d_ea", "d_eb", "d_u1"]):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12, msg=lambda s: f"{what}: {s}")


def test_tune_times_once_per_shape_and_caches(monkeypatch):
    """path="tune" measures the candidate paths on the first call of a shape, caches the winner and reuses
    it; a forced winner shows the cache is what decides (and stays exact, every path being the same function)."""
    TUNED.clear()
    timed = []
    real = fast_heads._time_path

    def spy(path, *args):
        timed.append(path)
        return {"table": 3.0, "rows": 1.0, "gather": 2.0}[path] + 0 * real(path, *args)

    monkeypatch.setattr(fast_heads, "_time_path", spy)
    ref, fused = twin_heads(16, 2, 2, torch.float64, path="tune")
    x = torch.randn(2, 10, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pairs = sample_pairs(2, 10, 30, torch.Generator().manual_seed(1))
    assert_same_function(ref, fused, x, pairs, 1e-9)
    assert sorted(timed) == ["gather", "rows", "table"]  # all three are within TUNE_SPREAD at this size
    assert list(TUNED.values()) == ["rows"] and next(iter(TUNED))[2:] == (2, 2, 10, 30, 2, True)
    fused(x, pairs).sum().backward()
    assert len(timed) == 3  # cached: no new timing for the same shape
    with torch.no_grad():
        fused(x, pairs)  # forward-only is another shape key
    assert len(timed) == 6 and len(TUNED) == 2
    TUNED.clear()


def test_bad_arguments():
    with pytest.raises(ValueError, match="path.*one of"):
        FusedCrossAttentionHead(16, 2, 2, path="fast")
    with pytest.raises(ValueError, match="repair.*one of"):
        FusedCrossAttentionHead(16, 2, 2, repair="never")
    with pytest.raises(ValueError, match="path.*one of"):
        FusedPairwiseMLPHead(16, 2, path="table")
    with pytest.raises(ValueError, match="num_heads=5"):
        FusedCrossAttentionHead(16, 5, 2)
    x = torch.randn(2, 5, 16)
    for head in (FusedCrossAttentionHead(16, 2, 2), FusedPairwiseMLPHead(16, 2)):
        with pytest.raises(ValueError, match=r"pairs must be \(B, M, 2\)"):
            head(x, torch.zeros(2, 3, dtype=torch.long))
        with pytest.raises(ValueError, match=r"embeddings must be \(B, N, d\)"):
            head(x[0], torch.zeros(2, 3, 2, dtype=torch.long))
