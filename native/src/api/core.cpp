// ABI entry points that are not ops: version, status and errors, struct layout, CPU threads, and
// the CUDA device, stream and memory helpers.
#include <cstddef>
#include <cstring>
#include <string>

#include "core/cuda_architectures.hpp"
#include "core/error.hpp"
#include "core/parallel.hpp"
#include "cpu/isa.hpp"
#include "cuda/runtime.hpp"
#include "tokenkernels/tokenkernels.h"

using tk::api_call;
using tk::require;

namespace {

#define TK_STRINGIZE2(x) #x
#define TK_STRINGIZE(x) TK_STRINGIZE2(x)

auto null_text() { return std::string("NULL"); }

struct FieldLayout {
    const char* struct_name;
    const char* field;  // nullptr: the struct itself
    uint64_t value;
};

#define TK_STRUCT(s) {#s, nullptr, sizeof(s)}
#define TK_FIELD(s, f) {#s, #f, offsetof(s, f)}
constexpr FieldLayout kLayouts[] = {
    TK_STRUCT(tk_tensor),
    TK_FIELD(tk_tensor, data),
    TK_FIELD(tk_tensor, dtype),
    TK_FIELD(tk_tensor, device_kind),
    TK_FIELD(tk_tensor, device_ordinal),
    TK_FIELD(tk_tensor, rank),
    TK_FIELD(tk_tensor, shape),
    TK_FIELD(tk_tensor, strides),
    TK_STRUCT(tk_pool_params),
    TK_FIELD(tk_pool_params, mode),
    TK_FIELD(tk_pool_params, kernel),
    TK_FIELD(tk_pool_params, stride),
    TK_FIELD(tk_pool_params, output_size),
    TK_STRUCT(tk_merge_params),
    TK_FIELD(tk_merge_params, r),
    TK_FIELD(tk_merge_params, use_threshold),
    TK_FIELD(tk_merge_params, threshold),
    TK_FIELD(tk_merge_params, protect_first),
    TK_FIELD(tk_merge_params, protect_second),
    TK_FIELD(tk_merge_params, mode),
    TK_FIELD(tk_merge_params, order),
    TK_STRUCT(tk_importance_params),
    TK_FIELD(tk_importance_params, query_begin),
    TK_FIELD(tk_importance_params, query_end),
    TK_FIELD(tk_importance_params, key_begin),
    TK_FIELD(tk_importance_params, key_end),
    TK_FIELD(tk_importance_params, head_reduce),
    TK_FIELD(tk_importance_params, query_reduce),
    TK_FIELD(tk_importance_params, scale),
    TK_FIELD(tk_importance_params, causal),
    TK_STRUCT(tk_topk_params),
    TK_FIELD(tk_topk_params, k),
    TK_STRUCT(tk_diversity_params),
    TK_FIELD(tk_diversity_params, k),
    TK_FIELD(tk_diversity_params, distance),
    TK_FIELD(tk_diversity_params, first),
    TK_FIELD(tk_diversity_params, objective),
    TK_STRUCT(tk_evs_params),
    TK_FIELD(tk_evs_params, pruning_rate),
    TK_FIELD(tk_evs_params, height),
    TK_FIELD(tk_evs_params, width),
    TK_STRUCT(tk_dycoke_params),
    TK_FIELD(tk_dycoke_params, merging_ratio),
    TK_FIELD(tk_dycoke_params, height),
    TK_FIELD(tk_dycoke_params, width),
    TK_STRUCT(tk_vidcom2_params),
    TK_FIELD(tk_vidcom2_params, retention_ratio),
    TK_FIELD(tk_vidcom2_params, channel_ratio),
    TK_FIELD(tk_vidcom2_params, temperature),
    TK_FIELD(tk_vidcom2_params, height),
    TK_FIELD(tk_vidcom2_params, width),
    TK_STRUCT(tk_framefusion_params),
    TK_FIELD(tk_framefusion_params, similarity_threshold),
    TK_FIELD(tk_framefusion_params, max_merges),
    TK_STRUCT(tk_dpc_knn_params),
    TK_FIELD(tk_dpc_knn_params, clusters),
    TK_FIELD(tk_dpc_knn_params, neighbours),
    TK_STRUCT(tk_cluster_merge_params),
    TK_FIELD(tk_cluster_merge_params, clusters),
    TK_FIELD(tk_cluster_merge_params, mode),
    TK_FIELD(tk_cluster_merge_params, beta),
    TK_STRUCT(tk_cluster_assign_params),
    TK_FIELD(tk_cluster_assign_params, clusters),
    TK_STRUCT(tk_relevance_params),
    TK_FIELD(tk_relevance_params, negate),
    TK_STRUCT(tk_dpp_params),
    TK_FIELD(tk_dpp_params, k),
    TK_FIELD(tk_dpp_params, weighting),
    TK_FIELD(tk_dpp_params, theta),
    TK_STRUCT(tk_kmeans_params),
    TK_FIELD(tk_kmeans_params, seed),
    TK_FIELD(tk_kmeans_params, tolerance),
    TK_FIELD(tk_kmeans_params, clusters),
    TK_FIELD(tk_kmeans_params, max_iterations),
    TK_FIELD(tk_kmeans_params, init),
    TK_STRUCT(tk_dlpack_device),
    TK_FIELD(tk_dlpack_device, device_type),
    TK_FIELD(tk_dlpack_device, device_id),
    TK_STRUCT(tk_dlpack_dtype),
    TK_FIELD(tk_dlpack_dtype, code),
    TK_FIELD(tk_dlpack_dtype, bits),
    TK_FIELD(tk_dlpack_dtype, lanes),
    TK_STRUCT(tk_dlpack_tensor),
    TK_FIELD(tk_dlpack_tensor, data),
    TK_FIELD(tk_dlpack_tensor, device),
    TK_FIELD(tk_dlpack_tensor, ndim),
    TK_FIELD(tk_dlpack_tensor, dtype),
    TK_FIELD(tk_dlpack_tensor, shape),
    TK_FIELD(tk_dlpack_tensor, strides),
    TK_FIELD(tk_dlpack_tensor, byte_offset),
    TK_STRUCT(tk_dlpack_managed_tensor),
    TK_FIELD(tk_dlpack_managed_tensor, dl_tensor),
    TK_FIELD(tk_dlpack_managed_tensor, manager_ctx),
    TK_FIELD(tk_dlpack_managed_tensor, deleter),
    TK_STRUCT(tk_dlpack_version),
    TK_FIELD(tk_dlpack_version, major),
    TK_FIELD(tk_dlpack_version, minor),
    TK_STRUCT(tk_dlpack_managed_tensor_versioned),
    TK_FIELD(tk_dlpack_managed_tensor_versioned, version),
    TK_FIELD(tk_dlpack_managed_tensor_versioned, manager_ctx),
    TK_FIELD(tk_dlpack_managed_tensor_versioned, deleter),
    TK_FIELD(tk_dlpack_managed_tensor_versioned, flags),
    TK_FIELD(tk_dlpack_managed_tensor_versioned, dl_tensor),
};
#undef TK_STRUCT
#undef TK_FIELD

bool same(const char* a, const char* b) { return (a == nullptr || b == nullptr) ? a == b : std::strcmp(a, b) == 0; }

}  // namespace

extern "C" {

TK_API int32_t tk_version(void) { return TK_VERSION; }

TK_API const char* tk_version_string(void) {
    return TK_STRINGIZE(TK_VERSION_MAJOR) "." TK_STRINGIZE(TK_VERSION_MINOR) "." TK_STRINGIZE(TK_VERSION_PATCH);
}

TK_API const char* tk_status_name(tk_status status) {
    switch (status) {
        case TK_STATUS_OK: return "TK_STATUS_OK";
        case TK_STATUS_INVALID_ARGUMENT: return "TK_STATUS_INVALID_ARGUMENT";
        case TK_STATUS_BACKEND_UNAVAILABLE: return "TK_STATUS_BACKEND_UNAVAILABLE";
        case TK_STATUS_CUDA_ERROR: return "TK_STATUS_CUDA_ERROR";
        case TK_STATUS_OUT_OF_MEMORY: return "TK_STATUS_OUT_OF_MEMORY";
        case TK_STATUS_INTERNAL: return "TK_STATUS_INTERNAL";
        default: return "TK_STATUS_UNKNOWN";
    }
}

TK_API const char* tk_last_error(void) { return tk::last_error(); }

TK_API int32_t tk_dtype_size(tk_dtype dtype) {
    switch (dtype) {
        case TK_DTYPE_F32: return 4;
        case TK_DTYPE_F16: return 2;
        case TK_DTYPE_BF16: return 2;
        case TK_DTYPE_I32: return 4;
        case TK_DTYPE_I64: return 8;
        default: return 0;
    }
}

TK_API tk_status tk_struct_layout(const char* struct_name, const char* field, uint64_t* value) {
    return api_call([&] {
        require(struct_name != nullptr, "struct_name", "a struct name such as \"tk_tensor\"", null_text);
        require(value != nullptr, "value", "a pointer to receive the size or offset", null_text);
        for (const FieldLayout& layout : kLayouts) {
            if (same(layout.struct_name, struct_name) && same(layout.field, field)) {
                *value = layout.value;
                return;
            }
        }
        tk::invalid_argument(field ? "field" : "struct_name", "a struct and field of the TokenKernels ABI",
                             std::string(struct_name) + (field ? std::string(".") + field : std::string()));
    });
}

TK_API tk_status tk_set_num_threads(int32_t num_threads) {
    return api_call([&] {
        require(num_threads >= 0 && num_threads <= tk::kMaxThreads, "num_threads",
                [] { return "0 (the default) or a thread count from 1 to " + std::to_string(tk::kMaxThreads); },
                [&] { return std::to_string(num_threads); });
        tk::set_num_threads(num_threads);
    });
}

TK_API int32_t tk_get_num_threads(void) { return tk::num_threads(); }

TK_API const char* tk_cpu_isa(void) {
    switch (tk::cpu::cpu_isa()) {
        case tk::cpu::CpuIsa::kAvx512: return "avx512";
        case tk::cpu::CpuIsa::kAvx2: return "avx2";
        default: return "portable";
    }
}

TK_API int32_t tk_cuda_is_built(void) { return tk::cuda::is_built() ? 1 : 0; }

TK_API tk_status tk_cuda_device_count(int32_t* count) {
    return api_call([&] {
        require(count != nullptr, "count", "a pointer to receive the device count", null_text);
        *count = tk::cuda::device_count();
    });
}

TK_API tk_status tk_cuda_device_name(int32_t ordinal, char* buffer, int32_t capacity) {
    return api_call([&] {
        require(buffer != nullptr, "buffer", "a character buffer", null_text);
        require(capacity >= 1, "capacity", "at least 1", [&] { return std::to_string(capacity); });
        tk::cuda::require_device(ordinal, "ordinal");
        const std::string name = tk::cuda::device_name(ordinal);
        const size_t n = name.size() < static_cast<size_t>(capacity - 1) ? name.size() : static_cast<size_t>(capacity - 1);
        std::memcpy(buffer, name.data(), n);
        buffer[n] = '\0';
    });
}

TK_API tk_status tk_cuda_device_capability(int32_t ordinal, int32_t* major, int32_t* minor) {
    return api_call([&] {
        require(major != nullptr, "major", "a pointer to receive the major version", null_text);
        require(minor != nullptr, "minor", "a pointer to receive the minor version", null_text);
        tk::cuda::require_device(ordinal, "ordinal");
        tk::cuda::device_capability(ordinal, major, minor);
    });
}

TK_API const char* tk_cuda_architectures(void) { return tk::cuda_architectures(); }

TK_API tk_status tk_cuda_capability_supported(int32_t major, int32_t minor, int32_t* supported) {
    return api_call([&] {
        require(supported != nullptr, "supported", "a pointer to receive 0 or 1", null_text);
        // Capabilities are compared as 10 * major + minor: a bounded major keeps that in range.
        require(major >= 1 && major <= 99, "major", "a compute capability major version (1 to 99)",
                [&] { return std::to_string(major); });
        require(minor >= 0 && minor <= 9, "minor", "a compute capability minor version (0 to 9)",
                [&] { return std::to_string(minor); });
        *supported = tk::cuda_capability_support(major, minor) != tk::CapabilitySupport::kNo ? 1 : 0;
    });
}

TK_API tk_status tk_cuda_stream_create(int32_t ordinal, tk_stream* stream) {
    return api_call([&] {
        require(stream != nullptr, "stream", "a pointer to receive the stream", null_text);
        tk::cuda::require_device(ordinal, "ordinal");
        *stream = static_cast<tk_stream>(tk::cuda::stream_create(ordinal));
    });
}

TK_API tk_status tk_cuda_stream_destroy(tk_stream stream) {
    return api_call([&] {
        require(stream != nullptr, "stream", "a stream from tk_cuda_stream_create (the default stream cannot be destroyed)",
                null_text);
        tk::cuda::stream_destroy(stream);
    });
}

TK_API tk_status tk_cuda_stream_synchronize(tk_stream stream) {
    return api_call([&] { tk::cuda::stream_synchronize(stream); });
}

TK_API tk_status tk_cuda_malloc(int32_t ordinal, uint64_t bytes, void** ptr) {
    return api_call([&] {
        require(ptr != nullptr, "ptr", "a pointer to receive the allocation", null_text);
        tk::cuda::require_device(ordinal, "ordinal");
        *ptr = bytes == 0 ? nullptr : tk::cuda::malloc_device(ordinal, bytes);
    });
}

TK_API tk_status tk_cuda_free(int32_t ordinal, void* ptr) {
    return api_call([&] {
        if (ptr == nullptr) return;
        tk::cuda::require_device(ordinal, "ordinal");
        tk::cuda::free_device(ordinal, ptr);
    });
}

TK_API tk_status tk_cuda_memcpy_async(void* dst, const void* src, uint64_t bytes, tk_stream stream) {
    return api_call([&] {
        if (bytes == 0) return;
        require(dst != nullptr, "dst", "a destination pointer", null_text);
        require(src != nullptr, "src", "a source pointer", null_text);
        tk::cuda::memcpy_async(dst, src, bytes, stream);
    });
}

TK_API tk_status tk_cuda_memset_async(void* dst, int32_t value, uint64_t bytes, tk_stream stream) {
    return api_call([&] {
        if (bytes == 0) return;
        require(dst != nullptr, "dst", "a device pointer", null_text);
        tk::cuda::memset_async(dst, value, bytes, stream);
    });
}

}  // extern "C"
