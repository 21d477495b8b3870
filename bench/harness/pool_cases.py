"""Spatio-temporal pooling (SPEC section 1) against the published methods that use it.

The baselines are the methods' algorithms written here in eager PyTorch from their papers' and
SPEC's description, on each method's own token layout. Our op sees the same memory through a
[B, T, H, W, C] view (no copy) and writes [B, T', H', W', C], which is the methods' flattened token
order.
"""
import math

import torch
import torch.nn.functional as F

import tokenkernels_abi as tk
from case import Case, random_tokens


def llava_get_2dpool(tokens, mode, stride=2, materialize_nchw=True):
    """LLaVA-Video / LLaVA-OneVision get_2dPool. tokens [F, N, C] hold each frame's square grid of
    N = side * side patches. The grid is made an NCHW tensor, pooled with the 2-D op that
    mm_spatial_pool_mode names (average, max: kernel = stride = 2, floor; bilinear: resize to
    ceil(side / stride), align_corners=False), and flattened back to [F, N', C].

    The published code makes the NCHW grid contiguous (a full transpose copy) before pooling; with
    materialize_nchw=False the permuted channels-last view goes straight to the op, the fastest form
    eager PyTorch has, so the speedup is reported against both."""
    frames, count, channels = tokens.shape
    side = math.isqrt(count)
    grid = tokens.view(frames, side, side, channels).permute(0, 3, 1, 2)
    if materialize_nchw:
        grid = grid.contiguous()
    if mode == "average":
        pooled = F.avg_pool2d(grid, stride)
    elif mode == "max":
        pooled = F.max_pool2d(grid, stride)
    elif mode == "bilinear":
        resized = math.ceil(side / stride)
        pooled = F.interpolate(grid, size=(resized, resized), mode="bilinear", align_corners=False)
    else:
        raise ValueError(f"unknown mm_spatial_pool_mode {mode!r}")
    return pooled.permute(0, 2, 3, 1).reshape(frames, -1, channels)


def pllava_adaptive_pool(tokens, output_size):
    """PLLaVA: the frames' features [T, N, C] (one video, square grids) as [1, T, H, W, C], permuted to
    [1, C, T, H, W], adaptive_avg_pool3d to output_size (T', H', W'), permuted back and flattened to
    [T' * H' * W', C]."""
    frames, count, channels = tokens.shape
    side = math.isqrt(count)
    video = tokens.view(1, frames, side, side, channels).permute(0, 4, 1, 2, 3)
    pooled = F.adaptive_avg_pool3d(video, output_size)
    return pooled.permute(0, 2, 3, 4, 1).reshape(-1, channels)


def video_chatgpt_temporal(tokens):
    """Video-ChatGPT's temporal features: each frame's N patch tokens [T, N, C] averaged to one, [T, C]."""
    return tokens.mean(dim=1)


def video_chatgpt_spatial(tokens):
    """Video-ChatGPT's spatial features: each patch position averaged over the T frames, [N, C]."""
    return tokens.mean(dim=0)


def _video_view(tokens):
    """tokens [T, N, C] of one video with square grids as our [1, T, H, W, C], sharing memory."""
    frames, count, channels = tokens.shape
    side = math.isqrt(count)
    if side * side != count:
        raise ValueError(f"{count} tokens per frame is not a square grid")
    return tokens.view(1, frames, side, side, channels)


def _prepare_pool(params_for):
    """prepare_ours for a pooling case; params_for(video_shape) gives the tk_pool_params, since some
    methods' output size depends on the input (Video-ChatGPT keeps every frame)."""
    def prepare(library, tokens):
        video = _video_view(tokens)
        params = params_for(tuple(video.shape))
        out = torch.empty(library.pool_output_shape(params, video.shape), dtype=video.dtype, device=video.device)
        return out, library.prepare_pool(params, video, out)
    return prepare


def _window(mode):
    return lambda shape: tk.pool_params(mode, kernel=(1, 2, 2), stride=(1, 2, 2))


def _bilinear_half(shape):
    _, frames, height, width, _ = shape
    return tk.pool_params(tk.TK_POOL_BILINEAR, output_size=(frames, math.ceil(height / 2), math.ceil(width / 2)))


def _adaptive(output_size):
    return lambda shape: tk.pool_params(tk.TK_POOL_ADAPTIVE_AVG, output_size=output_size(shape))


# SigLIP so400m-384 grids (27 x 27 x 1152) of 64 frames for LLaVA-Video / LLaVA-OneVision; PLLaVA's
# 16 frames of 24 x 24 after a 4096-wide projector; Video-ChatGPT's 100 frames of CLIP ViT-L/14-224
# (16 x 16 x 1024). Quick shapes keep each method's geometry (odd sizes where the op has bins or taps
# to get wrong) with few channels, not a multiple of the vector width.
LLAVA_FULL = (64, 27 * 27, 1152)
LLAVA_QUICK = (3, 27 * 27, 20)
PLLAVA_OUTPUT = (16, 12, 12)
PLLAVA_FULL = (16, 24 * 24, 4096)
PLLAVA_QUICK = (20, 25 * 25, 12)
VIDEO_CHATGPT_FULL = (100, 16 * 16, 1024)
VIDEO_CHATGPT_QUICK = (6, 16 * 16, 12)

CASES = [
    Case("llava_video_avg2x2", "LLaVA-Video get_2dPool average (NCHW copy, avg_pool2d 2)",
         LLAVA_FULL, LLAVA_QUICK, lambda *a: (random_tokens(*a),),
         lambda tokens: llava_get_2dpool(tokens, "average"), _prepare_pool(_window(tk.TK_POOL_WINDOW_AVG)), True),
    Case("llava_video_avg2x2_nocopy", "LLaVA-Video 2x2 average, channels-last avg_pool2d (no NCHW copy)",
         LLAVA_FULL, LLAVA_QUICK, lambda *a: (random_tokens(*a),),
         lambda tokens: llava_get_2dpool(tokens, "average", materialize_nchw=False),
         _prepare_pool(_window(tk.TK_POOL_WINDOW_AVG)), True),
    Case("llava_video_max2x2", "LLaVA-Video get_2dPool max (NCHW copy, max_pool2d 2)",
         LLAVA_FULL, LLAVA_QUICK, lambda *a: (random_tokens(*a),),
         lambda tokens: llava_get_2dpool(tokens, "max"), _prepare_pool(_window(tk.TK_POOL_WINDOW_MAX)), True),
    Case("llava_ov_bilinear", "LLaVA-OneVision get_2dPool bilinear 27->14 (NCHW copy, interpolate)",
         LLAVA_FULL, LLAVA_QUICK, lambda *a: (random_tokens(*a),),
         lambda tokens: llava_get_2dpool(tokens, "bilinear"), _prepare_pool(_bilinear_half), True),
    Case("llava_ov_bilinear_nocopy", "LLaVA-OneVision bilinear 27->14, channels-last interpolate (no NCHW copy)",
         LLAVA_FULL, LLAVA_QUICK, lambda *a: (random_tokens(*a),),
         lambda tokens: llava_get_2dpool(tokens, "bilinear", materialize_nchw=False),
         _prepare_pool(_bilinear_half), True),
    Case("pllava_adaptive3d", "PLLaVA adaptive_avg_pool3d to (16, 12, 12)",
         PLLAVA_FULL, PLLAVA_QUICK, lambda *a: (random_tokens(*a),),
         lambda tokens: pllava_adaptive_pool(tokens, PLLAVA_OUTPUT),
         _prepare_pool(_adaptive(lambda shape: PLLAVA_OUTPUT)), True),
    Case("video_chatgpt_temporal", "Video-ChatGPT temporal tokens: mean over each frame's patches",
         VIDEO_CHATGPT_FULL, VIDEO_CHATGPT_QUICK, lambda *a: (random_tokens(*a),),
         video_chatgpt_temporal, _prepare_pool(_adaptive(lambda shape: (shape[1], 1, 1))), True),
    Case("video_chatgpt_spatial", "Video-ChatGPT spatial tokens: mean over frames per patch",
         VIDEO_CHATGPT_FULL, VIDEO_CHATGPT_QUICK, lambda *a: (random_tokens(*a),),
         video_chatgpt_spatial, _prepare_pool(_adaptive(lambda shape: (1, shape[2], shape[3]))), True),
]
