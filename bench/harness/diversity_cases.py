"""Diversity selection (SPEC section 4) against DivPrune's PyTorch code.

DivPrune (Alvar et al., "DivPrune: Diversity-based Visual Token Pruning for Large Multimodal Models",
CVPR 2025) keeps the k image tokens of a greedy max-min (k-center) selection under the cosine
distance. Its baseline is the `DivPrune` function of its llava_arch.py written here in eager PyTorch
as the repository runs it, one image at a time: the N x N matrix 1 - cos of the row-normalised
features by torch.mm; the first token the one whose nearest other token is farthest (the second
smallest of each column by topk(2, largest=False), the smallest being the token itself); then, each
step, the rows of the tokens chosen so far gathered by index_select, their minimum over dim 0, its
argmax. The selection order it returns is then sorted and the image features indexed by it. Ours is
tk_diversity_select (cosine, most isolated, max-min) writing the order and the sorted indices, then
tk_gather of the kept tokens, on the same tensors. Two more cases exercise the other objective,
distance and first-center policies against a direct eager form of SPEC section 4 (the distance matrix,
a running score, argmax over the tokens not yet chosen).

The harness compares floating-point outputs, so the indices are checked twice, exactly: the kept
tokens x[sorted] (distinct random rows, so equal rows are equal sorted indices) and the selection order
as float32 (integers far below 2**24, and the tolerance, relative to the index, stays below 1).

An exact comparison needs distances that both sides compute exactly. On standard normal tokens they do
not: each side rounds its float32 dot products in its own order, and over a thousand greedy steps some
step meets two candidates whose scores differ by a few units in the last place (at 10,816 tokens one
such step in a run is usual), where either choice is right and the orders then differ. So the tokens
are random sign vectors with a power of 4 of nonzero channels, m = 4**j <= C: every row's norm is
sqrt(m), a power of two, so the unit rows, their dot products (multiples of 1 / m, below 1) and the
squared L2 distances (integers below 2**24) are exact in float32 in any summation order, and so are
the running minima and sums. Equal scores are then truly equal, and both sides take the lower index
(torch.argmax returns the first maximum): the check also tests the tie rule. The cosine similarities
of such rows spread as those of standard normal ones do (about 1 / sqrt(C)). One case,
divprune_llava15_n576_normal, keeps standard normal tokens, at a size where no step meets a near-tie.
"""

import torch

import tokenkernels_abi as tk
from case import Case, random_tokens


def kept_count(ratio, tokens):
    """DivPrune's threshold_terms: int(round(threshold_ratio * image_feature_length))."""
    return int(round(ratio * tokens))


def kept_outputs(x, order):
    """The harness's view of a selection order [B, k] (int64): the kept tokens x[b, sorted order]
    [B, k, C], as the method indexes its image features, and the order itself as float32 [B, k]."""
    kept = order.sort(dim=1).values
    tokens = torch.stack([x[b, kept[b]] for b in range(x.shape[0])])
    return tokens, order.float()


# ---- DivPrune -------------------------------------------------------------------------------------

def pairwise_cosine_similarity(matrix):
    """DivPrune's: the rows divided by their norms, torch.mm with the transpose."""
    norm_matrix = matrix / matrix.norm(dim=1, keepdim=True)
    return torch.mm(norm_matrix, norm_matrix.t())


def divprune_order(visual_feature_vectors, threshold_terms):
    """DivPrune's selection on one image's features [N, C]: the tokens in the order chosen [k]."""
    cosine_matrix = 1.0 - pairwise_cosine_similarity(visual_feature_vectors)
    s = torch.empty(threshold_terms, dtype=torch.long, device=visual_feature_vectors.device)
    for i in range(threshold_terms):
        if i == 0:
            m2 = cosine_matrix
        else:
            m2 = torch.index_select(cosine_matrix, 0,
                                    torch.index_select(s, 0, torch.arange(0, i, device=cosine_matrix.device)))
        if i == 0:
            scores = torch.topk(m2, 2, dim=0, largest=False).values[1, :]
        else:
            scores = torch.min(m2, dim=0).values
        s[i] = torch.argmax(scores)
    return s


def divprune_baseline(ratio):
    """DivPrune on x [B, N, C], image by image: (kept tokens [B, k, C] in position order, the selection
    order as float32 [B, k])."""
    def baseline(x):
        k = kept_count(ratio, x.shape[1])
        order = torch.stack([divprune_order(x[b], k) for b in range(x.shape[0])])
        return kept_outputs(x, order)
    return baseline


def prepare_selection(ratio, distance, first, objective):
    """tk_diversity_select (order and sorted indices) with the given settings, tk_gather of the kept
    tokens by the sorted indices, and the order copied into a float32 buffer for the check. inputs: x,
    then first_score [B, N] when first is TK_FIRST_SCORE."""
    def prepare(library, x, first_score=None):
        batch, tokens, channels = x.shape
        k = kept_count(ratio, tokens)
        order = torch.empty((batch, k), dtype=torch.int32, device=x.device)
        sorted_indices = torch.empty((batch, k), dtype=torch.int32, device=x.device)
        kept = torch.empty((batch, k, channels), dtype=x.dtype, device=x.device)
        order_float = torch.empty((batch, k), dtype=torch.float32, device=x.device)
        first_index = (torch.full((batch,), FIRST_INDEX, dtype=torch.int32, device=x.device)
                       if first == tk.TK_FIRST_INDEX else None)
        params = tk.diversity_params(k, distance=distance, first=first, objective=objective)
        select = library.prepare_diversity(params, x, order, sorted_indices, first_index=first_index,
                                           first_score=first_score)
        return (kept, order_float), tk.chained(select, library.prepare_gather(x, sorted_indices, kept),
                                            lambda: order_float.copy_(order))
    return prepare


def prepare_cosine_gemm(x):
    """DivPrune's similarity product alone, as PyTorch's BLAS runs it: the first image's normalised
    features times their transpose (an sgemm for float32), normalised beforehand, into a buffer
    allocated once."""
    features = x[0]
    normalised = (features / features.norm(dim=1, keepdim=True)).contiguous()
    product = torch.empty((features.shape[0], features.shape[0]), dtype=features.dtype, device=features.device)
    return lambda: torch.mm(normalised, normalised.t(), out=product)


# ---- SPEC section 4, directly -------------------------------------------------------------------------

def cosine_distances(features):
    """1 - cos between the rows of features [N, C], zero rows made safe as the op does."""
    unit = features / features.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return 1.0 - torch.mm(unit, unit.t())


def squared_l2_distances(features):
    """Squared Euclidean distances between the rows of features [N, C] as |a|^2 + |b|^2 - 2 a.b (the
    form torch.cdist uses for many rows; exact on the integer-valued tokens of these cases)."""
    squared_norms = features.square().sum(dim=1)
    return squared_norms[:, None] + squared_norms[None, :] - 2.0 * torch.mm(features, features.t())


def greedy_order(distances, first, k, objective):
    """SPEC section 4 on one item's distance matrix [N, N]: from the first token, each step the token not
    yet chosen of the largest running score, the min (max_min) or the sum (max_sum) of its distances to
    the chosen ones."""
    order = torch.empty(k, dtype=torch.long, device=distances.device)
    order[0] = first
    score = distances[first].clone()
    chosen = torch.zeros(distances.shape[0], dtype=torch.bool, device=distances.device)
    chosen[first] = True
    for i in range(1, k):
        next_token = torch.argmax(score.masked_fill(chosen, float("-inf")))
        order[i] = next_token
        chosen[next_token] = True
        score = torch.minimum(score, distances[next_token]) if objective == "max_min" else score + distances[next_token]
    return order


def direct_baseline(ratio, distance_matrix, objective):
    """SPEC section 4 on x [B, N, C], item by item, the first token FIRST_INDEX, or the argmax of
    first_score [B, N] when given."""
    def baseline(x, first_score=None):
        k = kept_count(ratio, x.shape[1])
        orders = []
        for b in range(x.shape[0]):
            first = int(torch.argmax(first_score[b])) if first_score is not None else FIRST_INDEX
            orders.append(greedy_order(distance_matrix(x[b]), first, k, objective))
        return kept_outputs(x, torch.stack(orders))
    return baseline


def sign_tokens(shape, dtype, device, strided):
    """x [B, N, C]: each row +-1 at m = 4**j <= C random channels (the largest such m), 0 elsewhere, so
    that its norm is a power of two and every distance is exact (see above). When strided, a channel
    slice of a buffer 3 wider whose padding is NaN, so an op that reads past a row fails the check."""
    channels = shape[-1]
    nonzero = 4 ** ((channels.bit_length() - 1) // 2)
    chosen = torch.rand(shape, device=device).argsort(dim=-1) < nonzero
    signs = torch.randint(0, 2, shape, device=device).mul_(2).sub_(1)
    values = (signs * chosen).to(dtype)
    if not strided:
        return values
    padded = torch.full(tuple(shape[:-1]) + (channels + 3,), float("nan"), dtype=dtype, device=device)
    view = padded[..., :channels]
    view.copy_(values)
    return view


def make_tokens(shape, dtype, device, strided):
    return (sign_tokens(shape, dtype, device, strided),)


def make_normal_tokens(shape, dtype, device, strided):
    """Standard normal tokens, on which the exact check holds only while no step meets a near-tie."""
    return (random_tokens(shape, dtype, device, strided),)


def make_tokens_and_scores(shape, dtype, device, strided):
    """x [B, N, C] and a first-center score [B, N] (CLS attention: a softmax of standard normal logits)."""
    batch, tokens, _ = shape
    scores = torch.randn(batch, tokens, device=device).softmax(dim=1).to(dtype)
    return sign_tokens(shape, dtype, device, strided), scores


# DivPrune's retained ratios: 0.098 of LLaVA-1.5's 576 image tokens (its default, 56 kept) in the LLM's
# width (LLaMA-2-7B, C = 4096), and 10% of LLaVA-Video's 64 frames of 13 x 13 pooled SigLIP tokens
# (10,816 x 1152: 1,082 kept), where DivPrune's eager loop takes seconds, so that case times few runs.
# The direct cases: SigLIP so400m at 384 px (27 x 27 = 729 tokens, C = 1152), a quarter kept. The
# first index of the TK_FIRST_INDEX case is a fixed token. Quick shapes keep a few steps, two items.
DIVPRUNE_RATIO = 0.098
VIDEO_RATIO = 0.1
DIRECT_RATIO = 0.25
FIRST_INDEX = 3

COSINE_MAX_MIN_MOST_ISOLATED = (tk.TK_DISTANCE_COSINE, tk.TK_FIRST_MOST_ISOLATED, tk.TK_DIVERSITY_MAX_MIN)

CASES = [
    Case("divprune_llava15_n576", "DivPrune k=56 (9.8%): cosine matrix, greedy max-min, sort, index",
                  (1, 576, 4096), (2, 60, 24), make_tokens, divprune_baseline(DIVPRUNE_RATIO),
                  prepare_selection(DIVPRUNE_RATIO, *COSINE_MAX_MIN_MOST_ISOLATED), False,
                  references={"cosine_gemm": prepare_cosine_gemm}),
    # The same on continuous (standard normal) tokens, as the issue asks: 56 steps over 576 tokens meet no
    # score gap near float32 rounding at this seed (DivPrune itself picks the same order in float64).
    Case("divprune_llava15_n576_normal", "DivPrune k=56 (9.8%) on standard normal tokens",
                  (1, 576, 4096), (2, 60, 24), make_normal_tokens, divprune_baseline(DIVPRUNE_RATIO),
                  prepare_selection(DIVPRUNE_RATIO, *COSINE_MAX_MIN_MOST_ISOLATED), False),
    Case("divprune_llava_video_64f", "DivPrune k=1082 (10%): cosine matrix, greedy max-min, sort, index",
                  (1, 10816, 1152), (1, 90, 16), make_tokens, divprune_baseline(VIDEO_RATIO),
                  prepare_selection(VIDEO_RATIO, *COSINE_MAX_MIN_MOST_ISOLATED), False,
                  max_warmup=1, max_repeats=3, references={"cosine_gemm": prepare_cosine_gemm}),
    Case("max_sum_cosine_siglip_n729", "greedy max-sum, cosine, first = a given index, k=N/4",
                  (1, 729, 1152), (2, 40, 20), make_tokens, direct_baseline(DIRECT_RATIO, cosine_distances, "max_sum"),
                  prepare_selection(DIRECT_RATIO, tk.TK_DISTANCE_COSINE, tk.TK_FIRST_INDEX, tk.TK_DIVERSITY_MAX_SUM),
                  False),
    Case("k_center_l2_siglip_n729", "greedy max-min, squared L2, first = argmax of a score, k=N/4",
                  (1, 729, 1152), (2, 40, 20), make_tokens_and_scores,
                  direct_baseline(DIRECT_RATIO, squared_l2_distances, "max_min"),
                  prepare_selection(DIRECT_RATIO, tk.TK_DISTANCE_L2, tk.TK_FIRST_SCORE, tk.TK_DIVERSITY_MAX_MIN),
                  False),
]
