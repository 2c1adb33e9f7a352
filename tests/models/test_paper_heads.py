"""The paper's exact relative encoder and the authors' index-code variant (issue 18): reference heads against
the paper's equations written out by hand, fused heads against the references (values and gradients)."""

import pytest
import torch

from part import PARTModel, vit_custom
from part.models.fast_heads import FusedIndexCrossAttentionHead, FusedPaperCrossAttentionHead, table_predict
from part.models.heads import IndexCrossAttentionHead, PaperCrossAttentionHead, pair_index_code, token_index_code
from part.targets import sample_pairs

from .test_fast_heads import assert_same_function, pairs_with_repeats

PAIRS = {"paper": (PaperCrossAttentionHead, FusedPaperCrossAttentionHead),
         "index": (IndexCrossAttentionHead, FusedIndexCrossAttentionHead)}


def twins(kind, dim, k, dtype=torch.float64, seed=0, **fused_kwargs):
    torch.manual_seed(seed)
    ref_cls, fused_cls = PAIRS[kind]
    ref = ref_cls(dim, k).to(dtype)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.1)
    fused = fused_cls(dim, k, **fused_kwargs).to(dtype)
    fused.load_state_dict(ref.state_dict(), strict=True)
    ref_cls(dim, k).load_state_dict(fused.state_dict(), strict=True)  # both ways
    return ref, fused


def test_paper_head_is_the_papers_equation():
    """theta = W_o softmax(X_hat X'^T / sqrt(d)) X' + b_o, X_hat = W_q concat(X'_i, X'_j) + b_q (§4)."""
    torch.manual_seed(0)
    head = PaperCrossAttentionHead(8, 2).double()
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    pairs = torch.tensor([[[0, 3], [4, 1], [2, 2]]])
    expected = []
    for i, j in pairs[0].tolist():
        x_hat = head.query_proj.weight @ torch.cat([x[0, i], x[0, j]]) + head.query_proj.bias
        a = torch.softmax(x[0] @ x_hat / 8**0.5, dim=0)  # over all N tokens
        expected.append(head.out.weight @ (a @ x[0]) + head.out.bias)
    torch.testing.assert_close(head(x, pairs)[0], torch.stack(expected))
    assert {n for n, _ in head.named_parameters()} == {"query_proj.weight", "query_proj.bias", "out.weight", "out.bias"}


def test_index_head_query_is_the_index_code():
    """q = W_q [c(i) | c(j)] + b_q (fixed sin-cos codes), keys W_k (x + pe(n)) + b_k, values W_v x + b_v."""
    torch.manual_seed(0)
    d = 8
    head = IndexCrossAttentionHead(d, 2).double()
    x = torch.randn(1, 6, d, dtype=torch.float64)
    pairs = torch.tensor([[[0, 3], [5, 1]]])
    pe = token_index_code(6, d)
    w_k, w_v = head.kv.weight.split(d)
    b_k, b_v = head.kv.bias.split(d)
    for m, (i, j) in enumerate(pairs[0].tolist()):
        code = pair_index_code(torch.tensor([i, j]), d)
        half = d // 2
        torch.testing.assert_close(code[:half], token_index_code(i + 1, half)[i])  # first half: c(i)
        torch.testing.assert_close(code[half:], token_index_code(j + 1, half)[j])  # second half: c(j)
        q = head.q(code)
        k = (x[0] + pe) @ w_k.T + b_k
        a = torch.softmax(k @ q / d**0.5, dim=0)
        expected = head.out(head.proj(a @ (x[0] @ w_v.T + b_v)))
        torch.testing.assert_close(head(x, pairs)[0, m], expected)


def test_index_head_query_ignores_pair_contents():
    """The query carries indices only: with zero key/value projections of the content, the prediction for
    (i, j) does not change when the contents of tokens i and j change."""
    torch.manual_seed(0)
    head = IndexCrossAttentionHead(8, 2).double()
    with torch.no_grad():
        head.kv.weight.zero_()
    x = torch.randn(1, 5, 8, dtype=torch.float64)
    x2 = x.clone()
    x2[0, 1] += 5.0
    x2[0, 3] -= 2.0
    pairs = torch.tensor([[[1, 3]]])
    torch.testing.assert_close(head(x, pairs), head(x2, pairs))


@pytest.mark.parametrize("kind", ["paper", "index"])
@pytest.mark.parametrize("path", ["auto", "table", "rows", "gather"])
@pytest.mark.parametrize("case", [(3, 16, 16, 2, 40), (2, 15, 24, 4, "all"), (2, 10, 8, 2, 5)],
                         ids=["B3-N16-d16-k2-M40", "B2-N15-d24-k4-all", "B2-N10-d8-k2-M5"])
@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 1e-4), (torch.float64, 1e-9)], ids=["fp32", "fp64"])
def test_fused_matches_reference(kind, path, case, dtype, rtol):
    batch, n, d, k, m = case
    ref, fused = twins(kind, d, k, dtype, path=path)
    x = torch.randn(batch, n, d, generator=torch.Generator().manual_seed(2), dtype=dtype)
    pairs = sample_pairs(batch, n, m, torch.Generator().manual_seed(3), self_pairs=True)
    assert_same_function(ref, fused, x, pairs, rtol)


@pytest.mark.parametrize("kind", ["paper", "index"])
@pytest.mark.parametrize("path", ["table", "rows", "gather"])
def test_duplicated_and_self_pairs(kind, path):
    ref, fused = twins(kind, 24, 2, path=path)
    x = torch.randn(2, 9, 24, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    pairs = pairs_with_repeats(2, 9, 30, seed=5)
    assert_same_function(ref, fused, x, pairs, 1e-9)


@pytest.mark.parametrize("repair", ["sparse", "dense"])
@pytest.mark.parametrize("dtype,x_max,rtol", [(torch.float32, 1, 1e-4), (torch.float64, 3, 1e-9)], ids=["fp32", "fp64"])
def test_paper_head_huge_logits_repaired(repair, dtype, x_max, rtol):
    """Keys are the raw embeddings: score rows far beyond exp's range (~87 in fp32, ~708 in fp64) must be
    flagged on the table path and recomputed. Query weights in {-32, 0, 32}, integer inputs and d = 16
    (scale 1/4) keep every score exact in both implementations, so they can be compared tightly."""
    g = torch.Generator().manual_seed(0)
    ref = PaperCrossAttentionHead(16, 2)
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(torch.randint(-1, 2, p.shape, generator=g).float())
        ref.query_proj.weight.mul_(32.0)
    ref = ref.to(dtype)
    fused = FusedPaperCrossAttentionHead(16, 2, path="table", repair=repair).to(dtype)
    fused.load_state_dict(ref.state_dict())
    x = torch.randint(-x_max, x_max + 1, (2, 12, 16), generator=torch.Generator().manual_seed(1)).to(dtype)
    pairs = pairs_with_repeats(2, 12, 60, seed=2)
    sa, sb, u, _ = fused.token_tables(x)
    assert (sa.amax(-1) - sa.amin(-1)).max() > 2 * (88 if dtype == torch.float32 else 709)
    _, bad = table_predict(sa, sb, u, pairs)
    assert 0 < bad.float().mean() < 1, "the construction must produce both underflowing and normal pairs"
    assert_same_function(ref, fused, x, pairs, rtol)


@pytest.mark.parametrize("head", ["cross_attention_paper", "cross_attention_index"])
def test_part_model_fused_equals_reference(head):
    torch.manual_seed(0)
    ref = PARTModel(vit_custom(32, 2, 2, img_size=16, patch_size=4), head=f"{head}_reference", num_pairs=24).double()
    fused = PARTModel(vit_custom(32, 2, 2, img_size=16, patch_size=4), head=head, num_pairs=24).double()
    fused.load_state_dict(ref.state_dict(), strict=True)
    images = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    losses = []
    for model in (ref, fused):
        out = model(images, generator=torch.Generator().manual_seed(7))
        out.loss.backward()
        losses.append(out.loss)
    torch.testing.assert_close(losses[1], losses[0], rtol=1e-10, atol=0)
    for (name, p_r), (_, p_f) in zip(ref.named_parameters(), fused.named_parameters()):
        torch.testing.assert_close(p_f.grad, p_r.grad, rtol=1e-8, atol=1e-10, msg=lambda m, n=name: f"{n}: {m}")


def test_bf16_autocast_computes_in_float32():
    ref, fused = twins("index", 16, 2, torch.float32)
    x = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(0)).bfloat16()
    pairs = sample_pairs(2, 8, 20, torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fused(x, pairs)
    assert y.dtype == torch.float32
    torch.testing.assert_close(y, ref(x.float(), pairs), rtol=1e-4, atol=1e-5)
