#include "node.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

// The int64 elements of the graph are written through their low 32-bit halves (Int64Indices), which
// needs a little-endian target (every Windows target is one).
#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__)
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "int64 outputs are written through their low halves: a little-endian target is needed");
#elif !defined(_WIN32)
#error "int64 outputs are written through their low halves: a little-endian target is needed, and this compiler does not say the byte order"
#endif

namespace tk_ort {

namespace {

// ORT's C API returns an OrtStatus* that the caller releases; these report only whether it succeeded.
bool succeeded(OrtStatus* status) {
    if (status == nullptr) return true;
    Ort::GetApi().ReleaseStatus(status);
    return false;
}

bool try_integer(const OrtKernelInfo* info, const char* name, int64_t* value) {
    return succeeded(Ort::GetApi().KernelInfoGetAttribute_int64(info, name, value));
}

bool try_real(const OrtKernelInfo* info, const char* name, float* value) {
    return succeeded(Ort::GetApi().KernelInfoGetAttribute_float(info, name, value));
}

bool try_text(const OrtKernelInfo* info, const char* name, std::string* value) {
    size_t size = 0;
    if (!succeeded(Ort::GetApi().KernelInfoGetAttribute_string(info, name, nullptr, &size))) return false;
    std::string text(size, '\0');
    if (!succeeded(Ort::GetApi().KernelInfoGetAttribute_string(info, name, text.data(), &size))) return false;
    text.resize(size > 0 ? size - 1 : 0);  // size counts the terminating NUL
    *value = std::move(text);
    return true;
}

bool try_integers(const OrtKernelInfo* info, const char* name, std::vector<int64_t>* values) {
    size_t size = 0;
    if (!succeeded(Ort::GetApi().KernelInfoGetAttributeArray_int64(info, name, nullptr, &size))) return false;
    values->assign(size, 0);
    return size == 0 || succeeded(Ort::GetApi().KernelInfoGetAttributeArray_int64(info, name, values->data(), &size));
}

bool try_reals(const OrtKernelInfo* info, const char* name, std::vector<float>* values) {
    size_t size = 0;
    if (!succeeded(Ort::GetApi().KernelInfoGetAttributeArray_float(info, name, nullptr, &size))) return false;
    values->assign(size, 0.0f);
    return size == 0 || succeeded(Ort::GetApi().KernelInfoGetAttributeArray_float(info, name, values->data(), &size));
}

std::string integers_text(const std::vector<int64_t>& values) {
    std::string text = "[";
    for (size_t i = 0; i < values.size(); ++i) text += (i ? ", " : "") + std::to_string(values[i]);
    return text + "]";
}

OrtErrorCode error_code_of(tk_status status) {
    return status == TK_STATUS_INVALID_ARGUMENT ? ORT_INVALID_ARGUMENT : ORT_FAIL;
}

const char* element_type_name(ONNXTensorElementDataType type) {
    switch (type) {
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return "float";
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return "float16";
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return "bfloat16";
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return "int32";
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return "int64";
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_DOUBLE: return "double";
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_UINT8: return "uint8";
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT8: return "int8";
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_BOOL: return "bool";
        default: return "another element type";
    }
}

// The tk_dtype of an ORT element type, or -1 for one TokenKernels does not take.
tk_dtype dtype_of(ONNXTensorElementDataType type) {
    switch (type) {
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT: return TK_DTYPE_F32;
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16: return TK_DTYPE_F16;
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16: return TK_DTYPE_BF16;
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32: return TK_DTYPE_I32;
        case ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64: return TK_DTYPE_I64;
        default: return -1;
    }
}

}  // namespace

// ---- NodeName ------------------------------------------------------------------------------------

void NodeName::check(tk_status status, const char* function) const {
    if (status == TK_STATUS_OK) return;
    const std::string message = tk_last_error();
    fail(error_code_of(status), std::string(function) + " failed (" + tk_status_name(status) + "): " + message);
}

void NodeName::check_attributes(tk_status status, const char* function) const {
    if (status == TK_STATUS_OK) return;
    const std::string message = tk_last_error();
    fail(ORT_INVALID_ARGUMENT, std::string("attributes refused by ") + function + " (" + tk_status_name(status) + "): " + message);
}

// ---- Attributes ----------------------------------------------------------------------------------

std::string Attributes::type_of(const char* name) const {
    int64_t integer = 0;
    float real = 0.0f;
    std::string text;
    std::vector<int64_t> integers;
    std::vector<float> reals;
    if (try_integer(info_, name, &integer)) return "an integer";
    if (try_real(info_, name, &real)) return "a float";
    if (try_text(info_, name, &text)) return "a string";
    if (try_integers(info_, name, &integers)) return "a list of integers";
    if (try_reals(info_, name, &reals)) return "a list of floats";
    return "";
}

bool Attributes::has(const char* name) const { return !type_of(name).empty(); }

void Attributes::refuse(const char* name, const std::string& expected, const std::string& got) const {
    name_.fail(ORT_INVALID_ARGUMENT, std::string("attribute '") + name + "': expected " + expected + ", got " + got);
}

int64_t Attributes::integer(const char* name, std::optional<int64_t> fallback) const {
    int64_t value = 0;
    if (try_integer(info_, name, &value)) return value;
    const std::string type = type_of(name);
    if (!type.empty()) refuse(name, "an integer", type);
    if (!fallback) refuse(name, "an integer (the attribute is required)", "none");
    return *fallback;
}

int32_t Attributes::integer_in(const char* name, std::optional<int64_t> fallback, int64_t low, int64_t high) const {
    const int64_t value = integer(name, fallback);
    if (value < low || value > high)
        refuse(name, "an integer in [" + std::to_string(low) + ", " + std::to_string(high) + "]", std::to_string(value));
    return static_cast<int32_t>(value);
}

int32_t Attributes::flag(const char* name, int64_t fallback) const {
    const int64_t value = integer(name, fallback);
    if (value != 0 && value != 1) refuse(name, "0 or 1", std::to_string(value));
    return static_cast<int32_t>(value);
}

float Attributes::real(const char* name, std::optional<float> fallback) const {
    float value = 0.0f;
    if (try_real(info_, name, &value)) return value;
    const std::string type = type_of(name);
    if (!type.empty()) refuse(name, "a float", type);
    if (!fallback) refuse(name, "a float (the attribute is required)", "none");
    return *fallback;
}

std::vector<int64_t> Attributes::integers(const char* name, std::optional<std::vector<int64_t>> fallback) const {
    std::vector<int64_t> values;
    if (try_integers(info_, name, &values)) return values;
    const std::string type = type_of(name);
    if (!type.empty()) refuse(name, "a list of integers", type);
    if (!fallback) refuse(name, "a list of integers (the attribute is required)", "none");
    return *fallback;
}

int32_t Attributes::choice(const char* name, const char* fallback, const std::vector<const char*>& choices) const {
    std::string value;
    if (!try_text(info_, name, &value)) {
        const std::string type = type_of(name);
        if (!type.empty()) refuse(name, "a string", type);
        value = fallback;
    }
    std::string allowed;
    for (size_t i = 0; i < choices.size(); ++i) {
        if (value == choices[i]) return static_cast<int32_t>(i);
        allowed += std::string(i == 0 ? "" : i + 1 == choices.size() ? " or " : ", ") + "'" + choices[i] + "'";
    }
    refuse(name, allowed, "'" + value + "'");
}

// ---- NodeKernel ----------------------------------------------------------------------------------

OrtStatusPtr NodeKernel::ComputeV2(OrtKernelContext* context) noexcept {
    try {
        Run run(*this, context);
        compute(run);
        return nullptr;
    } catch (const NodeError& e) {
        return Ort::GetApi().CreateStatus(e.code(), e.what());
    } catch (const Ort::Exception& e) {
        return Ort::GetApi().CreateStatus(e.GetOrtErrorCode(), (name_.prefix() + e.what()).c_str());
    } catch (const std::bad_alloc&) {
        return Ort::GetApi().CreateStatus(ORT_FAIL, (name_.prefix() + "out of host memory").c_str());
    } catch (const std::exception& e) {
        return Ort::GetApi().CreateStatus(ORT_FAIL, (name_.prefix() + "internal error: " + e.what()).c_str());
    }
}

// ---- NodeKernel::Run -----------------------------------------------------------------------------

NodeKernel::Run::Run(const NodeKernel& kernel, OrtKernelContext* context)
    : kernel_(kernel), context_(context),
      device_kind_(kernel.backend_ == Backend::kCuda ? TK_DEVICE_CUDA : TK_DEVICE_CPU) {
    if (device_kind_ == TK_DEVICE_CUDA) {
        // Every op's first input is required: its memory says which device the node runs on.
        device_ordinal_ = context_.GetInput(0).GetTensorMemoryInfo().GetDeviceId();
        stream_ = static_cast<tk_stream>(context_.GetGPUComputeStream());
    }
}

NodeKernel::Run::~Run() {
    // A destructor must not throw: a failed free is ignored (its status released).
    for (void* p : scratch_) {
        OrtStatus* status = Ort::GetApi().AllocatorFree(*allocator_, p);
        if (status != nullptr) Ort::GetApi().ReleaseStatus(status);
    }
}

bool NodeKernel::Run::has_input(size_t index) const {
    if (index >= context_.GetInputCount()) return false;
    return context_.GetInput(index) != nullptr;
}

std::vector<int64_t> NodeKernel::Run::input_shape(size_t index) const {
    return context_.GetInput(index).GetTensorTypeAndShapeInfo().GetShape();
}

std::vector<int64_t> NodeKernel::Run::input_shape(size_t index, size_t rank, const char* layout) const {
    std::vector<int64_t> shape = input_shape(index);
    if (shape.size() != rank)
        fail_input(index, "expected rank " + std::to_string(rank) + " " + layout + ", got shape " + shape_text(shape));
    return shape;
}

void NodeKernel::Run::fail_input(size_t index, const std::string& detail) const {
    name().fail(ORT_INVALID_ARGUMENT, std::string("input '") + input_name(index) + "': " + detail);
}

tk_tensor NodeKernel::Run::describe(void* data, ONNXTensorElementDataType type, const std::vector<int64_t>& shape,
                                    const std::string& what) const {
    const tk_dtype dtype = dtype_of(type);
    if (dtype < 0)
        name().fail(ORT_INVALID_ARGUMENT, what + ": element type " + element_type_name(type) +
                                              " is not one TokenKernels takes (float, float16, bfloat16, int32, int64)");
    if (shape.size() > TK_MAX_RANK)
        name().fail(ORT_INVALID_ARGUMENT, what + ": rank " + std::to_string(shape.size()) + " is above TokenKernels' " +
                                              std::to_string(TK_MAX_RANK));
    tk_tensor t{};
    t.data = data;
    t.dtype = dtype;
    t.device_kind = device_kind_;
    t.device_ordinal = device_ordinal_;
    t.rank = static_cast<int32_t>(shape.size());
    for (size_t d = 0; d < shape.size(); ++d) t.shape[d] = shape[d];
    set_contiguous_strides(t);
    return t;
}

tk_tensor NodeKernel::Run::input(size_t index) const {
    Ort::ConstValue value = context_.GetInput(index);
    if (value == nullptr) name().fail(ORT_INVALID_ARGUMENT, std::string("input '") + input_name(index) + "' is required");
    const Ort::TensorTypeAndShapeInfo info = value.GetTensorTypeAndShapeInfo();
    return describe(const_cast<void*>(value.GetTensorRawData()), info.GetElementType(), info.GetShape(),
                    std::string("input '") + input_name(index) + "'");
}

const tk_tensor* NodeKernel::Run::optional_input(size_t index, tk_tensor& storage) const {
    if (!has_input(index)) return nullptr;
    storage = input(index);
    return &storage;
}

void NodeKernel::Run::require_output_present(size_t index, bool present) const {
    if (!present)
        name().fail(ORT_INVALID_ARGUMENT, std::string("output '") + kernel_.spec_.outputs[index].name + "' is required");
}

tk_tensor NodeKernel::Run::output(size_t index, const std::vector<int64_t>& shape, tk_dtype dtype) {
    tk_tensor storage{};
    optional_output(index, shape, dtype, storage);
    return storage;
}

const tk_tensor* NodeKernel::Run::optional_output(size_t index, const std::vector<int64_t>& shape, tk_dtype dtype,
                                                  tk_tensor& storage) {
    const bool required = !kernel_.spec_.outputs[index].optional;
    if (index >= context_.GetOutputCount()) {
        require_output_present(index, !required);
        return nullptr;
    }
    for (int64_t d : shape)
        if (d < 0) name().fail(ORT_INVALID_ARGUMENT, std::string("output '") + kernel_.spec_.outputs[index].name +
                                                         "' would have the negative shape " + shape_text(shape));
    Ort::UnownedValue value = context_.GetOutput(index, shape);
    if (value == nullptr) {
        require_output_present(index, !required);
        return nullptr;
    }
    storage = describe(value.GetTensorMutableRawData(), value.GetTensorTypeAndShapeInfo().GetElementType(), shape,
                       std::string("output '") + kernel_.spec_.outputs[index].name + "'");
    if (storage.dtype != dtype)
        name().fail(ORT_FAIL, std::string("output '") + kernel_.spec_.outputs[index].name + "' has an unexpected element type");
    return &storage;
}

Int64Indices NodeKernel::Run::int64_output(size_t index, const std::vector<int64_t>& shape) {
    Int64Indices indices;
    const tk_tensor* t = optional_output(index, shape, TK_DTYPE_I64, indices.as_i64);
    if (t == nullptr) return indices;
    indices.present = true;
    uint64_t count = 1;
    for (int64_t d : shape) count *= static_cast<uint64_t>(d);
    fill(indices.as_i64.data, 0, count * sizeof(int64_t));
    indices.as_i32 = indices.as_i64;
    indices.as_i32.dtype = TK_DTYPE_I32;
    for (int32_t d = 0; d < indices.as_i32.rank; ++d) indices.as_i32.strides[d] *= 2;
    return indices;
}

tk_tensor NodeKernel::Run::int64_output_or_scratch(size_t index, const std::vector<int64_t>& shape) {
    const Int64Indices indices = int64_output(index, shape);
    return indices.present ? indices.as_i32 : scratch_tensor(shape, TK_DTYPE_I32);
}

void* NodeKernel::Run::scratch(uint64_t bytes) {
    if (bytes == 0) return nullptr;
    // The memory of the node's first input: ORT's CPU memory, or that CUDA device's.
    const Ort::ConstMemoryInfo memory = context_.GetInput(0).GetTensorMemoryInfo();
    const OrtMemoryInfo* info = memory;
    if (!allocator_) allocator_.emplace(context_.GetAllocator(*info));
    if (bytes > std::numeric_limits<size_t>::max()) name().fail(ORT_FAIL, "scratch of " + std::to_string(bytes) + " bytes does not fit size_t");
    scratch_.reserve(scratch_.size() + 1);
    void* p = nullptr;
    if (device_kind_ == TK_DEVICE_CUDA) {
        // Allocated on the compute stream (see Run); freed by the same device's allocator.
        Ort::ThrowOnError(Ort::GetApi().KernelContext_GetScratchBuffer(context_.GetOrtKernelContext(), info, static_cast<size_t>(bytes), &p));
    } else {
        p = allocator_->Alloc(static_cast<size_t>(bytes));
    }
    if (p == nullptr) name().fail(ORT_FAIL, "ONNX Runtime's allocator returned no memory for " + std::to_string(bytes) + " bytes of scratch");
    scratch_.push_back(p);
    return p;
}

tk_tensor NodeKernel::Run::scratch_tensor(const std::vector<int64_t>& shape, tk_dtype dtype) {
    uint64_t count = 1;
    for (int64_t d : shape) count *= static_cast<uint64_t>(d);
    tk_tensor t{};
    t.dtype = dtype;
    t.device_kind = device_kind_;
    t.device_ordinal = device_ordinal_;
    t.rank = static_cast<int32_t>(shape.size());
    for (size_t d = 0; d < shape.size(); ++d) t.shape[d] = shape[d];
    set_contiguous_strides(t);
    t.data = scratch(count * static_cast<uint64_t>(tk_dtype_size(dtype)));  // NULL when empty, as the C ABI allows
    return t;
}

void NodeKernel::Run::fill(void* data, int value, uint64_t bytes) {
    if (bytes == 0) return;
    if (device_kind_ == TK_DEVICE_CPU) {
        std::memset(data, value, static_cast<size_t>(bytes));
    } else {
        check(tk_cuda_memset_async(data, value, bytes, stream_), "tk_cuda_memset_async");
    }
}

// ---- Helpers -------------------------------------------------------------------------------------

void set_contiguous_strides(tk_tensor& t) {
    int64_t stride = 1;
    for (int32_t d = t.rank - 1; d >= 0; --d) {
        t.strides[d] = stride;
        stride *= std::max<int64_t>(t.shape[d], 1);
    }
}

tk_tensor reshaped(const tk_tensor& t, const std::vector<int64_t>& shape) {
    tk_tensor view = t;
    view.rank = static_cast<int32_t>(shape.size());
    for (size_t d = 0; d < shape.size(); ++d) view.shape[d] = shape[d];
    set_contiguous_strides(view);
    return view;
}

tk_tensor rows(const tk_tensor& t, int64_t begin, int64_t count) {
    tk_tensor view = t;
    view.shape[1] = count;
    // An empty tensor's data may be NULL: no offset then.
    if (count > 0 && t.data != nullptr) view.data = static_cast<char*>(t.data) + begin * t.strides[1] * tk_dtype_size(t.dtype);
    return view;
}

tk_tensor columns(const tk_tensor& t, int64_t begin, int64_t end) {
    tk_tensor view = t;
    view.shape[1] = end - begin;
    if (end > begin && t.data != nullptr) view.data = static_cast<char*>(t.data) + begin * t.strides[1] * tk_dtype_size(t.dtype);
    return view;
}

std::string shape_text(const std::vector<int64_t>& shape) { return integers_text(shape); }

std::string real_text(float value) {
    char text[32];
    for (int digits = 1; digits <= 9; ++digits) {
        std::snprintf(text, sizeof text, "%.*g", digits, static_cast<double>(value));
        if (std::strtof(text, nullptr) == value || std::isnan(value)) break;
    }
    return text;
}

}  // namespace tk_ort
