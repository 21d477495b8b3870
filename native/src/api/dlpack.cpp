// ABI entry points between DLPack tensors and tk_tensor (docs/SPEC.md, "DLPack"): the mapping of
// dtypes, devices and strides, the checks a DLPack tensor gets on the way in, and the DLManagedTensors
// the library allocates on the way out.
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "tokenkernels/tokenkernels.h"

using tk::api_call;
using tk::require;

namespace {

auto null_text() { return std::string("NULL"); }

// dlpack.h's name of a DLDeviceType, for messages; "" for a value it does not define.
const char* device_type_name(int32_t type) {
    switch (type) {
        case 1: return "kDLCPU";
        case 2: return "kDLCUDA";
        case 3: return "kDLCUDAHost";
        case 4: return "kDLOpenCL";
        case 7: return "kDLVulkan";
        case 8: return "kDLMetal";
        case 9: return "kDLVPI";
        case 10: return "kDLROCM";
        case 11: return "kDLROCMHost";
        case 12: return "kDLExtDev";
        case 13: return "kDLCUDAManaged";
        case 14: return "kDLOneAPI";
        case 15: return "kDLWebGPU";
        case 16: return "kDLHexagon";
        case 17: return "kDLMAIA";
        default: return "";
    }
}

// dlpack.h's name of a DLDataTypeCode, for messages; "" for the codes past kDLBool (the float8 and
// narrower formats), named by number only.
const char* type_code_name(uint8_t code) {
    switch (code) {
        case 0: return "kDLInt";
        case 1: return "kDLUInt";
        case 2: return "kDLFloat";
        case 3: return "kDLOpaqueHandle";
        case 4: return "kDLBfloat";
        case 5: return "kDLComplex";
        case 6: return "kDLBool";
        default: return "";
    }
}

std::string with_name(int64_t value, const char* name) {
    return *name ? std::to_string(value) + " (" + name + ")" : std::to_string(value);
}

// The tk_dtype of a one-lane DLDataType, or -1.
tk_dtype dtype_of(const tk_dlpack_dtype& dtype) {
    if (dtype.code == TK_DLPACK_FLOAT && dtype.bits == 32) return TK_DTYPE_F32;
    if (dtype.code == TK_DLPACK_FLOAT && dtype.bits == 16) return TK_DTYPE_F16;
    if (dtype.code == TK_DLPACK_BFLOAT && dtype.bits == 16) return TK_DTYPE_BF16;
    if (dtype.code == TK_DLPACK_INT && dtype.bits == 32) return TK_DTYPE_I32;
    if (dtype.code == TK_DLPACK_INT && dtype.bits == 64) return TK_DTYPE_I64;
    return -1;
}

// a * b for a, b >= 1, saturating at INT64_MAX: a compact stride whose product overflows either
// belongs to a shape that is refused, or to an empty one ([0, 2^40, 2^40]), whose strides address
// nothing and are never used; it must not overflow while it is computed.
int64_t saturating_product(int64_t a, int64_t b) {
    return a > std::numeric_limits<int64_t>::max() / b ? std::numeric_limits<int64_t>::max() : a * b;
}

// The view of dl, named `name` ("dl_tensor", "managed->dl_tensor") in messages. Writes nothing but
// the returned value.
tk_tensor view_of(const tk_dlpack_tensor& dl, const std::string& name) {
    const auto field = [&](const char* member) { return [&name, member] { return name + "." + member; }; };

    require(dl.ndim >= 1 && dl.ndim <= TK_MAX_RANK, field("ndim"),
            [] { return "1 to " + std::to_string(TK_MAX_RANK) + " (a 0-d tensor has no tk_tensor: reshape it to [1])"; },
            [&] { return std::to_string(dl.ndim); });
    require(dl.dtype.lanes == 1, field("dtype.lanes"), "1 (the library takes no vector types)",
            [&] { return std::to_string(dl.dtype.lanes); });
    const tk_dtype dtype = dtype_of(dl.dtype);
    require(dtype >= 0, field("dtype"),
            "float32 or float16 (code 2, kDLFloat, 32 or 16 bits), bfloat16 (code 4, kDLBfloat, 16 bits), "
            "int32 or int64 (code 0, kDLInt, 32 or 64 bits)",
            [&] { return "code " + with_name(dl.dtype.code, type_code_name(dl.dtype.code)) + ", " + std::to_string(dl.dtype.bits) + " bits"; });

    const int32_t type = dl.device.device_type;
    const bool host = type == TK_DLPACK_CPU || type == TK_DLPACK_CUDA_HOST;
    const bool cuda = type == TK_DLPACK_CUDA || type == TK_DLPACK_CUDA_MANAGED;
    require(host || cuda, field("device.device_type"),
            "kDLCPU (1), kDLCUDA (2), kDLCUDAHost (3) or kDLCUDAManaged (13)",
            [&] { return with_name(type, device_type_name(type)); });
    if (cuda)
        require(dl.device.device_id >= 0, field("device.device_id"), "a CUDA device index (0 or more)",
                [&] { return std::to_string(dl.device.device_id); });
    require(dl.shape != nullptr, field("shape"), "an array of ndim sizes", null_text);

    require(dl.data != nullptr || dl.byte_offset == 0, field("byte_offset"), "0 when data is NULL",
            [&] { return std::to_string(dl.byte_offset); });
    const auto address = reinterpret_cast<uintptr_t>(dl.data);
    require(dl.byte_offset <= std::numeric_limits<uintptr_t>::max() - address, field("byte_offset"),
            "an offset that keeps data + byte_offset within the address space",
            [&] { return std::to_string(dl.byte_offset); });

    tk_tensor view{};
    view.data = reinterpret_cast<void*>(address + static_cast<uintptr_t>(dl.byte_offset));
    view.dtype = dtype;
    view.device_kind = cuda ? TK_DEVICE_CUDA : TK_DEVICE_CPU;
    view.device_ordinal = cuda ? dl.device.device_id : 0;
    view.rank = dl.ndim;
    for (int32_t d = 0; d < dl.ndim; ++d) view.shape[d] = dl.shape[d];

    // Compact row-major strides (sizes below 1 counted as 1: a negative one is refused below, and a
    // zero one leaves no element whose offset the strides would give).
    int64_t compact[TK_MAX_RANK];
    int64_t inner = 1;
    bool empty = false;
    for (int32_t d = dl.ndim - 1; d >= 0; --d) {
        compact[d] = inner;
        inner = saturating_product(inner, view.shape[d] > 1 ? view.shape[d] : 1);
        empty = empty || view.shape[d] == 0;
    }
    for (int32_t d = 0; d < dl.ndim; ++d) {
        const bool addresses_nothing = empty || view.shape[d] == 1;
        view.strides[d] = dl.strides == nullptr || addresses_nothing ? compact[d] : dl.strides[d];
    }

    tk::require_tensor_layout(view, name.c_str());
    tk::require_positive_strides(view, name.c_str());
    return view;
}

// A DLManagedTensor or DLManagedTensorVersioned with room for its shape and strides, freed whole by its
// deleter. The struct is the first member, so the deleter's self is the allocation's address.
template <class Managed>
struct Exported {
    Managed managed;
    int64_t shape[TK_MAX_RANK];
    int64_t strides[TK_MAX_RANK];
};

void delete_exported(tk_dlpack_managed_tensor* self) {
    delete reinterpret_cast<Exported<tk_dlpack_managed_tensor>*>(self);
}

void delete_exported_versioned(tk_dlpack_managed_tensor_versioned* self) {
    delete reinterpret_cast<Exported<tk_dlpack_managed_tensor_versioned>*>(self);
}

// A validated tk_tensor described in exported's dl_tensor, shape and strides.
template <class Managed>
void describe(const tk_tensor& t, Exported<Managed>& exported) {
    tk_dlpack_tensor& dl = exported.managed.dl_tensor;
    for (int32_t d = 0; d < t.rank; ++d) {
        exported.shape[d] = t.shape[d];
        exported.strides[d] = t.strides[d];
    }
    dl.data = t.data;
    dl.device.device_type = t.device_kind == TK_DEVICE_CUDA ? TK_DLPACK_CUDA : TK_DLPACK_CPU;
    dl.device.device_id = t.device_kind == TK_DEVICE_CUDA ? t.device_ordinal : 0;
    dl.ndim = t.rank;
    switch (t.dtype) {
        case TK_DTYPE_F32: dl.dtype = {TK_DLPACK_FLOAT, 32, 1}; break;
        case TK_DTYPE_F16: dl.dtype = {TK_DLPACK_FLOAT, 16, 1}; break;
        case TK_DTYPE_BF16: dl.dtype = {TK_DLPACK_BFLOAT, 16, 1}; break;
        case TK_DTYPE_I32: dl.dtype = {TK_DLPACK_INT, 32, 1}; break;
        default: dl.dtype = {TK_DLPACK_INT, 64, 1}; break;
    }
    dl.shape = exported.shape;
    dl.strides = exported.strides;
    dl.byte_offset = 0;
}

// The checks a tk_tensor gets before it is described as a DLPack tensor.
const tk_tensor& require_exportable(const tk_tensor* tensor) {
    require(tensor != nullptr, "tensor", "a tensor descriptor", null_text);
    tk::require_tensor_layout(*tensor, "tensor");
    if (tensor->device_kind == TK_DEVICE_CUDA)
        require(tensor->device_ordinal >= 0, "tensor.device_ordinal", "a CUDA device index (0 or more)",
                [&] { return std::to_string(tensor->device_ordinal); });
    return *tensor;
}

}  // namespace

extern "C" {

TK_API tk_status tk_tensor_from_dlpack(const tk_dlpack_tensor* dl_tensor, tk_tensor* tensor) {
    return api_call([&] {
        require(dl_tensor != nullptr, "dl_tensor", "a DLTensor", null_text);
        require(tensor != nullptr, "tensor", "a tk_tensor to receive the view", null_text);
        *tensor = view_of(*dl_tensor, "dl_tensor");
    });
}

TK_API tk_status tk_tensor_from_dlpack_managed(const tk_dlpack_managed_tensor* managed, tk_tensor* tensor) {
    return api_call([&] {
        require(managed != nullptr, "managed", "a DLManagedTensor", null_text);
        require(tensor != nullptr, "tensor", "a tk_tensor to receive the view", null_text);
        *tensor = view_of(managed->dl_tensor, "managed->dl_tensor");
    });
}

TK_API tk_status tk_tensor_from_dlpack_versioned(const tk_dlpack_managed_tensor_versioned* managed, int32_t writable,
                                                 tk_tensor* tensor) {
    return api_call([&] {
        require(managed != nullptr, "managed", "a DLManagedTensorVersioned", null_text);
        require(writable == 0 || writable == 1, "writable", "0 (the view is read) or 1 (the view is written)",
                [&] { return std::to_string(writable); });
        require(tensor != nullptr, "tensor", "a tk_tensor to receive the view", null_text);
        require(managed->version.major == TK_DLPACK_VERSION_MAJOR, "managed->version",
                [] { return "DLPack major version " + std::to_string(TK_DLPACK_VERSION_MAJOR); },
                [&] { return std::to_string(managed->version.major) + "." + std::to_string(managed->version.minor); });
        if (writable == 1)
            require((managed->flags & TK_DLPACK_FLAG_READ_ONLY) == 0, "managed->flags",
                    "a tensor without the read-only flag (writable is 1: the view will be written)",
                    [&] { return std::to_string(managed->flags) + " (read-only)"; });
        *tensor = view_of(managed->dl_tensor, "managed->dl_tensor");
    });
}

TK_API tk_status tk_tensor_to_dlpack(const tk_tensor* tensor, tk_dlpack_managed_tensor** managed) {
    return api_call([&] {
        require(managed != nullptr, "managed", "a pointer to receive the DLManagedTensor", null_text);
        const tk_tensor& t = require_exportable(tensor);
        auto exported = std::make_unique<Exported<tk_dlpack_managed_tensor>>();
        describe(t, *exported);
        exported->managed.manager_ctx = nullptr;
        exported->managed.deleter = delete_exported;
        *managed = &exported.release()->managed;
    });
}

TK_API tk_status tk_tensor_to_dlpack_versioned(const tk_tensor* tensor, int32_t read_only,
                                               tk_dlpack_managed_tensor_versioned** managed) {
    return api_call([&] {
        require(read_only == 0 || read_only == 1, "read_only", "0 or 1", [&] { return std::to_string(read_only); });
        require(managed != nullptr, "managed", "a pointer to receive the DLManagedTensorVersioned", null_text);
        const tk_tensor& t = require_exportable(tensor);
        auto exported = std::make_unique<Exported<tk_dlpack_managed_tensor_versioned>>();
        describe(t, *exported);
        exported->managed.version = {TK_DLPACK_VERSION_MAJOR, TK_DLPACK_VERSION_MINOR};
        exported->managed.manager_ctx = nullptr;
        exported->managed.deleter = delete_exported_versioned;
        exported->managed.flags = read_only == 1 ? TK_DLPACK_FLAG_READ_ONLY : 0;
        *managed = &exported.release()->managed;
    });
}

}  // extern "C"
