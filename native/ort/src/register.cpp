// ONNX Runtime's entry point of a custom-op library: RegisterCustomOps adds the ai.tokenkernels
// domain (op set version 1) to a SessionOptions, with every op for the CPU execution provider and,
// when the loaded TokenKernels library holds the CUDA backend, for the CUDA execution provider.
//
// Built on the C++ wrapper Ort::CustomOpBase (ORT_API_MANUAL_INIT: the API comes from the
// OrtApiBase ORT passes in, ONNX Runtime itself is not linked): it gives per-kernel control of
// optional inputs and outputs, one kernel per feature element type (so ORT's type inference gives
// each output its type), the execution provider, and kernels created and run through OrtStatus.
// The lite API would take typed tensors, but its CUDA context needs headers the CPU package lacks.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "node.hpp"
#include "ops.hpp"

namespace tk_ort {

const std::vector<OpSpec>& all_ops() {
    static const std::vector<OpSpec> ops = [] {
        std::vector<OpSpec> list;
        add_family_ops(list);
        add_recipe_ops(list);
        add_video_ops(list);
        return list;
    }();
    return ops;
}

namespace {

constexpr const char* kDomain = "ai.tokenkernels";

ONNXTensorElementDataType element_type_of(tk_dtype dtype) {
    switch (dtype) {
        case TK_DTYPE_F16: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT16;
        case TK_DTYPE_BF16: return ONNX_TENSOR_ELEMENT_DATA_TYPE_BFLOAT16;
        default: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
    }
}

// One op of the domain for one execution provider and one feature element type.
struct TokenKernelsOp : Ort::CustomOpBase<TokenKernelsOp, NodeKernel, true> {
    TokenKernelsOp(const OpSpec& spec, Backend backend, tk_dtype features) : spec_(spec), backend_(backend), features_(features) {}

    const char* GetName() const { return spec_.name; }
    const char* GetExecutionProviderType() const {
        return backend_ == Backend::kCuda ? "CUDAExecutionProvider" : "CPUExecutionProvider";
    }

    size_t GetInputTypeCount() const { return spec_.inputs.size(); }
    ONNXTensorElementDataType GetInputType(size_t index) const { return type_of(spec_.inputs[index].kind); }
    OrtCustomOpInputOutputCharacteristic GetInputCharacteristic(size_t index) const {
        return characteristic(spec_.inputs[index].optional);
    }
    size_t GetOutputTypeCount() const { return spec_.outputs.size(); }
    ONNXTensorElementDataType GetOutputType(size_t index) const { return type_of(spec_.outputs[index].kind); }
    OrtCustomOpInputOutputCharacteristic GetOutputCharacteristic(size_t index) const {
        return characteristic(spec_.outputs[index].optional);
    }

    OrtStatusPtr CreateKernelV2(const OrtApi& api, const OrtKernelInfo* info, void** kernel) const noexcept {
        try {
            const KernelSetup setup{info, spec_, backend_, features_, NodeName(spec_.name, Ort::ConstKernelInfo(info).GetNodeName())};
            *kernel = spec_.create(setup).release();
            return nullptr;
        } catch (const NodeError& e) {
            return api.CreateStatus(e.code(), e.what());
        } catch (const std::exception& e) {
            return api.CreateStatus(ORT_FAIL, (std::string("TokenKernels ") + spec_.name + ": " + e.what()).c_str());
        }
    }

private:
    ONNXTensorElementDataType type_of(ValueKind kind) const {
        switch (kind) {
            case ValueKind::kFeatures: return element_type_of(features_);
            case ValueKind::kFloat32: return ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT;
            case ValueKind::kInt32: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT32;
            case ValueKind::kInt64: return ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64;
            case ValueKind::kAnyFloat: break;
        }
        // Any type at the schema; the C ABI refuses what is not a float type, naming the input.
        return ONNX_TENSOR_ELEMENT_DATA_TYPE_UNDEFINED;
    }

    static OrtCustomOpInputOutputCharacteristic characteristic(bool optional) {
        return optional ? INPUT_OUTPUT_OPTIONAL : INPUT_OUTPUT_REQUIRED;
    }

    const OpSpec& spec_;
    Backend backend_;
    tk_dtype features_;
};

bool has_features(const OpSpec& spec) {
    for (const IoSpec& io : spec.inputs)
        if (io.kind == ValueKind::kFeatures) return true;
    return false;
}

// The ops, made once: ORT keeps pointers to them for as long as the library is loaded.
const std::vector<std::unique_ptr<TokenKernelsOp>>& registered_ops() {
    static const std::vector<std::unique_ptr<TokenKernelsOp>> ops = [] {
        std::vector<std::unique_ptr<TokenKernelsOp>> list;
        std::vector<Backend> backends = {Backend::kCpu};
        if (tk_cuda_is_built() != 0) backends.push_back(Backend::kCuda);
        for (Backend backend : backends)
            for (const OpSpec& spec : all_ops()) {
                if (!has_features(spec)) {
                    list.push_back(std::make_unique<TokenKernelsOp>(spec, backend, TK_DTYPE_F32));
                    continue;
                }
                for (tk_dtype features : {TK_DTYPE_F32, TK_DTYPE_F16, TK_DTYPE_BF16})
                    list.push_back(std::make_unique<TokenKernelsOp>(spec, backend, features));
            }
        return list;
    }();
    return ops;
}

// Each SessionOptions gets its own domain, which must outlive the sessions made from it: they stay
// until the library is unloaded.
std::mutex domains_mutex;
std::vector<Ort::CustomOpDomain> domains;

OrtStatus* register_ops(OrtSessionOptions* options) {
    Ort::CustomOpDomain domain(kDomain);
    for (const auto& op : registered_ops()) domain.Add(op.get());
    Ort::UnownedSessionOptions(options).Add(domain);
    const std::lock_guard<std::mutex> lock(domains_mutex);
    domains.push_back(std::move(domain));
    return nullptr;
}

}  // namespace

}  // namespace tk_ort

// ORT_EXPORT is empty on Windows (ORT's own DLL exports through a .def file): the DLL exports the entry
// point itself, or ORT would not find it there.
#if defined(_WIN32)
#  define TK_ORT_ENTRY_POINT extern "C" __declspec(dllexport)
#else
#  define TK_ORT_ENTRY_POINT extern "C" ORT_EXPORT
#endif

TK_ORT_ENTRY_POINT OrtStatus* ORT_API_CALL RegisterCustomOps(OrtSessionOptions* options, const OrtApiBase* api_base) {
    const OrtApi* api = api_base->GetApi(ORT_API_VERSION);
    if (api == nullptr) {
        // An older ONNX Runtime: its first API version still creates a status that says so.
        const std::string message = std::string("TokenKernels' custom-op library was built against ONNX Runtime API version ") +
                                    std::to_string(ORT_API_VERSION) + " and needs that ONNX Runtime or a newer one; this is " +
                                    api_base->GetVersionString();
        return api_base->GetApi(1)->CreateStatus(ORT_FAIL, message.c_str());
    }
    Ort::InitApi(api);
    try {
        return tk_ort::register_ops(options);
    } catch (const Ort::Exception& e) {
        return api->CreateStatus(e.GetOrtErrorCode(), (std::string("TokenKernels: ") + e.what()).c_str());
    } catch (const std::exception& e) {
        return api->CreateStatus(ORT_FAIL, (std::string("TokenKernels: ") + e.what()).c_str());
    }
}
