// Every class of invalid pooling argument (SPEC "Errors"): the status, a message naming the
// argument, and no byte written to any output.
#include <gtest/gtest.h>

#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "support.hpp"
#include "tokenkernels/tokenkernels.h"

namespace tkt {
namespace {

// A valid call (2x2 window average of x [2, 2, 4, 4, 3] f32 into out [2, 2, 2, 2, 3]) that each case
// breaks in one way.
struct PoolCall {
    tk_pool_params params{};
    tk_tensor x{};
    tk_tensor out{};
    bool null_params = false;
    bool null_x = false;
    bool null_out = false;
    void* workspace = nullptr;
    uint64_t workspace_bytes = 0;

    tk_status pool() const {
        return tk_pool(null_params ? nullptr : &params, null_x ? nullptr : &x, null_out ? nullptr : &out, workspace,
                       workspace_bytes, nullptr);
    }
    tk_status workspace_size(uint64_t* bytes) const {
        return tk_pool_workspace_size(null_params ? nullptr : &params, null_x ? nullptr : &x,
                                      null_out ? nullptr : &out, bytes);
    }
};

struct InvalidCase {
    std::string name;
    std::function<void(PoolCall&)> breaks;
    tk_status status;
    std::string names;  // what tk_last_error() must mention: the argument
};

void PrintTo(const InvalidCase& c, std::ostream* os) { *os << c.name; }

InvalidCase invalid(std::string name, std::function<void(PoolCall&)> breaks, std::string names) {
    return {std::move(name), std::move(breaks), TK_STATUS_INVALID_ARGUMENT, std::move(names)};
}

std::vector<InvalidCase> invalid_cases() {
    std::vector<InvalidCase> cases = {
        invalid("NullParams", [](PoolCall& c) { c.null_params = true; }, "params"),
        invalid("NullX", [](PoolCall& c) { c.null_x = true; }, "x"),
        invalid("NullOut", [](PoolCall& c) { c.null_out = true; }, "out"),
        invalid("UnknownMode", [](PoolCall& c) { c.params.mode = 5; }, "params->mode"),
        invalid("NegativeMode", [](PoolCall& c) { c.params.mode = -1; }, "params->mode"),
        invalid("KernelZero", [](PoolCall& c) { c.params.kernel[1] = 0; }, "params->kernel[1]"),
        invalid("KernelNegative", [](PoolCall& c) { c.params.kernel[0] = -2; }, "params->kernel[0]"),
        invalid("StrideZero", [](PoolCall& c) { c.params.stride[2] = 0; }, "params->stride[2]"),
        invalid("StrideNegative", [](PoolCall& c) { c.params.stride[0] = -1; }, "params->stride[0]"),
        invalid("KernelLargerThanInput", [](PoolCall& c) { c.params.kernel[2] = 5; }, "params->kernel[2]"),
        invalid("KernelLargerThanInputT", [](PoolCall& c) { c.params.kernel[0] = 3; }, "params->kernel[0]"),
        invalid("AdaptiveOutputSizeZero",
                [](PoolCall& c) {
                    c.params.mode = TK_POOL_ADAPTIVE_AVG;
                    c.params.output_size[0] = 2;
                    c.params.output_size[1] = 0;
                    c.params.output_size[2] = 2;
                },
                "params->output_size[1]"),
        invalid("AdaptiveOutputSizeNegative",
                [](PoolCall& c) {
                    c.params.mode = TK_POOL_ADAPTIVE_MAX;
                    c.params.output_size[0] = 2;
                    c.params.output_size[1] = 2;
                    c.params.output_size[2] = -2;
                },
                "params->output_size[2]"),
        invalid("BilinearChangesT",
                [](PoolCall& c) {
                    c.params.mode = TK_POOL_BILINEAR;
                    c.params.output_size[0] = 1;
                    c.params.output_size[1] = 2;
                    c.params.output_size[2] = 2;
                    c.out.shape[1] = 1;
                },
                "params->output_size[0]"),
        invalid("XRank4", [](PoolCall& c) { c.x.rank = 4; }, "x.rank"),
        invalid("OutRank6", [](PoolCall& c) { c.out.rank = 6; }, "out.rank"),
        invalid("XRank0", [](PoolCall& c) { c.x.rank = 0; }, "x.rank"),
        invalid("XRankAboveMax", [](PoolCall& c) { c.x.rank = TK_MAX_RANK + 1; }, "x.rank"),
        invalid("IntegerDtypeI32",
                [](PoolCall& c) {
                    c.x.dtype = TK_DTYPE_I32;
                    c.out.dtype = TK_DTYPE_I32;
                },
                "x.dtype"),
        invalid("IntegerDtypeI64", [](PoolCall& c) { c.out.dtype = TK_DTYPE_I64; }, "out.dtype"),
        invalid("UnknownDtype", [](PoolCall& c) { c.x.dtype = 9; }, "x.dtype"),
        invalid("DtypeMismatch", [](PoolCall& c) { c.out.dtype = TK_DTYPE_F16; }, "out.dtype"),
        invalid("XNegativeSize", [](PoolCall& c) { c.x.shape[1] = -2; }, "x.shape[1]"),
        invalid("XChannelsNotContiguous", [](PoolCall& c) { c.x.strides[4] = 2; }, "x.strides[4]"),
        invalid("OutChannelsNotContiguous", [](PoolCall& c) { c.out.strides[4] = 2; }, "out.strides[4]"),
        invalid("XZeroStride", [](PoolCall& c) { c.x.strides[2] = 0; }, "x.strides[2]"),
        invalid("XNegativeStride", [](PoolCall& c) { c.x.strides[1] = -48; }, "x.strides[1]"),
        // A zero stride on a dimension of size > 1 makes the output overlap itself.
        invalid("OutZeroStride", [](PoolCall& c) { c.out.strides[3] = 0; }, "out.strides[3]"),
        invalid("OutNegativeStride", [](PoolCall& c) { c.out.strides[0] = -24; }, "out.strides[0]"),
        // Positive strides that still alias: W steps by 1 over 3 channels, or H rows coincide with W.
        invalid("OutOverlapsItselfAlongW", [](PoolCall& c) { c.out.strides[3] = 1; }, "out.strides"),
        invalid("OutOverlapsItselfAlongH", [](PoolCall& c) { c.out.strides[2] = 3; }, "out.strides"),
        invalid("OutOverlapsX",
                [](PoolCall& c) { c.out.data = static_cast<float*>(c.x.data) + 100; }, "disjoint from x"),
        invalid("XNullData", [](PoolCall& c) { c.x.data = nullptr; }, "x.data"),
        // Half an f32 off: every backend reads whole elements (a misaligned one faults a CUDA kernel).
        invalid("XDataMisaligned", [](PoolCall& c) { c.x.data = static_cast<char*>(c.x.data) + 2; },
                "x.data: expected a pointer aligned to 4 bytes"),
        invalid("OutDataMisaligned", [](PoolCall& c) { c.out.data = static_cast<char*>(c.out.data) + 1; }, "out.data"),
        invalid("OutNullData", [](PoolCall& c) { c.out.data = nullptr; }, "out.data"),
        invalid("CpuTensorWithOrdinal", [](PoolCall& c) { c.x.device_ordinal = 1; }, "x.device_ordinal"),
        invalid("UnknownDeviceKind", [](PoolCall& c) { c.out.device_kind = 7; }, "out.device_kind"),
        invalid("WorkspaceBytesWithoutWorkspace", [](PoolCall& c) { c.workspace_bytes = 64; }, "workspace"),
        // Pooling needs no scratch, but a workspace given must still be the caller's spare memory.
        invalid("WorkspaceOverlapsX", [](PoolCall& c) { c.workspace = static_cast<float*>(c.x.data) + 5; c.workspace_bytes = 8; },
                "disjoint from x"),
        invalid("WorkspaceOverlapsOut", [](PoolCall& c) { c.workspace = c.out.data; c.workspace_bytes = 1; }, "disjoint from out"),
        invalid("XStrideBytesOverflow", [](PoolCall& c) { c.x.strides[0] = int64_t{1} << 62; }, "x.strides"),
        invalid("OutEndWrapsAddressSpace", [](PoolCall& c) { c.out.data = reinterpret_cast<void*>(uintptr_t{0} - 64); },
                "out.strides"),
    };
    // Each output dimension (B, T', H', W', C) off by one; the last is a channel-count mismatch.
    for (int d = 0; d < 5; ++d) {
        const std::string index = "[" + std::to_string(d) + "]";
        cases.push_back(invalid("OutShape" + std::to_string(d) + "Mismatch", [d](PoolCall& c) { c.out.shape[d] += 1; },
                                "out.shape" + index));
    }
    cases.push_back(invalid("XChannelsDifferFromOut", [](PoolCall& c) { c.x.shape[4] = 2; }, "out.shape[4]"));
    return cases;
}

class PoolInvalid : public ::testing::TestWithParam<InvalidCase> {
protected:
    PoolInvalid() : x_(TK_DTYPE_F32, {2, 2, 4, 4, 3}), out_(TK_DTYPE_F32, {2, 2, 2, 2, 3}) {
        x_.fill_random(seed_from_name("PoolInvalid"));
        out_.fill_bytes(0xA5);
        call_.params.mode = TK_POOL_WINDOW_AVG;
        for (int d = 0; d < 3; ++d) {
            call_.params.kernel[d] = d == 0 ? 1 : 2;
            call_.params.stride[d] = d == 0 ? 1 : 2;
        }
        call_.x = x_.desc();
        call_.out = out_.desc();
    }

    HostTensor x_;
    HostTensor out_;
    PoolCall call_;
};

TEST_P(PoolInvalid, IsRejectedWithoutWriting) {
    const InvalidCase& c = GetParam();
    // The unbroken call is valid, so the case's one change is what gets it rejected.
    uint64_t bytes = 0;
    ASSERT_EQ(call_.workspace_size(&bytes), TK_STATUS_OK) << tk_last_error();

    const std::vector<uint8_t> x_before = x_.bytes();
    const std::vector<uint8_t> out_before = out_.bytes();
    c.breaks(call_);
    EXPECT_EQ(call_.pool(), c.status) << tk_last_error();
    const std::string message = tk_last_error();
    EXPECT_NE(message.find(c.names), std::string::npos) << "message \"" << message << "\" does not name " << c.names;
    EXPECT_TRUE(out_.bytes() == out_before) << "a rejected call wrote to out";
    EXPECT_TRUE(x_.bytes() == x_before) << "a rejected call wrote to x";

    // The workspace query validates the same arguments (it has no workspace argument of its own).
    if (call_.workspace_bytes == 0) {
        bytes = 12345;
        EXPECT_EQ(call_.workspace_size(&bytes), c.status) << tk_last_error();
        EXPECT_NE(std::string(tk_last_error()).find(c.names), std::string::npos) << tk_last_error();
        EXPECT_EQ(bytes, 12345u) << "a rejected query wrote its result";
    }
}

std::string invalid_case_name(const ::testing::TestParamInfo<InvalidCase>& param) { return param.param.name; }

INSTANTIATE_TEST_SUITE_P(Pool, PoolInvalid, ::testing::ValuesIn(invalid_cases()), invalid_case_name);

// Checks a rejected call: status, the message naming `names`, out's bytes unchanged.
void expect_rejected(tk_status got, tk_status want, const std::string& names, const HostTensor& out,
                     const std::vector<uint8_t>& out_before) {
    EXPECT_EQ(got, want) << tk_status_name(got) << ": " << tk_last_error();
    EXPECT_NE(std::string(tk_last_error()).find(names), std::string::npos)
        << "message \"" << tk_last_error() << "\" does not name " << names;
    EXPECT_TRUE(out.bytes() == out_before) << "a rejected call wrote to out";
}

// CUDA tensors: BACKEND_UNAVAILABLE without a usable CUDA backend; with one, CPU/CUDA mixes and
// pointers of the wrong kind are invalid arguments.
class PoolInvalidDevice : public PoolInvalid {};

TEST_F(PoolInvalidDevice, CudaTensorWithoutCudaIsUnavailable) {
    if (cuda_unavailable_reason().empty()) GTEST_SKIP() << "a CUDA device is present";
    const std::vector<uint8_t> out_before = out_.bytes();
    call_.x.device_kind = TK_DEVICE_CUDA;
    expect_rejected(call_.pool(), TK_STATUS_BACKEND_UNAVAILABLE, "x.device_ordinal", out_, out_before);
    call_.x.device_kind = TK_DEVICE_CPU;
    call_.out.device_kind = TK_DEVICE_CUDA;
    expect_rejected(call_.pool(), TK_STATUS_BACKEND_UNAVAILABLE, "out.device_ordinal", out_, out_before);
}

TEST_F(PoolInvalidDevice, CpuAndCudaTensorsMixed) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    const std::vector<uint8_t> out_before = out_.bytes();
    const DeviceBuffer out_device(out_.bytes().size());
    PoolCall cuda_out = call_;
    cuda_out.out = out_.device_desc(out_device.get(), 0);
    expect_rejected(cuda_out.pool(), TK_STATUS_INVALID_ARGUMENT, "out.device", out_, out_before);

    // out is checked against x, so the message names out either way round.
    const DeviceBuffer x_device(x_.bytes().size());
    PoolCall cuda_x = call_;
    cuda_x.x = x_.device_desc(x_device.get(), 0);
    expect_rejected(cuda_x.pool(), TK_STATUS_INVALID_ARGUMENT, "out.device", out_, out_before);
}

TEST_F(PoolInvalidDevice, CudaTensorWithHostPointerOrMissingDevice) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    const std::vector<uint8_t> out_before = out_.bytes();
    // Both descriptors say CUDA, but out points at pageable host memory.
    const DeviceBuffer x_device(x_.bytes().size());
    PoolCall host_out = call_;
    host_out.x = x_.device_desc(x_device.get(), 0);
    host_out.out.device_kind = TK_DEVICE_CUDA;
    expect_rejected(host_out.pool(), TK_STATUS_INVALID_ARGUMENT, "out.data", out_, out_before);

    // Device memory one byte off an f32 boundary: refused before any kernel could fault on it.
    PoolCall misaligned = call_;
    misaligned.x = x_.device_desc(static_cast<char*>(x_device.get()) + 1, 0);
    const DeviceBuffer out_device(out_.bytes().size());
    misaligned.out = out_.device_desc(out_device.get(), 0);
    expect_rejected(misaligned.pool(), TK_STATUS_INVALID_ARGUMENT, "x.data", out_, out_before);

    int32_t count = 0;
    ASSERT_EQ(tk_cuda_device_count(&count), TK_STATUS_OK);
    PoolCall missing = call_;
    missing.x = x_.device_desc(x_device.get(), count);  // one past the last device
    expect_rejected(missing.pool(), TK_STATUS_INVALID_ARGUMENT, "x.device_ordinal", out_, out_before);
}

// A stream of another device than the tensors' is refused by name before anything is enqueued. Needs
// two devices.
TEST_F(PoolInvalidDevice, StreamOfAnotherDevice) {
    const std::string why = cuda_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << why;
    int32_t count = 0;
    ASSERT_EQ(tk_cuda_device_count(&count), TK_STATUS_OK);
    if (count < 2) GTEST_SKIP() << "one CUDA device: no stream of another device to pass";
    const std::vector<uint8_t> out_before = out_.bytes();
    const DeviceBuffer x_device(x_.bytes().size());
    const DeviceBuffer out_device(out_.bytes().size());
    PoolCall on_device = call_;
    on_device.x = x_.device_desc(x_device.get(), 0);
    on_device.out = out_.device_desc(out_device.get(), 0);
    tk_stream other = nullptr;
    ASSERT_EQ(tk_cuda_stream_create(1, &other), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(tk_pool(&on_device.params, &on_device.x, &on_device.out, nullptr, 0, other), TK_STATUS_INVALID_ARGUMENT)
        << tk_last_error();
    EXPECT_NE(std::string(tk_last_error()).find("stream: expected a stream of CUDA device 0"), std::string::npos)
        << tk_last_error();
    EXPECT_EQ(tk_cuda_stream_destroy(other), TK_STATUS_OK) << tk_last_error();
}

// ---- tk_pool_output_shape -----------------------------------------------------------------------

struct OutputShapeCase {
    std::string name;
    tk_pool_params params;
    std::vector<int64_t> input_shape;  // empty: pass NULL
    bool null_params;
    bool null_output;
    std::string names;
};

void PrintTo(const OutputShapeCase& c, std::ostream* os) { *os << c.name; }

tk_pool_params window_params(int32_t kt, int32_t kh, int32_t kw) {
    tk_pool_params p{};
    p.mode = TK_POOL_WINDOW_MAX;
    p.kernel[0] = kt;
    p.kernel[1] = kh;
    p.kernel[2] = kw;
    p.stride[0] = p.stride[1] = p.stride[2] = 1;
    return p;
}

tk_pool_params adaptive_params(int32_t t, int32_t h, int32_t w) {
    tk_pool_params p{};
    p.mode = TK_POOL_ADAPTIVE_AVG;
    p.output_size[0] = t;
    p.output_size[1] = h;
    p.output_size[2] = w;
    return p;
}

std::vector<OutputShapeCase> output_shape_cases() {
    const std::vector<int64_t> shape = {1, 2, 4, 4, 3};
    tk_pool_params unknown_mode = window_params(1, 2, 2);
    unknown_mode.mode = 17;
    tk_pool_params bilinear = adaptive_params(3, 2, 2);
    bilinear.mode = TK_POOL_BILINEAR;
    return {
        {"NullParams", window_params(1, 2, 2), shape, true, false, "params"},
        {"NullInputShape", window_params(1, 2, 2), {}, false, false, "input_shape"},
        {"NullOutputShape", window_params(1, 2, 2), shape, false, true, "output_shape"},
        {"UnknownMode", unknown_mode, shape, false, false, "params->mode"},
        {"NegativeInputSize", window_params(1, 1, 1), {1, 2, -4, 4, 3}, false, false, "input_shape[2]"},
        {"KernelLargerThanInput", window_params(3, 2, 2), shape, false, false, "params->kernel[0]"},
        {"KernelZero", window_params(1, 1, 0), shape, false, false, "params->kernel[2]"},
        {"AdaptiveFromEmptyDim", adaptive_params(1, 1, 1), {1, 2, 0, 4, 3}, false, false, "input_shape[2]"},
        {"AdaptiveOutputZero", adaptive_params(0, 1, 1), shape, false, false, "params->output_size[0]"},
        {"BilinearChangesT", bilinear, shape, false, false, "params->output_size[0]"},
    };
}

class PoolOutputShapeInvalid : public ::testing::TestWithParam<OutputShapeCase> {};

TEST_P(PoolOutputShapeInvalid, IsRejectedWithoutWriting) {
    const OutputShapeCase& c = GetParam();
    int64_t output[5] = {-7, -7, -7, -7, -7};
    const tk_status status = tk_pool_output_shape(c.null_params ? nullptr : &c.params,
                                                  c.input_shape.empty() ? nullptr : c.input_shape.data(),
                                                  c.null_output ? nullptr : output);
    EXPECT_EQ(status, TK_STATUS_INVALID_ARGUMENT) << tk_last_error();
    EXPECT_NE(std::string(tk_last_error()).find(c.names), std::string::npos)
        << "message \"" << tk_last_error() << "\" does not name " << c.names;
    for (int64_t v : output) EXPECT_EQ(v, -7) << "a rejected query wrote its result";
}

std::string output_shape_case_name(const ::testing::TestParamInfo<OutputShapeCase>& param) {
    return param.param.name;
}

INSTANTIATE_TEST_SUITE_P(Pool, PoolOutputShapeInvalid, ::testing::ValuesIn(output_shape_cases()),
                         output_shape_case_name);

TEST(PoolWorkspaceSize, NullBytesIsRejected) {
    const tk_pool_params params = window_params(1, 1, 1);
    HostTensor x(TK_DTYPE_F32, {1, 1, 1, 1, 1});
    HostTensor out(TK_DTYPE_F32, {1, 1, 1, 1, 1});
    const tk_tensor x_desc = x.desc();
    const tk_tensor out_desc = out.desc();
    EXPECT_EQ(tk_pool_workspace_size(&params, &x_desc, &out_desc, nullptr), TK_STATUS_INVALID_ARGUMENT);
    EXPECT_NE(std::string(tk_last_error()).find("bytes"), std::string::npos) << tk_last_error();
}

// A workspace that is not needed may still be passed.
TEST(PoolWorkspace, UnneededWorkspaceIsAccepted) {
    const tk_pool_params params = window_params(1, 1, 1);
    HostTensor x(TK_DTYPE_F32, {1, 1, 1, 1, 2});
    x.fill_random(seed_from_name("UnneededWorkspaceIsAccepted"));
    HostTensor out(TK_DTYPE_F32, {1, 1, 1, 1, 2});
    const tk_tensor x_desc = x.desc();
    const tk_tensor out_desc = out.desc();
    std::vector<uint8_t> workspace(64);
    EXPECT_EQ(tk_pool(&params, &x_desc, &out_desc, workspace.data(), workspace.size(), nullptr), TK_STATUS_OK)
        << tk_last_error();
    EXPECT_EQ(out.values(), x.values());
}

}  // namespace
}  // namespace tkt
