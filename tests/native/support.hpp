// Test-side helpers: dtype conversions, strided host tensors, random inputs, CUDA availability and
// device buffers. Everything here goes through the public C ABI only.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "tokenkernels/tokenkernels.h"

namespace tkt {

// ---- Scalar types -------------------------------------------------------------------------------
// Written here rather than borrowed from the library so that a conversion bug there cannot hide
// behind the same bug in the test. All roundings are to nearest, ties to even.

uint16_t float_to_half(float value);
float half_to_float(uint16_t bits);
uint16_t float_to_bf16(float value);
float bf16_to_float(uint16_t bits);

// value rounded to the nearest number representable in dtype (f32, f16 or bf16).
float round_to_dtype(float value, tk_dtype dtype);
// "f32", "f16", "bf16": used in test names.
const char* dtype_label(tk_dtype dtype);

// The norm the contract divides a row by for cosine similarity, from its float64 sum of squares:
// max(|v|, 1e-12), or +inf when that sum is beyond the float32 range (|v| above about 1.8e19), where
// the contract counts the row as the zero vector (dividing by +inf gives it).
double cosine_norm(double sum_of_squares);

// ---- Strided [B, T, H, W, C] tensors in host memory ----------------------------------------------

// How a [B, T, H, W, C] view sits inside a larger buffer. The default is dense row-major.
struct Layout {
    int64_t pad_c = 0;        // unused elements after each row of C channels (W stride = C + pad_c)
    int64_t pad_w = 0;        // unused pixels after each image row (H stride = W stride * (W + pad_w))
    int64_t frame_step = 1;   // the view takes every frame_step-th frame of a longer clip
    bool time_major = false;  // T is the outermost dimension (B stride < T stride)
    int64_t offset = 0;       // elements before the first one; 1 misaligns the data pointer
};

using Shape5 = std::array<int64_t, 5>;

// A view of shape [B, T, H, W, C] with `layout`, owning its whole backing buffer, so that a test can
// check that an op reads only the view and writes nothing outside it.
class HostTensor {
public:
    HostTensor(tk_dtype dtype, const Shape5& shape, const Layout& layout = Layout());

    tk_dtype dtype() const { return dtype_; }
    const Shape5& shape() const { return shape_; }

    double get(int64_t b, int64_t t, int64_t h, int64_t w, int64_t c) const;
    // Stores value rounded to the dtype.
    void set(int64_t b, int64_t t, int64_t h, int64_t w, int64_t c, float value);

    // The view's elements in row-major [B, T, H, W, C] order, as doubles.
    std::vector<double> values() const;
    // Fills the view with values uniform in [-1.5, 2.5) * scale from a generator seeded with seed.
    void fill_random(uint64_t seed, float scale = 1.0f);
    // Fills the whole backing buffer (view and gaps) with the byte pattern.
    void fill_bytes(uint8_t pattern);
    // Fills every gap element of the buffer (not in the view) with NaN, so that a read outside the
    // view poisons the result.
    void fill_gaps_with_nan();

    // Descriptor of the view, on the CPU or, with device_buffer, at the same offset in a device copy
    // of the backing buffer.
    tk_tensor desc() const;
    tk_tensor device_desc(void* device_buffer, int32_t ordinal) const;

    std::vector<uint8_t>& bytes() { return bytes_; }
    const std::vector<uint8_t>& bytes() const { return bytes_; }
    // Whether the element at a buffer offset belongs to the view.
    bool in_view(int64_t element_offset) const { return in_view_[static_cast<size_t>(element_offset)]; }
    int64_t buffer_elements() const { return static_cast<int64_t>(in_view_.size()); }

private:
    int64_t numel() const;
    // Element offset of (b, t, h, w, c) in the backing buffer.
    int64_t offset_of(int64_t b, int64_t t, int64_t h, int64_t w, int64_t c) const;
    double load(int64_t element_offset) const;
    void store(int64_t element_offset, float value);

    tk_dtype dtype_;
    Shape5 shape_;
    Layout layout_;
    std::array<int64_t, 5> strides_{};
    int32_t element_size_;
    std::vector<uint8_t> bytes_;
    std::vector<bool> in_view_;
};

// Names the first buffer element outside the view whose bytes differ between before and after, or
// returns "" when the gaps are untouched.
std::string first_changed_gap(const HostTensor& before, const HostTensor& after);

// A seed derived from a test's name, so every case draws different values yet reruns identically.
uint64_t seed_from_name(const std::string& name);

// Row-major [B, T, H, W, C] index -> "[b, t, h, w, c]".
std::string index_string(const Shape5& shape, int64_t flat_index);

// ---- Strided tensors of rank 1 to 3 and any dtype in host memory ------------------------------------

// How a [B], [B, N] or [B, N, C] view sits inside a larger buffer. The default is dense row-major.
struct ArrayLayout {
    int64_t pad = 0;             // unused elements after each row: of C channels (rank 3), or after each
                                 // element of a [B, N] row (rank 2: N stride 1 + pad), or of [B] (rank 1)
    bool batch_inner = false;    // rank >= 2: B is the inner dimension (B stride < N stride)
    int64_t offset = 0;          // elements before the first one; 1 misaligns the data pointer
};

// A view owning its whole backing buffer, like HostTensor, for f32/f16/bf16/i32/i64 of rank 1-3
// (the [B, N, C] tokens, [B, N] sizes and maps and [B] counts of token merging).
class HostArray {
public:
    HostArray() = default;
    HostArray(tk_dtype dtype, std::vector<int64_t> shape, const ArrayLayout& layout = ArrayLayout());

    tk_dtype dtype() const { return dtype_; }
    const std::vector<int64_t>& shape() const { return shape_; }
    int64_t numel() const;

    // Element (i, j, k) of the view (unused trailing indices are 0), exact for every dtype.
    double get(int64_t i, int64_t j = 0, int64_t k = 0) const;
    // Stores value, rounded to nearest for f16/bf16 and truncated for integers.
    void set(int64_t i, int64_t j, int64_t k, double value);
    // The view's elements in row-major order.
    std::vector<double> values() const;

    void fill_bytes(uint8_t pattern);
    void fill_gaps_with_nan();  // float dtypes only

    tk_tensor desc() const;
    tk_tensor device_desc(void* device_buffer, int32_t ordinal) const;

    std::vector<uint8_t>& bytes() { return bytes_; }
    const std::vector<uint8_t>& bytes() const { return bytes_; }
    bool in_view(int64_t element_offset) const { return in_view_[static_cast<size_t>(element_offset)]; }
    int64_t buffer_elements() const { return static_cast<int64_t>(in_view_.size()); }
    int64_t offset_of(int64_t i, int64_t j, int64_t k) const;

private:
    double load(int64_t element_offset) const;
    void store(int64_t element_offset, double value);

    tk_dtype dtype_ = TK_DTYPE_F32;
    std::vector<int64_t> shape_;
    std::vector<int64_t> strides_;
    int64_t offset_ = 0;
    int32_t element_size_ = 4;
    std::vector<uint8_t> bytes_;
    std::vector<bool> in_view_;
};

// Names the first buffer element outside the view whose bytes differ, or "".
std::string first_changed_gap(const HostArray& before, const HostArray& after);

// Fills a rank 1-3 array with distinct values cos(13 i + 5 j + k), every one of them finite.
void fill_values(HostArray& a);
// Fills a rank 1-3 array with values uniform in [lo, hi) drawn from generator.
void fill_uniform(HostArray& a, std::mt19937_64& generator, double lo, double hi);

// A [B, H, N, D] descriptor of the rows of a [B * H, N, D] one (attention probabilities, q and k kept
// as a HostArray of B * H rows), on whichever device rows describes.
tk_tensor split_heads(tk_tensor rows, int64_t heads);

// The bytes of every array of a call, inputs and outputs, to check that a rejected call changed none.
std::vector<std::vector<uint8_t>> snapshot(const std::vector<const HostArray*>& arrays);

// Expects status == expected and a tk_last_error() message that contains names.
void expect_rejected(tk_status status, const std::string& names, tk_status expected = TK_STATUS_INVALID_ARGUMENT);

// One way to break a valid call: `breaks` changes a copy of the call, and tk_last_error() must then
// mention `names`. Call has arrays() (every tensor's HostArray) and run() (the C call).
template <class Call>
struct InvalidCase {
    std::string name;
    std::function<void(Call&)> breaks;
    std::string names;
};

template <class Call>
void PrintTo(const InvalidCase<Call>& c, std::ostream* os) {
    *os << c.name;
}

template <class Call>
std::string case_name(const ::testing::TestParamInfo<InvalidCase<Call>>& info) {
    return info.param.name;
}

// The broken call is rejected with a message naming the argument, and writes to no tensor.
template <class Call>
void check_invalid(const InvalidCase<Call>& c) {
    Call call;
    c.breaks(call);
    const auto before = snapshot(call.arrays());
    expect_rejected(call.run(), c.names);
    EXPECT_TRUE(snapshot(call.arrays()) == before) << "a rejected call wrote to a tensor";
}

// ---- CUDA -----------------------------------------------------------------------------------------

// "" when CUDA tests can run; else why not ("CUDA backend not built", "no CUDA device", or device 0
// cannot run the build's code).
std::string cuda_unavailable_reason();

// The CUDA tests' scale. TK_TEST_SCALE=reduced (README.md here) runs each CUDA test family on a
// sample of its cases and sizes, so that a functional GPU simulator finishes it in minutes; unset or
// "full", every case runs, as on a GPU. Anything else is an error that fails the calling test.
bool reduced_test_scale();
// Whether the CUDA case numbered `index` runs: every case at full scale, every `stride`-th at reduced
// scale (those with index % stride == 0). A stride coprime with each dimension of a nested loop of
// cases keeps every value of every dimension in the sample.
bool runs_at_scale(int64_t index, int64_t stride);
// `full` at full scale, `reduced` at reduced scale.
int64_t scaled(int64_t full, int64_t reduced);

// Device memory owned by the test (tk_cuda_malloc / tk_cuda_free on ordinal 0).
class DeviceBuffer {
public:
    explicit DeviceBuffer(uint64_t bytes);
    ~DeviceBuffer();
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;
    void* get() const { return ptr_; }

private:
    void* ptr_ = nullptr;
};

// Sets the CPU thread count for one scope and restores the count before it afterwards (so scopes nest).
class ScopedNumThreads {
public:
    explicit ScopedNumThreads(int32_t threads);
    ~ScopedNumThreads();
    ScopedNumThreads(const ScopedNumThreads&) = delete;
    ScopedNumThreads& operator=(const ScopedNumThreads&) = delete;

private:
    int32_t previous_;
};

// A stream created on device 0 for the test and destroyed with it.
class CudaStream {
public:
    CudaStream() { EXPECT_EQ(tk_cuda_stream_create(0, &stream_), TK_STATUS_OK) << tk_last_error(); }
    ~CudaStream() { EXPECT_EQ(tk_cuda_stream_destroy(stream_), TK_STATUS_OK) << tk_last_error(); }
    CudaStream(const CudaStream&) = delete;
    CudaStream& operator=(const CudaStream&) = delete;
    tk_stream get() const { return stream_; }

private:
    tk_stream stream_ = nullptr;
};

// ---- Allocations --------------------------------------------------------------------------------

// Counts the operator new allocations of at least `bytes` made by any thread while it is alive
// (large_allocations.cpp replaces the test binary's operator new). Where the shared library's own
// allocations bind to that replacement (ELF platforms) they are counted too; a test should first see
// one it expects before it trusts a count of zero. One at a time.
class LargeAllocationCount {
public:
    explicit LargeAllocationCount(size_t bytes);
    ~LargeAllocationCount();
    LargeAllocationCount(const LargeAllocationCount&) = delete;
    LargeAllocationCount& operator=(const LargeAllocationCount&) = delete;
    int64_t count() const;
};

}  // namespace tkt
