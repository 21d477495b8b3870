"""Bipartite token merging (SPEC section 2) against ToMe's PyTorch code.

The baseline is ToMe's bipartite soft matching followed by its size-weighted merge (merge_wavg),
written here in eager PyTorch from the published algorithm (Bolya et al., "Token Merging: Your ViT
but Faster", ICLR 2023) and SPEC section 2, with ToMe's class-token protection and its output order
[unmerged sources (sorted back into original order, as ToMe does with a class token), destinations].
Our op is tk_merge with the same settings (weighted mean, protect_first, TK_MERGE_ORDER_TOME, sizes
all ones), on the same tensors. Both the merged tokens and their sizes are compared, so a row that
ends up in another place, or a different set of merges, fails the check.
"""
import warnings

import torch

import tokenkernels_abi as tk
from case import Case, random_tokens


def tome_bipartite_soft_matching(metric, r):
    """ToMe's matching with a class token at position 0: which sources (even positions) merge into
    which destinations (odd positions). Returns (unmerged, merged, destination) index tensors of shapes
    [B, Na - r], [B, r], [B, r]: positions within the sources and within the destinations."""
    with torch.no_grad():
        tokens = metric.shape[1]
        r = min(r, (tokens - 1) // 2)  # one protected token
        unit = metric / metric.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        sources, destinations = unit[:, 0::2], unit[:, 1::2]
        scores = sources @ destinations.transpose(1, 2)  # [B, Na, Nb] cosine similarities
        scores[:, 0, :] = -float("inf")  # the class token never merges away
        best, best_destination = scores.max(dim=-1)
        ranked = best.argsort(dim=-1, descending=True)
        merged = ranked[:, :r]
        unmerged = ranked[:, r:].sort(dim=-1).values  # with a class token, back in original order
        destination = best_destination.gather(1, merged)
    return unmerged, merged, destination, r


# PyTorch 1.13 warns once that scatter_reduce (which ToMe calls) is in beta; it is what the method runs.
warnings.filterwarnings("ignore", message="scatter_reduce\\(\\) is in beta")


def tome_merge_sum(values, unmerged, merged, destination):
    """ToMe's merge with mode="sum": every merged source added into its destination, output
    cat([unmerged sources, destinations])."""
    sources, destinations = values[:, 0::2], values[:, 1::2]
    channels = values.shape[-1]
    kept = sources.gather(1, unmerged[..., None].expand(-1, -1, channels))
    moving = sources.gather(1, merged[..., None].expand(-1, -1, channels))
    destinations = destinations.scatter_reduce(1, destination[..., None].expand(-1, -1, channels), moving,
                                               reduce="sum")
    return torch.cat([kept, destinations], dim=1)


def tome_merge_wavg(metric, x, r):
    """ToMe's bipartite_soft_matching + merge_wavg on x [B, N, C] with sizes all ones: x' [B, N - r, C]
    (each destination the size-weighted mean of itself and what merged into it) and sizes [B, N - r, 1]."""
    unmerged, merged, destination, r = tome_bipartite_soft_matching(metric, r)
    if r <= 0:
        return x, torch.ones_like(x[..., :1])
    size = torch.ones_like(x[..., :1])
    merged_x = tome_merge_sum(x * size, unmerged, merged, destination)
    merged_size = tome_merge_sum(size, unmerged, merged, destination)
    return merged_x / merged_size, merged_size


def _inputs(metric_channels):
    """make_inputs: x [B, N, C] and, when metric_channels(C) is not None, separate keys [B, N, Cm]
    (ToMe's metric, the keys averaged over heads); otherwise the metric is x itself."""
    def make(shape, dtype, device, strided):
        x = random_tokens(shape, dtype, device, strided)
        cm = metric_channels(shape[-1])
        if cm is None:
            return (x,)
        return (random_tokens(tuple(shape[:-1]) + (cm,), dtype, device, strided), x)
    return make


def _baseline(r_of):
    def baseline(*inputs):
        metric, x = (inputs[0], inputs[0]) if len(inputs) == 1 else inputs
        return tome_merge_wavg(metric, x, r_of(x.shape[1]))
    return baseline


def _prepare_merge(r_of):
    """Our outputs (x', sizes) and the tk_merge call: weighted mean, class token protected, ToMe's order,
    size NULL (all ones)."""
    def prepare(library, *inputs):
        metric, x = (inputs[0], inputs[0]) if len(inputs) == 1 else inputs
        batch, tokens, channels = x.shape
        params = tk.merge_params(r_of(tokens), mode=tk.TK_MERGE_WEIGHTED_MEAN, order=tk.TK_MERGE_ORDER_TOME,
                                 protect_first=1)
        _, rows = library.merge_output_tokens(params, tokens)
        out = torch.empty((batch, rows, channels), dtype=x.dtype, device=x.device)
        out_size = torch.empty((batch, rows), dtype=torch.float32, device=x.device)
        return (out, out_size), library.prepare_merge(params, metric, x, out, out_size=out_size)
    return prepare


def _prepare_similarity_gemm(*inputs):
    """The GEMM at the heart of the matching alone, as PyTorch's BLAS runs it: sources @ destinations^T
    of the first item's metric, [ceil(N/2), Cm] @ [Cm, N/2] (an sgemm for float32), both operands
    packed beforehand and the product written into a buffer allocated once."""
    metric = inputs[0][0]
    sources, destinations = metric[0::2].contiguous(), metric[1::2].contiguous()
    product = torch.empty((sources.shape[0], destinations.shape[0]), dtype=metric.dtype, device=metric.device)
    return lambda: torch.mm(sources, destinations.t(), out=product)


def _tome_r(tokens):
    return TOME_R


def _quarter(tokens):
    return tokens // 4


# ToMe on ViT-L/16 at 384 px (24 x 24 patches + a class token, C = 1024), r = 16 merges per block
# (ToMe's ViT-L settings are r = 8 to 16); the metric is the block's keys averaged over the 16 heads,
# so Cm = the head dimension 64. LLaVA-Video's 64 frames of 13 x 13 pooled SigLIP tokens (10,816 x
# 1152) merged with the tokens themselves as the metric (Cm = 1152), r = N / 4: the GEMM-bound case.
# Quick shapes keep the odd token counts and a class token with few channels.
TOME_R = 16
KEY_CHANNELS = 64
QUICK_KEY_CHANNELS = 16


def _key_channels(channels):
    return KEY_CHANNELS if channels >= 256 else QUICK_KEY_CHANNELS


CASES = [
    Case(f"tome_vitl_b{batch}", f"ToMe matching + merge_wavg, r={TOME_R}, class token; metric = keys [B,N,64]",
              (batch, 577, 1024), (quick_batch, 37, 24), _inputs(_key_channels), _baseline(_tome_r),
              _prepare_merge(_tome_r), True)  # one pass over x after a small GEMM on the keys
    for batch, quick_batch in ((1, 1), (8, 2), (32, 3))
] + [
    Case("tome_llava_video_64f", "ToMe matching + merge_wavg, r=N/4, class token; metric = x (Cm = C)",
              (1, 10816, 1152), (2, 51, 20), _inputs(lambda channels: None), _baseline(_quarter),
              _prepare_merge(_quarter), False,
              references={"gemm": _prepare_similarity_gemm}),
]
