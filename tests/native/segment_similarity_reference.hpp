// Reference segment similarity (SPEC section 5, tk_segment_similarity), written for clarity from the SPEC
// and PruneVid's merge_frames_dynamic rather than from the library's code: float64, one position at a time.
#pragma once

#include <cstdint>
#include <vector>

#include "support.hpp"

namespace tkt {

// x [T, N, C], lengths summing to T: for each segment s (W frames) and position p, the mean over the
// pairs of distinct frames of cos(u, v) = u.v / (max(|u|, 1e-12) max(|v|, 1e-12)); NaN when W < 2.
// Row-major [S, N].
std::vector<double> reference_segment_similarity(const HostArray& x, const std::vector<int32_t>& lengths);

// The same in the float32 arithmetic the SPEC fixes (16 interleaved lanes per sum, each operation rounded
// on its own, the pairs added in increasing (w, t)), which both backends must match bit for bit.
std::vector<float> reference_segment_similarity_f32(const HostArray& x, const std::vector<int32_t>& lengths);

}  // namespace tkt
