"""Clustering and aggregation (SPEC section 6) against LightCompress's DPC-kNN in eager PyTorch.

The baseline is `cluster_dpc_knn` of LightCompress (ModelTC/llmc, token_reduction/holitom.py; the same
function as TCFormer's and PruneVid's), called frame by frame as its users call it: torch.cdist of the
float32 tokens divided by sqrt(C); the k smallest distances of each row by topk (the token itself among
them); density = exp(-mean of their squares); delta = the min over denser tokens of the distance, the
frame's largest distance for the densest; score = delta x density; the centres its top K; every token
assigned to its nearest centre by argmin over the centres' rows, each centre to itself. Two changes
make it a deterministic function that ours must equal: LightCompress adds torch.rand * 1e-6 to the
density to break ties at random, here a tie goes to the lower index (the SPEC's rule), and topk becomes
a stable descending sort, so equal scores keep the lower index first.

Ours is tk_dpc_knn over all frames at once. The outputs compared are the centres and the assignment as
float32 (integers far below 2**24; any difference is a difference of at least 1). The tokens are drawn
around K random points per frame with a spread per token, as features of image patches cluster, so
that no decision falls within float32 rounding of a tie (torch.cdist computes |a|^2 + |b|^2 - 2 a.b,
ours sums squared differences: the distances differ in the last bits).

The cluster-and-aggregate case ("Token Sequence Compression for Efficient Multimodal Computing": cluster,
then one mean token per cluster) adds the per-cluster mean after the clustering: index_add_ of the
tokens and the counts per cluster, as TCFormer's merge_tokens does, against tk_dpc_knn then
tk_cluster_merge.

FastVID's DTM merge (LunarShen/FastVID, fastvid_llavavideo modeling_qwen2.py, the loop over
cur_context_indexs): for one anchor frame, every other token of its segment joins the anchor of largest
cosine (unit rows, torch.mm, argmax), and each anchor becomes w x anchor + (1 - w) x the mean of its raw
tokens, w = clamp(1 / (n + 1), min=beta). Ours: tk_cluster_assign then tk_cluster_merge in the centre count
blend. The anchors (which DPC-kNN chooses in FastVID) are every 6th token of the segment's last frame here.
"""

import torch

import tokenkernels_abi as tk
from case import Case, random_tokens

NEIGHBOURS = 5  # LightCompress's default k


def cluster_count(tokens):
    """K: a sixth of the tokens, at most 64 (the issue's 8 to 64 clusters per frame)."""
    return max(1, min(64, tokens // 6))


def lightcompress_dpc_knn(x, cluster_num, k):
    """LightCompress's cluster_dpc_knn on x [B, N, C] with ties to the lower index: (centres [B, K] in
    score order, assignment [B, N])."""
    batch, tokens, channels = x.shape
    dist_matrix = torch.cdist(x.float(), x.float()) / (channels ** 0.5)
    dist_nearest, _ = torch.topk(dist_matrix, k, dim=-1, largest=False)
    density = (-(dist_nearest ** 2).mean(dim=-1)).exp()
    index = torch.arange(tokens, device=x.device)
    denser = (density[:, None, :] > density[:, :, None]) | (
        (density[:, None, :] == density[:, :, None]) & (index[None, :] < index[:, None]))
    mask = denser.float()
    dist_max = dist_matrix.flatten(1).max(dim=-1).values[:, None, None]
    dist, _ = (dist_matrix * mask + dist_max * (1 - mask)).min(dim=-1)
    score = dist * density
    index_down = torch.sort(score, dim=-1, descending=True, stable=True).indices[:, :cluster_num]
    centre_rows = torch.gather(dist_matrix, 1, index_down[:, :, None].expand(-1, -1, tokens))
    idx_cluster = centre_rows.argmin(dim=1)
    idx_batch = torch.arange(batch, device=x.device)[:, None].expand(batch, cluster_num)
    idx_tmp = torch.arange(cluster_num, device=x.device)[None, :].expand(batch, cluster_num)
    idx_cluster[idx_batch.reshape(-1), index_down.reshape(-1)] = idx_tmp.reshape(-1)
    return index_down, idx_cluster


def per_frame(x, cluster_num):
    """The function frame by frame, as HoliTom and PruneVid call it."""
    results = [lightcompress_dpc_knn(x[b:b + 1], cluster_num, NEIGHBOURS) for b in range(x.shape[0])]
    return torch.cat([r[0] for r in results]), torch.cat([r[1] for r in results])


def dpc_baseline(x):
    centres, assignment = per_frame(x, cluster_count(x.shape[1]))
    return centres.float(), assignment.float()


def cluster_mean_baseline(x):
    """DPC-kNN, then each cluster's mean (index_add_ of the tokens and their counts, TCFormer's
    merge_tokens with unit weights): (merged [B, K, C], sizes [B, K])."""
    batch, tokens, channels = x.shape
    clusters = cluster_count(tokens)
    _, assignment = per_frame(x, clusters)
    flat = assignment + torch.arange(batch, device=x.device)[:, None] * clusters
    sums = torch.zeros(batch * clusters, channels, dtype=torch.float32, device=x.device)
    sums.index_add_(0, flat.reshape(-1), x.float().reshape(-1, channels))
    counts = torch.zeros(batch * clusters, dtype=torch.float32, device=x.device)
    counts.index_add_(0, flat.reshape(-1), torch.ones(batch * tokens, device=x.device))
    merged = (sums / counts[:, None]).reshape(batch, clusters, channels)
    return merged.to(x.dtype), counts.reshape(batch, clusters)


def prepare_dpc(library, x):
    batch, tokens, _ = x.shape
    clusters = cluster_count(tokens)
    centres = torch.empty((batch, clusters), dtype=torch.int32, device=x.device)
    assignment = torch.empty((batch, tokens), dtype=torch.int32, device=x.device)
    centres_float = torch.empty((batch, clusters), dtype=torch.float32, device=x.device)
    assignment_float = torch.empty((batch, tokens), dtype=torch.float32, device=x.device)
    cluster = library.prepare_dpc_knn(tk.dpc_knn_params(clusters, NEIGHBOURS), x, centres, assignment)
    return (centres_float, assignment_float), tk.chained(cluster, lambda: centres_float.copy_(centres),
                                                          lambda: assignment_float.copy_(assignment))


def prepare_cluster_mean(library, x):
    batch, tokens, channels = x.shape
    clusters = cluster_count(tokens)
    centres = torch.empty((batch, clusters), dtype=torch.int32, device=x.device)
    assignment = torch.empty((batch, tokens), dtype=torch.int32, device=x.device)
    merged = torch.empty((batch, clusters, channels), dtype=x.dtype, device=x.device)
    sizes = torch.empty((batch, clusters), dtype=torch.float32, device=x.device)
    cluster = library.prepare_dpc_knn(tk.dpc_knn_params(clusters, NEIGHBOURS), x, centres, assignment)
    merge = library.prepare_cluster_merge(tk.cluster_merge_params(clusters), x, assignment, merged, out_size=sizes)
    return (merged, sizes), tk.chained(cluster, merge)


DTM_BETA = 0.6  # fastvid_DTM_beta
DTM_FRAMES = 4  # fastvid_DTM_p: the frames one anchor frame covers


def dtm_tokens(shape, dtype, device, strided):
    """Standard normal tokens (a segment's hidden states)."""
    return (random_tokens(shape, dtype, device, strided),)


def dtm_anchors(tokens, device):
    """Every 6th token of the last of DTM_FRAMES frames of the segment (tokens = DTM_FRAMES x L)."""
    frame = tokens // DTM_FRAMES
    return torch.arange(tokens - frame, tokens, 6, device=device)


def fastvid_dtm_baseline(x):
    """FastVID's merge of a segment into one anchor frame's anchors, per item: (contextual [B, K, C])."""
    rows = []
    for b in range(x.shape[0]):
        hidden = x[b].float()
        anchors = dtm_anchors(hidden.shape[0], x.device)
        units = hidden / hidden.norm(dim=-1, keepdim=True)
        keep = torch.ones(hidden.shape[0], dtype=torch.bool, device=x.device)
        keep[anchors] = False
        to_merge = torch.nonzero(keep).squeeze(1)
        similarity = torch.mm(units[to_merge], units[anchors].T)
        one_hot = torch.zeros(to_merge.shape[0], anchors.shape[0], device=x.device)
        one_hot.scatter_(1, similarity.argmax(dim=1).unsqueeze(-1), 1)
        weights = (1 / (one_hot.sum(dim=0).unsqueeze(-1) + 1)).clamp(min=DTM_BETA)
        counts = one_hot.sum(dim=0).clamp(min=1).unsqueeze(-1)
        aggregated = torch.mm(one_hot.T, hidden[to_merge]) / counts
        rows.append(weights * hidden[anchors] + (1 - weights) * aggregated)
    return torch.stack(rows).to(x.dtype)


def prepare_fastvid_dtm(library, x):
    batch, tokens, channels = x.shape
    anchors = dtm_anchors(tokens, x.device)
    clusters = anchors.shape[0]
    centres = anchors.to(torch.int32)[None, :].expand(batch, clusters).contiguous()
    assignment = torch.empty((batch, tokens), dtype=torch.int32, device=x.device)
    merged = torch.empty((batch, clusters, channels), dtype=x.dtype, device=x.device)
    assign = library.prepare_cluster_assign(tk.cluster_assign_params(clusters), x, centres, assignment)
    merge = library.prepare_cluster_merge(
        tk.cluster_merge_params(clusters, tk.TK_CLUSTER_MERGE_CENTRE_COUNT_BLEND, DTM_BETA), x, assignment, merged,
        centres=centres)
    return merged, tk.chained(assign, merge)


def clustered_tokens(shape, dtype, device, strided):
    """x [B, N, C]: per frame K random points (standard normal, K = cluster_count(N)), every point with
    members, each token one of them plus normal noise of a spread drawn per token in [0.2, 1]. With as
    many groups as centres the density peaks are one per group and every token is clearly nearest to
    its own group's; with fewer groups, tokens near two centres of one group are decided within float32
    rounding. When strided, a channel slice of a buffer 3 wider whose padding is NaN."""
    batch, tokens, channels = shape
    groups = cluster_count(tokens)
    values = torch.empty(shape)
    for b in range(batch):
        points = torch.randn(groups, channels)
        members = torch.arange(tokens)[torch.randperm(tokens)] % groups
        spread = torch.rand(tokens, 1) * 0.8 + 0.2
        values[b] = points[members] + spread * torch.randn(tokens, channels)
    values = values.to(dtype).to(device)
    if not strided:
        return (values,)
    padded = torch.full((batch, tokens, channels + 3), float("nan"), dtype=dtype, device=device)
    view = padded[..., :channels]
    view.copy_(values)
    return (view,)


# Video LLMs' frames: 64 frames of LLaVA-Video's 13 x 13 + 27 pooled SigLIP tokens (196 per frame,
# as PruneVid and FastVID see them) and of SigLIP so400m's 27 x 27 = 729 (HoliTom's LLaVA-OneVision),
# C = 1152. Quick shapes: a few small frames.
CASES = [
    Case("dpc_knn_64x196", "LightCompress cluster_dpc_knn per frame (K=32, k=5): centres and assignment",
         (64, 196, 1152), (3, 40, 24), clustered_tokens, dpc_baseline, prepare_dpc, False),
    Case("dpc_knn_64x729", "LightCompress cluster_dpc_knn per frame (K=64, k=5): centres and assignment",
         (64, 729, 1152), (2, 61, 33), clustered_tokens, dpc_baseline, prepare_dpc, False,
         max_warmup=1, max_repeats=3),
    Case("cluster_mean_64x196", "DPC-kNN then one mean token per cluster (cluster-and-aggregate)",
         (64, 196, 1152), (3, 50, 17), clustered_tokens, cluster_mean_baseline, prepare_cluster_mean, False),
    # LLaVA-Video's 64 frames in 16 segments of 4 frames x 169 tokens, one anchor frame each (C = 3584, Qwen2's).
    Case("fastvid_dtm_16x676", "FastVID DTM: tokens to their anchors by cosine, then the count-weighted blend (beta 0.6)",
         (16, 676, 3584), (3, 52, 19), dtm_tokens, fastvid_dtm_baseline, prepare_fastvid_dtm, False),
]
