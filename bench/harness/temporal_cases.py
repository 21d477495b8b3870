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

VidCom2's baseline is its released vidcom2_compression (xuyang-liu16/VidCom2,
token_compressor/vidcom2/vidcom2.py: select_low_var_channels, compute_gaussian_scores, compute_scales,
select_outlier_indices, the linear index map) in the same eager form, on float32 tokens as vLLM's port
takes them, with one change docs/SPEC.md describes: the per-frame budgets, which the released code
rounds frame by frame (its total drifts), are apportioned to the exact count K = max(T, int(T * P * r))
by largest remainder, as a serving engine needs. The inputs give each channel its own scale (as a
vision encoder's channels have), so that the lowest-variance half is one set in any summation order.
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


def vidcom2_exact_budgets(scales, positions, retained):
    """Per-frame counts summing to retained: one per frame, then the highest slot priorities
    ideal_t - j (j >= 1), ideal_t = scales_t * P rounded down to a multiple of 2^-20, ties to the lower
    frame (a stable sort of the row-major [T, P - 1] priorities)."""
    frames = scales.shape[0]
    units = 1 << 20
    ideal = torch.floor((scales * positions).float() * units).to(torch.int64)
    slots = torch.arange(1, positions, device=scales.device, dtype=torch.int64)
    priority = (ideal[:, None] - slots[None, :] * units).reshape(-1)
    granted = torch.sort(priority, descending=True, stable=True).indices[:retained - frames]
    return 1 + torch.bincount(torch.div(granted, positions - 1, rounding_mode="floor"), minlength=frames)


def vidcom2_compression(frames_tokens, base_scale, channel_ratio=0.5, temperature=0.01):
    """frames_tokens [T, P, C] of one video -> VidCom2's kept tokens [K, C], frame after frame."""
    frames, positions, channels = frames_tokens.shape
    flat = frames_tokens.reshape(frames * positions, channels).float()
    # select_low_var_channels
    variances = flat.var(dim=0, unbiased=False)
    selected = flat[:, torch.topk(variances, k=max(1, int(channels * channel_ratio)), largest=False).indices]
    # compute_gaussian_scores
    normed = F.normalize(selected.view(frames, positions, -1), dim=-1)
    video_centre = normed.mean(dim=(0, 1), keepdim=True)
    frame_centre = normed.mean(dim=1, keepdim=True)

    def multi_scale_gaussian(centre):
        distance = ((normed - centre) ** 2).sum(dim=-1)
        return sum(torch.exp(-distance / (2 * a)) for a in [2 ** k for k in range(-3, 2)])

    video_score, frame_score = multi_scale_gaussian(video_centre), multi_scale_gaussian(frame_centre)
    # compute_scales
    importance = -video_score.mean(dim=-1)
    probs = F.softmax((importance - importance.max()) / temperature, dim=0)
    scales = (base_scale * (1 + probs - probs.mean())).clamp(max=1.0)
    # select_outlier_indices, with the exact-count budgets
    retained = max(frames, int(frames * positions * base_scale))
    scores = video_score + frame_score
    kept = []
    for t, k in enumerate(vidcom2_exact_budgets(scales, positions, retained).tolist()):
        kept.append(torch.topk(scores[t], k=k, largest=False, sorted=False).indices.sort().values + t * positions)
    return flat[torch.cat(kept)].to(frames_tokens.dtype)


def scene_tokens(shape, dtype, device, strided):
    """[T, P, C] frames of one scene: a direction shared by every token, plus each position's own content, repeated in every frame with
    noise, and a changing quarter of the tokens of each frame is replaced by new content (what moves);
    each channel has its own scale, log-spaced over e^-2 .. e^2 in a fixed shuffled order, as a vision
    encoder's channels have. The Gaussian scores then spread, and float32 rounding decides no choice."""
    frames, positions, channels = shape
    generator = torch.Generator().manual_seed(frames * positions + channels)
    # A direction every token shares (encoders' features have one), so the centres lie near the sphere.
    scene = 2.0 * torch.randn((1, 1, channels), generator=generator) + torch.randn((1, positions, channels), generator=generator)
    tokens = scene + 0.3 * torch.randn((frames, positions, channels), generator=generator)
    moving = torch.rand((frames, positions, 1), generator=generator) < 0.25
    tokens = torch.where(moving, 2.0 * torch.randn((frames, positions, channels), generator=generator), tokens)
    order = torch.randperm(channels, generator=generator)
    tokens = (tokens * torch.exp(4.0 * (order.float() / channels - 0.5))).to(device)
    return tokens.to(dtype) if not strided else _restride(tokens.to(dtype))


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


def _prepare_vidcom2(retention_ratio):
    return _prepare_method(lambda h, w: tk.vidcom2_params(retention_ratio, h, w), "vidcom2_retained_tokens", "prepare_vidcom2")


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
    Case("vidcom2_r025", "VidCom2, base_scale 0.25 (vidcom2_compression: channel variances, Gaussian scores, softmax budgets, per-frame topk)",
         EVS_FULL, EVS_QUICK, lambda *a: (scene_tokens(*a),),
         lambda tokens: vidcom2_compression(tokens, 0.25), _prepare_vidcom2(0.25), False),
]


def repeating_tokens(shape, dtype, device, strided):
    """[T, P, C] frames that repeat their predecessor with noise of a size varying by position, so that
    the cosines to the previous frame spread and FrameFusion's threshold merges part of them."""
    tokens = random_tokens(shape, torch.float32, device, strided)
    frames, positions, _ = shape
    noise = torch.tensor([0.02, 0.1, 0.4, 1.0, 3.0], device=device)[torch.arange(positions, device=device) % 5]
    with torch.no_grad():
        for t in range(1, frames):
            tokens[t] = tokens[t - 1] + noise[:, None] * tokens[t]
    return tokens.to(dtype) if not strided else _restride(tokens.to(dtype))


def _restride(tokens):
    """A channel slice of a wider buffer holding tokens, as random_tokens(strided=True) makes."""
    padded = torch.zeros(tuple(tokens.shape[:-1]) + (tokens.shape[-1] + 3,), dtype=tokens.dtype, device=tokens.device)
    padded[..., :tokens.shape[-1]] = tokens
    return padded[..., :tokens.shape[-1]]


def framefusion_merge(frames_tokens, similarity_lower_bound):
    """FrameFusion's merging step (thu-nics/FrameFusion main.py: compute_similarity_and_token_index_by_patch,
    then merge_tokens_and_get_mask, then hidden_states[token_mask]) for one video's tokens [T, P, C]
    laid out frame after frame, every token a video patch (patch_type = its position)."""
    frames, positions, channels = frames_tokens.shape
    hidden = frames_tokens.reshape(1, frames * positions, channels).clone()
    patch_type = torch.arange(positions, device=hidden.device).repeat(frames)[None, :]
    # Tokens grouped by patch, each group in frame order; the cosine of each to the one before it.
    patch_of, index_by_patch = torch.where(patch_type == torch.arange(positions, device=hidden.device)[:, None])
    before, after = hidden[0, index_by_patch[:-1]], hidden[0, index_by_patch[1:]]
    similarity = (before * after).sum(-1) / (before.norm(dim=-1) * after.norm(dim=-1))
    similarity[patch_of[:-1] != patch_of[1:]] = -2
    similarity = torch.cat([torch.full((1,), -2.0, dtype=similarity.dtype, device=hidden.device), similarity])
    merge_index = torch.where(similarity >= similarity_lower_bound)[0]
    keep_mask = torch.ones(frames * positions, dtype=torch.bool, device=hidden.device)
    if merge_index.numel() > 0:
        merged = torch.zeros(frames * positions, dtype=torch.long, device=hidden.device)
        merged[merge_index] = 1
        # Each run of merged tokens (in patch order) joins the token before it: its sum, then the mean.
        run_start = (merged == 1) & (torch.cat([merged.new_zeros(1), merged[:-1]]) == 0)
        run_id = torch.cumsum(run_start.long(), 0) * merged
        head = (torch.nonzero(run_start)[:, 0] - 1)[run_id[merge_index] - 1]
        keep_mask[index_by_patch[merge_index]] = False
        hidden[0].index_add_(0, index_by_patch[head], hidden[0, index_by_patch[merge_index]])
        counts = torch.ones(frames * positions, dtype=hidden.dtype, device=hidden.device)
        counts.index_add_(0, index_by_patch[head], torch.ones_like(head, dtype=hidden.dtype))
        hidden[0] /= counts[:, None]
    return hidden[0][keep_mask]


def _prepare_framefusion(similarity_lower_bound):
    """Ours writes T * P rows of capacity; the check and the comparison see the first T * P - count rows
    of it, the count being known after a first call on these inputs."""
    def prepare(library, video_embeds):
        frames, positions, channels = video_embeds.shape
        params = tk.framefusion_params(similarity_lower_bound, -1)
        out = torch.empty((1, frames * positions, channels), dtype=video_embeds.dtype, device=video_embeds.device)
        merge_count = torch.zeros(1, dtype=torch.int32, device=video_embeds.device)
        run = library.prepare_framefusion(params, video_embeds.unsqueeze(0), out, merge_count)
        run()
        kept = frames * positions - int(merge_count[0])
        return out[:, :kept], run
    return prepare


CASES.append(Case("framefusion_t060", "FrameFusion merging, similarity_lower_bound 0.6 (by-patch cosine, index_add_ means, mask)",
                  EVS_FULL, EVS_QUICK, lambda *a: (repeating_tokens(*a),), lambda tokens: framefusion_merge(tokens, 0.6),
                  _prepare_framefusion(0.6), True))
