"""Batched k-means (SPEC section 6, "k-means") against scikit-learn's KMeans.

The baseline is scikit-learn's `KMeans(n_clusters=K, init=<the item's initial centres>, n_init=1,
max_iter=300, tol=1e-4, algorithm="lloyd")` fitted on each item in turn, as a method clustering the
tokens of every frame with it would (scikit-learn has no batched form): Lloyd's iterations with its
BLAS distance blocks, its tolerance scaled by the mean feature variance, strict convergence when the
labels stop changing, empty clusters relocated to the farthest points. Ours is one tk_kmeans call over
all items with the same initial centres (TK_KMEANS_INIT_GIVEN), the same tol and max_iter. The outputs
compared are the centres [B, K, C], the labels [B, N] and the Lloyd iterations run [B], the last two as
float32 (integers far below 2**24): equal labels and iteration counts mean the same clustering.

The full shapes are 64 frames of SigLIP so400m tokens, 196 (14 x 14 after pooling) and 729 (27 x 27),
C = 1152, K = 16: one call of ours against 64 KMeans fits; divide the time by 64 for a problem.

The tokens are clustered, as a vision encoder's are: each item's N tokens are drawn around K random
centres (standard normal centres, standard normal spread), and the initial centres are K distinct
tokens of the item, chosen at random (as KMeans's "random" init does), so that a blob may start with
two centres and another with none and Lloyd has work to do. Continuous standard normal tokens with no
structure would put some token of 47,000 within float32 rounding of two centres, where either label is
right and the two implementations, whose float32 sums run in different orders, may differ.
"""
import numpy
import torch

import tokenkernels_abi as tk
from case import Case

try:
    from sklearn.cluster import KMeans
except ImportError:  # Debian's python3-sklearn (.ci/install-torch.sh installs it)
    KMeans = None

CLUSTERS = 16
MAX_ITERATIONS = 300
TOLERANCE = 1e-4


def clustered_tokens(shape, dtype, device, strided):
    """x [B, N, C] around CLUSTERS random centres per item, and initial centres [B, K, C] f32: K
    distinct tokens of each item (as read back from x's dtype). When strided, x is a channel slice of
    a wider buffer."""
    batch, tokens, channels = shape
    clusters = min(CLUSTERS, tokens)
    blob_centres = torch.randn(batch, clusters, channels, device=device)
    membership = torch.randint(0, clusters, (batch, tokens), device=device)
    values = torch.gather(blob_centres, 1, membership[..., None].expand(-1, -1, channels))
    values = (values + torch.randn(batch, tokens, channels, device=device)).to(dtype)
    if strided:
        padded = torch.full((batch, tokens, channels + 3), float("nan"), dtype=dtype, device=device)
        padded[..., :channels].copy_(values)
        values = padded[..., :channels]
    chosen = torch.rand(batch, tokens, device=device).argsort(dim=1)[:, :clusters]
    initial = torch.stack([values[b, chosen[b]] for b in range(batch)]).float().contiguous()
    return values, initial


def sklearn_kmeans(x, initial):
    """scikit-learn's KMeans on each item of x [B, N, C] from its initial centres [B, K, C]: (centres
    [B, K, C], labels [B, N] as float32, iterations [B] as float32)."""
    if KMeans is None:
        raise RuntimeError("scikit-learn is not installed: apt-get install python3-sklearn")
    points = x.float().cpu().numpy()
    starts = initial.float().cpu().numpy()
    centres, labels, iterations = [], [], []
    for b in range(points.shape[0]):
        fitted = KMeans(n_clusters=starts.shape[1], init=starts[b], n_init=1, max_iter=MAX_ITERATIONS, tol=TOLERANCE,
                        algorithm="lloyd").fit(points[b])
        centres.append(fitted.cluster_centers_.astype(numpy.float32))
        labels.append(fitted.labels_.astype(numpy.float32))
        iterations.append(float(fitted.n_iter_))
    return (torch.from_numpy(numpy.stack(centres)).to(x.device), torch.from_numpy(numpy.stack(labels)).to(x.device),
            torch.tensor(iterations, dtype=torch.float32, device=x.device))


def prepare_kmeans(library, x, initial):
    """tk_kmeans with the given initial centres, then the labels and iterations copied into float32
    buffers for the check."""
    batch, tokens, channels = x.shape
    clusters = initial.shape[1]
    centres = torch.empty((batch, clusters, channels), dtype=torch.float32, device=x.device)
    assignment = torch.empty((batch, tokens), dtype=torch.int32, device=x.device)
    iterations = torch.empty((batch,), dtype=torch.int32, device=x.device)
    labels_float = torch.empty((batch, tokens), dtype=torch.float32, device=x.device)
    iterations_float = torch.empty((batch,), dtype=torch.float32, device=x.device)
    params = tk.kmeans_params(clusters, max_iterations=MAX_ITERATIONS, tolerance=TOLERANCE, init=tk.TK_KMEANS_INIT_GIVEN)
    kmeans = library.prepare_kmeans(params, x, centres, assignment, initial_centres=initial, iterations=iterations)

    def copy_out():
        labels_float.copy_(assignment)
        iterations_float.copy_(iterations)
    return (centres, labels_float, iterations_float), tk.chained(kmeans, copy_out)


CASES = [
    Case("kmeans_siglip_64x196_k16", "sklearn KMeans lloyd, K=16, per frame (64 problems a call)",
         (64, 196, 1152), (3, 40, 24), clustered_tokens, sklearn_kmeans, prepare_kmeans, False, full_on=("cpu",)),
    Case("kmeans_siglip_64x729_k16", "sklearn KMeans lloyd, K=16, per frame (64 problems a call)",
         (64, 729, 1152), (2, 57, 9), clustered_tokens, sklearn_kmeans, prepare_kmeans, False, full_on=("cpu",)),
]
