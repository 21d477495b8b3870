"""Query relevance and conditional DPP selection (SPEC section 7) against CDPruner's PyTorch code.

CDPruner (Zhang et al., "Beyond Attention or Similarity: Maximizing Conditional Diversity for Token
Pruning in MLLMs", 2025; github.com/Theia-4869/CDPruner) keeps the visual tokens of a greedy MAP
inference of a DPP conditioned on the instruction. The baseline is `encode_images` of its LLaVA
llava_arch.py written here in eager PyTorch as the repository runs it: the projected image features
(LLaVA-1.5-7B's LLM width, C = 4096) divided by their norms and the N x N similarity by torch.matmul;
CLIP's image embeddings (its 768-wide projection) and the text embeddings divided by their norms, their
cosines negated and averaged over the text tokens, min-max normalised as (r - min + 1e-6) / (max - min);
the kernel r_i * sim_ij * r_j (the released code leaves theta's exp(alpha r) commented out); then, for
k steps, Chen et al.'s fast greedy MAP inference on the whole kernel (cis, di2s, argmax, -inf at the
chosen), the selection sorted and the features indexed by it. The released code min-maxes over the
whole batch of images; it runs on one image at a time (LLaVA-1.5), so the baseline here runs image by
image, as the op does per item.

On CUDA the op's kernels have not run on a GPU yet (none was available when they were written).

Ours is tk_query_relevance (negate = 1) on the embeddings, then tk_conditional_dpp_select
(TK_DPP_WEIGHT_RELEVANCE) on the projected features with that relevance, then tk_gather of the kept
tokens: rows of the kernel computed on the fly, never the N x N matrix. The check compares the kept
tokens x[sorted] and the selection order (as float32), so the selection must be exactly CDPruner's.
The text here is 64 token embeddings (the issue's shape; the released LLaVA code pools the prompt into
one CLIP text embedding per 77-token segment, which the op takes as T = 1).
"""

import torch

import tokenkernels_abi as tk
from case import Case, random_tokens

KEPT = 64           # CDPruner's visual_token_num at 64 of LLaVA-1.5's 576 tokens (88.9% pruned)
EMBED = 768         # CLIP ViT-L/14's projection width
TEXT_TOKENS = 64


def kept_count(tokens):
    return min(KEPT, max(1, tokens // 6))


def cdpruner_order(features, image_embeds, text_embeds, k):
    """CDPruner's encode_images on one image: features [N, C], image_embeds [N, E], text_embeds [T, E]
    -> the tokens in the order chosen [k]."""
    image_normalized = (features / features.norm(dim=-1, keepdim=True)).float()
    similarity = torch.matmul(image_normalized, image_normalized.t())
    image_embeds = image_embeds / image_embeds.norm(dim=-1, keepdim=True)
    text_embeds = text_embeds / text_embeds.norm(dim=-1, keepdim=True)
    relevance = torch.matmul(image_embeds, text_embeds.t())
    relevance = (-relevance).mean(dim=-1)
    relevance = (relevance - relevance.min() + 1e-6) / (relevance.max() - relevance.min())
    kernel = relevance.unsqueeze(1) * similarity * relevance.unsqueeze(0)
    tokens = kernel.shape[0]
    cis = torch.zeros((k, tokens), device=features.device)
    di2s = torch.diagonal(kernel).clone()
    order = torch.empty(k, dtype=torch.long, device=features.device)
    for i in range(k):
        j = torch.argmax(di2s)
        order[i] = j
        eis = (kernel[j] - torch.matmul(cis[:i, j], cis[:i])) / torch.sqrt(di2s[j])
        cis[i] = eis
        di2s -= torch.square(eis)
        di2s[j] = -float("inf")
    return order


def kept_outputs(x, order):
    """(the kept tokens x[b, sorted order] [B, k, C], the order as float32 [B, k])."""
    kept = order.sort(dim=1).values
    return torch.stack([x[b, kept[b]] for b in range(x.shape[0])]), order.float()


def cdpruner_baseline(x, image_embeds, text_embeds):
    k = kept_count(x.shape[1])
    order = torch.stack([cdpruner_order(x[b], image_embeds[b], text_embeds[b], k) for b in range(x.shape[0])])
    return kept_outputs(x, order)


def prepare_cdpruner(library, x, image_embeds, text_embeds):
    batch, tokens, channels = x.shape
    k = kept_count(tokens)
    relevance = torch.empty((batch, tokens), dtype=torch.float32, device=x.device)
    order = torch.empty((batch, k), dtype=torch.int32, device=x.device)
    sorted_indices = torch.empty((batch, k), dtype=torch.int32, device=x.device)
    kept = torch.empty((batch, k, channels), dtype=x.dtype, device=x.device)
    order_float = torch.empty((batch, k), dtype=torch.float32, device=x.device)
    score = library.prepare_relevance(tk.relevance_params(True), image_embeds, text_embeds, relevance)
    select = library.prepare_conditional_dpp(tk.dpp_params(k), x, order, relevance=relevance,
                                             sorted_indices=sorted_indices)
    return (kept, order_float), tk.chained(score, select, library.prepare_gather(x, sorted_indices, kept),
                                           lambda: order_float.copy_(order))


def make_inputs(shape, dtype, device, strided):
    """Projected features [B, N, C], CLIP image embeddings [B, N, E] and text embeddings [B, T, E]
    (E = 768 and T = 64 at full size, smaller for the quick shapes), standard normal."""
    batch, tokens, channels = shape
    embed = min(EMBED, channels)
    text_tokens = TEXT_TOKENS if tokens >= 576 else 5
    return (random_tokens(shape, dtype, device, strided), random_tokens((batch, tokens, embed), dtype, device, strided),
            random_tokens((batch, text_tokens, embed), dtype, device, strided))


CASES = [
    Case("cdpruner_llava15_n576", "CDPruner k=64: relevance, conditional kernel, fast greedy DPP, sort, index",
         (1, 576, 4096), (2, 60, 24), make_inputs, cdpruner_baseline, prepare_cdpruner, False, full_on=("cpu",)),
]
