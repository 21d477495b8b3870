// VidCom2's arithmetic (SPEC section 5, "VidCom2"), the same on both backends: the Gaussian kernel
// sum, the 64-lane sums over tokens and the exact frame budgets. Each operation is rounded on its own
// (-ffp-contract=off, nvcc -fmad=false), so CPU and CUDA agree bit for bit.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/host_device.hpp"
#include "ops/portable_math.hpp"

namespace tk {

// Sums over tokens run in this many interleaved lanes: lane l adds rows l, l + 64, ... in order.
constexpr int kRowLanes = 64;
// F.normalize's clamp of the norm.
constexpr float kVidCom2NormEps = 1e-12f;
// The ideal frame counts are compared as multiples of 2^-20.
constexpr int64_t kBudgetUnit = int64_t{1} << 20;

// F.normalize's divisor from a token's squared norm: max(|u|, 1e-12), NaN staying NaN.
TK_HOST_DEVICE float normalising_norm(float squared_norm) {
    const float norm = sqrtf(squared_norm);
    return norm < kVidCom2NormEps ? kVidCom2NormEps : norm;
}

// A channel's negated population variance from its sums over N tokens shifted by the first token:
// -((S2 - S1 * (S1 / N)) / N).
TK_HOST_DEVICE float negated_variance(float shifted_sum, float shifted_squares, float count) {
    return -((shifted_squares - shifted_sum * (shifted_sum / count)) / count);
}

// VidCom2's multi-scale Gaussian kernel: exp(-d / (2a)) for a = 2^-3 .. 2^1, added in that order.
TK_HOST_DEVICE float gaussian_kernel_sum(float squared_distance) {
    const float d = squared_distance;
    float sum = portable_exp(-(d * 4.0f));
    sum += portable_exp(-(d * 2.0f));
    sum += portable_exp(-d);
    sum += portable_exp(-(d * 0.5f));
    sum += portable_exp(-(d * 0.25f));
    return sum;
}

// K = max(T, floor(T * P * r)), in double as Python's int().
inline int64_t vidcom2_retained_tokens(int64_t frames, int64_t positions, double retention_ratio) {
    const auto kept = static_cast<int64_t>(static_cast<double>(frames * positions) * retention_ratio);
    return kept > frames ? kept : frames;
}

// C' = max(1, floor(C * channel_ratio)).
inline int64_t vidcom2_scored_channels(int64_t channels, double channel_ratio) {
    const auto scored = static_cast<int64_t>(static_cast<double>(channels) * channel_ratio);
    return scored > 1 ? scored : 1;
}

// A frame's ideal count as a multiple of 2^-20, rounded down (NaN and negatives as 0).
TK_HOST_DEVICE int64_t budget_units(float ideal) {
    return ideal > 0.0f ? static_cast<int64_t>(ideal * static_cast<float>(kBudgetUnit)) : 0;
}

// Slots j in [1, P) of a frame of q units whose priority q - j * unit is at least `level`.
TK_HOST_DEVICE int64_t slots_at_least(int64_t q, int64_t level, int64_t positions) {
    if (q - level < kBudgetUnit) return 0;
    const int64_t slots = (q - level) / kBudgetUnit;
    return slots < positions - 1 ? slots : positions - 1;
}

// One item's frame budgets (SPEC steps 5 and 6): importance [T] holds s_t, and is overwritten with
// ideal_t; keeps [T] receives k_t (summing to K) and offsets [T] each frame's first output slot.
TK_HOST_DEVICE void vidcom2_frame_budgets(float* importance, int64_t frames, int64_t positions, int64_t retained,
                                          float retention_ratio, float temperature, int32_t* keeps, int32_t* offsets) {
    float top = importance[0];
    for (int64_t t = 1; t < frames; ++t) top = importance[t] > top ? importance[t] : top;
    float z = 0.0f;
    for (int64_t t = 0; t < frames; ++t) {
        importance[t] = portable_exp((importance[t] - top) / temperature);
        z += importance[t];
    }
    float mean = 0.0f;
    for (int64_t t = 0; t < frames; ++t) {
        importance[t] = importance[t] / z;
        mean += importance[t];
    }
    mean = mean / static_cast<float>(frames);
    const auto position_count = static_cast<float>(positions);
    for (int64_t t = 0; t < frames; ++t) {
        const float scale = retention_ratio * ((1.0f + importance[t]) - mean);
        importance[t] = (scale < 1.0f ? scale : 1.0f) * position_count;  // NaN stays NaN: 0 units
    }

    // The (K - T)-th highest slot priority `level`: the highest with at least K - T slots at or above it.
    const int64_t extra = retained - frames;
    int64_t level = 0;
    int64_t granted_above = 0;
    if (extra > 0) {
        int64_t low = -positions * kBudgetUnit, high = 0;  // count(low) = T (P - 1) >= extra
        for (int64_t t = 0; t < frames; ++t) {
            const int64_t q = budget_units(importance[t]);
            high = q > high ? q : high;
        }
        while (low < high) {  // invariant: count(low) >= extra
            const int64_t mid = low + (high - low + 1) / 2;
            int64_t count = 0;
            for (int64_t t = 0; t < frames && count < extra; ++t) count += slots_at_least(budget_units(importance[t]), mid, positions);
            if (count >= extra) low = mid;
            else high = mid - 1;
        }
        level = low;
        for (int64_t t = 0; t < frames; ++t) granted_above += slots_at_least(budget_units(importance[t]), level + 1, positions);
    }
    // Every slot above the level, then the slots at it to the lower frames first.
    int64_t at_level = extra - granted_above;
    int64_t offset = 0;
    for (int64_t t = 0; t < frames; ++t) {
        int64_t k = 1;
        if (extra > 0) {
            const int64_t q = budget_units(importance[t]);
            const int64_t above = slots_at_least(q, level + 1, positions);
            k += above;
            if (at_level > 0 && slots_at_least(q, level, positions) > above) {
                ++k;
                --at_level;
            }
        }
        keeps[t] = static_cast<int32_t>(k);
        offsets[t] = static_cast<int32_t>(offset);
        offset += k;
    }
}

}  // namespace tk
