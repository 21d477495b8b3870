"""PruneVid's static-token test (SPEC section 5, tk_segment_similarity) against its published code.

The baseline is merge_frames_dynamic's similarity step (Visual-AI/PruneVid, models/pllava/modeling_pllava.py)
written here in eager PyTorch: for each segment of W frames, F.normalize over the channels, the einsum of
every frame with every frame at each position, (sum over one frame axis - 1) summed over the other and
divided by W (W - 1). Ours computes the mean over the pairs of distinct frames of the same cosines in one
call over all segments; the segments have at least two frames (PruneVid's 0 / 0 for one frame is NaN
in ours, a rounding-dependent NaN or +-inf in the published code).
"""
import torch
import torch.nn.functional as F

from case import Case, random_tokens
from temporal_cases import _restride

# PLLaVA's PruneVid input: 16 frames pooled to 12 x 12, the LLM's 4096 channels, cut into four segments;
# quick: 7 frames of a 5 x 5 grid, 20 channels (not a multiple of the 16 lanes).
FULL = (16, 12 * 12, 4096)
QUICK = (7, 5 * 5, 20)
SEGMENTS = {16: (4, 3, 5, 4), 7: (2, 3, 2)}


def prunevid_frames_sim(frames, windows):
    """frames [T, L, C] of one video, windows summing to T -> frames_sim [S, L], segment after segment."""
    sims = []
    start = 0
    for window in windows:
        current = frames[start:start + window]
        normed = F.normalize(current, p=2, dim=-1)
        sim = torch.einsum('wlc,tlc->wtl', normed, normed)
        sims.append((sim.sum(dim=-2) - 1).sum(dim=-2) / (window * (window - 1)))
        start += window
    return torch.stack(sims)


def static_tokens(shape, dtype, device, strided):
    """Random frames in which every other position repeats one row with small noise: similarities on
    both sides of PruneVid's tau = 0.8."""
    tokens = random_tokens(shape, torch.float32, device, False)
    tokens[:, ::2] = tokens[:1, ::2] + 0.1 * tokens[:, ::2]
    return (_restride(tokens.to(dtype)) if strided else tokens.to(dtype),)


def _prepare(library, frames):
    windows = SEGMENTS[frames.shape[0]]
    lengths = torch.tensor(windows, dtype=torch.int32, device=frames.device)
    out = torch.empty((len(windows), frames.shape[1]), dtype=torch.float32, device=frames.device)
    return out, library.prepare_segment_similarity(frames, lengths, out)


CASES = [
    Case("prunevid_segment_similarity", "PruneVid static test (merge_frames_dynamic: normalize, einsum, (sum - 1) / (W (W - 1)))",
         FULL, QUICK, static_tokens, lambda frames: prunevid_frames_sim(frames, SEGMENTS[frames.shape[0]]), _prepare, True),
]
