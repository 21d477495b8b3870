#include "api/arguments.hpp"

#include <limits>
#include <string>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "cuda/runtime.hpp"

namespace tk {

const tk_tensor& require_output(const tk_tensor* ptr, const char* name, int32_t rank, const int64_t* shape,
                                const char* layout, tk_dtype dtype, const tk_tensor& device_of,
                                const char* device_of_name, const NamedTensors& inputs) {
    const tk_tensor& t = require_tensor(ptr, name);
    require_shape(t, name, rank, shape, layout);
    require(t.dtype == dtype, std::string(name) + ".dtype", dtype_name(dtype), [&] { return dtype_name(t.dtype); });
    require_same_device(t, name, device_of, device_of_name);
    require_positive_strides(t, name);
    require_non_self_overlapping(t, name);
    for (const auto& [input, input_name] : inputs)
        if (input != nullptr) require_disjoint(t, name, *input, input_name);
    return t;
}

int64_t host_index(const tk_tensor& t, int64_t i, int64_t j) {
    const int64_t offset = i * t.strides[0] + (t.rank > 1 ? j * t.strides[1] : 0);
    return t.dtype == TK_DTYPE_I32 ? static_cast<const int32_t*>(t.data)[offset] : static_cast<const int64_t*>(t.data)[offset];
}

StridedTensor strided(const tk_tensor& tensor) {
    const tk_tensor t = backend_view(tensor);
    StridedTensor s{t.data, t.dtype, {0, 0, 0, 0}};
    for (int32_t d = 0; d < t.rank && d < 4; ++d) s.strides[d] = t.strides[d];
    return s;
}

void require_index_dtype(const tk_tensor& t, const char* name) {
    require(t.dtype == TK_DTYPE_I32 || t.dtype == TK_DTYPE_I64, std::string(name) + ".dtype", "i32 or i64",
            [&] { return dtype_name(t.dtype); });
}

void require_token_count(int64_t tokens, const char* argument) {
    require(tokens <= std::numeric_limits<int32_t>::max(), argument, "at most 2147483647 tokens (i32 indices)", number(tokens));
}

void require_batch(const tk_tensor& t, const char* name, int64_t batch, const char* ref_name) {
    require(t.shape[0] == batch, std::string(name) + ".shape[0]",
            [&] { return std::to_string(batch) + " (B of " + ref_name + ")"; }, number(t.shape[0]));
}

void require_dim(const tk_tensor& t, const char* name, int d, int64_t expected, const char* what) {
    require(t.shape[d] == expected, [&] { return std::string(name) + ".shape[" + std::to_string(d) + "]"; },
            [&] { return std::to_string(expected) + " (" + what + ")"; }, number(t.shape[d]));
}

const tk_tensor& require_features(const tk_tensor* ptr, const char* name, int32_t rank, const char* layout) {
    const tk_tensor& t = require_tensor(ptr, name);
    require_rank(t, name, rank, layout);
    require_float_dtype(t, name);
    require_channels_contiguous(t, name);
    return t;
}

void require_per_item(const tk_tensor* ptr, const char* name, const tk_tensor& ref, const char* ref_name, int64_t limit,
                      const char* limit_text) {
    if (ptr == nullptr) return;
    const tk_tensor& t = require_tensor(ptr, name);
    const int64_t batch = ref.shape[0];
    require_shape(t, name, 1, &batch, "[B]");
    require(t.dtype == TK_DTYPE_I32, std::string(name) + ".dtype", "i32", [&] { return dtype_name(t.dtype); });
    require_same_device(t, name, ref, ref_name);
    require_positive_strides(t, name);
    // Host values can be checked before anything is written; device ones cannot without a sync.
    if (t.device_kind != TK_DEVICE_CPU) return;
    for (int64_t b = 0; b < batch; ++b) {
        const int64_t value = host_index(t, b);
        require(value >= 0 && value <= limit, [&] { return std::string(name) + "[" + std::to_string(b) + "]"; },
                [&] { return "a value in [0, " + std::to_string(limit) + "] (" + limit_text + ")"; }, number(value));
    }
}

void require_workspace(const void* workspace, uint64_t workspace_bytes, uint64_t needed, const tk_tensor& device_of,
                       const char* query, const NamedTensors& tensors) {
    if (workspace == nullptr) {
        require(workspace_bytes == 0, "workspace",
                [&] { return "a pointer to workspace_bytes = " + std::to_string(workspace_bytes) + " bytes"; }, null_text);
        return;
    }
    require(workspace_bytes >= needed, "workspace_bytes",
            [&] { return "at least " + std::to_string(needed) + " (" + query + ")"; },
            [&] { return std::to_string(workspace_bytes); });
    const auto begin = reinterpret_cast<uintptr_t>(workspace);
    require(workspace_bytes <= std::numeric_limits<uintptr_t>::max() - begin, "workspace_bytes",
            "a size that does not wrap around the address space from workspace", [&] { return std::to_string(workspace_bytes); });
    if (device_of.device_kind == TK_DEVICE_CUDA)
        cuda::require_device_pointer(workspace, device_of.device_ordinal, "workspace");
    // The op writes its scratch while it reads its inputs and before it writes its outputs: scratch
    // over any of them would change what it reads or returns.
    const ByteSpan scratch{begin, begin + static_cast<uintptr_t>(workspace_bytes)};
    for (const auto& [tensor, tensor_name] : tensors)
        if (tensor != nullptr && tensor->device_kind == device_of.device_kind)
            require_disjoint(scratch, "workspace", byte_span(*tensor), tensor_name);
}

}  // namespace tk
