"""Fast exact relative encoders (paper §4 "Cross-attention relative encoder"; §5.3 pairwise MLP).

The reference heads in :mod:`part.models.heads` gather the two embeddings of every pair and run the whole
head per pair: ``O(M d^2)`` work for M pairs. The paper's head is linear everywhere except the softmax, so
the same function can be computed with per-*token* work plus cheap per-pair gathers. The classes here are
drop-in subclasses of the references: same parameters, same state-dict keys, same outputs (up to float
rounding), so weights load both ways and the references stay the test oracle.

Cross-attention identity (exact). For a pair m = (i, j), head h, head width d_h, scale ``1/sqrt(d_h)``:

1. The query is affine in the two embeddings: ``q_m = A[i] + B[j]`` with per-token
   ``A = X (W_q W_ref)^T / sqrt(d_h)`` and ``B = X (W_q W_tgt)^T / sqrt(d_h) + c`` (c folds the biases of
   ``query_proj`` and ``q``; ``W_ref | W_tgt`` are the two halves of ``query_proj``).
2. Every score separates: ``s_m[n] = SA[i, n] + SB[j, n]`` with per-head score tables
   ``SA = A_h K_h^T`` and ``SB = B_h K_h^T`` of size N x N.
3. The value path is linear up to theta: ``W_out W_proj V_h`` folds into per-token k-vectors
   ``U_h = X (W_c,h W_v,h)^T`` (``W_c = W_out W_proj``); the value/proj/out biases fold into one
   output bias because softmax weights sum to one.
4. ``exp(a + b) = exp(a) exp(b)``: with ``EA = exp(SA - rowmax)``, ``EB = exp(SB - rowmax)``,
   ``theta_m = sum_h [sum_n EA[i,n] EB[j,n] U_h[n]] / [sum_n EA[i,n] EB[j,n]] + bias``.
   Numerators and denominators for all N^2 pairs are one batched matmul
   ``EA @ [EB^T * (1, U_h)]`` per head; the M predictions are gathers from that table.

The same identity serves the single-head variants: the paper's exact head (no q/k/v projections, keys and
values are X itself) and the authors' index-code head (fixed sin-cos query codes, so ``A``/``B`` are
computed from the N index codes). Each builds its own ``SA``, ``SB``, ``U`` and output bias; steps 2-4 are
shared (:func:`attend_pairs`).

Two paths compute the same function (``path="auto"`` picks by cost, see :func:`choose_path`):

* ``"table"`` (step 4): ``2 H N^3 (k + 1)`` matmul FLOPs per image for the tables, independent of M,
  plus ``O(H M (k + 1))`` for the gathers.
* ``"gather"`` (step 2 + standard softmax): gather the two score rows of each pair, softmax, times U:
  ``H M N (2k + ~6)`` FLOPs per image, all elementwise/gather work, no underflow concern.

Both share the per-token work (``2 N d (3d + Hk)`` FLOPs for the fused projection, ``4 H N^2 d_h`` for
the score tables) and a one-off ``O(d^3)`` weight fold.

Numerical safety of the table path: ``EA[i, n] EB[j, n]`` can underflow for every n when the two score
rows of a pair peak at different tokens by more than ~87 (fp32) in logit. Such a pair has a denominator
below ``tau = sqrt(finfo.tiny)`` (then at most ``N * tiny / tau = N sqrt(tiny)`` of relative mass can be
lost, and ``den^2`` stays a normal number in the backward). These pairs are detected per pair and
recomputed from the score tables with the stable gather path (a plain softmax over
``SA[i] + SB[j]``); the others use a safe denominator of 1 in the discarded branch so no NaN reaches the
backward. Autocast is disabled inside the head and the tables are built in float32 (float64 for float64
inputs): the head is cheap, and bf16 exp-tables would be both inexact and fragile.

``torch.compile``: the main path has no data-dependent Python control flow (the path choice depends on
shapes only). The default re-stabilisation (``repair="sparse"``) recomputes only the flagged pairs, whose
indices are data-dependent, so it is wrapped in ``torch.compiler.disable``: it runs eagerly, as one graph
break at the very end of the head (and, on CUDA, one host sync for ``nonzero``). ``repair="dense"``
computes the stable path for every pair and selects with ``torch.where``: no graph break
(``fullgraph=True``, CUDA graphs), at the cost of the gather path.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .heads import (
    CrossAttentionHead,
    IndexCrossAttentionHead,
    PairwiseMLPHead,
    PaperCrossAttentionHead,
    pair_index_code,
    token_index_code,
)
from .tokens import check_pairs, gather_tokens

PATHS = ("auto", "table", "gather")

#: ``path="auto"`` uses the full table when ``M * N * (GATHER_COST * N) >= N^3 * (k + 1)``, i.e. from
#: ``M >= N (k + 1) / GATHER_COST`` pairs on. One entry of the gather path's ``(M, H, N)`` score tensor (gather,
#: add, softmax, weighted sum, and the same again in the backward, memory-bound on fresh buffers) costs as
#: much as ``GATHER_COST * N`` multiply-adds inside the table path's batched matmul: the entry cost grows with
#: N because those tensors outgrow the caches. Calibrated on an idle 2-core CPU (3 heads, d = 192, k = 2,
#: fwd+bwd of ``FusedCrossAttentionHead(path=...)``): measured crossovers M ~ 300 for N = 64
#: (B = 128) and M ~ 940 for N = 196 (B = 32); the rule gives 320 and 980. An earlier constant per-entry
#: cost picked the slower gather path at N = 196, M = 2048 (710 ms vs 466 ms for the table).
GATHER_COST = 0.6


def choose_path(num_tokens: int, num_pairs: int, out_dim: int, gather_cost: float = GATHER_COST) -> str:
    """``"table"`` or ``"gather"`` for N tokens, M pairs and k outputs (shape-only, compile-safe).

    Table path: ``~N^3 (k + 1)`` multiply-adds per head and image; gather path: ``~M N`` elementwise
    gather/exp steps, each weighted ``gather_cost * N`` multiply-adds (see :data:`GATHER_COST`).
    """
    table = num_tokens**3 * (out_dim + 1)
    gather = num_pairs * num_tokens * (gather_cost * num_tokens)
    return "table" if gather >= table else "gather"


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float64 if x.dtype == torch.float64 else torch.float32


def _check_path(path: str) -> str:
    if path not in PATHS:
        raise ValueError(f"path must be one of {list(PATHS)}, got {path!r}")
    return path


def _no_autocast(device_type: str):
    return torch.autocast(device_type=device_type, enabled=False)


def pair_scores(sa: torch.Tensor, sb: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Scores of every pair, step 2: ``s[b, m, h, :] = SA[b, h, i] + SB[b, h, j]``.

    ``sa``/``sb`` ``(B, H, N, N)``, ``pairs (B, M, 2)`` -> ``(B, M, H, N)``. Rows are gathered with
    ``index_select`` on ``(B N, H N)`` row-major copies of the tables (contiguous rows, cheap backward).
    """
    b, h, n, _ = sa.shape
    m = pairs.shape[1]
    offset = (torch.arange(b, device=pairs.device) * n).unsqueeze(1)  # (B, 1)
    rows_a = sa.transpose(1, 2).reshape(b * n, h * n)
    rows_b = sb.transpose(1, 2).reshape(b * n, h * n)
    s = rows_a.index_select(0, (pairs[..., 0] + offset).reshape(-1))
    s = s + rows_b.index_select(0, (pairs[..., 1] + offset).reshape(-1))
    return s.reshape(b, m, h, n)


def gather_predict(sa: torch.Tensor, sb: torch.Tensor, u: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
    """Stable per-pair path: softmax over ``SA[i] + SB[j]``, then weighted sum of ``U``, summed over heads.

    ``sa``/``sb`` ``(B, H, N, N)``, ``u (B, H, N, k)``, ``pairs (B, M, 2)`` -> ``(B, M, k)`` (no bias).
    Cost ``O(B H M N k)``; never underflows (standard max-subtracted softmax).
    """
    b, h, n, k = u.shape
    p = torch.softmax(pair_scores(sa, sb, pairs), dim=-1)  # (B, M, H, N)
    return torch.bmm(p.reshape(b, -1, h * n), u.reshape(b, h * n, k))  # sums over heads and tokens


def table_predict(
    sa: torch.Tensor, sb: torch.Tensor, u: torch.Tensor, pairs: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exp-factorised path, step 4, WITHOUT the underflow repair (see :func:`restabilise`).

    Args:
        sa, sb: score tables ``(B, H, N, N)`` (row = ref/tgt token, column = key token).
        u: folded values ``(B, H, N, k)``.
        pairs: ``(B, M, 2)``.
    Returns:
        ``theta (B, M, k)`` (no bias; entries of flagged pairs are meaningless but finite) and
        ``bad (B, M)`` bool, True where some head's denominator fell below ``sqrt(finfo.tiny)``.
    """
    b, h, n, k = u.shape
    m = pairs.shape[1]
    # Row maxima are constants of the softmax (shift invariance): detached, the function is unchanged.
    ea = torch.exp(sa - sa.detach().amax(dim=-1, keepdim=True))  # (B, H, N_i, N_n)
    eb = torch.exp(sb - sb.detach().amax(dim=-1, keepdim=True))  # (B, H, N_j, N_n)
    u1 = torch.cat([torch.ones_like(u[..., :1]), u], dim=-1)  # (B, H, N_n, k + 1): [1 | U]
    rhs = eb.transpose(-1, -2).unsqueeze(-1) * u1.unsqueeze(-2)  # (B, H, N_n, N_j, k + 1)
    table = torch.matmul(ea, rhs.reshape(b, h, n, n * (k + 1)))  # (B, H, N_i, N_j (k + 1))
    table = table.reshape(b, h, n * n, k + 1)
    flat = (pairs[..., 0] * n + pairs[..., 1]).reshape(b, 1, m, 1).expand(b, h, m, k + 1)
    picked = torch.gather(table, 2, flat)  # (B, H, M, k + 1)
    den, num = picked.split([1, k], dim=-1)  # split, not slicing: its backward concatenates, no zero-fill
    den = den.squeeze(-1)
    tau = torch.finfo(den.dtype).tiny ** 0.5
    bad_h = den < tau  # (B, H, M)
    den = torch.where(bad_h, torch.ones_like(den), den)  # keep the discarded branch finite (NaN-free grads)
    theta = (num / den.unsqueeze(-1)).sum(dim=1)  # (B, M, k)
    return theta, bad_h.any(dim=1)


@torch.compiler.disable
def restabilise(
    theta: torch.Tensor,
    bad: torch.Tensor,
    sa: torch.Tensor,
    sb: torch.Tensor,
    u: torch.Tensor,
    pairs: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Replace the flagged pairs of ``theta (B, M, k)`` by the stable softmax path (exact, differentiable).

    ``bad (B, M)`` bool; ``sa``/``sb``/``u``/``pairs`` as in :func:`table_predict`; ``bias (k,)`` is added
    to the recomputed pairs (``theta`` already carries it). Only the flagged pairs are recomputed
    (``O(R H N k)`` for R of them), which needs their data-dependent indices: this function is excluded
    from ``torch.compile`` graphs (one graph break). Returns a new tensor, or ``theta`` if none is flagged.
    """
    idx = bad.nonzero()  # (R, 2): (image, pair)
    if idx.shape[0] == 0:
        return theta
    bi, mi = idx.unbind(1)
    i, j = pairs[bi, mi, 0], pairs[bi, mi, 1]
    p = torch.softmax(sa[bi, :, i] + sb[bi, :, j], dim=-1)  # (R, H, N)
    fixed = torch.einsum("rhn,rhnk->rk", p, u[bi])
    if bias is not None:
        fixed = fixed + bias
    return theta.index_put((bi, mi), fixed.to(theta.dtype))


def restabilise_dense(
    theta: torch.Tensor,
    bad: torch.Tensor,
    sa: torch.Tensor,
    sb: torch.Tensor,
    u: torch.Tensor,
    pairs: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> torch.Tensor:
    """Same result as :func:`restabilise` without data-dependent shapes (``torch.compile(fullgraph=True)``
    and CUDA graphs): the stable path is computed for ALL pairs and selected with ``torch.where``, so it
    costs as much as the gather path.
    """
    stable = gather_predict(sa, sb, u, pairs)
    if bias is not None:
        stable = stable + bias
    return torch.where(bad.unsqueeze(-1), stable.to(theta.dtype), theta)


REPAIRS = {"sparse": restabilise, "dense": restabilise_dense}


def attend_pairs(
    sa: torch.Tensor,
    sb: torch.Tensor,
    u: torch.Tensor,
    out_bias: torch.Tensor,
    pairs: torch.Tensor,
    path: str = "auto",
    repair: str = "sparse",
) -> torch.Tensor:
    """Steps 2-4 for any head whose scores separate as ``SA[i] + SB[j]`` and whose values fold to ``U``.

    ``sa``/``sb`` ``(B, H, N, N)``, ``u (B, H, N, k)``, ``out_bias (k,)``, ``pairs (B, M, 2)`` -> ``(B, M, k)``.
    ``path``: ``"auto"`` (:func:`choose_path`), ``"table"`` or ``"gather"``; ``repair``: a key of :data:`REPAIRS`.
    """
    n, m, k = sa.shape[-1], pairs.shape[1], u.shape[-1]
    path = path if path != "auto" else choose_path(n, m, k)
    if path == "gather":
        return gather_predict(sa, sb, u, pairs) + out_bias
    theta, bad = table_predict(sa, sb, u, pairs)
    return REPAIRS[repair](theta + out_bias, bad, sa, sb, u, pairs, out_bias)


def _check_repair(repair: str) -> str:
    if repair not in REPAIRS:
        raise ValueError(f"repair must be one of {list(REPAIRS)}, got {repair!r}")
    return repair


class FusedCrossAttentionHead(CrossAttentionHead):
    """The paper's cross-attention relative encoder (§4), computed through the per-token identity.

    Same constructor, parameters and state-dict keys as :class:`~part.models.heads.CrossAttentionHead`;
    same outputs up to float rounding. See the module docstring for the identity, the two paths and the
    underflow repair.

    Args:
        dim, num_heads, out_dim, qkv_bias: as the reference.
        path: ``"auto"`` (cost rule :func:`choose_path`), ``"table"`` or ``"gather"``.
        repair: how the table path recomputes underflowing pairs: ``"sparse"`` (default; only those pairs,
            one ``torch.compile`` graph break) or ``"dense"`` (all pairs, no graph break, gather-path cost).
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 1,
        out_dim: int = 2,
        qkv_bias: bool = True,
        path: str = "auto",
        repair: str = "sparse",
    ):
        super().__init__(dim, num_heads, out_dim, qkv_bias)
        self.path = _check_path(path)
        self.repair = _check_repair(repair)

    def folded_weights(self, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fold all projections into one per-token linear map and one output bias (steps 1 and 3).

        Returns ``weight (3d + H k, d)``, ``bias (3d + H k,)`` whose output rows are ``[A | B | K | U]``
        (A, B already scaled by ``1/sqrt(d_h)``), and the output bias ``(k,)``. Differentiable in
        every parameter of the module; costs ``O(d^3)`` once per call.
        """
        d, h, dh, k = self.dim, self.num_heads, self.head_dim, self.out_dim
        scale = dh**-0.5
        w_qp, b_qp = self.query_proj.weight.to(dtype), self.query_proj.bias.to(dtype)
        w_q = self.q.weight.to(dtype)
        w_kv = self.kv.weight.to(dtype)
        w_k, w_v = w_kv[:d], w_kv[d:]
        w_ab = (w_q @ w_qp) * scale  # (d, 2d): [W_q W_ref | W_q W_tgt]
        c = w_q @ b_qp
        zeros = w_qp.new_zeros(d)
        b_k = zeros
        b_v = zeros
        if self.q.bias is not None:
            c = c + self.q.bias.to(dtype)
        if self.kv.bias is not None:
            b_kv = self.kv.bias.to(dtype)
            b_k, b_v = b_kv[:d], b_kv[d:]
        w_out, w_proj = self.out.weight.to(dtype), self.proj.weight.to(dtype)
        w_c = w_out @ w_proj  # (k, d): value -> theta, all heads
        w_u = torch.einsum("khe,hef->hkf", w_c.reshape(k, h, dh), w_v.reshape(h, dh, d)).reshape(h * k, d)
        weight = torch.cat([w_ab[:, :d], w_ab[:, d:], w_k, w_u], dim=0)
        bias = torch.cat([zeros, c * scale, b_k, w_u.new_zeros(h * k)])
        out_bias = self.out.bias.to(dtype) + w_out @ self.proj.bias.to(dtype) + w_c @ b_v
        return weight, bias, out_bias

    def token_tables(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-token work: ``x (B, N, d)`` -> ``SA, SB (B, H, N, N)``, ``U (B, H, N, k)``, bias ``(k,)``.

        Computed in float32 (float64 for float64 input) with autocast off.
        """
        b, n, d = x.shape
        h, dh, k = self.num_heads, self.head_dim, self.out_dim
        dtype = _compute_dtype(x)
        weight, bias, out_bias = self.folded_weights(dtype)
        y = F.linear(x.to(dtype), weight, bias)  # (B, N, 3d + H k)
        # split (not slicing) everywhere: the backward then concatenates instead of zero-filling copies
        ab, key, u = y.split([2 * d, d, h * k], dim=-1)
        ab = ab.reshape(b, n, 2, h, dh).permute(0, 3, 2, 1, 4).reshape(b, h, 2 * n, dh)  # A rows, then B rows
        key = key.reshape(b, n, h, dh).permute(0, 2, 3, 1)  # (B, H, dh, N)
        sa, sb = torch.matmul(ab, key).split(n, dim=2)  # (B, H, N, N) each
        u = u.reshape(b, n, h, k).transpose(1, 2)  # (B, H, N, k)
        return sa, sb, u, out_bias

    def forward(self, x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """``x (B, N, d)``, ``pairs (B, M, 2)`` -> ``(B, M, k)`` (float32, or float64 for float64 input)."""
        check_pairs(x, pairs)
        with _no_autocast(x.device.type):
            sa, sb, u, out_bias = self.token_tables(x)
            return attend_pairs(sa, sb, u, out_bias, pairs, self.path, self.repair)


class FusedPaperCrossAttentionHead(PaperCrossAttentionHead):
    """The paper's single-head relative encoder (§4), computed per token (same identity, H = 1).

    ``X_hat_m = W_ref x_i + W_tgt x_j + b`` and keys/values are the embeddings, so
    ``A = X W_ref^T / sqrt(d)``, ``B = (X W_tgt^T + b) / sqrt(d)``, ``SA = A X^T``, ``SB = B X^T`` and the
    values fold through the output map: ``U = X W_out^T`` (k per token), output bias ``b_out``. Same
    constructor (plus ``path``/``repair``), parameters and state-dict keys as
    :class:`~part.models.heads.PaperCrossAttentionHead`.
    """

    def __init__(self, dim: int, out_dim: int = 2, path: str = "auto", repair: str = "sparse"):
        super().__init__(dim, out_dim)
        self.path = _check_path(path)
        self.repair = _check_repair(repair)

    def token_tables(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x (B, N, d)`` -> ``SA, SB (B, 1, N, N)``, ``U (B, 1, N, k)``, bias ``(k,)`` (float32/float64)."""
        d, k = self.dim, self.out_dim
        dtype = _compute_dtype(x)
        scale = d**-0.5
        w_qp, b_qp = self.query_proj.weight.to(dtype), self.query_proj.bias.to(dtype)
        w_out = self.out.weight.to(dtype)
        weight = torch.cat([w_qp[:, :d] * scale, w_qp[:, d:] * scale, w_out], dim=0)  # (2d + k, d)
        bias = torch.cat([w_qp.new_zeros(d), b_qp * scale, w_qp.new_zeros(k)])
        xc = x.to(dtype)
        a, bq, u = F.linear(xc, weight, bias).split([d, d, k], dim=-1)  # (B, N, d), (B, N, d), (B, N, k)
        sa, sb = torch.matmul(torch.cat([a, bq], dim=1), xc.transpose(1, 2)).split(x.shape[1], dim=1)
        return sa.unsqueeze(1), sb.unsqueeze(1), u.unsqueeze(1), self.out.bias.to(dtype)

    def forward(self, x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """``x (B, N, d)``, ``pairs (B, M, 2)`` -> ``(B, M, k)`` (float32, or float64 for float64 input)."""
        check_pairs(x, pairs)
        with _no_autocast(x.device.type):
            sa, sb, u, out_bias = self.token_tables(x)
            return attend_pairs(sa, sb, u, out_bias, pairs, self.path, self.repair)


class FusedIndexCrossAttentionHead(IndexCrossAttentionHead):
    """The authors' index-code relative encoder, computed per token (same identity, H = 1).

    The query code splits by halves, ``code(i, j) = [c(i) | c(j)]``, so ``q_m = W_q,ref c(i) + W_q,tgt c(j) +
    b_q``: ``A = C W_q,ref^T / sqrt(d)`` and ``B = (C W_q,tgt^T + b_q) / sqrt(d)`` over the N index codes ``C``
    (image-independent), keys ``K = (X + pe) W_k^T + b_k``, ``SA = A K^T``, ``SB = B K^T``; values fold to
    ``U = X (W_out W_proj W_v)^T`` and one output bias. Same constructor (plus ``path``/``repair``),
    parameters and state-dict keys as :class:`~part.models.heads.IndexCrossAttentionHead`.
    """

    def __init__(self, dim: int, out_dim: int = 2, qkv_bias: bool = True, path: str = "auto", repair: str = "sparse"):
        super().__init__(dim, out_dim, qkv_bias)
        self.path = _check_path(path)
        self.repair = _check_repair(repair)

    def token_tables(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x (B, N, d)`` -> ``SA, SB (B, 1, N, N)``, ``U (B, 1, N, k)``, bias ``(k,)`` (float32/float64)."""
        b, n, d = x.shape
        dtype = _compute_dtype(x)
        scale = d**-0.5
        half = d // 2
        idx = torch.arange(n, device=x.device)
        codes = pair_index_code(torch.stack([idx, idx], dim=-1), d).to(dtype)  # (N, d): [c(n) | c(n)]
        w_q = self.q.weight.to(dtype)
        b_q = self.q.bias.to(dtype) if self.q.bias is not None else w_q.new_zeros(d)
        a = F.linear(codes[:, :half], w_q[:, :half]) * scale  # (N, d)
        bq = F.linear(codes[:, half:], w_q[:, half:], b_q) * scale  # (N, d)
        w_k, w_v = self.kv.weight.to(dtype).split(d)
        b_k, b_v = (None, w_q.new_zeros(d)) if self.kv.bias is None else self.kv.bias.to(dtype).split(d)
        xc = x.to(dtype)
        key = F.linear(xc + token_index_code(n, d, x.device).to(dtype), w_k, b_k)  # (B, N, d)
        w_out, w_proj = self.out.weight.to(dtype), self.proj.weight.to(dtype)
        w_c = w_out @ w_proj  # (k, d)
        u = F.linear(xc, w_c @ w_v)  # (B, N, k)
        sa, sb = torch.matmul(torch.cat([a, bq], dim=0), key.transpose(1, 2)).split(n, dim=1)  # (B, N, N) each
        out_bias = self.out.bias.to(dtype) + w_out @ self.proj.bias.to(dtype) + w_c @ b_v
        return sa.unsqueeze(1), sb.unsqueeze(1), u.unsqueeze(1), out_bias

    def forward(self, x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """``x (B, N, d)``, ``pairs (B, M, 2)`` -> ``(B, M, k)`` (float32, or float64 for float64 input)."""
        check_pairs(x, pairs)
        with _no_autocast(x.device.type):
            sa, sb, u, out_bias = self.token_tables(x)
            return attend_pairs(sa, sb, u, out_bias, pairs, self.path, self.repair)


class FusedPairwiseMLPHead(PairwiseMLPHead):
    """Pairwise MLP relative encoder (§5.3) with its first layer computed per token.

    ``fc1(concat(x_i, x_j)) = W_ref x_i + W_tgt x_j + b``: one linear map ``d -> 2 h`` on the N tokens,
    then two gathers and an add per pair. Per-token cost ``2 N d h`` vs ``2 M d h`` per pair, so
    ``path="auto"`` uses it when ``M >= N`` and the plain gather-then-linear otherwise. Same
    constructor, parameters and state-dict keys as :class:`~part.models.heads.PairwiseMLPHead`.
    """

    def __init__(self, dim: int, out_dim: int = 2, hidden_dim: int | None = None, path: str = "auto"):
        super().__init__(dim, out_dim, hidden_dim)
        if path not in ("auto", "token", "pair"):
            raise ValueError(f"path must be one of ['auto', 'token', 'pair'], got {path!r}")
        self.path = path

    def forward(self, x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """``x (B, N, d)``, ``pairs (B, M, 2)`` -> ``(B, M, k)``."""
        check_pairs(x, pairs)
        n, m = x.shape[1], pairs.shape[1]
        path = self.path if self.path != "auto" else ("token" if m >= n else "pair")
        if path == "pair":
            return super().forward(x, pairs)
        w = self.fc1.weight  # (hidden, 2d)
        width = w.shape[0]
        y = F.linear(x, torch.cat([w[:, : self.dim], w[:, self.dim :]], dim=0))  # (B, N, 2 hidden)
        y_ref, y_tgt = y.split(width, dim=-1)
        hid = gather_tokens(y_ref, pairs[..., 0]) + gather_tokens(y_tgt, pairs[..., 1])
        hid = hid + self.fc1.bias
        return hid if self.fc2 is None else self.fc2(F.gelu(hid))


__all__ = [
    "FusedCrossAttentionHead", "FusedPaperCrossAttentionHead", "FusedIndexCrossAttentionHead", "FusedPairwiseMLPHead",
    "attend_pairs", "choose_path", "gather_predict", "table_predict",
    "restabilise", "restabilise_dense", "pair_scores", "GATHER_COST", "PATHS", "REPAIRS",
]
