"""Attention-based pruning (SPEC section 3) against the published methods' PyTorch code.

FastV (Chen et al., "An Image is Worth 1/2 Tokens After Layer 2", ECCV 2024) and VisionZip (Yang et
al., "VisionZip: Longer is Better but Not Necessary", CVPR 2025) choose the tokens to keep from
attention probabilities. Their baselines are the methods' selection code written here in eager
PyTorch, as their repositories run it; ours is the same step as a pipeline of TokenKernels ops on the
same tensors: tk_attention_importance, tk_topk, tk_gather (and tk_visionzip_contextual). Then two parts
of the pipeline alone: top-k + gather at a large token count, and the importance from Q and K without
the attention matrix (what a model that runs FlashAttention has), against eager softmax(scale Q K^T)
and against the QK^T matmul alone.

The harness compares floating-point outputs, so index lists are checked through what they select: the
gathered rows are distinct random values, so equal rows in the same order are equal index lists. The
importance scores are compared too. Token values (hidden states, keys, Q and K) are standard normal
divided by 64: selection does not depend on their scale, and the harness's tolerance, relative to the
largest input, then stays well below the importance scores (about 1 / tokens).
"""
import math

import torch

import tokenkernels_abi as tk
from case import Case, random_tokens

TOKEN_SCALE = 1 / 64


def in_wider_buffer(values, fill):
    """values as a view of a buffer 3 elements wider in the last dimension, the rest set to fill, so
    that every dimension but the last has a stride a packed tensor would not."""
    padded = torch.full(tuple(values.shape[:-1]) + (values.shape[-1] + 3,), fill, dtype=values.dtype,
                        device=values.device)
    view = padded[..., :values.shape[-1]]
    view.copy_(values)
    return view


def attention_probabilities(shape, dtype, device, strided):
    """Attention weights [B, H, Nq, Nk]: softmax rows of standard normal logits. When strided, the
    padding around them is NaN, so an op that reads past a row fails the check."""
    probabilities = torch.randn(shape, device=device).softmax(dim=-1).to(dtype)
    return in_wider_buffer(probabilities, math.nan) if strided else probabilities


def small_tokens(shape, dtype, device, strided):
    """Token features: random_tokens (a channel slice of a wider buffer when strided) times TOKEN_SCALE."""
    return random_tokens(shape, dtype, device, strided).mul_(TOKEN_SCALE)


def distinct_scores(batch, tokens, dtype):
    """[B, N] scores of dtype, distinct within each item, so that top-k has one right answer, which
    torch.topk (unspecified among ties) must give too. float32: standard normal values, ties (rare at
    float32 resolution) broken by moving the later equal values up by the fewest units in the last
    place that make them distinct. float16 and
    bfloat16 have too few values in the normal range for thousands of distinct ones: each item draws
    without replacement from their representable values in [-4, 4], each as likely as a standard normal
    value is to round to it."""
    if dtype == torch.float32:
        values = torch.randn(batch, tokens)
        bits = values.view(torch.int32).long()
        # Sign and magnitude -> a signed key in the floats' order (-0 and +0 share 0).
        key = torch.where(bits < 0, -(bits + (1 << 31)), bits)
        ordered, order = key.sort(dim=1)
        rank = torch.arange(tokens)
        key = torch.empty_like(key).scatter_(1, order, torch.cummax(ordered - rank, dim=1).values + rank)
        return torch.where(key < 0, -key - (1 << 31), key).to(torch.int32).view(torch.float32)
    every_value = torch.arange(-(1 << 15), 1 << 15, dtype=torch.int32).to(torch.int16).view(dtype).float()
    candidates = every_value[torch.isfinite(every_value) & (every_value.abs() <= 4)].unique()  # sorted, one zero
    spacing = torch.cat([candidates[1:2] - candidates[:1], (candidates[2:] - candidates[:-2]) / 2,
                         candidates[-1:] - candidates[-2:-1]])
    weights = (torch.exp(-candidates ** 2 / 2) * spacing).expand(batch, -1)
    return candidates[torch.multinomial(weights, tokens, replacement=False)].to(dtype)


# ---- FastV ----------------------------------------------------------------------------------------

def fastv_select(attn, hidden):
    """FastV's selection after layer K: layer K-1's attention [1, H, S, S] averaged over the heads
    (FastV runs one sequence, item 0), the last token's row, its image span; the image tokens of the
    highest scores (keep = half of them), their sequence positions sorted, index the hidden states
    [1, S, C]. Returns the kept image tokens [1, keep, C] and the image tokens' scores [image_tokens]."""
    image_start, image_tokens = FASTV_IMAGE_SPANS[attn.shape[-1]]
    keep = image_tokens // 2
    average = torch.mean(attn, dim=1)[0]
    last_token = average[-1]
    image_scores = last_token[image_start:image_start + image_tokens]
    kept = (image_scores.topk(keep).indices + image_start).sort().values
    return hidden[:, kept, :], image_scores


def make_fastv_inputs(shape, dtype, device, strided):
    batch, heads, tokens, channels = shape
    return (attention_probabilities((batch, heads, tokens, tokens), dtype, device, strided),
            small_tokens((batch, tokens, channels), dtype, device, strided))


def prepare_fastv(library, attn, hidden):
    """Importance of the image span from the last query row (head mean), top-k, gather. The gather
    reads the image span as a [B, image_tokens, C] view of the hidden states, so top-k's span-relative
    indices select from it directly; the kept tokens' sequence positions (FastV keeps them for the
    position ids) are those indices + image_start."""
    batch, _, tokens, _ = attn.shape
    image_start, image_tokens = FASTV_IMAGE_SPANS[tokens]
    keep = image_tokens // 2
    image_hidden = hidden[:, image_start:image_start + image_tokens]
    scores = torch.empty((batch, image_tokens), dtype=torch.float32, device=attn.device)
    indices = torch.empty((batch, keep), dtype=torch.int32, device=attn.device)
    out = torch.empty((batch, keep, hidden.shape[-1]), dtype=hidden.dtype, device=hidden.device)
    params = tk.importance_params(tokens - 1, tokens, image_start, image_start + image_tokens,
                                  head_reduce=tk.TK_REDUCE_MEAN, query_reduce=tk.TK_REDUCE_MEAN)
    return (out, scores), tk.chained(library.prepare_attention_importance(params, attn, scores),
                                  library.prepare_topk(tk.topk_params(keep), scores, indices),
                                  library.prepare_gather(image_hidden, indices, out))


# LLaVA-1.5-7B's prompt: 35 system-prompt tokens, the 576 image tokens of CLIP ViT-L/14-336 (24 x 24),
# then the question, 1200 tokens in all; 32 heads, hidden size 4096. FastV prunes after layer K = 2,
# keeping 50% of the image tokens (288). The quick shape keeps the layout in small.
FASTV_FULL = (1, 32, 1200, 4096)  # B, H, tokens S, channels C
FASTV_QUICK = (1, 3, 61, 20)
FASTV_IMAGE_SPANS = {FASTV_FULL[2]: (35, 576), FASTV_QUICK[2]: (5, 24)}  # S -> (image start, image tokens)


# ---- VisionZip ------------------------------------------------------------------------------------

def visionzip_select(attn, hidden_states, metric):
    """VisionZip's dominant and contextual tokens from a CLIP layer's attention [B, H, N, N], hidden
    states [B, N, C] and metric (the keys averaged over heads) [B, N, Cm], as its code computes them:
    the CLS row summed over heads, its top `dominant` patches (+1: after the CLS token) and the CLS
    token kept in position order; the remaining tokens' metric normalised, targets at a uniform stride,
    every other remaining token assigned to its most similar target, contextual token = target + mean
    of its assigned tokens. Returns cat([dominant tokens, contextual tokens]) [B, 1 + dominant +
    contextual, C] and the CLS-row scores [B, N - 1]."""
    dominant_num, contextual_num = VISIONZIP_COUNTS[attn.shape[-1]]
    batch, tokens, channels = hidden_states.shape
    cls_attention = attn[:, :, 0, 1:]
    cls_attention_sum = cls_attention.sum(dim=1)
    topk_indices = cls_attention_sum.topk(dominant_num, dim=1).indices + 1
    all_indices = torch.cat([torch.zeros((batch, 1), dtype=topk_indices.dtype, device=topk_indices.device),
                             topk_indices], dim=1)
    mask = torch.ones_like(hidden_states[:, :, 0], dtype=torch.bool).scatter_(1, all_indices, False)
    dominant_tokens = hidden_states.masked_select(~mask.unsqueeze(-1)).view(batch, dominant_num + 1, channels)

    remaining = tokens - (dominant_num + 1)
    metric_filtered = metric[mask].view(batch, remaining, metric.shape[2])
    hidden_states_filtered = hidden_states.masked_select(mask.unsqueeze(-1)).view(batch, remaining, channels)
    metric_normalized = metric_filtered / metric_filtered.norm(dim=-1, keepdim=True)

    step = max(1, remaining // contextual_num)
    target_indices = torch.arange(0, remaining, step, device=metric.device)[:contextual_num]
    target_tokens = metric_normalized[:, target_indices, :]
    others = ~torch.isin(torch.arange(remaining, device=metric.device), target_indices)
    tokens_to_merge = metric_normalized[:, others, :]
    similarity = torch.bmm(tokens_to_merge, target_tokens.transpose(1, 2))
    assign_one_hot = torch.zeros(batch, tokens_to_merge.shape[1], contextual_num, dtype=hidden_states_filtered.dtype,
                                 device=metric.device)
    assign_one_hot.scatter_(2, similarity.argmax(dim=2).unsqueeze(-1), 1)
    counts = assign_one_hot.sum(dim=1).clamp(min=1).unsqueeze(-1)
    hidden_to_merge = hidden_states_filtered[:, others, :]
    aggregated_hidden = torch.bmm(assign_one_hot.transpose(1, 2), hidden_to_merge) / counts
    target_hidden = hidden_states_filtered[:, target_indices, :]
    contextual_tokens = target_hidden + aggregated_hidden
    return torch.cat([dominant_tokens, contextual_tokens], dim=1), cls_attention_sum


def make_visionzip_inputs(shape, dtype, device, strided):
    """attention [B, H, N, N], hidden states [B, N, C], metric [B, N, C / H] (the head dimension)."""
    batch, heads, tokens, channels = shape
    return (attention_probabilities((batch, heads, tokens, tokens), dtype, device, strided),
            small_tokens((batch, tokens, channels), dtype, device, strided),
            small_tokens((batch, tokens, channels // heads), dtype, device, strided))


def prepare_visionzip(library, attn, hidden_states, metric):
    """Importance of keys [1, N) from the CLS row (head sum), top-k, gather, contextual tokens, each
    writing its part of one [B, 1 + dominant + contextual, C] output (no concatenation), plus a copy of
    the CLS row into row 0. The patches after the CLS token are [B, N - 1, ...] views, so top-k's
    indices select from them directly (VisionZip's +1), and the contextual op, given the same views
    and the dominant indices as the kept positions, leaves exactly VisionZip's remaining tokens."""
    batch, _, tokens, _ = attn.shape
    dominant, contextual = VISIONZIP_COUNTS[tokens]
    patches, patch_metric = hidden_states[:, 1:], metric[:, 1:]
    scores = torch.empty((batch, tokens - 1), dtype=torch.float32, device=attn.device)
    kept = torch.empty((batch, dominant), dtype=torch.int32, device=attn.device)
    out = torch.empty((batch, 1 + dominant + contextual, hidden_states.shape[-1]), dtype=hidden_states.dtype,
                      device=hidden_states.device)
    cls_in, cls_out = hidden_states[:, 0], out[:, 0]
    params = tk.importance_params(0, 1, 1, tokens, head_reduce=tk.TK_REDUCE_SUM, query_reduce=tk.TK_REDUCE_SUM)
    return (out, scores), tk.chained(library.prepare_attention_importance(params, attn, scores),
                                  lambda: cls_out.copy_(cls_in),
                                  library.prepare_topk(tk.topk_params(dominant), scores, kept),
                                  library.prepare_gather(patches, kept, out[:, 1:1 + dominant]),
                                  library.prepare_visionzip_contextual(contextual, patch_metric, patches, kept,
                                                                       out[:, 1 + dominant:]))


# CLIP ViT-L/14-336 (LLaVA-1.5's vision tower): 577 tokens (CLS + 24 x 24), 16 heads, C = 1024, head
# dimension 64; VisionZip's 64-token setting: 54 dominant + 10 contextual tokens (plus the CLS token).
VISIONZIP_COUNTS = {577: (54, 10), 37: (6, 4)}  # N -> (dominant, contextual)


# ---- Top-k + gather -------------------------------------------------------------------------------

def topk_gather(scores, x):
    """Keep the quarter of the tokens of highest score, in position order: torch.topk, sort, index."""
    keep = scores.shape[1] // 4
    kept = scores.topk(keep, dim=1).indices.sort(dim=1).values
    return x[torch.arange(x.shape[0], device=x.device)[:, None], kept]


def make_topk_gather_inputs(shape, dtype, device, strided):
    batch, tokens, channels = shape
    scores = distinct_scores(batch, tokens, dtype).to(device)
    return (in_wider_buffer(scores, math.nan) if strided else scores,
            random_tokens(shape, dtype, device, strided))


def prepare_topk_gather(library, scores, x):
    batch, tokens = scores.shape
    keep = tokens // 4
    indices = torch.empty((batch, keep), dtype=torch.int32, device=x.device)
    out = torch.empty((batch, keep, x.shape[-1]), dtype=x.dtype, device=x.device)
    return out, tk.chained(library.prepare_topk(tk.topk_params(keep), scores, indices),
                        library.prepare_gather(x, indices, out))


# SigLIP so400m (C = 1152) tokens of a long video or a high-resolution tiling: 16,384 of them.
TOPK_FULL = (1, 16384, 1152)
TOPK_QUICK = (2, 50, 20)


# ---- Importance from Q and K ----------------------------------------------------------------------

def qk_scale(head_dim):
    """The softmax scale that gives Q and K of standard deviation TOKEN_SCALE the logits that standard
    normal ones have at SDPA's 1 / sqrt(d)."""
    return 1.0 / (TOKEN_SCALE ** 2 * math.sqrt(head_dim))


def causal_visible(queries, keys, device):
    """[Nq, Nk] mask of the keys each query sees, the queries right-aligned to the keys."""
    return torch.ones(queries, keys, dtype=torch.bool, device=device).tril(keys - queries)


def eager_importance(q, k, causal):
    """Each key's importance as an eager model gets it: the attention probabilities softmax(scale Q K^T)
    (float32, as LLaMA's eager attention upcasts them), causally masked or not, averaged over the heads
    and the queries: [B, Nk]."""
    logits = torch.matmul(q, k.transpose(-1, -2)) * qk_scale(q.shape[-1])
    if causal:
        logits = logits.masked_fill(~causal_visible(q.shape[2], k.shape[2], q.device), -math.inf)
    return torch.softmax(logits, dim=-1, dtype=torch.float32).mean(dim=(1, 2))


def flash_lse(q, k, causal):
    """What FlashAttention's forward returns beside its output and an importance pass reuses: each
    query row's natural-log log-sum-exp of its scaled scores over the keys it sees, [B, H, Nq] float32.
    One head at a time, so that no [B, H, Nq, Nk] matrix is held."""
    batch, heads, queries, _ = q.shape
    lse = torch.empty((batch, heads, queries), dtype=torch.float32, device=q.device)
    visible = causal_visible(queries, k.shape[2], q.device) if causal else None
    for h in range(heads):
        logits = torch.matmul(q[:, h].float(), k[:, h].float().transpose(-1, -2)) * qk_scale(q.shape[-1])
        if causal:
            logits.masked_fill_(~visible, -math.inf)
        lse[:, h] = torch.logsumexp(logits, dim=-1)
    return lse


def make_qk_inputs(shape, dtype, device, strided):
    batch, heads, queries, keys, head_dim = shape
    return (small_tokens((batch, heads, queries, head_dim), dtype, device, strided),
            small_tokens((batch, heads, keys, head_dim), dtype, device, strided))


def _prepare_qk_importance(causal, with_lse):
    """tk_qk_importance over all queries and keys, head and query mean; with_lse: given the row
    log-sum-exp, computed here beforehand as FlashAttention would have returned it (one pass), else
    the op computes it (two passes)."""
    def prepare(library, q, k):
        batch, _, queries, head_dim = q.shape
        keys = k.shape[2]
        params = tk.importance_params(0, queries, 0, keys, head_reduce=tk.TK_REDUCE_MEAN,
                                      query_reduce=tk.TK_REDUCE_MEAN, scale=qk_scale(head_dim), causal=causal)
        out = torch.empty((batch, keys), dtype=torch.float32, device=q.device)
        lse = flash_lse(q, k, causal) if with_lse else None
        return out, library.prepare_qk_importance(params, q, k, out, lse)
    return prepare


def _prepare_qk_matmul(q, k):
    """The QK^T product alone, as PyTorch runs it (a batched GEMM), into a buffer allocated once."""
    product = torch.empty(tuple(q.shape[:-1]) + (k.shape[2],), dtype=q.dtype, device=q.device)
    k_t = k.transpose(-1, -2)
    return lambda: torch.matmul(q, k_t, out=product)


def qk_gflop(shape):
    batch, heads, queries, keys, head_dim = shape
    return 2 * batch * heads * queries * keys * head_dim / 1e9


# LLaVA-1.5-7B / LLaMA-2-7B attention: 32 heads of d = 128. All queries against all keys at 1024 tokens
# (sized for the CPU) and 4096 (sized for a GPU: its f32 score matrix is 2 GiB, too much for a CPU run),
# and the few-query path: the last token against 16,384 keys. The quick shapes keep Nq < Nk (the causal
# alignment) and d = 64, which CUDA supports.
QK_N1024 = (1, 32, 1024, 1024, 128)  # B, H, Nq, Nk, d
QK_N4096 = (1, 32, 4096, 4096, 128)
QK_QUICK = (1, 3, 13, 29, 64)
QK_LAST_TOKEN = (1, 32, 1, 16384, 128)
QK_LAST_TOKEN_QUICK = (1, 3, 1, 70, 64)


def _qk_cases(prefix, full, quick, variants, full_on=("cpu", "cuda")):
    cases = []
    for causal, with_lse in variants:
        suffix = ("_causal" if causal else "") + ("_lse" if with_lse else "")
        method = (f"eager softmax(scale QK^T){', causal' if causal else ''}, mean over heads+queries; ours "
                  f"{'given' if with_lse else 'without'} lse; QK^T {qk_gflop(full):.3g} GFLOP")
        cases.append(Case(prefix + suffix, method, full, quick, make_qk_inputs,
                                   lambda q, k, causal=causal: eager_importance(q, k, causal),
                                   _prepare_qk_importance(causal, with_lse), False,
                                   full_on=full_on, references={"qk_matmul": _prepare_qk_matmul}))
    return cases


# (causal, with lse). The CPU-sized cases time the two ends, the two-pass op on a full matrix and the
# one-pass causal op of a FlashAttention prefill, to keep a CPU run short; the GPU-sized ones all four.
ALL_VARIANTS = [(False, False), (True, False), (False, True), (True, True)]
ENDS = [(False, False), (True, True)]

CASES = [
    Case("fastv_llava15_7b", "FastV K=2 R=50%: head mean of the last row, image span, topk, sort, index",
                  FASTV_FULL, FASTV_QUICK, make_fastv_inputs, fastv_select, prepare_fastv, False),
] + [
    Case(f"visionzip_clip_l336_b{batch}", "VisionZip 54+10: CLS-row head sum, topk, dominant + contextual",
                  (batch, 16, 577, 1024), (quick_batch, 3, 37, 24), make_visionzip_inputs, visionzip_select,
                  prepare_visionzip, False)
    for batch, quick_batch in ((1, 1), (8, 2))
] + [
    Case("topk_gather_n16384", "keep 25%: torch.topk + sort + index vs tk_topk + tk_gather",
                  TOPK_FULL, TOPK_QUICK, make_topk_gather_inputs, topk_gather, prepare_topk_gather, False),
] + (_qk_cases("qk_n1024", QK_N1024, QK_QUICK, ENDS) +
     _qk_cases("qk_last_token", QK_LAST_TOKEN, QK_LAST_TOKEN_QUICK, [(False, False), (False, True)]) +
     _qk_cases("qk_gpu_n4096", QK_N4096, QK_QUICK, ALL_VARIANTS, full_on=("cuda",)))
