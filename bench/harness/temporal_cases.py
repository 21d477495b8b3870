"""Temporal redundancy in video (SPEC section 5) against the methods serving engines ship and DyCoke.

EVS's baseline is vLLM's algorithm (vllm/multimodal/evs.py: compute_retention_mask, then the model's
video_embeds[mask]) written here in eager PyTorch from its description: same-position cosine
similarity of consecutive frames, 255 for frame 0, a stable descending sort of 1 - cos, the first
K = max(P, int(T * P * (1 - q))) kept, and the kept embeddings gathered by the boolean mask. Our op
sees the same memory as [1, T, P, C] and writes the kept tokens [1, K, C]: equal rows in the same
order mean the count and the kept set are vLLM's.

DyCoke's baseline is its dycole_ttm (KD-TAO/DyCoke, llava/model/llava_arch.py) in the same eager
form: a Python loop over frame pairs with normalize + cosine_similarity, topk(largest=False) per
frame, indexing and torch.cat; with the three corrections docs/SPEC.md lists (each frame pruned by its
own similarities, every frame kept or compared, each frame's kept tokens in increasing position), so
that its output is the method's and comparable with ours.
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


def dycoke_ttm(frames_tokens, merging_ratio):
    """frames_tokens [T, P, C] of one video -> DyCoke's kept tokens [K, C], frame after frame."""
    frames, positions, _ = frames_tokens.shape
    keep = int((1 - merging_ratio) * positions)

    def least_similar(frame, reference):
        similarity = F.cosine_similarity(F.normalize(frame, p=2, dim=1), F.normalize(reference, p=2, dim=1), dim=1)
        chosen = similarity.topk(keep, largest=False).indices
        return frame[chosen.sort().values]

    kept = []
    for t in range(frames):
        if t % 4 == 0:
            kept.append(frames_tokens[t])
        else:
            kept.append(least_similar(frames_tokens[t], frames_tokens[t - 1 if t % 2 == 1 else t - 2]))
    return torch.cat(kept, dim=0)


def _square_grid(positions):
    side = math.isqrt(positions)
    return side, positions // side


def _prepare_method(make_params, retained_tokens, prepare_call):
    """prepare_ours for a video method: params from (rate, height, width) of a square grid, its
    retained count K and its prepared call, given the library's methods by name."""
    def prepare(library, video_embeds):
        frames, positions, channels = video_embeds.shape
        params = make_params(*_square_grid(positions))
        retained = getattr(library, retained_tokens)(params, frames)
        out = torch.empty((1, retained, channels), dtype=video_embeds.dtype, device=video_embeds.device)
        return out, getattr(library, prepare_call)(params, video_embeds.unsqueeze(0), out=out)
    return prepare


def _prepare_evs(pruning_rate):
    return _prepare_method(lambda h, w: tk.evs_params(pruning_rate, h, w), "evs_retained_tokens", "prepare_evs")


def _prepare_dycoke(merging_ratio):
    return _prepare_method(lambda h, w: tk.dycoke_params(merging_ratio, h, w), "dycoke_retained_tokens", "prepare_dycoke")


# 64 frames of SigLIP so400m-384's 27 x 27 x 1152 grid (LLaVA-Video's sampling before pooling); quick:
# a 5 x 5 grid of 20 channels (not a multiple of the 16 lanes), 6 frames.
EVS_FULL = (64, 27 * 27, 1152)
EVS_QUICK = (6, 5 * 5, 20)

CASES = [
    Case(f"evs_q{int(q * 100):03d}", f"EVS q = {q} (vLLM compute_retention_mask, then video_embeds[mask])",
         EVS_FULL, EVS_QUICK, lambda *a: (random_tokens(*a),),
         lambda tokens, q=q: vllm_evs(tokens, q), _prepare_evs(q), True)
    for q in (0.5, 0.75)
] + [
    Case("dycoke_ttm_r070", "DyCoke TTM, merging_ratio 0.7 (dycole_ttm's loop: normalize, cosine_similarity, topk, cat)",
         EVS_FULL, EVS_QUICK, lambda *a: (random_tokens(*a),),
         lambda tokens: dycoke_ttm(tokens, 0.7), _prepare_dycoke(0.7), True),
]
