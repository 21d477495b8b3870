#include "core/tensor.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "cuda/runtime.hpp"

namespace tk {

namespace {

std::string list_string(const int64_t* values, int32_t count) {
    std::string s = "[";
    for (int32_t i = 0; i < count; ++i) {
        if (i) s += ", ";
        s += std::to_string(values[i]);
    }
    return s + "]";
}

// Lazily built argument names: "x.dtype", "x.shape[2]".
auto field(const char* name, const char* member) {
    return [=] { return std::string(name) + "." + member; };
}
auto indexed(const char* name, const char* member, int32_t i) {
    return [=] { return std::string(name) + "." + member + "[" + std::to_string(i) + "]"; };
}

std::string pointer_text(const void* p) {
    char text[32];
    std::snprintf(text, sizeof text, "%p", p);
    return text;
}

// The lowest and highest element offsets of a non-empty t (dimensions of size 1 contribute nothing,
// whatever their stride), once require_tensor has bounded their magnitudes.
std::pair<int64_t, int64_t> offset_range(const tk_tensor& t) {
    int64_t lowest = 0;
    int64_t highest = 0;
    for (int32_t d = 0; d < t.rank; ++d) {
        if (t.shape[d] <= 1) continue;
        const int64_t reach = (t.shape[d] - 1) * t.strides[d];
        (reach < 0 ? lowest : highest) += reach;
    }
    return {lowest, highest};
}

// Rejects strides under which t's elements would not fit one address space: the bytes from its
// lowest to its highest element (sum over d of (shape[d] - 1) |strides[d]|, plus one element) must
// fit in PTRDIFF_MAX, and data minus the lowest / plus the highest offset must not wrap around.
// Every later offset computation (spans, overlap checks, the backends' indexing) is then free of
// overflow.
void require_addressable_extent(const tk_tensor& t, const char* name) {
    const auto element_size = static_cast<int64_t>(tk_dtype_size(t.dtype));
    const int64_t max_elements = std::numeric_limits<std::ptrdiff_t>::max() / element_size - 1;
    const auto expected = [&] {
        return "strides under which the tensor's " + std::to_string(element_size) +
               "-byte elements lie within one address space (shape " + shape_string(t) + ")";
    };
    const auto got = [&] { return list_string(t.strides, t.rank); };
    int64_t extent = 0;  // elements spanned, lowest to highest, less one
    for (int32_t d = 0; d < t.rank; ++d) {
        if (t.shape[d] <= 1) continue;
        const int64_t stride = t.strides[d];
        const int64_t span = t.shape[d] - 1;
        require(stride != std::numeric_limits<int64_t>::min() && (stride < 0 ? -stride : stride) <= (max_elements - extent) / span,
                field(name, "strides"), expected, got);
        extent += span * (stride < 0 ? -stride : stride);
    }
    const auto [lowest, highest] = offset_range(t);
    const auto address = reinterpret_cast<uintptr_t>(t.data);
    const auto below = static_cast<uintptr_t>(-lowest) * static_cast<uintptr_t>(element_size);
    const auto above = static_cast<uintptr_t>(highest + 1) * static_cast<uintptr_t>(element_size);
    require(address >= below && address <= std::numeric_limits<uintptr_t>::max() - above, field(name, "strides"), expected,
            [&] { return got() + " from data = " + pointer_text(t.data) + ", which wraps around the address space"; });
}

}  // namespace

std::string dtype_name(tk_dtype dtype) {
    switch (dtype) {
        case TK_DTYPE_F32: return "f32";
        case TK_DTYPE_F16: return "f16";
        case TK_DTYPE_BF16: return "bf16";
        case TK_DTYPE_I32: return "i32";
        case TK_DTYPE_I64: return "i64";
        default: return "unknown dtype " + std::to_string(dtype);
    }
}

std::string device_name(const tk_tensor& t) {
    if (t.device_kind == TK_DEVICE_CPU) return "CPU";
    return "CUDA device " + std::to_string(t.device_ordinal);
}

std::string shape_string(const tk_tensor& t) { return list_string(t.shape, t.rank); }

int64_t numel(const tk_tensor& t) {
    int64_t n = 1;
    for (int32_t d = 0; d < t.rank; ++d) n *= t.shape[d];
    return n;
}

tk_tensor backend_view(const tk_tensor& t) {
    if (numel(t) != 0 || t.device_kind != TK_DEVICE_CPU) return t;
    alignas(8) static char nothing[8];
    tk_tensor view = t;
    view.data = nothing;
    std::fill(view.strides, view.strides + TK_MAX_RANK, int64_t{0});
    return view;
}

const tk_tensor& require_tensor(const tk_tensor* tp, const char* name) {
    require(tp != nullptr, name, "a tensor descriptor", [] { return std::string("NULL"); });
    const tk_tensor& t = *tp;
    require_tensor_layout(t, name);
    if (t.device_kind == TK_DEVICE_CUDA) {
        const std::string ordinal_name = std::string(name) + ".device_ordinal";
        cuda::require_device(t.device_ordinal, ordinal_name.c_str());
        cuda::require_runnable_device(t.device_ordinal, ordinal_name.c_str());
        if (numel(t) > 0) cuda::require_device_pointer(t.data, t.device_ordinal, (std::string(name) + ".data").c_str());
    }
    return t;
}

void require_tensor_layout(const tk_tensor& t, const char* name) {
    require(tk_dtype_size(t.dtype) != 0, field(name, "dtype"), "one of TK_DTYPE_F32/F16/BF16/I32/I64",
            [&] { return std::to_string(t.dtype); });
    require(t.device_kind == TK_DEVICE_CPU || t.device_kind == TK_DEVICE_CUDA, field(name, "device_kind"),
            "TK_DEVICE_CPU (0) or TK_DEVICE_CUDA (1)", [&] { return std::to_string(t.device_kind); });
    if (t.device_kind == TK_DEVICE_CPU)
        require(t.device_ordinal == 0, field(name, "device_ordinal"), "0 for a CPU tensor",
                [&] { return std::to_string(t.device_ordinal); });
    require(t.rank >= 1 && t.rank <= TK_MAX_RANK, field(name, "rank"), [] { return "1 to " + std::to_string(TK_MAX_RANK); },
            [&] { return std::to_string(t.rank); });

    int64_t count = 1;
    for (int32_t d = 0; d < t.rank; ++d) {
        require(t.shape[d] >= 0, indexed(name, "shape", d), "a non-negative size",
                [&] { return std::to_string(t.shape[d]); });
        if (t.shape[d] != 0 && count != 0)
            require(count <= std::numeric_limits<int64_t>::max() / t.shape[d], field(name, "shape"),
                    "an element count that fits in int64", [&] { return shape_string(t); });
        count *= t.shape[d];
    }
    if (count > 0) {
        require(t.data != nullptr, field(name, "data"), [&] { return "a non-NULL pointer for a tensor of shape " + shape_string(t); },
                [] { return std::string("NULL"); });
        // Every backend reads whole elements: a misaligned one would fault a CUDA kernel (and the
        // caller's CUDA context with it) and is undefined behaviour on the CPU.
        const auto element_size = static_cast<uintptr_t>(tk_dtype_size(t.dtype));
        require(reinterpret_cast<uintptr_t>(t.data) % element_size == 0, field(name, "data"),
                [&] { return "a pointer aligned to " + std::to_string(element_size) + " bytes (one " + dtype_name(t.dtype) + ")"; },
                [&] { return pointer_text(t.data); });
        require_addressable_extent(t, name);
    }
}

void require_rank(const tk_tensor& t, const char* name, int32_t rank, const char* layout) {
    require(t.rank == rank, field(name, "rank"), [&] { return std::to_string(rank) + " (" + layout + ")"; },
            [&] { return std::to_string(t.rank); });
}

void require_float_dtype(const tk_tensor& t, const char* name) {
    require(t.dtype == TK_DTYPE_F32 || t.dtype == TK_DTYPE_F16 || t.dtype == TK_DTYPE_BF16,
            field(name, "dtype"), "a floating dtype (f32, f16 or bf16)",
            [&] { return dtype_name(t.dtype); });
}

void require_same_dtype(const tk_tensor& t, const char* name, const tk_tensor& ref, const char* ref_name) {
    require(t.dtype == ref.dtype, field(name, "dtype"),
            [&] { return dtype_name(ref.dtype) + " (the dtype of " + ref_name + ")"; }, [&] { return dtype_name(t.dtype); });
}

void require_same_device(const tk_tensor& t, const char* name, const tk_tensor& ref, const char* ref_name) {
    require(t.device_kind == ref.device_kind && t.device_ordinal == ref.device_ordinal,
            field(name, "device"), [&] { return device_name(ref) + " (the device of " + ref_name + ")"; },
            [&] { return device_name(t); });
}

void require_positive_strides(const tk_tensor& t, const char* name) {
    if (numel(t) == 0) return;  // an empty tensor addresses no memory: its strides are never used
    int64_t offset = 0;
    for (int32_t d = 0; d < t.rank; ++d) {
        if (t.shape[d] <= 1) continue;
        require(t.strides[d] >= 1, indexed(name, "strides", d), "a positive stride",
                [&] { return std::to_string(t.strides[d]); });
        const int64_t span = t.shape[d] - 1;
        require(t.strides[d] <= (std::numeric_limits<int64_t>::max() - offset) / span, field(name, "strides"),
                "element offsets that fit in int64", [&] { return list_string(t.strides, t.rank); });
        offset += span * t.strides[d];
    }
}

void require_channels_contiguous(const tk_tensor& t, const char* name) {
    const int32_t last = t.rank - 1;
    if (t.shape[last] > 1 && numel(t) > 0)
        require(t.strides[last] == 1, indexed(name, "strides", last), "1 (channels must be contiguous)",
                [&] { return std::to_string(t.strides[last]); });
    require_positive_strides(t, name);
}

void require_shape(const tk_tensor& t, const char* name, int32_t rank, const int64_t* shape, const char* layout) {
    require_rank(t, name, rank, layout);
    for (int32_t d = 0; d < rank; ++d)
        require(t.shape[d] == shape[d], indexed(name, "shape", d),
                [&] { return std::to_string(shape[d]) + " (" + name + " is " + layout + ")"; },
                [&] { return std::to_string(t.shape[d]); });
}

void require_non_self_overlapping(const tk_tensor& t, const char* name) {
    // Sufficient condition: ordered by stride, each dimension steps over the whole extent of the
    // smaller ones, so distinct indices give distinct offsets.
    if (numel(t) == 0) return;
    std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size) of dimensions of size > 1
    for (int32_t d = 0; d < t.rank; ++d)
        if (t.shape[d] > 1) dims.emplace_back(t.strides[d], t.shape[d]);
    std::sort(dims.begin(), dims.end());
    int64_t extent = 1;
    for (const auto& [stride, size] : dims) {
        require(stride >= extent, field(name, "strides"),
                "strides under which no two elements share memory (it is written to)",
                [&] { return list_string(t.strides, t.rank) + " for shape " + shape_string(t); });
        extent = stride * size;
    }
}

ByteSpan byte_span(const tk_tensor& t) {
    const auto address = reinterpret_cast<uintptr_t>(t.data);
    if (numel(t) == 0) return {address, address};
    const auto [lowest, highest] = offset_range(t);
    const auto element_size = static_cast<uintptr_t>(tk_dtype_size(t.dtype));
    return {address - static_cast<uintptr_t>(-lowest) * element_size, address + static_cast<uintptr_t>(highest + 1) * element_size};
}

void require_disjoint(const tk_tensor& out, const char* out_name, const tk_tensor& in, const char* in_name) {
    if (out.device_kind != in.device_kind) return;
    require_disjoint(byte_span(out), out_name, byte_span(in), in_name);
}

void require_disjoint(const ByteSpan& written, const char* written_name, const ByteSpan& other, const char* other_name) {
    if (written.begin == written.end || other.begin == other.end) return;
    require(written.end <= other.begin || other.end <= written.begin, written_name,
            [&] { return std::string("memory disjoint from ") + other_name; }, [&] { return std::string("overlapping memory"); });
}

}  // namespace tk
