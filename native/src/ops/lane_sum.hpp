// The float32 sum both backends take where their results must agree bit for bit (VisionZip's
// cosine similarities, the CPU's norms and few-row logits): kSumLanes interleaved partial sums, lane
// l adding the terms l, l + 16, l + 32, ... in increasing order, then the lanes added in order. On
// the CPU the lanes vectorise as written; a CUDA thread runs the same loop. Each product and sum is
// rounded on its own on both sides (-ffp-contract=off, nvcc -fmad=false), so the bits are the same.
#pragma once

#include <cstdint>

#include "core/host_device.hpp"

namespace tk {

constexpr int kSumLanes = 16;

// sum over i in [0, count) of term(i), in the order above.
template <class Term>
TK_HOST_DEVICE float lane_sum(int64_t count, Term term) {
    float partial[kSumLanes] = {};
    int64_t i = 0;
    for (; i + kSumLanes <= count; i += kSumLanes)
        for (int l = 0; l < kSumLanes; ++l) partial[l] += term(i + l);
    for (int l = 0; i + l < count; ++l) partial[l] += term(i + l);
    float sum = 0.0f;
    for (int l = 0; l < kSumLanes; ++l) sum += partial[l];
    return sum;
}

}  // namespace tk
