// ABI boundary of tk_segment_similarity (SPEC section 5): every argument is validated here, once, into a
// SegmentSimilarityPlan; the backends trust the plan.
#include <cstdint>
#include <string>

#include "api/arguments.hpp"
#include "core/error.hpp"
#include "core/tensor.hpp"
#include "cuda/runtime.hpp"
#include "ops/segment_similarity.hpp"
#include "tokenkernels/tokenkernels.h"

using tk::number;
using tk::require;

extern "C" {

TK_API tk_status tk_segment_similarity(const tk_tensor* x, const tk_tensor* segment_lengths, const tk_tensor* out,
                                       tk_stream stream) {
    return tk::api_call([&] {
        const tk_tensor& video = tk::require_features(x, "x", 3, "[T, N, C]");
        const tk_tensor& lengths = tk::require_tensor(segment_lengths, "segment_lengths");
        tk::require_rank(lengths, "segment_lengths", 1, "[S]");
        require(lengths.dtype == TK_DTYPE_I32, "segment_lengths.dtype", "i32", [&] { return tk::dtype_name(lengths.dtype); });
        tk::require_same_device(lengths, "segment_lengths", video, "x");
        tk::require_positive_strides(lengths, "segment_lengths");

        tk::SegmentSimilarityPlan plan{};
        plan.frames = video.shape[0];
        plan.positions = video.shape[1];
        plan.channels = video.shape[2];
        plan.segments = lengths.shape[0];
        plan.device_ordinal = video.device_ordinal;
        // Host lengths can be checked before anything is written; device ones cannot without a sync.
        if (lengths.device_kind == TK_DEVICE_CPU) {
            int64_t total = 0;
            for (int64_t s = 0; s < plan.segments; ++s) {
                const int64_t length = tk::host_index(lengths, s);
                require(length >= 1, [&] { return "segment_lengths[" + std::to_string(s) + "]"; }, "a frame count >= 1",
                        number(length));
                total += length;
            }
            require(total == plan.frames, "segment_lengths",
                    [&] { return "lengths summing to " + std::to_string(plan.frames) + " (T of x)"; },
                    [&] { return "a sum of " + std::to_string(total); });
        }
        const int64_t shape[2] = {plan.segments, plan.positions};
        plan.out = tk::strided(tk::require_output(out, "out", 2, shape, "[S, N]", TK_DTYPE_F32, video, "x",
                                                  {{x, "x"}, {segment_lengths, "segment_lengths"}}));
        plan.x = tk::strided(video);
        plan.lengths = tk::strided(lengths);
        if (plan.segments * plan.positions == 0) return;
        if (video.device_kind == TK_DEVICE_CPU) {
            tk::cpu::segment_similarity(plan);
        } else {
            tk::cuda::require_stream_of_device(stream, plan.device_ordinal);
            tk::cuda::segment_similarity(plan, stream);
        }
    });
}

}  // extern "C"
