#include "support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <utility>

namespace tkt {

// ---- Scalar types -------------------------------------------------------------------------------

namespace {

uint32_t bits_of(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    return bits;
}

float float_of(uint32_t bits) {
    float value;
    std::memcpy(&value, &bits, sizeof value);
    return value;
}

}  // namespace

uint16_t float_to_half(float value) {
    const uint32_t bits = bits_of(value);
    const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
    const uint32_t magnitude = bits & 0x7FFFFFFFu;
    if (magnitude > 0x7F800000u) return static_cast<uint16_t>(sign | 0x7E00u);  // NaN stays (quiet) NaN
    // 65520 is halfway between the largest half (65504, odd mantissa) and 65536: ties-to-even and
    // everything above round to infinity.
    if (magnitude >= 0x477FF000u) return static_cast<uint16_t>(sign | 0x7C00u);
    if (magnitude < 0x38800000u) {
        // Below the smallest normal half (2^-14): a subnormal counts units of 2^-24. Scaling by 2^24
        // is exact, and nearbyint rounds ties to even; 1024 units is the smallest normal's encoding.
        const float units = std::nearbyint(std::fabs(value) * 16777216.0f);
        return static_cast<uint16_t>(sign | static_cast<uint16_t>(units));
    }
    const uint32_t exponent = (magnitude >> 23) - 127 + 15;
    const uint32_t mantissa = magnitude & 0x7FFFFFu;
    uint32_t half = (exponent << 10) | (mantissa >> 13);
    const uint32_t dropped = mantissa & 0x1FFFu;
    // A carry out of the mantissa correctly bumps the exponent.
    if (dropped > 0x1000u || (dropped == 0x1000u && (half & 1u))) ++half;
    return static_cast<uint16_t>(sign | half);
}

float half_to_float(uint16_t bits) {
    const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16;
    const uint32_t exponent = (bits >> 10) & 0x1Fu;
    const uint32_t mantissa = bits & 0x3FFu;
    if (exponent == 0) {
        const float magnitude = std::ldexp(static_cast<float>(mantissa), -24);
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 0x1F) return float_of(sign | 0x7F800000u | (mantissa << 13));
    return float_of(sign | ((exponent - 15 + 127) << 23) | (mantissa << 13));
}

uint16_t float_to_bf16(float value) {
    const uint32_t bits = bits_of(value);
    if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
    // Adding 0x7FFF plus the lowest kept bit rounds to nearest, ties to even; overflow reaches inf.
    return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

float bf16_to_float(uint16_t bits) { return float_of(static_cast<uint32_t>(bits) << 16); }

float round_to_dtype(float value, tk_dtype dtype) {
    switch (dtype) {
        case TK_DTYPE_F16: return half_to_float(float_to_half(value));
        case TK_DTYPE_BF16: return bf16_to_float(float_to_bf16(value));
        default: return value;
    }
}

const char* dtype_label(tk_dtype dtype) {
    switch (dtype) {
        case TK_DTYPE_F32: return "f32";
        case TK_DTYPE_F16: return "f16";
        case TK_DTYPE_BF16: return "bf16";
        default: return "other";
    }
}

// ---- HostTensor ---------------------------------------------------------------------------------

HostTensor::HostTensor(tk_dtype dtype, const Shape5& shape, const Layout& layout)
    : dtype_(dtype), shape_(shape), layout_(layout), element_size_(tk_dtype_size(dtype)) {
    const auto [B, T, H, W, C] = shape;
    strides_[4] = 1;
    strides_[3] = C + layout.pad_c;
    strides_[2] = strides_[3] * (W + layout.pad_w);
    const int64_t frame = strides_[2] * H;
    if (layout.time_major) {
        strides_[0] = frame;
        strides_[1] = frame * B * layout.frame_step;
    } else {
        strides_[1] = frame * layout.frame_step;
        strides_[0] = strides_[1] * T;
    }
    int64_t last = layout.offset;  // offset of the last view element
    for (int d = 0; d < 5; ++d) last += (shape[d] - 1) * strides_[d];
    // A few spare elements after the view catch writes that run past its end.
    const int64_t buffer_elements = numel() == 0 ? layout.offset + 4 : last + 1 + 4;
    bytes_.assign(static_cast<size_t>(buffer_elements * element_size_), 0);
    in_view_.assign(static_cast<size_t>(buffer_elements), false);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t)
            for (int64_t h = 0; h < H; ++h)
                for (int64_t w = 0; w < W; ++w)
                    for (int64_t c = 0; c < C; ++c) in_view_[static_cast<size_t>(offset_of(b, t, h, w, c))] = true;
}

int64_t HostTensor::numel() const {
    int64_t n = 1;
    for (int64_t size : shape_) n *= size;
    return n;
}

int64_t HostTensor::offset_of(int64_t b, int64_t t, int64_t h, int64_t w, int64_t c) const {
    return layout_.offset + b * strides_[0] + t * strides_[1] + h * strides_[2] + w * strides_[3] + c * strides_[4];
}

double HostTensor::load(int64_t element_offset) const {
    const uint8_t* p = bytes_.data() + element_offset * element_size_;
    if (dtype_ == TK_DTYPE_F32) {
        float v;
        std::memcpy(&v, p, sizeof v);
        return v;
    }
    uint16_t bits;
    std::memcpy(&bits, p, sizeof bits);
    return dtype_ == TK_DTYPE_F16 ? half_to_float(bits) : bf16_to_float(bits);
}

void HostTensor::store(int64_t element_offset, float value) {
    uint8_t* p = bytes_.data() + element_offset * element_size_;
    if (dtype_ == TK_DTYPE_F32) {
        std::memcpy(p, &value, sizeof value);
        return;
    }
    const uint16_t bits = dtype_ == TK_DTYPE_F16 ? float_to_half(value) : float_to_bf16(value);
    std::memcpy(p, &bits, sizeof bits);
}

double HostTensor::get(int64_t b, int64_t t, int64_t h, int64_t w, int64_t c) const {
    return load(offset_of(b, t, h, w, c));
}

void HostTensor::set(int64_t b, int64_t t, int64_t h, int64_t w, int64_t c, float value) {
    store(offset_of(b, t, h, w, c), value);
}

std::vector<double> HostTensor::values() const {
    std::vector<double> out;
    out.reserve(static_cast<size_t>(numel()));
    const auto [B, T, H, W, C] = shape_;
    for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t)
            for (int64_t h = 0; h < H; ++h)
                for (int64_t w = 0; w < W; ++w)
                    for (int64_t c = 0; c < C; ++c) out.push_back(get(b, t, h, w, c));
    return out;
}

void HostTensor::fill_random(uint64_t seed, float scale) {
    // mt19937_64's sequence is fixed by the standard (uniform_real_distribution's is not), so the
    // inputs are the same on every platform.
    std::mt19937_64 generator(seed);
    const auto [B, T, H, W, C] = shape_;
    for (int64_t b = 0; b < B; ++b)
        for (int64_t t = 0; t < T; ++t)
            for (int64_t h = 0; h < H; ++h)
                for (int64_t w = 0; w < W; ++w)
                    for (int64_t c = 0; c < C; ++c) {
                        const float unit = static_cast<float>(generator() >> 40) * 0x1p-24f;  // [0, 1), 24 bits
                        set(b, t, h, w, c, (unit * 4.0f - 1.5f) * scale);
                    }
}

void HostTensor::fill_bytes(uint8_t pattern) { std::memset(bytes_.data(), pattern, bytes_.size()); }

void HostTensor::fill_gaps_with_nan() {
    for (int64_t i = 0; i < buffer_elements(); ++i)
        if (!in_view(i)) store(i, std::numeric_limits<float>::quiet_NaN());
}

tk_tensor HostTensor::desc() const {
    tk_tensor t{};
    t.data = const_cast<uint8_t*>(bytes_.data()) + layout_.offset * element_size_;
    t.dtype = dtype_;
    t.device_kind = TK_DEVICE_CPU;
    t.device_ordinal = 0;
    t.rank = 5;
    for (int d = 0; d < 5; ++d) {
        t.shape[d] = shape_[d];
        t.strides[d] = strides_[d];
    }
    return t;
}

tk_tensor HostTensor::device_desc(void* device_buffer, int32_t ordinal) const {
    tk_tensor t = desc();
    t.data = static_cast<uint8_t*>(device_buffer) + layout_.offset * element_size_;
    t.device_kind = TK_DEVICE_CUDA;
    t.device_ordinal = ordinal;
    return t;
}

std::string first_changed_gap(const HostTensor& before, const HostTensor& after) {
    const int32_t size = tk_dtype_size(after.dtype());
    for (int64_t i = 0; i < after.buffer_elements(); ++i) {
        if (after.in_view(i)) continue;
        if (std::memcmp(before.bytes().data() + i * size, after.bytes().data() + i * size, static_cast<size_t>(size)) != 0)
            return "buffer element " + std::to_string(i) + " (outside the view) was written";
    }
    return "";
}

uint64_t seed_from_name(const std::string& name) {
    uint64_t hash = 1469598103934665603ull;  // FNV-1a
    for (unsigned char ch : name) {
        hash ^= ch;
        hash *= 1099511628211ull;
    }
    return hash;
}

std::string index_string(const Shape5& shape, int64_t flat_index) {
    int64_t index[5];
    for (int d = 4; d >= 0; --d) {
        index[d] = flat_index % shape[d];
        flat_index /= shape[d];
    }
    std::string s = "[";
    for (int d = 0; d < 5; ++d) s += (d ? ", " : "") + std::to_string(index[d]);
    return s + "]";
}

// ---- HostArray ----------------------------------------------------------------------------------

HostArray::HostArray(tk_dtype dtype, std::vector<int64_t> shape, const ArrayLayout& layout)
    : dtype_(dtype), shape_(std::move(shape)), offset_(layout.offset), element_size_(tk_dtype_size(dtype)) {
    const size_t rank = shape_.size();
    if (rank < 1 || rank > 3 || element_size_ == 0) throw std::invalid_argument("HostArray: rank 1-3, known dtype");
    strides_.assign(rank, 1);
    if (rank == 1) {
        strides_[0] = 1 + layout.pad;
    } else {
        // The row of the innermost dimension: C channels (contiguous) or one element.
        // Sizes of 0 count as 1, as PyTorch does, so that an empty view still has positive strides.
        const auto at_least_1 = [](int64_t n) { return n > 0 ? n : int64_t{1}; };
        const int64_t inner = rank == 3 ? at_least_1(shape_[2]) + layout.pad : 1 + layout.pad;
        if (rank == 3) strides_[2] = 1;
        if (layout.batch_inner) {
            strides_[0] = inner;
            strides_[1] = inner * at_least_1(shape_[0]);
        } else {
            strides_[1] = inner;
            strides_[0] = inner * at_least_1(shape_[1]);
        }
    }
    int64_t last = offset_;
    bool empty = false;
    for (size_t d = 0; d < rank; ++d) {
        if (shape_[d] == 0) empty = true;
        else last += (shape_[d] - 1) * strides_[d];
    }
    const int64_t buffer_elements = empty ? offset_ + 4 : last + 1 + 4;
    bytes_.assign(static_cast<size_t>(buffer_elements * element_size_), 0);
    in_view_.assign(static_cast<size_t>(buffer_elements), false);
    if (!empty) {
        const int64_t n1 = rank > 1 ? shape_[1] : 1;
        const int64_t n2 = rank > 2 ? shape_[2] : 1;
        for (int64_t i = 0; i < shape_[0]; ++i)
            for (int64_t j = 0; j < n1; ++j)
                for (int64_t k = 0; k < n2; ++k) in_view_[static_cast<size_t>(offset_of(i, j, k))] = true;
    }
}

int64_t HostArray::numel() const {
    int64_t n = 1;
    for (int64_t size : shape_) n *= size;
    return n;
}

int64_t HostArray::offset_of(int64_t i, int64_t j, int64_t k) const {
    int64_t offset = offset_ + i * strides_[0];
    if (shape_.size() > 1) offset += j * strides_[1];
    if (shape_.size() > 2) offset += k * strides_[2];
    return offset;
}

double HostArray::load(int64_t element_offset) const {
    const uint8_t* p = bytes_.data() + element_offset * element_size_;
    switch (dtype_) {
        case TK_DTYPE_F32: {
            float v;
            std::memcpy(&v, p, sizeof v);
            return v;
        }
        case TK_DTYPE_I32: {
            int32_t v;
            std::memcpy(&v, p, sizeof v);
            return v;
        }
        case TK_DTYPE_I64: {
            int64_t v;
            std::memcpy(&v, p, sizeof v);
            return static_cast<double>(v);
        }
        default: {
            uint16_t bits;
            std::memcpy(&bits, p, sizeof bits);
            return dtype_ == TK_DTYPE_F16 ? half_to_float(bits) : bf16_to_float(bits);
        }
    }
}

void HostArray::store(int64_t element_offset, double value) {
    uint8_t* p = bytes_.data() + element_offset * element_size_;
    switch (dtype_) {
        case TK_DTYPE_F32: {
            const auto v = static_cast<float>(value);
            std::memcpy(p, &v, sizeof v);
            return;
        }
        case TK_DTYPE_I32: {
            const auto v = static_cast<int32_t>(value);
            std::memcpy(p, &v, sizeof v);
            return;
        }
        case TK_DTYPE_I64: {
            const auto v = static_cast<int64_t>(value);
            std::memcpy(p, &v, sizeof v);
            return;
        }
        default: {
            const auto f = static_cast<float>(value);
            const uint16_t bits = dtype_ == TK_DTYPE_F16 ? float_to_half(f) : float_to_bf16(f);
            std::memcpy(p, &bits, sizeof bits);
        }
    }
}

double HostArray::get(int64_t i, int64_t j, int64_t k) const { return load(offset_of(i, j, k)); }

void HostArray::set(int64_t i, int64_t j, int64_t k, double value) { store(offset_of(i, j, k), value); }

std::vector<double> HostArray::values() const {
    std::vector<double> out;
    out.reserve(static_cast<size_t>(numel()));
    const int64_t n1 = shape_.size() > 1 ? shape_[1] : 1;
    const int64_t n2 = shape_.size() > 2 ? shape_[2] : 1;
    for (int64_t i = 0; i < shape_[0]; ++i)
        for (int64_t j = 0; j < n1; ++j)
            for (int64_t k = 0; k < n2; ++k) out.push_back(get(i, j, k));
    return out;
}

void HostArray::fill_bytes(uint8_t pattern) { std::memset(bytes_.data(), pattern, bytes_.size()); }

void HostArray::fill_gaps_with_nan() {
    for (int64_t i = 0; i < buffer_elements(); ++i)
        if (!in_view(i)) store(i, std::numeric_limits<double>::quiet_NaN());
}

tk_tensor HostArray::desc() const {
    tk_tensor t{};
    t.data = const_cast<uint8_t*>(bytes_.data()) + offset_ * element_size_;
    t.dtype = dtype_;
    t.device_kind = TK_DEVICE_CPU;
    t.device_ordinal = 0;
    t.rank = static_cast<int32_t>(shape_.size());
    for (size_t d = 0; d < shape_.size(); ++d) {
        t.shape[d] = shape_[d];
        t.strides[d] = strides_[d];
    }
    return t;
}

tk_tensor HostArray::device_desc(void* device_buffer, int32_t ordinal) const {
    tk_tensor t = desc();
    t.data = static_cast<uint8_t*>(device_buffer) + offset_ * element_size_;
    t.device_kind = TK_DEVICE_CUDA;
    t.device_ordinal = ordinal;
    return t;
}

std::string first_changed_gap(const HostArray& before, const HostArray& after) {
    const int32_t size = tk_dtype_size(after.dtype());
    for (int64_t i = 0; i < after.buffer_elements(); ++i) {
        if (after.in_view(i)) continue;
        if (std::memcmp(before.bytes().data() + i * size, after.bytes().data() + i * size, static_cast<size_t>(size)) != 0)
            return "buffer element " + std::to_string(i) + " (outside the view) was written";
    }
    return "";
}

void fill_values(HostArray& a) {
    const std::vector<int64_t>& s = a.shape();
    const int64_t n1 = s.size() > 1 ? s[1] : 1;
    const int64_t n2 = s.size() > 2 ? s[2] : 1;
    for (int64_t i = 0; i < s[0]; ++i)
        for (int64_t j = 0; j < n1; ++j)
            for (int64_t k = 0; k < n2; ++k) a.set(i, j, k, std::cos(static_cast<double>(i * 13 + j * 5 + k)));
}

void fill_uniform(HostArray& a, std::mt19937_64& generator, double lo, double hi) {
    std::uniform_real_distribution<double> uniform(lo, hi);
    const std::vector<int64_t>& s = a.shape();
    const int64_t n1 = s.size() > 1 ? s[1] : 1;
    const int64_t n2 = s.size() > 2 ? s[2] : 1;
    for (int64_t i = 0; i < s[0]; ++i)
        for (int64_t j = 0; j < n1; ++j)
            for (int64_t k = 0; k < n2; ++k) a.set(i, j, k, uniform(generator));
}

tk_tensor split_heads(tk_tensor t, int64_t heads) {
    t.rank = 4;
    t.shape[3] = t.shape[2];
    t.shape[2] = t.shape[1];
    t.shape[1] = heads;
    t.shape[0] /= heads;
    t.strides[3] = t.strides[2];
    t.strides[2] = t.strides[1];
    t.strides[1] = t.strides[0];
    t.strides[0] *= heads;
    return t;
}

std::vector<std::vector<uint8_t>> snapshot(const std::vector<const HostArray*>& arrays) {
    std::vector<std::vector<uint8_t>> bytes;
    for (const HostArray* a : arrays) bytes.push_back(a->bytes());
    return bytes;
}

void expect_rejected(tk_status status, const std::string& names, tk_status expected) {
    EXPECT_EQ(status, expected) << tk_status_name(status) << ": " << tk_last_error();
    EXPECT_NE(std::string(tk_last_error()).find(names), std::string::npos)
        << "message \"" << tk_last_error() << "\" does not name " << names;
}

// ---- CUDA and threads ---------------------------------------------------------------------------

std::string cuda_unavailable_reason() {
    if (!tk_cuda_is_built()) return "CUDA backend not built";
    int32_t count = 0;
    if (tk_cuda_device_count(&count) != TK_STATUS_OK) return std::string("tk_cuda_device_count failed: ") + tk_last_error();
    if (count == 0) return "no CUDA device";
    int32_t major = 0, minor = 0, supported = 0;
    if (tk_cuda_device_capability(0, &major, &minor) != TK_STATUS_OK ||
        tk_cuda_capability_supported(major, minor, &supported) != TK_STATUS_OK)
        return std::string("querying CUDA device 0 failed: ") + tk_last_error();
    if (!supported)
        return "CUDA device 0 (compute capability " + std::to_string(major) + "." + std::to_string(minor) +
               ") cannot run this build's code (CUDA architectures " + tk_cuda_architectures() + ")";
    return "";
}

double cosine_norm(double sum_of_squares) {
    if (sum_of_squares > static_cast<double>(std::numeric_limits<float>::max())) return std::numeric_limits<double>::infinity();
    return std::max(std::sqrt(sum_of_squares), 1e-12);
}

bool reduced_test_scale() {
    static const int scale = [] {
        const char* value = std::getenv("TK_TEST_SCALE");
        if (value == nullptr || std::string(value).empty() || std::string(value) == "full") return 0;
        if (std::string(value) == "reduced") return 1;
        return -1;
    }();
    EXPECT_GE(scale, 0) << "TK_TEST_SCALE must be \"full\" or \"reduced\", got \"" << std::getenv("TK_TEST_SCALE") << "\"";
    return scale == 1;
}

bool runs_at_scale(int64_t index, int64_t stride) { return !reduced_test_scale() || index % stride == 0; }

int64_t scaled(int64_t full, int64_t reduced) { return reduced_test_scale() ? reduced : full; }

DeviceBuffer::DeviceBuffer(uint64_t bytes) {
    // gtest reports an exception thrown in a test body as that test's failure, with this message.
    if (tk_cuda_malloc(0, bytes, &ptr_) != TK_STATUS_OK)
        throw std::runtime_error(std::string("tk_cuda_malloc failed: ") + tk_last_error());
}

DeviceBuffer::~DeviceBuffer() { EXPECT_EQ(tk_cuda_free(0, ptr_), TK_STATUS_OK) << tk_last_error(); }

ScopedNumThreads::ScopedNumThreads(int32_t threads) : previous_(tk_get_num_threads()) {
    EXPECT_EQ(tk_set_num_threads(threads), TK_STATUS_OK) << tk_last_error();
}

ScopedNumThreads::~ScopedNumThreads() { EXPECT_EQ(tk_set_num_threads(previous_), TK_STATUS_OK) << tk_last_error(); }

}  // namespace tkt
