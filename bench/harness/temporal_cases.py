"""Temporal redundancy in video (SPEC section 5) against the methods serving engines ship.

EVS's baseline is vLLM's algorithm (vllm/multimodal/evs.py: compute_retention_mask, then the model's
video_embeds[mask]) written here in eager PyTorch from its description: same-position cosine
similarity of consecutive frames, 255 for frame 0, a stable descending sort of 1 - cos, the first
K = max(P, int(T * P * (1 - q))) kept, and the kept embeddings gathered by the boolean mask. Our op
sees the same memory as [1, T, P, C] and writes the kept tokens [1, K, C]: equal rows in the same
order mean the count and the kept set are vLLM's.
"""
import math

import torch
import torch.nn.functional as F

import tokenkernels_abi as tk
from case import Case, random_tokens


def vllm_evs(video_embeds, pruning_rate):
    """video_embeds [T, P, C] of one video on a square grid -> its kept tokens [K, C], as vLLM computes
    them for a model (Qwen2.5-VL, Nemotron) with EVS on."""
    frames, positions, _ = video_embeds.shape
    similarity = F.cosine_similarity(video_embeds[1:], video_embeds[:-1], dim=-1)
    dissimilarity = torch.cat([255 * torch.ones_like(video_embeds[:1, :, 0]), 1 - similarity], dim=0).reshape(-1)
    order = torch.sort(dissimilarity, descending=True, stable=True).indices
    retained = max(positions, int(frames * positions * (1 - pruning_rate)))
    mask = torch.zeros_like(dissimilarity, dtype=torch.bool)
    mask[order[:retained]] = True
    return video_embeds.reshape(frames * positions, -1)[mask]


def _prepare_evs(pruning_rate):
    def prepare(library, video_embeds):
        frames, positions, channels = video_embeds.shape
        side = math.isqrt(positions)
        params = tk.evs_params(pruning_rate, side, positions // side)
        retained = library.evs_retained_tokens(params, frames)
        out = torch.empty((1, retained, channels), dtype=video_embeds.dtype, device=video_embeds.device)
        return out, library.prepare_evs(params, video_embeds.unsqueeze(0), out=out)
    return prepare


# 64 frames of SigLIP so400m-384's 27 x 27 x 1152 grid (LLaVA-Video's sampling before pooling); quick:
# a 5 x 5 grid of 20 channels (not a multiple of the 16 lanes), 6 frames.
EVS_FULL = (64, 27 * 27, 1152)
EVS_QUICK = (6, 5 * 5, 20)

CASES = [
    Case(f"evs_q{int(q * 100):03d}", f"EVS q = {q} (vLLM compute_retention_mask, then video_embeds[mask])",
         EVS_FULL, EVS_QUICK, lambda *a: (random_tokens(*a),),
         lambda tokens, q=q: vllm_evs(tokens, q), _prepare_evs(q), True)
    for q in (0.5, 0.75)
]
