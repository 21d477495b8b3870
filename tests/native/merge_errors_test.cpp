// Every class of invalid token-merging argument (SPEC "Errors"): the status, a message naming the
// argument, and no byte written to any output, for tk_merge, tk_merge_match, tk_unmerge,
// tk_merge_output_tokens and tk_merge_workspace_size.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

// A valid call: metric [2, 6, 4] f32, x [2, 6, 3] f32, size [2, 6], r = 2 so out [2, 4, 3],
// out_size [2, 4], source_map [2, 6] i32, merge_count [2] i32. Each case breaks it in one way.
struct MergeCall {
    tk_merge_params params{};
    tk_tensor metric{}, x{}, size{}, out{}, out_size{}, source_map{}, merge_count{};
    bool null_params = false, null_metric = false, null_x = false, null_size = false, null_out = false,
         null_out_size = false, null_source_map = false, null_merge_count = false;
    void* workspace = nullptr;
    uint64_t workspace_bytes = 0;

    tk_status merge() const {
        return tk_merge(null_params ? nullptr : &params, null_metric ? nullptr : &metric, null_x ? nullptr : &x,
                        null_size ? nullptr : &size, null_out ? nullptr : &out, null_out_size ? nullptr : &out_size,
                        null_source_map ? nullptr : &source_map, null_merge_count ? nullptr : &merge_count, workspace,
                        workspace_bytes, nullptr);
    }
};

// size[b, i] of the call, to break its value.
float& size_at(MergeCall& c, int64_t b, int64_t i) {
    return static_cast<float*>(c.size.data)[b * c.size.strides[0] + i * c.size.strides[1]];
}

struct InvalidCase {
    std::string name;
    std::function<void(MergeCall&)> breaks;
    std::string names;  // what tk_last_error() must mention
    tk_status status = TK_STATUS_INVALID_ARGUMENT;
};

void PrintTo(const InvalidCase& c, std::ostream* os) { *os << c.name; }

std::vector<InvalidCase> invalid_merge_cases() {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    std::vector<InvalidCase> cases = {
        {"NullParams", [](MergeCall& c) { c.null_params = true; }, "params"},
        {"NullMetric", [](MergeCall& c) { c.null_metric = true; }, "metric"},
        {"NullX", [](MergeCall& c) { c.null_x = true; }, "x"},
        {"NullOut", [](MergeCall& c) { c.null_out = true; }, "out"},
        {"NegativeR", [](MergeCall& c) { c.params.r = -1; }, "params->r"},
        {"UseThresholdTwo", [](MergeCall& c) { c.params.use_threshold = 2; }, "params->use_threshold"},
        {"NanThreshold", [nan](MergeCall& c) { c.params.threshold = nan; }, "params->threshold"},
        {"NanThresholdInThresholdMode",
         [nan](MergeCall& c) {
             c.params.use_threshold = 1;
             c.params.threshold = nan;
             c.out.shape[1] = 6;
         },
         "params->threshold"},
        {"ProtectFirstTwo", [](MergeCall& c) { c.params.protect_first = 2; }, "params->protect_first"},
        {"ProtectSecondNegative", [](MergeCall& c) { c.params.protect_second = -1; }, "params->protect_second"},
        {"UnknownMode", [](MergeCall& c) { c.params.mode = 5; }, "params->mode"},
        {"NegativeMode", [](MergeCall& c) { c.params.mode = -1; }, "params->mode"},
        {"UnknownOrder", [](MergeCall& c) { c.params.order = 2; }, "params->order"},
        {"MetricRank2", [](MergeCall& c) { c.metric.rank = 2; }, "metric.rank"},
        {"XRank4", [](MergeCall& c) { c.x.rank = 4; }, "x.rank"},
        {"OutRank2", [](MergeCall& c) { c.out.rank = 2; }, "out.rank"},
        {"SizeRank3", [](MergeCall& c) { c.size.rank = 3; }, "size.rank"},
        {"OutSizeRank1", [](MergeCall& c) { c.out_size.rank = 1; }, "out_size.rank"},
        {"SourceMapRank3", [](MergeCall& c) { c.source_map.rank = 3; }, "source_map.rank"},
        {"MergeCountRank2", [](MergeCall& c) { c.merge_count.rank = 2; }, "merge_count.rank"},
        {"XBatchDiffers", [](MergeCall& c) { c.x.shape[0] = 1; }, "x.shape[0]"},
        {"XTokensDiffer", [](MergeCall& c) { c.x.shape[1] = 5; }, "x.shape[1]"},
        {"OutBatchDiffers", [](MergeCall& c) { c.out.shape[0] = 1; }, "out.shape[0]"},
        {"OutRowsNotNPrime", [](MergeCall& c) { c.out.shape[1] = 5; }, "out.shape[1]"},
        {"OutRowsNThresholdNeedsN",
         [](MergeCall& c) {
             c.params.use_threshold = 1;  // outputs have N rows in threshold mode, not N - r
         },
         "out.shape[1]"},
        {"OutChannelsDiffer", [](MergeCall& c) { c.out.shape[2] = 2; }, "out.shape[2]"},
        {"SizeTokensDiffer", [](MergeCall& c) { c.size.shape[1] = 4; }, "size.shape[1]"},
        {"SizeBatchDiffers", [](MergeCall& c) { c.size.shape[0] = 3; }, "size.shape[0]"},
        {"OutSizeRowsDiffer", [](MergeCall& c) { c.out_size.shape[1] = 6; }, "out_size.shape[1]"},
        {"SourceMapTokensDiffer", [](MergeCall& c) { c.source_map.shape[1] = 4; }, "source_map.shape[1]"},
        {"MergeCountBatchDiffers", [](MergeCall& c) { c.merge_count.shape[0] = 3; }, "merge_count.shape[0]"},
        {"MetricI32", [](MergeCall& c) { c.metric.dtype = TK_DTYPE_I32; }, "metric.dtype"},
        {"XI64", [](MergeCall& c) { c.x.dtype = TK_DTYPE_I64; }, "x.dtype"},
        {"XUnknownDtype", [](MergeCall& c) { c.x.dtype = 11; }, "x.dtype"},
        {"OutDtypeDiffersFromX", [](MergeCall& c) { c.out.dtype = TK_DTYPE_BF16; }, "out.dtype"},
        {"SizeF16", [](MergeCall& c) { c.size.dtype = TK_DTYPE_F16; }, "size.dtype"},
        {"OutSizeI32", [](MergeCall& c) { c.out_size.dtype = TK_DTYPE_I32; }, "out_size.dtype"},
        {"SourceMapI64", [](MergeCall& c) { c.source_map.dtype = TK_DTYPE_I64; }, "source_map.dtype"},
        {"SourceMapF32", [](MergeCall& c) { c.source_map.dtype = TK_DTYPE_F32; }, "source_map.dtype"},
        {"MergeCountF32", [](MergeCall& c) { c.merge_count.dtype = TK_DTYPE_F32; }, "merge_count.dtype"},
        {"MergeCountI64", [](MergeCall& c) { c.merge_count.dtype = TK_DTYPE_I64; }, "merge_count.dtype"},
        {"MetricChannelsNotContiguous", [](MergeCall& c) { c.metric.strides[2] = 2; }, "metric.strides[2]"},
        {"XChannelsNotContiguous", [](MergeCall& c) { c.x.strides[2] = 2; }, "x.strides[2]"},
        // out's rows are padded (stride 8 >= 3 channels x 2), so only the channel stride is wrong.
        {"OutChannelsNotContiguous", [](MergeCall& c) { c.out.strides[2] = 2; }, "out.strides"},
        {"MetricZeroTokenStride", [](MergeCall& c) { c.metric.strides[1] = 0; }, "metric.strides[1]"},
        {"XNegativeBatchStride", [](MergeCall& c) { c.x.strides[0] = -18; }, "x.strides[0]"},
        {"SizeZeroStride", [](MergeCall& c) { c.size.strides[1] = 0; }, "size.strides[1]"},
        {"OutOverlapsItself", [](MergeCall& c) { c.out.strides[1] = 1; }, "out.strides"},
        {"SourceMapOverlapsItself", [](MergeCall& c) { c.source_map.strides[0] = 1; }, "source_map.strides"},
        {"OutOverlapsX", [](MergeCall& c) { c.out.data = c.x.data; }, "disjoint from x"},
        {"OutOverlapsMetric", [](MergeCall& c) { c.out.data = static_cast<float*>(c.metric.data) + 20; },
         "disjoint from metric"},
        {"OutSizeOverlapsSize", [](MergeCall& c) { c.out_size.data = static_cast<float*>(c.size.data) + 3; },
         "disjoint from size"},
        {"OutSizeOverlapsOut", [](MergeCall& c) { c.out_size.data = c.out.data; }, "disjoint from out"},
        {"SourceMapOverlapsOut", [](MergeCall& c) { c.source_map.data = static_cast<float*>(c.out.data) + 8; },
         "disjoint from out"},
        {"SourceMapOverlapsOutSize", [](MergeCall& c) { c.source_map.data = c.out_size.data; },
         "disjoint from out_size"},
        {"MergeCountOverlapsSourceMap",
         [](MergeCall& c) { c.merge_count.data = static_cast<int32_t*>(c.source_map.data) + 11; },
         "disjoint from source_map"},
        {"MergeCountOverlapsX", [](MergeCall& c) { c.merge_count.data = static_cast<float*>(c.x.data) + 5; },
         "disjoint from x"},
        {"ThresholdWithoutMergeCount",
         [](MergeCall& c) {
             c.params.use_threshold = 1;
             c.out.shape[1] = 6;
             c.out_size.shape[1] = 6;
             c.null_merge_count = true;
         },
         "merge_count"},
        {"WorkspaceBytesWithoutWorkspace", [](MergeCall& c) { c.workspace_bytes = 64; }, "workspace"},
        // A caller's workspace is scratch the op may write while it reads its inputs.
        {"WorkspaceOverlapsX", [](MergeCall& c) { c.workspace = static_cast<float*>(c.x.data) + 7; c.workspace_bytes = 64; },
         "disjoint from x"},
        {"WorkspaceOverlapsSize", [](MergeCall& c) { c.workspace = c.size.data; c.workspace_bytes = 4; }, "disjoint from size"},
        {"WorkspaceOverlapsSourceMap",
         [](MergeCall& c) { c.workspace = static_cast<char*>(c.source_map.data) - 8; c.workspace_bytes = 12; },
         "disjoint from source_map"},
        {"WorkspaceWrapsAddressSpace", [](MergeCall& c) { c.workspace = c.x.data; c.workspace_bytes = ~uint64_t{0}; },
         "workspace_bytes"},
        // Sizes are weights of a mean: a zero total would divide by zero.
        {"SizeZero", [](MergeCall& c) { size_at(c, 1, 3) = 0.0f; }, "size[1, 3]"},
        {"SizeNegative", [](MergeCall& c) { size_at(c, 0, 5) = -2.0f; }, "size[0, 5]"},
        {"SizeNan", [nan](MergeCall& c) { size_at(c, 1, 0) = nan; }, "size[1, 0]"},
        {"SizeInfinite", [](MergeCall& c) { size_at(c, 0, 2) = std::numeric_limits<float>::infinity(); }, "size[0, 2]"},
        // Element offsets fit int64, but their bytes do not fit the address space (4 x 2^62, 4 x 2^61).
        {"XStrideBytesOverflow", [](MergeCall& c) { c.x.strides[0] = int64_t{1} << 62; }, "x.strides"},
        {"MetricStrideBytesBeyondAddressSpace", [](MergeCall& c) { c.metric.strides[1] = int64_t{1} << 61; }, "metric.strides"},
        {"OutStrideBytesOverflow", [](MergeCall& c) { c.out.strides[0] = int64_t{1} << 62; }, "out.strides"},
        {"SizeEndWrapsAddressSpace", [](MergeCall& c) { c.size.data = reinterpret_cast<void*>(uintptr_t{0} - 32); },
         "size.strides"},
        {"MetricNullData", [](MergeCall& c) { c.metric.data = nullptr; }, "metric.data"},
        {"OutNullData", [](MergeCall& c) { c.out.data = nullptr; }, "out.data"},
        {"MetricNegativeSize", [](MergeCall& c) { c.metric.shape[2] = -4; }, "metric.shape[2]"},
        {"CpuTensorWithOrdinal", [](MergeCall& c) { c.x.device_ordinal = 1; }, "x.device_ordinal"},
        {"UnknownDeviceKind", [](MergeCall& c) { c.source_map.device_kind = 9; }, "source_map.device_kind"},
    };
    return cases;
}

class MergeInvalid : public ::testing::TestWithParam<InvalidCase> {
protected:
    MergeInvalid()
        : metric_(TK_DTYPE_F32, {2, 6, 4}),
          x_(TK_DTYPE_F32, {2, 6, 3}),
          size_(TK_DTYPE_F32, {2, 6}),
          out_(TK_DTYPE_F32, {2, 6, 3}, ArrayLayout{5, false, 0}),  // room for N rows and padded rows
          out_size_(TK_DTYPE_F32, {2, 6}),
          source_map_(TK_DTYPE_I32, {2, 6}),
          merge_count_(TK_DTYPE_I32, {2}) {
        for (int64_t b = 0; b < 2; ++b)
            for (int64_t t = 0; t < 6; ++t) {
                for (int64_t c = 0; c < 4; ++c)
                    metric_.set(b, t, c, std::sin(static_cast<double>(1 + b * 31 + t * 7 + c)));
                for (int64_t c = 0; c < 3; ++c) x_.set(b, t, c, static_cast<double>(b * 100 + t * 10 + c));
                size_.set(b, t, 0, 1.0);
            }
        for (HostArray* out : {&out_, &out_size_, &source_map_, &merge_count_}) out->fill_bytes(0xA5);
        call_.params.r = 2;
        call_.metric = metric_.desc();
        call_.x = x_.desc();
        call_.size = size_.desc();
        call_.out = out_.desc();
        call_.out.shape[1] = 4;  // N' = N - r
        call_.out_size = out_size_.desc();
        call_.out_size.shape[1] = 4;
        call_.source_map = source_map_.desc();
        call_.merge_count = merge_count_.desc();
    }

    // Status, message and untouched outputs of a rejected call.
    void expect_rejected(tk_status got, const InvalidCase& c) {
        EXPECT_EQ(got, c.status) << tk_status_name(got) << ": " << tk_last_error();
        const std::string message = tk_last_error();
        EXPECT_NE(message.find(c.names), std::string::npos)
            << "message \"" << message << "\" does not name " << c.names;
        EXPECT_TRUE(out_.bytes() == out_before_) << "a rejected call wrote to out";
        EXPECT_TRUE(out_size_.bytes() == out_size_before_) << "a rejected call wrote to out_size";
        EXPECT_TRUE(source_map_.bytes() == source_map_before_) << "a rejected call wrote to source_map";
        EXPECT_TRUE(merge_count_.bytes() == merge_count_before_) << "a rejected call wrote to merge_count";
        EXPECT_TRUE(x_.bytes() == x_before_ && metric_.bytes() == metric_before_ && size_.bytes() == size_before_)
            << "a rejected call wrote to an input";
    }

    void remember() {
        out_before_ = out_.bytes();
        out_size_before_ = out_size_.bytes();
        source_map_before_ = source_map_.bytes();
        merge_count_before_ = merge_count_.bytes();
        x_before_ = x_.bytes();
        metric_before_ = metric_.bytes();
        size_before_ = size_.bytes();
    }

    HostArray metric_, x_, size_, out_, out_size_, source_map_, merge_count_;
    std::vector<uint8_t> out_before_, out_size_before_, source_map_before_, merge_count_before_, x_before_,
        metric_before_, size_before_;
    MergeCall call_;
};

TEST_P(MergeInvalid, IsRejectedWithoutWriting) {
    const InvalidCase& c = GetParam();
    // The unbroken call passes validation (the workspace query checks params and metric like tk_merge).
    uint64_t bytes = 7;
    ASSERT_EQ(tk_merge_workspace_size(&call_.params, &call_.metric, &call_.x, &bytes), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(bytes, 0u);
    c.breaks(call_);
    remember();  // after the break: some cases write a bad value into an input
    expect_rejected(call_.merge(), c);
}

std::string invalid_case_name(const ::testing::TestParamInfo<InvalidCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Merge, MergeInvalid, ::testing::ValuesIn(invalid_merge_cases()), invalid_case_name);

// The unbroken call of MergeInvalid really is valid once the backend runs.
TEST_F(MergeInvalid, UnbrokenCallSucceeds) {
    EXPECT_EQ(call_.merge(), TK_STATUS_OK) << tk_last_error();
    EXPECT_STREQ(tk_last_error(), "");
    // Threshold mode with N output rows, and a non-NULL workspace, which the CPU does not need.
    call_.params.use_threshold = 1;
    call_.params.threshold = 0.5f;
    call_.out.shape[1] = 6;
    call_.out_size.shape[1] = 6;
    std::vector<uint8_t> workspace(32);
    call_.workspace = workspace.data();
    call_.workspace_bytes = workspace.size();
    EXPECT_EQ(call_.merge(), TK_STATUS_OK) << tk_last_error();
}

// ---- Devices --------------------------------------------------------------------------------------------

TEST_F(MergeInvalid, CudaTensorWithoutCudaIsUnavailable) {
    if (cuda_unavailable_reason().empty()) GTEST_SKIP() << "a CUDA device is present";
    remember();
    call_.metric.device_kind = TK_DEVICE_CUDA;
    expect_rejected(call_.merge(), {"", nullptr, "metric.device_ordinal", TK_STATUS_BACKEND_UNAVAILABLE});
    call_.metric.device_kind = TK_DEVICE_CPU;
    call_.source_map.device_kind = TK_DEVICE_CUDA;
    expect_rejected(call_.merge(), {"", nullptr, "source_map.device_ordinal", TK_STATUS_BACKEND_UNAVAILABLE});
    uint64_t bytes = 5;
    tk_tensor metric = call_.metric;
    metric.device_kind = TK_DEVICE_CUDA;
    EXPECT_EQ(tk_merge_workspace_size(&call_.params, &metric, &call_.x, &bytes), TK_STATUS_BACKEND_UNAVAILABLE);
    EXPECT_EQ(bytes, 5u);
    tk_tensor y = call_.out;
    y.device_kind = TK_DEVICE_CUDA;
    const tk_tensor map = call_.source_map;
    const tk_tensor out = call_.x;
    EXPECT_EQ(tk_unmerge(&y, &map, &out, nullptr), TK_STATUS_BACKEND_UNAVAILABLE);
}

TEST_F(MergeInvalid, CpuAndCudaTensorsMixed) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    remember();
    const DeviceBuffer x_device(x_.bytes().size());
    MergeCall cuda_x = call_;
    cuda_x.x = x_.device_desc(x_device.get(), 0);
    expect_rejected(cuda_x.merge(), {"", nullptr, "x.device"});
    const DeviceBuffer map_device(source_map_.bytes().size());
    MergeCall cuda_map = call_;
    cuda_map.source_map = source_map_.device_desc(map_device.get(), 0);
    expect_rejected(cuda_map.merge(), {"", nullptr, "source_map.device"});
    // A CUDA descriptor that points at host memory.
    MergeCall host_pointer = call_;
    host_pointer.metric.device_kind = TK_DEVICE_CUDA;
    expect_rejected(host_pointer.merge(), {"", nullptr, "metric.data"});
}

// A caller workspace on CUDA must hold tk_merge_workspace_size bytes of device memory.
TEST_F(MergeInvalid, CudaWorkspaceTooSmallOrOnHost) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    remember();
    const DeviceBuffer metric_d(metric_.bytes().size()), x_d(x_.bytes().size()), size_d(size_.bytes().size()),
        out_d(out_.bytes().size()), out_size_d(out_size_.bytes().size()), map_d(source_map_.bytes().size()),
        count_d(merge_count_.bytes().size());
    MergeCall cuda = call_;
    const auto on_device = [](tk_tensor t, const HostArray& host, const DeviceBuffer& buffer) {
        t.data = static_cast<uint8_t*>(buffer.get()) + (static_cast<const uint8_t*>(t.data) - host.bytes().data());
        t.device_kind = TK_DEVICE_CUDA;
        return t;
    };
    cuda.metric = on_device(call_.metric, metric_, metric_d);
    cuda.x = on_device(call_.x, x_, x_d);
    cuda.size = on_device(call_.size, size_, size_d);
    cuda.out = on_device(call_.out, out_, out_d);
    cuda.out_size = on_device(call_.out_size, out_size_, out_size_d);
    cuda.source_map = on_device(call_.source_map, source_map_, map_d);
    cuda.merge_count = on_device(call_.merge_count, merge_count_, count_d);
    uint64_t needed = 0;
    ASSERT_EQ(tk_merge_workspace_size(&cuda.params, &cuda.metric, &cuda.x, &needed), TK_STATUS_OK) << tk_last_error();
    std::vector<uint8_t> host_workspace(static_cast<size_t>(needed) + 64);
    cuda.workspace = host_workspace.data();
    cuda.workspace_bytes = host_workspace.size();
    expect_rejected(cuda.merge(), {"", nullptr, "workspace"});
    if (needed > 0) {
        const DeviceBuffer workspace(needed);
        cuda.workspace = workspace.get();
        cuda.workspace_bytes = needed - 1;
        expect_rejected(cuda.merge(), {"", nullptr, "workspace_bytes"});
    }
    cuda.workspace = nullptr;
    cuda.workspace_bytes = 8;
    expect_rejected(cuda.merge(), {"", nullptr, "workspace"});
}

// ---- tk_merge_match ----------------------------------------------------------------------------------------

struct MatchCase {
    std::string name;
    std::function<void(tk_tensor& metric, tk_tensor& dst, tk_tensor& best, tk_merge_params& p, uint64_t& ws)> breaks;
    std::string names;
};

void PrintTo(const MatchCase& c, std::ostream* os) { *os << c.name; }

std::vector<MatchCase> invalid_match_cases() {
    using T = tk_tensor;
    using P = tk_merge_params;
    return {
        {"NegativeR", [](T&, T&, T&, P& p, uint64_t&) { p.r = -3; }, "params->r"},
        {"BadOrder", [](T&, T&, T&, P& p, uint64_t&) { p.order = 7; }, "params->order"},
        {"MetricRank4", [](T& m, T&, T&, P&, uint64_t&) { m.rank = 4; }, "metric.rank"},
        {"MetricI64", [](T& m, T&, T&, P&, uint64_t&) { m.dtype = TK_DTYPE_I64; }, "metric.dtype"},
        {"MetricChannelsNotContiguous", [](T& m, T&, T&, P&, uint64_t&) { m.strides[2] = 3; }, "metric.strides[2]"},
        {"DstSourcesNotCeilHalf", [](T&, T& d, T&, P&, uint64_t&) { d.shape[1] = 2; }, "dst.shape[1]"},
        {"DstBatchDiffers", [](T&, T& d, T&, P&, uint64_t&) { d.shape[0] = 1; }, "dst.shape[0]"},
        {"BestSourcesDiffer", [](T&, T&, T& b, P&, uint64_t&) { b.shape[1] = 3; }, "best.shape[1]"},
        {"DstI64", [](T&, T& d, T&, P&, uint64_t&) { d.dtype = TK_DTYPE_I64; }, "dst.dtype"},
        {"DstF32", [](T&, T& d, T&, P&, uint64_t&) { d.dtype = TK_DTYPE_F32; }, "dst.dtype"},
        {"BestF16", [](T&, T&, T& b, P&, uint64_t&) { b.dtype = TK_DTYPE_F16; }, "best.dtype"},
        {"BestOverlapsDst", [](T&, T& d, T& b, P&, uint64_t&) { b.data = d.data; }, "disjoint from dst"},
        {"DstOverlapsMetric", [](T& m, T& d, T&, P&, uint64_t&) { d.data = m.data; }, "disjoint from metric"},
        {"DstOverlapsItself", [](T&, T& d, T&, P&, uint64_t&) { d.strides[0] = 1; }, "dst.strides"},
        {"WorkspaceBytesWithoutWorkspace", [](T&, T&, T&, P&, uint64_t& ws) { ws = 16; }, "workspace"},
    };
}

class MergeMatchInvalid : public ::testing::TestWithParam<MatchCase> {};

TEST_P(MergeMatchInvalid, IsRejectedWithoutWriting) {
    const MatchCase& c = GetParam();
    HostArray metric(TK_DTYPE_F32, {2, 7, 4});
    for (int64_t b = 0; b < 2; ++b)
        for (int64_t t = 0; t < 7; ++t)
            for (int64_t k = 0; k < 4; ++k) metric.set(b, t, k, std::cos(static_cast<double>(b * 13 + t * 5 + k)));
    HostArray dst(TK_DTYPE_I32, {2, 4});
    HostArray best(TK_DTYPE_F32, {2, 4});
    dst.fill_bytes(0xA5);
    best.fill_bytes(0xA5);
    const std::vector<uint8_t> dst_before = dst.bytes();
    const std::vector<uint8_t> best_before = best.bytes();
    tk_tensor m = metric.desc();
    tk_tensor d = dst.desc();
    tk_tensor b = best.desc();
    tk_merge_params p{};
    p.r = 1;
    uint64_t workspace_bytes = 0;
    c.breaks(m, d, b, p, workspace_bytes);
    const tk_status status = tk_merge_match(&p, &m, &d, &b, nullptr, workspace_bytes, nullptr);
    EXPECT_EQ(status, TK_STATUS_INVALID_ARGUMENT) << tk_last_error();
    EXPECT_NE(std::string(tk_last_error()).find(c.names), std::string::npos)
        << "message \"" << tk_last_error() << "\" does not name " << c.names;
    EXPECT_TRUE(dst.bytes() == dst_before) << "a rejected call wrote to dst";
    EXPECT_TRUE(best.bytes() == best_before) << "a rejected call wrote to best";
}

std::string match_case_name(const ::testing::TestParamInfo<MatchCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Merge, MergeMatchInvalid, ::testing::ValuesIn(invalid_match_cases()), match_case_name);

TEST(MergeMatchInvalidNulls, NullArgumentsAreNamed) {
    HostArray metric(TK_DTYPE_F32, {1, 4, 2});
    HostArray dst(TK_DTYPE_I32, {1, 2});
    HostArray best(TK_DTYPE_F32, {1, 2});
    const tk_tensor m = metric.desc();
    const tk_tensor d = dst.desc();
    const tk_tensor b = best.desc();
    const tk_merge_params p{};
    struct {
        const tk_merge_params* p;
        const tk_tensor* m;
        const tk_tensor* d;
        const tk_tensor* b;
        const char* names;
    } cases[] = {{nullptr, &m, &d, &b, "params"},
                 {&p, nullptr, &d, &b, "metric"},
                 {&p, &m, nullptr, &b, "dst"},
                 {&p, &m, &d, nullptr, "best"}};
    for (const auto& c : cases) {
        EXPECT_EQ(tk_merge_match(c.p, c.m, c.d, c.b, nullptr, 0, nullptr), TK_STATUS_INVALID_ARGUMENT);
        EXPECT_NE(std::string(tk_last_error()).find(c.names), std::string::npos) << tk_last_error();
    }
}

// ---- tk_unmerge ----------------------------------------------------------------------------------------------

struct UnmergeCase {
    std::string name;
    std::function<void(tk_tensor& y, tk_tensor& map, tk_tensor& out, HostArray& map_data)> breaks;
    std::string names;
};

void PrintTo(const UnmergeCase& c, std::ostream* os) { *os << c.name; }

std::vector<UnmergeCase> invalid_unmerge_cases() {
    using T = tk_tensor;
    return {
        // y has N' = 4 rows: index 4 of item 1, token 3 is one past the end.
        {"IndexPastEnd", [](T&, T&, T&, HostArray& m) { m.set(1, 3, 0, 4); }, "source_map[1, 3]"},
        {"NegativeIndex", [](T&, T&, T&, HostArray& m) { m.set(0, 5, 0, -1); }, "source_map[0, 5]"},
        {"YRank2", [](T& y, T&, T&, HostArray&) { y.rank = 2; }, "y.rank"},
        {"YI32", [](T& y, T&, T&, HostArray&) { y.dtype = TK_DTYPE_I32; }, "y.dtype"},
        {"YChannelsNotContiguous", [](T& y, T&, T&, HostArray&) { y.strides[2] = 2; }, "y.strides[2]"},
        {"MapRank3", [](T&, T& m, T&, HostArray&) { m.rank = 3; }, "source_map.rank"},
        {"MapF32", [](T&, T& m, T&, HostArray&) { m.dtype = TK_DTYPE_F32; }, "source_map.dtype"},
        {"MapBatchDiffers", [](T&, T& m, T&, HostArray&) { m.shape[0] = 1; }, "source_map.shape[0]"},
        {"OutTokensDifferFromMap", [](T&, T&, T& o, HostArray&) { o.shape[1] = 5; }, "out.shape[1]"},
        {"OutChannelsDiffer", [](T&, T&, T& o, HostArray&) { o.shape[2] = 2; }, "out.shape[2]"},
        {"OutDtypeDiffersFromY", [](T&, T&, T& o, HostArray&) { o.dtype = TK_DTYPE_F16; }, "out.dtype"},
        {"OutOverlapsY", [](T& y, T&, T& o, HostArray&) { o.data = y.data; }, "disjoint from y"},
        {"OutOverlapsMap", [](T&, T& m, T& o, HostArray&) { o.data = m.data; }, "disjoint from source_map"},
        {"OutOverlapsItself", [](T&, T&, T& o, HostArray&) { o.strides[1] = 2; }, "out.strides"},
    };
}

class UnmergeInvalid : public ::testing::TestWithParam<UnmergeCase> {};

TEST_P(UnmergeInvalid, IsRejectedWithoutWriting) {
    const UnmergeCase& c = GetParam();
    for (tk_dtype index : {TK_DTYPE_I32, TK_DTYPE_I64}) {
        SCOPED_TRACE(index == TK_DTYPE_I32 ? "i32 map" : "i64 map");
        HostArray y(TK_DTYPE_F32, {2, 4, 3});
        HostArray map(index, {2, 6});
        HostArray out(TK_DTYPE_F32, {2, 6, 3});
        for (int64_t b = 0; b < 2; ++b) {
            for (int64_t t = 0; t < 6; ++t) map.set(b, t, 0, static_cast<double>(t % 4));
            for (int64_t k = 0; k < 4; ++k)
                for (int64_t ch = 0; ch < 3; ++ch) y.set(b, k, ch, static_cast<double>(k));
        }
        out.fill_bytes(0xA5);
        const std::vector<uint8_t> out_before = out.bytes();
        tk_tensor yd = y.desc();
        tk_tensor md = map.desc();
        tk_tensor od = out.desc();
        ASSERT_EQ(tk_unmerge(&yd, &md, &od, nullptr), TK_STATUS_OK) << "the unbroken call: " << tk_last_error();
        out.fill_bytes(0xA5);
        c.breaks(yd, md, od, map);
        EXPECT_EQ(tk_unmerge(&yd, &md, &od, nullptr), TK_STATUS_INVALID_ARGUMENT) << tk_last_error();
        EXPECT_NE(std::string(tk_last_error()).find(c.names), std::string::npos)
            << "message \"" << tk_last_error() << "\" does not name " << c.names;
        EXPECT_TRUE(out.bytes() == out_before) << "a rejected call wrote to out";
    }
}

std::string unmerge_case_name(const ::testing::TestParamInfo<UnmergeCase>& info) { return info.param.name; }

INSTANTIATE_TEST_SUITE_P(Merge, UnmergeInvalid, ::testing::ValuesIn(invalid_unmerge_cases()), unmerge_case_name);

TEST(UnmergeInvalidNulls, NullArgumentsAreNamed) {
    HostArray y(TK_DTYPE_F32, {1, 2, 2});
    HostArray map(TK_DTYPE_I32, {1, 3});
    HostArray out(TK_DTYPE_F32, {1, 3, 2});
    const tk_tensor yd = y.desc();
    const tk_tensor md = map.desc();
    const tk_tensor od = out.desc();
    EXPECT_EQ(tk_unmerge(nullptr, &md, &od, nullptr), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("y"), std::string::npos) << tk_last_error();
    EXPECT_EQ(tk_unmerge(&yd, nullptr, &od, nullptr), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("source_map"), std::string::npos) << tk_last_error();
    EXPECT_EQ(tk_unmerge(&yd, &md, nullptr, nullptr), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("out"), std::string::npos) << tk_last_error();
}

// ---- Queries -------------------------------------------------------------------------------------------------

TEST(MergeOutputTokensInvalid, EachArgumentIsNamed) {
    tk_merge_params p{};
    p.r = 2;
    int64_t r = -7;
    int64_t rows = -7;
    EXPECT_EQ(tk_merge_output_tokens(nullptr, 10, &r, &rows), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("params"), std::string::npos) << tk_last_error();
    EXPECT_EQ(tk_merge_output_tokens(&p, -1, &r, &rows), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("tokens"), std::string::npos) << tk_last_error();
    EXPECT_EQ(tk_merge_output_tokens(&p, int64_t{1} << 31, &r, &rows), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("tokens"), std::string::npos) << tk_last_error();
    EXPECT_EQ(tk_merge_output_tokens(&p, 10, nullptr, &rows), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("effective_r"), std::string::npos) << tk_last_error();
    EXPECT_EQ(tk_merge_output_tokens(&p, 10, &r, nullptr), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("output_tokens"), std::string::npos) << tk_last_error();
    p.r = -1;
    EXPECT_EQ(tk_merge_output_tokens(&p, 10, &r, &rows), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("params->r"), std::string::npos) << tk_last_error();
    p.r = 2;
    p.threshold = std::numeric_limits<float>::quiet_NaN();
    EXPECT_EQ(tk_merge_output_tokens(&p, 10, &r, &rows), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("params->threshold"), std::string::npos) << tk_last_error();
    EXPECT_EQ(r, -7);
    EXPECT_EQ(rows, -7);
    // 2^31 - 1 tokens is the largest count i32 indices can address.
    p.threshold = 0;
    EXPECT_EQ(tk_merge_output_tokens(&p, (int64_t{1} << 31) - 1, &r, &rows), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(r, 2);
}

TEST(MergeWorkspaceSizeInvalid, EachArgumentIsNamed) {
    tk_merge_params p{};
    HostArray metric(TK_DTYPE_F32, {1, 4, 2});
    HostArray x(TK_DTYPE_F32, {1, 4, 3});
    tk_tensor m = metric.desc();
    const tk_tensor xd = x.desc();
    uint64_t bytes = 3;
    EXPECT_EQ(tk_merge_workspace_size(&p, &m, &xd, nullptr), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("bytes"), std::string::npos) << tk_last_error();
    EXPECT_EQ(tk_merge_workspace_size(nullptr, &m, &xd, &bytes), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("params"), std::string::npos) << tk_last_error();
    EXPECT_EQ(tk_merge_workspace_size(&p, nullptr, &xd, &bytes), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("metric"), std::string::npos) << tk_last_error();
    m.rank = 2;
    EXPECT_EQ(tk_merge_workspace_size(&p, &m, &xd, &bytes), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("metric.rank"), std::string::npos) << tk_last_error();
    EXPECT_EQ(bytes, 3u) << "a rejected query wrote its result";
    m.rank = 3;
    EXPECT_EQ(tk_merge_workspace_size(&p, &m, nullptr, &bytes), TK_STATUS_OK) << "x is optional: " << tk_last_error();
    EXPECT_EQ(bytes, 0u) << "the CPU needs no workspace";
}

}  // namespace
}  // namespace tkt
