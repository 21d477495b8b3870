// Pooling results (SPEC section 1) on every mode, dtype and awkward shape: the CPU backend against
// the float64 reference, and the CUDA backend against the same reference and the CPU backend on the
// same inputs (llama.cpp's test-backend-ops habit).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "pool_reference.hpp"
#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

// ---- Cases ----------------------------------------------------------------------------------------

struct PoolCase {
    std::string name;
    tk_pool_params params{};
    Shape5 input_shape{};
    Layout x_layout{};
    Layout out_layout{};
    float input_scale = 1.0f;  // inputs are uniform in [-1.5, 2.5) * input_scale

    PoolCase with_layouts(const Layout& x, const Layout& out) const {
        PoolCase c = *this;
        c.x_layout = x;
        c.out_layout = out;
        return c;
    }
    PoolCase with_input_scale(float scale) const {
        PoolCase c = *this;
        c.input_scale = scale;
        return c;
    }
};

// Fields a mode does not use stay zero, as a zero-initialising caller leaves them.
PoolCase window_case(std::string name, tk_pool_mode mode, const Shape5& shape, std::array<int32_t, 3> kernel,
                     std::array<int32_t, 3> stride) {
    PoolCase c;
    c.name = std::move(name);
    c.params.mode = mode;
    std::copy(kernel.begin(), kernel.end(), c.params.kernel);
    std::copy(stride.begin(), stride.end(), c.params.stride);
    c.input_shape = shape;
    return c;
}

PoolCase sized_case(std::string name, tk_pool_mode mode, const Shape5& shape, std::array<int32_t, 3> output_size) {
    PoolCase c;
    c.name = std::move(name);
    c.params.mode = mode;
    std::copy(output_size.begin(), output_size.end(), c.params.output_size);
    c.input_shape = shape;
    return c;
}

// Keeps gtest from dumping the struct's bytes when a test fails.
void PrintTo(const PoolCase& c, std::ostream* os) { *os << c.name; }

constexpr tk_pool_mode kAvg = TK_POOL_WINDOW_AVG;
constexpr tk_pool_mode kMax = TK_POOL_WINDOW_MAX;
constexpr tk_pool_mode kAdaptiveAvg = TK_POOL_ADAPTIVE_AVG;
constexpr tk_pool_mode kAdaptiveMax = TK_POOL_ADAPTIVE_MAX;
constexpr tk_pool_mode kBilinear = TK_POOL_BILINEAR;

// Layout{pad_c, pad_w, frame_step, time_major, offset}
const std::vector<PoolCase>& pool_cases() {
    static const std::vector<PoolCase> cases = {
        // Window pooling: the LLaVA-Video grid, 3-D windows, overlapping and gapped windows.
        window_case("WindowAvg_LLaVAVideo_27to13", kAvg, {1, 2, 27, 27, 64}, {1, 2, 2}, {1, 2, 2}),
        window_case("WindowAvg_27to13_C1152", kAvg, {1, 1, 27, 27, 1152}, {1, 2, 2}, {1, 2, 2}),
        window_case("WindowMax_27to13_B3_C13", kMax, {3, 2, 27, 27, 13}, {1, 2, 2}, {1, 2, 2}),
        window_case("WindowAvg3d_Kt2_OddT", kAvg, {2, 5, 9, 9, 8}, {2, 2, 2}, {2, 2, 2}),
        window_case("WindowMax3d_Kt2_OverlappingT", kMax, {1, 5, 7, 6, 5}, {2, 3, 2}, {1, 2, 2}),
        window_case("WindowAvg_Overlapping_K3S2", kAvg, {1, 2, 11, 10, 7}, {1, 3, 3}, {1, 2, 2}),
        window_case("WindowMax_Gapped_K2S3x4", kMax, {2, 2, 11, 13, 9}, {1, 2, 2}, {1, 3, 4}),
        window_case("WindowAvg_Audio_Gapped", kAvg, {3, 17, 1, 1, 16}, {2, 1, 1}, {3, 1, 1}),
        window_case("WindowMax_Audio_C1", kMax, {2, 9, 1, 1, 1}, {3, 1, 1}, {2, 1, 1}),
        window_case("WindowAvg_C1", kAvg, {3, 2, 8, 8, 1}, {1, 2, 2}, {1, 2, 2}),
        window_case("WindowAvg_WholeInput", kAvg, {1, 3, 4, 5, 3}, {3, 4, 5}, {1, 1, 1}),
        window_case("WindowMax_Minimal", kMax, {1, 1, 1, 1, 1}, {1, 1, 1}, {1, 1, 1}),
        // Adaptive pooling: divisible (PLLaVA), non-divisible, upsampling bins, Video-ChatGPT.
        sized_case("AdaptiveAvg_PLLaVA_24to12", kAdaptiveAvg, {1, 2, 24, 24, 32}, {2, 12, 12}),
        sized_case("AdaptiveMax_24to12_C13", kAdaptiveMax, {2, 2, 24, 24, 13}, {2, 12, 12}),
        sized_case("AdaptiveAvg_27to5_T3to2", kAdaptiveAvg, {1, 3, 27, 27, 6}, {2, 5, 5}),
        sized_case("AdaptiveMax_7to3", kAdaptiveMax, {2, 7, 7, 7, 3}, {3, 3, 3}),
        sized_case("AdaptiveAvg_Upsample_5to7", kAdaptiveAvg, {1, 5, 5, 5, 4}, {7, 7, 7}),
        sized_case("AdaptiveMax_Upsample_5to7", kAdaptiveMax, {1, 2, 5, 5, 4}, {3, 7, 7}),
        sized_case("AdaptiveAvg_VideoChatGPT_Temporal", kAdaptiveAvg, {2, 6, 8, 8, 16}, {6, 1, 1}),
        sized_case("AdaptiveAvg_VideoChatGPT_Spatial", kAdaptiveAvg, {2, 6, 8, 8, 16}, {1, 8, 8}),
        sized_case("AdaptiveAvg_Audio_C1152", kAdaptiveAvg, {1, 10, 1, 1, 1152}, {4, 1, 1}),
        sized_case("AdaptiveMax_Minimal", kAdaptiveMax, {1, 1, 1, 1, 1}, {1, 1, 1}),
        // Bilinear resize: LLaVA-OneVision's 27 -> 14, upsampling, non-square, degenerate sizes.
        sized_case("Bilinear_LLaVAOneVision_27to14", kBilinear, {1, 2, 27, 27, 32}, {2, 14, 14}),
        sized_case("Bilinear_27to14_C1152", kBilinear, {1, 1, 27, 27, 1152}, {1, 14, 14}),
        sized_case("Bilinear_Upsample_5x3to9x8_B2", kBilinear, {2, 1, 5, 3, 7}, {1, 9, 8}),
        sized_case("Bilinear_NonSquare_10x7to4x11", kBilinear, {1, 3, 10, 7, 5}, {3, 4, 11}),
        sized_case("Bilinear_FromSinglePixel", kBilinear, {1, 1, 1, 1, 3}, {1, 3, 3}),
        sized_case("Bilinear_SameSize", kBilinear, {1, 1, 6, 6, 8}, {1, 6, 6}),
        sized_case("Bilinear_Minimal", kBilinear, {1, 1, 1, 1, 1}, {1, 1, 1}),
        // Views into larger buffers: padded channel rows and image rows, every other frame, T outermost,
        // misaligned data pointers (the scalar paths), strided outputs.
        window_case("WindowAvg_StridedInput", kAvg, {2, 3, 9, 9, 13}, {1, 2, 2}, {1, 2, 2})
            .with_layouts(Layout{3, 2, 2, false, 0}, Layout{}),
        sized_case("AdaptiveMax_TimeMajorInput_StridedOutput", kAdaptiveMax, {3, 4, 6, 6, 5}, {2, 3, 3})
            .with_layouts(Layout{0, 0, 1, true, 0}, Layout{2, 1, 1, false, 0}),
        sized_case("Bilinear_Unaligned_StridedOutput", kBilinear, {1, 2, 7, 7, 5}, {2, 4, 4})
            .with_layouts(Layout{0, 0, 1, false, 1}, Layout{1, 0, 1, false, 1}),
        window_case("WindowMax_Unaligned_C1152", kMax, {1, 1, 6, 6, 1152}, {1, 2, 2}, {1, 2, 2})
            .with_layouts(Layout{0, 0, 1, false, 1}, Layout{0, 0, 1, false, 3}),
        sized_case("AdaptiveAvg_Unaligned_Strided_C64", kAdaptiveAvg, {2, 2, 6, 6, 64}, {1, 4, 4})
            .with_layouts(Layout{1, 0, 1, true, 1}, Layout{7, 2, 3, true, 1}),
        // Offsets and strides even but not 16-byte multiples: a CUDA backend that vectorises channels
        // must fall back to 2-element vectors here, and to scalars in the unaligned cases above.
        sized_case("AdaptiveAvg_PartlyAligned_C6", kAdaptiveAvg, {2, 3, 5, 6, 6}, {2, 3, 4})
            .with_layouts(Layout{2, 0, 1, false, 2}, Layout{0, 1, 1, false, 2}),
        window_case("WindowMax_PartlyAligned_C6", kMax, {2, 2, 6, 6, 6}, {1, 2, 2}, {1, 2, 2})
            .with_layouts(Layout{2, 0, 1, false, 2}, Layout{0, 1, 1, false, 2}),
        sized_case("Bilinear_PartlyAligned_C6", kBilinear, {1, 2, 5, 6, 6}, {2, 7, 4})
            .with_layouts(Layout{2, 0, 1, false, 2}, Layout{0, 1, 1, false, 2}),
        // Whole vectors of every width: 16 channels are 8-element words of f16 and bf16 (4 of f32), 12
        // channels 4-element ones.
        window_case("WindowMax_C16", kMax, {1, 2, 8, 8, 16}, {1, 2, 2}, {1, 2, 2}),
        sized_case("Bilinear_C12", kBilinear, {1, 1, 7, 7, 12}, {1, 5, 9}),
        // Extreme magnitudes: f16 subnormals (below 6.1e-5) must round correctly, and 2x2 sums of
        // values up to 5e4 overflow f16 (65504), so they must be accumulated in float32.
        window_case("WindowAvg_TinyValues", kAvg, {1, 2, 8, 8, 24}, {1, 2, 2}, {1, 2, 2}).with_input_scale(1e-6f),
        sized_case("Bilinear_TinyValues", kBilinear, {1, 1, 9, 9, 24}, {1, 4, 5}).with_input_scale(1e-6f),
        window_case("WindowAvg_HugeValues", kAvg, {1, 2, 8, 8, 24}, {1, 2, 2}, {1, 2, 2}).with_input_scale(2e4f),
        sized_case("AdaptiveAvg_HugeValues", kAdaptiveAvg, {1, 2, 9, 9, 24}, {1, 4, 4}).with_input_scale(2e4f),
    };
    return cases;
}

constexpr tk_dtype kFloatDtypes[] = {TK_DTYPE_F32, TK_DTYPE_F16, TK_DTYPE_BF16};

// ---- Checking against the reference ----------------------------------------------------------------

// Accuracy rule, per element (FlashAttention's habit): the op may be off the float64 reference by at
// most twice what a same-precision reference is off it, plus a small floor:
//
//     |ours - ref64| <= 2 * |round_dtype(ref32) - ref64| + 1e-5 * max(input_scale, |ref64|)
//
// ref32 accumulates in float32 from the same dtype-rounded inputs, so its error is essentially the
// final rounding to the dtype. Per element (not max-norm) so a wrong small value next to large ones
// cannot hide. Where ref64 lies near a rounding midpoint, ours and ref32 may round to opposite sides
// after summing in different orders, but then both are about half an ulp off and the factor 2
// covers it. The floor covers what the dtype rounding does not: float32 reordering (the whole
// budget for f32, where round_dtype is the identity) and the bilinear source coordinate, which the
// library computes in float32 as PyTorch does (a weight off by about 1e-6 for 27-pixel rows). It
// scales with the inputs' magnitude, so that tiny (subnormal f16) inputs are still checked to the ulp.
// Max pooling is exact, so there both errors are zero and the floor alone remains.
::testing::AssertionResult matches_reference(tk_dtype dtype, double input_scale, const Shape5& out_shape,
                                             const std::vector<double>& ours, const std::vector<double>& ref64,
                                             const std::vector<float>& ref32) {
    if (ours.size() != ref64.size())
        return ::testing::AssertionFailure() << "output has " << ours.size() << " elements, reference " << ref64.size();
    std::ostringstream failures;
    int64_t failed = 0;
    for (size_t i = 0; i < ours.size(); ++i) {
        const double want = ref64[i];
        const double got = ours[i];
        bool ok;
        if (std::isnan(want) || std::isnan(got) || std::isinf(want)) {
            ok = (std::isnan(want) && std::isnan(got)) || got == want;
        } else {
            const double same_precision = round_to_dtype(ref32[i], dtype);
            const double bound = 2.0 * std::fabs(same_precision - want) + 1e-5 * std::max(input_scale, std::fabs(want));
            ok = std::fabs(got - want) <= bound;
        }
        if (!ok && ++failed <= 5) {
            failures << "\n  at " << index_string(out_shape, static_cast<int64_t>(i)) << ": got " << got
                     << ", float64 reference " << want << ", same-precision reference "
                     << round_to_dtype(ref32[i], dtype);
        }
    }
    if (failed == 0) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << failed << " of " << ours.size() << " elements out of tolerance"
                                         << failures.str();
}

// Computes both references and checks out's view against them.
::testing::AssertionResult matches_reference(const PoolCase& c, const HostTensor& x, const HostTensor& out) {
    return matches_reference(x.dtype(), c.input_scale, out.shape(), out.values(), reference_pool<double>(c.params, x),
                             reference_pool<float>(c.params, x));
}

// Fresh random input for a case: its gaps hold NaN so that a read outside the view shows up.
HostTensor make_input(const PoolCase& c, tk_dtype dtype, const std::string& test_name) {
    HostTensor x(dtype, c.input_shape, c.x_layout);
    x.fill_gaps_with_nan();
    x.fill_random(seed_from_name(test_name), c.input_scale);
    return x;
}

// An output buffer whose every byte (view and gaps) holds a sentinel before the op runs.
HostTensor make_output(const PoolCase& c, tk_dtype dtype) {
    HostTensor out(dtype, reference_output_shape(c.params, c.input_shape), c.out_layout);
    out.fill_bytes(0xA5);
    return out;
}

::testing::AssertionResult pool_on_cpu(const tk_pool_params& params, const HostTensor& x, HostTensor& out) {
    const tk_tensor x_desc = x.desc();
    const tk_tensor out_desc = out.desc();
    const tk_status status = tk_pool(&params, &x_desc, &out_desc, nullptr, 0, nullptr);
    if (status != TK_STATUS_OK)
        return ::testing::AssertionFailure() << tk_status_name(status) << ": " << tk_last_error();
    if (std::strcmp(tk_last_error(), "") != 0)
        return ::testing::AssertionFailure() << "tk_last_error() is \"" << tk_last_error() << "\" after a success";
    return ::testing::AssertionSuccess();
}

std::string param_name(const PoolCase& c, tk_dtype dtype) { return c.name + "_" + dtype_label(dtype); }

using PoolParam = std::tuple<PoolCase, tk_dtype>;

std::string pool_param_name(const ::testing::TestParamInfo<PoolParam>& info) {
    return param_name(std::get<0>(info.param), std::get<1>(info.param));
}

// ---- CPU ----------------------------------------------------------------------------------------------

class PoolCpu : public ::testing::TestWithParam<PoolParam> {};

TEST_P(PoolCpu, MatchesReference) {
    const auto& [c, dtype] = GetParam();
    const HostTensor x = make_input(c, dtype, param_name(c, dtype));
    const HostTensor x_before = x;

    int64_t queried[5];
    ASSERT_EQ(tk_pool_output_shape(&c.params, c.input_shape.data(), queried), TK_STATUS_OK) << tk_last_error();
    const Shape5 expected_shape = reference_output_shape(c.params, c.input_shape);
    EXPECT_TRUE(std::equal(expected_shape.begin(), expected_shape.end(), queried))
        << "tk_pool_output_shape disagrees with the SPEC's formula";

    HostTensor out = make_output(c, dtype);
    const HostTensor out_before = out;
    uint64_t workspace_bytes = 1;
    const tk_tensor x_desc = x.desc();
    const tk_tensor out_desc = out.desc();
    ASSERT_EQ(tk_pool_workspace_size(&c.params, &x_desc, &out_desc, &workspace_bytes), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(workspace_bytes, 0u);

    {
        const ScopedNumThreads threads(2);
        ASSERT_TRUE(pool_on_cpu(c.params, x, out));
    }
    EXPECT_TRUE(x.bytes() == x_before.bytes()) << "the input was written to";
    EXPECT_EQ(first_changed_gap(out_before, out), "");
    EXPECT_TRUE(matches_reference(c, x, out));

    // Deterministic: the same call again, and with another thread count, gives the same bits.
    HostTensor again = out_before;
    HostTensor one_thread = out_before;
    {
        const ScopedNumThreads threads(2);
        ASSERT_TRUE(pool_on_cpu(c.params, x, again));
    }
    {
        const ScopedNumThreads threads(1);
        ASSERT_TRUE(pool_on_cpu(c.params, x, one_thread));
    }
    EXPECT_TRUE(again.bytes() == out.bytes()) << "two identical calls gave different bits";
    EXPECT_TRUE(one_thread.bytes() == out.bytes()) << "1 and 2 threads gave different bits";
}

INSTANTIATE_TEST_SUITE_P(Pool, PoolCpu,
                         ::testing::Combine(::testing::ValuesIn(pool_cases()), ::testing::ValuesIn(kFloatDtypes)),
                         pool_param_name);

// Max pooling propagates NaN (a window holding one gives NaN), and infinities are ordinary values.
using NanParam = std::tuple<tk_pool_mode, tk_dtype>;

PoolCase nan_case(tk_pool_mode mode) {
    // 3x3 windows with stride 2 overlap, so one NaN reaches several outputs.
    return mode == TK_POOL_WINDOW_MAX ? window_case("WindowMax", mode, {2, 2, 9, 9, 5}, {1, 3, 3}, {1, 2, 2})
                                      : sized_case("AdaptiveMax", mode, {2, 2, 9, 9, 5}, {2, 4, 4});
}

HostTensor make_nan_input(const PoolCase& c, tk_dtype dtype) {
    HostTensor x = make_input(c, dtype, "Nan_" + param_name(c, dtype));
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    x.set(0, 0, 4, 4, 0, nan);   // shared by overlapping windows
    x.set(0, 1, 0, 0, 2, nan);   // first element of a window
    x.set(1, 0, 8, 8, 4, nan);   // last element of the input
    x.set(1, 1, 3, 5, 1, inf);
    x.set(1, 1, 5, 3, 3, -inf);  // never the max of a window holding finite values
    x.set(0, 1, 2, 2, 3, nan);   // NaN and +inf in one window: NaN wins
    x.set(0, 1, 2, 3, 3, inf);
    return x;
}

std::string nan_param_name(const ::testing::TestParamInfo<NanParam>& info) {
    return param_name(nan_case(std::get<0>(info.param)), std::get<1>(info.param));
}

// Counts NaN outputs, so a test can tell that the NaN cases were really exercised.
int64_t count_nan(const HostTensor& out) {
    const std::vector<double> values = out.values();
    return std::count_if(values.begin(), values.end(), [](double v) { return std::isnan(v); });
}

class PoolCpuNan : public ::testing::TestWithParam<NanParam> {};

TEST_P(PoolCpuNan, MaxPropagatesNan) {
    const auto& [mode, dtype] = GetParam();
    const PoolCase c = nan_case(mode);
    const HostTensor x = make_nan_input(c, dtype);
    HostTensor out = make_output(c, dtype);
    ASSERT_TRUE(pool_on_cpu(c.params, x, out));
    EXPECT_GE(count_nan(out), 3);
    EXPECT_TRUE(matches_reference(c, x, out));
}

INSTANTIATE_TEST_SUITE_P(Pool, PoolCpuNan,
                         ::testing::Combine(::testing::Values(TK_POOL_WINDOW_MAX, TK_POOL_ADAPTIVE_MAX),
                                            ::testing::ValuesIn(kFloatDtypes)),
                         nan_param_name);

// An empty batch is a valid call that writes nothing, with or without data pointers.
TEST(PoolCpuEmpty, EmptyBatchWritesNothing) {
    const tk_pool_params params = window_case("", kAvg, {}, {1, 2, 2}, {1, 2, 2}).params;
    HostTensor x(TK_DTYPE_F32, {0, 2, 4, 4, 3});
    HostTensor out(TK_DTYPE_F32, {0, 2, 2, 2, 3});
    out.fill_bytes(0xA5);
    const HostTensor out_before = out;
    tk_tensor x_desc = x.desc();
    tk_tensor out_desc = out.desc();
    EXPECT_EQ(tk_pool(&params, &x_desc, &out_desc, nullptr, 0, nullptr), TK_STATUS_OK) << tk_last_error();
    EXPECT_TRUE(out.bytes() == out_before.bytes());

    x_desc.data = nullptr;
    out_desc.data = nullptr;
    EXPECT_EQ(tk_pool(&params, &x_desc, &out_desc, nullptr, 0, nullptr), TK_STATUS_OK) << tk_last_error();
}

// ---- CUDA against CPU ---------------------------------------------------------------------------------

// Runs a pool on CUDA device 0, on a stream of its own or on the legacy default stream (NULL): copies
// the whole backing buffers (gaps included) to the device and the output buffer back.
class CudaRunner {
public:
    enum class Stream { Own, LegacyDefault };

    explicit CudaRunner(Stream stream) {
        if (stream == Stream::Own && tk_cuda_stream_create(0, &stream_) != TK_STATUS_OK) {
            ADD_FAILURE() << tk_last_error();
        }
    }
    ~CudaRunner() {
        if (stream_ != nullptr) {
            EXPECT_EQ(tk_cuda_stream_destroy(stream_), TK_STATUS_OK) << tk_last_error();
        }
    }
    CudaRunner(const CudaRunner&) = delete;
    CudaRunner& operator=(const CudaRunner&) = delete;

    ::testing::AssertionResult pool(const tk_pool_params& params, const HostTensor& x, HostTensor& out) const {
        DeviceBuffer x_device(x.bytes().size());
        DeviceBuffer out_device(out.bytes().size());
        const tk_tensor x_desc = x.device_desc(x_device.get(), 0);
        const tk_tensor out_desc = out.device_desc(out_device.get(), 0);
        if (tk_cuda_memcpy_async(x_device.get(), x.bytes().data(), x.bytes().size(), stream_) != TK_STATUS_OK ||
            tk_cuda_memcpy_async(out_device.get(), out.bytes().data(), out.bytes().size(), stream_) != TK_STATUS_OK)
            return ::testing::AssertionFailure() << "copy to device: " << tk_last_error();
        const tk_status status = tk_pool(&params, &x_desc, &out_desc, nullptr, 0, stream_);
        if (status != TK_STATUS_OK)
            return ::testing::AssertionFailure() << tk_status_name(status) << ": " << tk_last_error();
        if (tk_cuda_memcpy_async(out.bytes().data(), out_device.get(), out.bytes().size(), stream_) != TK_STATUS_OK ||
            tk_cuda_stream_synchronize(stream_) != TK_STATUS_OK)
            return ::testing::AssertionFailure() << "copy back: " << tk_last_error();
        return ::testing::AssertionSuccess();
    }

private:
    tk_stream stream_ = nullptr;
};

class PoolCuda : public ::testing::TestWithParam<PoolParam> {
protected:
    void SetUp() override {
        const std::string why = cuda_unavailable_reason();
        if (!why.empty()) GTEST_SKIP() << why;
    }
};

TEST_P(PoolCuda, MatchesCpuAndReference) {
    const auto& [c, dtype] = GetParam();
    const HostTensor x = make_input(c, dtype, param_name(c, dtype));
    HostTensor cpu = make_output(c, dtype);
    const HostTensor out_before = cpu;
    HostTensor cuda = out_before;
    HostTensor cuda_again = out_before;
    ASSERT_TRUE(pool_on_cpu(c.params, x, cpu));
    const CudaRunner runner(CudaRunner::Stream::Own);
    ASSERT_TRUE(runner.pool(c.params, x, cuda));
    ASSERT_TRUE(runner.pool(c.params, x, cuda_again));

    EXPECT_EQ(first_changed_gap(out_before, cuda), "");
    // Both backends compute the same function, bit for bit: the same sums in the same order, the same
    // bilinear taps and blend, each operation rounded on its own (no FMA contraction on either side).
    EXPECT_TRUE(matches_reference(c, x, cuda));
    EXPECT_TRUE(cuda.bytes() == cpu.bytes()) << "CUDA and CPU differ";
    EXPECT_TRUE(cuda_again.bytes() == cuda.bytes()) << "two identical CUDA calls gave different bits";
}

INSTANTIATE_TEST_SUITE_P(Pool, PoolCuda,
                         ::testing::Combine(::testing::ValuesIn(pool_cases()), ::testing::ValuesIn(kFloatDtypes)),
                         pool_param_name);

class PoolCudaNan : public ::testing::TestWithParam<NanParam> {
protected:
    void SetUp() override {
        const std::string why = cuda_unavailable_reason();
        if (!why.empty()) GTEST_SKIP() << why;
    }
};

TEST_P(PoolCudaNan, MaxPropagatesNanLikeCpu) {
    const auto& [mode, dtype] = GetParam();
    const PoolCase c = nan_case(mode);
    const HostTensor x = make_nan_input(c, dtype);
    HostTensor cpu = make_output(c, dtype);
    HostTensor cuda = cpu;
    ASSERT_TRUE(pool_on_cpu(c.params, x, cpu));
    ASSERT_TRUE(CudaRunner(CudaRunner::Stream::LegacyDefault).pool(c.params, x, cuda));
    EXPECT_GE(count_nan(cuda), 3);
    EXPECT_TRUE(matches_reference(c, x, cuda));
    // NaN payloads may differ between backends; compare NaN-ness and the other values.
    const std::vector<double> cpu_values = cpu.values();
    const std::vector<double> cuda_values = cuda.values();
    for (size_t i = 0; i < cpu_values.size(); ++i) {
        if (std::isnan(cpu_values[i])) {
            EXPECT_TRUE(std::isnan(cuda_values[i])) << "at " << index_string(cuda.shape(), static_cast<int64_t>(i));
        } else {
            EXPECT_EQ(cuda_values[i], cpu_values[i]) << "at " << index_string(cuda.shape(), static_cast<int64_t>(i));
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Pool, PoolCudaNan,
                         ::testing::Combine(::testing::Values(TK_POOL_WINDOW_MAX, TK_POOL_ADAPTIVE_MAX),
                                            ::testing::ValuesIn(kFloatDtypes)),
                         nan_param_name);

}  // namespace
}  // namespace tkt
