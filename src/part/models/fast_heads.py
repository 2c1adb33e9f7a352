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

Three paths compute the same function (``path="auto"`` picks by a cost rule, :func:`choose_path`;
``path="tune"`` times the candidates once per shape and caches the fastest, :func:`tuned_path`):

* ``"table"`` (step 4): ``2 H N^3 (k + 1)`` matmul FLOPs per image for the tables, independent of M,
  plus ``O(H M (k + 1))`` for the gathers; the backward is two more such matmuls. Best for many pairs.
* ``"rows"`` (step 4 per pair): gather the rows ``EA[i]``, ``EB[j]`` of each pair, multiply, contract with
  ``[1 | U]``: ``2 H M N (k + 2)`` FLOPs per image, gather/scatter-bound. Best for ``M << N^2``.
* ``"gather"`` (step 2 + standard softmax): gather the two score rows of each pair, softmax, times U:
  ``H M N (2k + ~6)`` FLOPs per image plus ``H M N`` exps, no underflow concern (the stable path that
  repairs the other two).

``"table"`` and ``"rows"`` run in :class:`PickPairs`, an autograd function with a hand-written backward that
saves only ``EA``, ``EB``, ``[1 | U]`` (not the ``(N, N, k + 1)`` tables) and works in cache-sized chunks of
(image, head) groups on the CPU (:data:`CHUNK_ELEMENTS`).

Both share the per-token work (``2 N d (3d + Hk)`` FLOPs for the fused projection, ``4 H N^2 d_h`` for
the score tables) and a one-off ``O(d^3)`` weight fold.

Numerical safety of the table and rows paths: ``EA[i, n] EB[j, n]`` can underflow for every n when the two score
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

PATHS = ("auto", "tune", "table", "rows", "gather")

#: Cost of one entry of the per-pair paths' ``(M, N)`` tensors, in units of ``N`` multiply-adds of the table
#: path's batched matmul (so an entry costs ``COST * N``): the entries are gathered, multiplied and
#: scattered (memory-bound, slower as the tensors outgrow the caches) where the table is one dense matmul.
#: ``"rows"`` (:class:`PickPairs`) calibrated on the 2-core CPU, one thread (3 heads, k = 2, fwd+bwd;
#: ``python benchmarks/bench_kernels.py --threads 1 --clock cpu``): measured table/rows crossovers
#: 256 < M < 512 (N = 64, B = 64), 1024 < M < 2048 (N = 196, B = 16), 8192 < M < 16384 (N = 576, B = 4); the
#: rule gives 480, 1470 and 4320, so at N = 576 it takes the table path for 4320 < M < ~10^4 where rows is up
#: to a quarter faster (8192 pairs: 410 vs 305 ms); one constant cannot fit all N, ``path="tune"`` measures.
#: ``"gather"`` (softmax per pair) from issue 10's calibration; it is never cheaper than ``"rows"`` by the
#: rule, and stays as the stable path of the underflow repair.
ROWS_COST = 0.4
GATHER_COST = 0.6


def path_costs(num_tokens: int, num_pairs: int, out_dim: int) -> dict[str, float]:
    """Modelled cost (table-matmul multiply-adds per head and image) of each path for N tokens, M pairs and
    k outputs: ``table`` ``N^3 (k + 1)``, ``rows``/``gather`` ``M N (COST N)`` (:data:`ROWS_COST`,
    :data:`GATHER_COST`)."""
    n, m = num_tokens, num_pairs
    return {"table": n**3 * (out_dim + 1), "rows": m * n * ROWS_COST * n, "gather": m * n * GATHER_COST * n}


def choose_path(num_tokens: int, num_pairs: int, out_dim: int) -> str:
    """``"table"`` or ``"rows"`` for N tokens, M pairs and k outputs: the cheaper by :func:`path_costs`
    (shape-only, deterministic, compile-safe). ``"table"`` from ``M >= N (k + 1) / ROWS_COST`` pairs on."""
    costs = path_costs(num_tokens, num_pairs, out_dim)
    return "table" if costs["table"] <= costs["rows"] else "rows"


#: The autotuner's choices, one per shape: ``(device, dtype, B, H, N, M, k, grad) -> path`` (this process).
TUNED: dict[tuple, str] = {}
#: Timed calls per candidate path (after one warm-up call); the fastest call counts.
TUNE_REPS = 2
#: Candidates whose modelled cost exceeds this multiple of the cheapest one are not timed (they would
#: only waste time, or memory: the gather path at N = 576 with all pairs needs gigabytes).
TUNE_SPREAD = 4.0


def _time_path(path: str, sa, sb, u, pairs, grad: bool) -> float:
    import time

    best = float("inf")
    for rep in range(TUNE_REPS + 1):
        a, b_, uu = (t.detach().requires_grad_(grad) for t in (sa, sb, u))
        if sa.device.type == "cuda":
            torch.cuda.synchronize(sa.device)
        t0 = time.perf_counter()
        out = gather_predict(a, b_, uu, pairs) if path == "gather" else table_predict(a, b_, uu, pairs, path)[0]
        if grad:
            out.sum().backward()
        if sa.device.type == "cuda":
            torch.cuda.synchronize(sa.device)
        if rep:
            best = min(best, time.perf_counter() - t0)
    return best


def tuned_path(sa: torch.Tensor, sb: torch.Tensor, u: torch.Tensor, pairs: torch.Tensor) -> str:
    """The measured fastest path for this shape (``path="tune"``), timed once per shape and cached in
    :data:`TUNED`. Times forward + backward when gradients are enabled, on the call's own tensors.

    All paths compute the same function, so the choice only moves float rounding; but it depends on timing,
    so two runs may choose differently (use ``"auto"``, the deterministic cost rule, for bit-reproducible
    runs). Inside ``torch.compile`` tracing it falls back to :func:`choose_path`.
    """
    b, h, n, _ = sa.shape
    m, k = pairs.shape[1], u.shape[-1]
    if torch.compiler.is_compiling():
        return choose_path(n, m, k)
    grad = torch.is_grad_enabled()
    key = (str(sa.device), sa.dtype, b, h, n, m, k, grad)
    if key not in TUNED:
        costs = path_costs(n, m, k)
        cheapest = min(costs.values())
        candidates = [p for p, c in costs.items() if c <= TUNE_SPREAD * cheapest]
        with torch.enable_grad() if grad else torch.no_grad():
            times = {p: _time_path(p, sa, sb, u, pairs, grad) for p in candidates}
        TUNED[key] = min(times, key=times.get)
    return TUNED[key]


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


#: Elements of one chunk of the exp-table paths' per-group temporaries (``(N, N (k + 1))`` tables, ``(M, N)``
#: gathered rows) on the CPU: a few MB, so the chunk stays in cache between its forward and backward ops.
#: Calibrated on the shared 2-core CPU (fwd+bwd of :class:`PickPairs`, N = 64/196/576): 2^18 .. 2^20 were
#: within noise of each other and 15-60% faster than unchunked. Other devices run one chunk (None).
CHUNK_ELEMENTS = {"cpu": 1 << 19}


def group_chunks(groups: int, per_group: int, budget: int | None) -> list[tuple[int, int]]:
    """``[(g0, g1), ...]`` covering ``range(groups)`` with about ``budget`` elements per chunk (one chunk
    for ``budget=None``); ``per_group`` is the element count one group needs."""
    step = max(1, budget // max(per_group, 1)) if budget else groups
    return [(g0, min(groups, g0 + step)) for g0 in range(0, groups, step)]


def row_blocks(groups: int, pairs: int, n: int, budget: int | None) -> list[tuple[int, int, int, int]]:
    """``[(g0, g1, m0, m1), ...]``: blocks of groups x pairs of about ``budget`` elements of ``(M, N)`` rows
    (one block for ``budget=None``). Groups are split first; a group whose ``M N`` rows alone exceed the
    budget is split over its pairs too (N = 576: 2048 pairs are 1.2M elements, far beyond the caches)."""
    if not budget or pairs * n <= budget:
        return [(g0, g1, 0, pairs) for g0, g1 in group_chunks(groups, pairs * n, budget)]
    step = max(1, budget // n)
    return [(g, g + 1, m0, min(pairs, m0 + step)) for g in range(groups) for m0 in range(0, pairs, step)]


def pair_rows(ea: torch.Tensor, eb: torch.Tensor, ia: torch.Tensor, ja: torch.Tensor, g0: int, g1: int,
              m0: int = 0, m1: int | None = None):
    """Rows ``ea[g, i_m]`` and ``eb[g, j_m]`` of the groups ``g0 .. g1 - 1`` and pairs ``m0 .. m1 - 1``:
    ``(G_c, M_c, N)`` each.

    ``ea``/``eb`` ``(G, N, N)``, ``ia``/``ja`` ``(G, M)`` int64.
    """
    cg, n = g1 - g0, ea.shape[-1]
    off = (torch.arange(cg, device=ia.device) * n).unsqueeze(1)
    ra = ea[g0:g1].reshape(cg * n, n).index_select(0, (ia[g0:g1, m0:m1] + off).reshape(-1)).reshape(cg, -1, n)
    rb = eb[g0:g1].reshape(cg * n, n).index_select(0, (ja[g0:g1, m0:m1] + off).reshape(-1)).reshape(cg, -1, n)
    return ra, rb


def exp_table_chunk(ea: torch.Tensor, eb: torch.Tensor, u1t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Step 4's table of one chunk: ``T[g, i, c, j] = sum_n ea[g, i, n] eb[g, j, n] u1t[g, c, n]``.

    ``ea``/``eb`` ``(G_c, N, N)``, ``u1t (G_c, c, N)`` contiguous -> ``T (G_c, N_i, c N_j)`` (column
    ``c * N + j``) and the right-hand side ``R[g, c, j, n] = eb[g, j, n] u1t[g, c, n]`` as ``(G_c, c N_j, N_n)``.
    One batched matmul of ``N^3 c`` multiply-adds per group against ``R`` transposed (a BLAS flag, no copy);
    ``R`` is built by one broadcast multiply in the layout the matmul reads, so no reshape copies.
    """
    cg, n, _ = ea.shape
    c = u1t.shape[1]
    rhs = (eb.unsqueeze(1) * u1t.unsqueeze(2)).reshape(cg, c * n, n)  # (G_c, c N_j, N_n); a view when eb is contiguous
    return torch.bmm(ea, rhs.transpose(1, 2)), rhs


def table_index(ia: torch.Tensor, ja: torch.Tensor, n: int, c: int) -> torch.Tensor:
    """Flat positions of the M pairs' ``c`` entries in :func:`exp_table_chunk`'s ``(N_i, c N_j)`` tables:
    ``ia``/``ja`` ``(G, M)`` -> ``(G, M c)`` int64 (entry ``i * c N + c' * N + j`` for ``c' < c``)."""
    cols = torch.arange(c, device=ia.device) * n
    return ((ia * (c * n) + ja).unsqueeze(-1) + cols).reshape(ia.shape[0], -1)


class PickPairs(torch.autograd.Function):
    """``out[g, m, :] = sum_n ea[g, i_m, n] eb[g, j_m, n] u1[g, n, :]`` for M pairs of each group, with a
    hand-written backward (exact: the same sums, in another order).

    Inputs ``ea``/``eb`` ``(G, N, N)``, ``u1 (G, N, c)``, ``ia``/``ja`` ``(G, M)`` int64 -> ``(G, M, c)``.
    ``mode``:

    * ``"table"``: the full ``(N, c N)`` table per group by one batched matmul (``N^3 c`` multiply-adds,
      :func:`exp_table_chunk`), then M gathers; backward: the gradient scattered into a dense table and two
      batched matmuls (``2 N^3 c``) whose operands are all in the layout the matmul reads (no reshape copies,
      no per-token matmuls). Independent of M; best when M is a good fraction of ``N^2``.
    * ``"rows"``: per pair, the two rows ``ea[i]``, ``eb[j]`` are gathered, multiplied and contracted with
      ``u1`` (``M N c``); backward the same way, accumulating into the rows with ``index_add``. Best when
      ``M << N^2`` (e.g. 2048 pairs at N = 576).

    Only ``ea``, ``eb``, ``u1`` and the indices are saved (the ``(N, N, c)`` tables are rebuilt per chunk in
    the backward), and the work runs in chunks of groups of about ``budget`` elements (None: one chunk).
    """

    @staticmethod
    def forward(ctx, ea, eb, u1, ia, ja, mode: str, budget: int | None):
        ctx.save_for_backward(ea, eb, u1, ia, ja)
        ctx.mode, ctx.budget = mode, budget
        g, n, _ = ea.shape
        m, c = ia.shape[1], u1.shape[-1]
        if mode == "table":
            out = ea.new_empty(g, m * c)  # chunks gather straight into their rows: no concatenation
            u1t = u1.transpose(1, 2).contiguous()
            for g0, g1 in group_chunks(g, n * n * c, budget):
                table, _ = exp_table_chunk(ea[g0:g1], eb[g0:g1], u1t[g0:g1])
                flat = table_index(ia[g0:g1], ja[g0:g1], n, c)  # per chunk: int64 (G_c, M c), not (G, M c)
                out[g0:g1] = torch.gather(table.view(g1 - g0, -1), 1, flat)
            return out.view(g, m, c)
        out = ea.new_empty(g, m, c)
        for g0, g1, m0, m1 in row_blocks(g, m, n, budget):
            ra, rb = pair_rows(ea, eb, ia, ja, g0, g1, m0, m1)
            out[g0:g1, m0:m1] = torch.bmm(ra * rb, u1[g0:g1])
        return out

    @staticmethod
    def backward(ctx, grad):
        ea, eb, u1, ia, ja = ctx.saved_tensors
        g, n, _ = ea.shape
        m, c = ia.shape[1], u1.shape[-1]
        grad = grad.contiguous()
        if ctx.mode == "table":
            # T = ea @ R^T with R[c, j, n] = eb[j, n] u1[n, c]: d_ea = G_T @ R, d_R = G_T^T @ ea, then d_R folds
            # back into eb (sum over c) and u1 (sum over j) by broadcast multiplies in R's own layout.
            d_ea, d_eb, d_u1t = torch.empty_like(ea), torch.empty_like(eb), u1.new_empty(g, c, n)
            u1t = u1.transpose(1, 2).contiguous()
            for g0, g1 in group_chunks(g, n * n * c, ctx.budget):
                cg = g1 - g0
                flat = table_index(ia[g0:g1], ja[g0:g1], n, c)
                gt = grad.new_zeros(cg, n * c * n).scatter_add_(1, flat, grad[g0:g1].view(cg, -1))
                gt = gt.view(cg, n, c * n)  # dense gradient of the (N_i, c N_j) table
                _, rhs = exp_table_chunk(ea[g0:g1], eb[g0:g1], u1t[g0:g1])
                d_ea[g0:g1] = torch.bmm(gt, rhs)
                d_rhs = torch.bmm(gt.transpose(1, 2), ea[g0:g1]).view(cg, c, n, n)  # (G_c, c, N_j, N_n)
                d_eb[g0:g1] = (d_rhs * u1t[g0:g1].unsqueeze(2)).sum(dim=1)
                d_u1t[g0:g1] = (d_rhs * eb[g0:g1].unsqueeze(1)).sum(dim=2)
            return d_ea, d_eb, d_u1t.transpose(1, 2), None, None, None, None
        d_ea, d_eb, d_u1 = torch.zeros_like(ea), torch.zeros_like(eb), torch.zeros_like(u1)
        for g0, g1, m0, m1 in row_blocks(g, m, n, ctx.budget):
            cg = g1 - g0
            ra, rb = pair_rows(ea, eb, ia, ja, g0, g1, m0, m1)
            gr = grad[g0:g1, m0:m1]
            w = torch.bmm(gr, u1[g0:g1].transpose(1, 2))  # (G_c, M_c, N)
            d_u1[g0:g1].baddbmm_((ra * rb).transpose(1, 2), gr)
            off = (torch.arange(cg, device=ia.device) * n).unsqueeze(1)
            d_ea[g0:g1].view(cg * n, n).index_add_(0, (ia[g0:g1, m0:m1] + off).reshape(-1), (w * rb).reshape(-1, n))
            d_eb[g0:g1].view(cg * n, n).index_add_(0, (ja[g0:g1, m0:m1] + off).reshape(-1), (w * ra).reshape(-1, n))
        return d_ea, d_eb, d_u1, None, None, None, None


def pick_pairs(ea: torch.Tensor, eb: torch.Tensor, u1: torch.Tensor, pairs: torch.Tensor, mode: str = "table",
               budget: int | None = None) -> torch.Tensor:
    """:class:`PickPairs` over heads: ``ea``/``eb`` ``(B, H, N, N)``, ``u1 (B, H, N, c)``, ``pairs (B, M, 2)``
    -> ``(B, H, M, c)``; ``budget``: chunk size in elements (default :data:`CHUNK_ELEMENTS` of the device)."""
    b, h, n, _ = ea.shape
    m, c = pairs.shape[1], u1.shape[-1]
    if budget is None:
        budget = CHUNK_ELEMENTS.get(ea.device.type)
    ia, ja = (pairs[..., t].unsqueeze(1).expand(b, h, m).reshape(b * h, m) for t in (0, 1))
    out = PickPairs.apply(ea.reshape(b * h, n, n), eb.reshape(b * h, n, n), u1.reshape(b * h, n, c), ia, ja, mode,
                          budget)
    return out.reshape(b, h, m, c)


def table_predict(
    sa: torch.Tensor, sb: torch.Tensor, u: torch.Tensor, pairs: torch.Tensor, mode: str = "table"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exp-factorised path, step 4, WITHOUT the underflow repair (see :func:`restabilise`).

    Args:
        sa, sb: score tables ``(B, H, N, N)`` (row = ref/tgt token, column = key token).
        u: folded values ``(B, H, N, k)``.
        pairs: ``(B, M, 2)``.
        mode: how the pairs' sums are formed, ``"table"`` or ``"rows"`` (:class:`PickPairs`).
    Returns:
        ``theta (B, M, k)`` (no bias; entries of flagged pairs are meaningless but finite) and
        ``bad (B, M)`` bool, True where some head's denominator fell below ``sqrt(finfo.tiny)``.
    """
    k = u.shape[-1]
    # Row maxima are constants of the softmax (shift invariance): detached, the function is unchanged.
    ea = torch.exp(sa - sa.detach().amax(dim=-1, keepdim=True))  # (B, H, N_i, N_n)
    eb = torch.exp(sb - sb.detach().amax(dim=-1, keepdim=True))  # (B, H, N_j, N_n)
    u1 = torch.cat([torch.ones_like(u[..., :1]), u], dim=-1)  # (B, H, N_n, k + 1): [1 | U]
    picked = pick_pairs(ea, eb, u1, pairs, mode)  # (B, H, M, k + 1)
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
    ``path``: ``"auto"`` (:func:`choose_path`), ``"tune"`` (:func:`tuned_path`), ``"table"``, ``"rows"`` or
    ``"gather"``; ``repair``: a key of :data:`REPAIRS`.
    """
    n, m, k = sa.shape[-1], pairs.shape[1], u.shape[-1]
    if path == "auto":
        path = choose_path(n, m, k)
    elif path == "tune":
        path = tuned_path(sa, sb, u, pairs)
    if path == "gather":
        return gather_predict(sa, sb, u, pairs) + out_bias
    theta, bad = table_predict(sa, sb, u, pairs, path)
    return REPAIRS[repair](theta + out_bias, bad, sa, sb, u, pairs, out_bias)


def _check_repair(repair: str) -> str:
    if repair not in REPAIRS:
        raise ValueError(f"repair must be one of {list(REPAIRS)}, got {repair!r}")
    return repair


class _PerTokenAttention:
    """The forward pass shared by the fused cross-attention heads: per-token tables
    (:meth:`token_tables`), then :func:`attend_pairs` over the pairs on ``self.path``."""

    def forward(self, x: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """``x (B, N, d)``, ``pairs (B, M, 2)`` -> ``(B, M, k)`` (float32, or float64 for float64 input)."""
        check_pairs(x, pairs)
        with _no_autocast(x.device.type):
            sa, sb, u, out_bias = self.token_tables(x)
            return attend_pairs(sa, sb, u, out_bias, pairs, self.path, self.repair)


class FusedCrossAttentionHead(_PerTokenAttention, CrossAttentionHead):
    """The paper's cross-attention relative encoder (§4), computed through the per-token identity.

    Same constructor, parameters and state-dict keys as :class:`~part.models.heads.CrossAttentionHead`;
    same outputs up to float rounding. See the module docstring for the identity, the paths and the
    underflow repair.

    Args:
        dim, num_heads, out_dim, qkv_bias: as the reference.
        path: ``"auto"`` (cost rule :func:`choose_path`), ``"tune"`` (measured once per shape,
            :func:`tuned_path`), ``"table"``, ``"rows"`` or ``"gather"``.
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



class FusedPaperCrossAttentionHead(_PerTokenAttention, PaperCrossAttentionHead):
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



class FusedIndexCrossAttentionHead(_PerTokenAttention, IndexCrossAttentionHead):
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
    "PickPairs", "pick_pairs", "path_costs", "tuned_path", "ROWS_COST", "TUNED", "CHUNK_ELEMENTS",
]
