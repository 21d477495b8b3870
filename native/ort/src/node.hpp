// The frame every TokenKernels custom op of ONNX Runtime runs in: what an op declares (its inputs,
// outputs and kernel factory), its attributes read and refused at kernel creation, and one compute
// call's view of ORT's tensors as tk_tensor descriptors, with scratch from ORT's allocator and the
// failures of the C ABI turned into ORT errors naming the node.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "onnxruntime_cxx_api.h"
#include "tokenkernels/tokenkernels.h"

namespace tk_ort {

// The ORT execution provider a kernel is registered for.
enum class Backend { kCpu, kCuda };

// What element types an input or output takes.
enum class ValueKind {
    kFeatures,  // the op's token type: one kernel is registered per float32, float16 and bfloat16
    kAnyFloat,  // float32, float16 or bfloat16, independent of the features' (any type at ORT's schema: the
                // C ABI refuses the others, naming the input)
    kFloat32,
    kInt32,
    kInt64,
};

struct IoSpec {
    const char* name;
    ValueKind kind;
    bool optional = false;
};

class NodeKernel;
struct KernelSetup;

// One op of the ai.tokenkernels domain.
struct OpSpec {
    const char* name;
    std::vector<IoSpec> inputs;
    std::vector<IoSpec> outputs;
    std::unique_ptr<NodeKernel> (*create)(const KernelSetup& setup);
};

// Every op of the domain (ops.cpp holds the list).
const std::vector<OpSpec>& all_ops();

// A failure of one node; the message already names the op and the node.
class NodeError : public std::runtime_error {
public:
    NodeError(OrtErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    OrtErrorCode code() const noexcept { return code_; }

private:
    OrtErrorCode code_;
};

// "TokenKernels TopK node 'select': ", the start of every message of a node.
class NodeName {
public:
    NodeName(std::string op, std::string node) : op_(std::move(op)), node_(std::move(node)) {}
    std::string prefix() const { return "TokenKernels " + op_ + " node '" + node_ + "': "; }
    [[noreturn]] void fail(OrtErrorCode code, const std::string& detail) const { throw NodeError(code, prefix() + detail); }
    // A failed C ABI call: its status and tk_last_error(), which must be read before any other
    // TokenKernels call on this thread.
    void check(tk_status status, const char* function) const;
    // The same for a shape-free query made at kernel creation to check the attributes (its message
    // names the params field, which is the attribute of the same name).
    void check_attributes(tk_status status, const char* function) const;

private:
    std::string op_;
    std::string node_;
};

// What a kernel factory receives: the node's attributes and where the kernel runs.
struct KernelSetup {
    const OrtKernelInfo* info;
    const OpSpec& spec;
    Backend backend;
    tk_dtype features;  // the element type the kernel was registered for (kFeatures values)
    NodeName name;
};

// The node's attributes, read once at kernel creation. A missing attribute takes its default; a
// value of the wrong type or out of range is refused, naming the attribute.
class Attributes {
public:
    explicit Attributes(const KernelSetup& setup) : info_(setup.info), name_(setup.name) {}

    bool has(const char* name) const;
    int64_t integer(const char* name, std::optional<int64_t> fallback) const;
    // An integer in [low, high] (the C ABI's int32 fields).
    int32_t integer_in(const char* name, std::optional<int64_t> fallback, int64_t low, int64_t high) const;
    // 0 or 1.
    int32_t flag(const char* name, int64_t fallback) const;
    float real(const char* name, std::optional<float> fallback) const;
    std::vector<int64_t> integers(const char* name, std::optional<std::vector<int64_t>> fallback) const;
    // One of `choices`; returns its index.
    int32_t choice(const char* name, const char* fallback, const std::vector<const char*>& choices) const;

    [[noreturn]] void refuse(const char* name, const std::string& expected, const std::string& got) const;

private:
    std::string type_of(const char* name) const;  // "an integer", "a float", ..., or "" when absent

    const OrtKernelInfo* info_;
    const NodeName& name_;
};

// A kernel: one node of a graph on one execution provider. ComputeV2 is ORT's entry point.
class NodeKernel {
public:
    explicit NodeKernel(const KernelSetup& setup)
        : spec_(setup.spec), backend_(setup.backend), features_(setup.features), name_(setup.name) {}
    virtual ~NodeKernel() = default;

    OrtStatusPtr ComputeV2(OrtKernelContext* context) noexcept;

    const OpSpec& spec() const { return spec_; }
    Backend backend() const { return backend_; }
    const NodeName& name() const { return name_; }

    class Run;

protected:
    virtual void compute(Run& run) = 0;

private:
    const OpSpec& spec_;
    Backend backend_;
    tk_dtype features_;
    NodeName name_;
};

// One int64 tensor of the graph that a C ABI op writes as i32: zero-filled, then written through
// `as_i32`, a view of the low halves of its little-endian int64 elements, so every value >= 0 reads
// back exactly as int64 on the CPU and on CUDA without a conversion kernel (the C ABI's index outputs
// are i32 alone). A -1 would read back as 4294967295, and no op of this library can write one: the C
// ABI pads with -1 only past an item's count (k or K above the tokens ranked, per-item lengths or
// counts, or no cluster at all), and the ops take no per-item lengths or counts, refuse k and K above
// N (the C ABI) and take at least one cluster (the clusters and n_clusters attributes are >= 1).
struct Int64Indices {
    tk_tensor as_i32{};
    tk_tensor as_i64{};
    bool present = false;
};

// One compute call: ORT's inputs and outputs as tk_tensor descriptors on the kernel's device, the
// compute stream, and scratch freed when the call ends. On CUDA the scratch comes from
// KernelContext_GetScratchBuffer, which allocates it on ORT's compute stream: freed while the work
// enqueued on that stream may still read it, it is handed again only to later work on the same
// stream, or to another stream after ORT makes that stream wait, so concurrent Run() calls on other
// streams never receive it early. On the CPU the work is done when the call returns, so scratch from
// ORT's CPU allocator is freed then.
class NodeKernel::Run {
public:
    Run(const NodeKernel& kernel, OrtKernelContext* context);
    ~Run();
    Run(const Run&) = delete;
    Run& operator=(const Run&) = delete;

    const NodeName& name() const { return kernel_.name_; }
    tk_stream stream() const { return stream_; }
    tk_dtype features() const { return kernel_.features_; }

    bool has_input(size_t index) const;
    std::vector<int64_t> input_shape(size_t index) const;
    // The input's shape after checking its rank (`layout` describes it, e.g. "[B, N, C]").
    std::vector<int64_t> input_shape(size_t index, size_t rank, const char* layout) const;
    tk_tensor input(size_t index) const;
    // An optional input: NULL when absent.
    const tk_tensor* optional_input(size_t index, tk_tensor& storage) const;

    // Outputs the OpSpec marks required fail the run when the node lacks them; an optional output is
    // NULL (Int64Indices::present false) when the node does not produce it.
    tk_tensor output(size_t index, const std::vector<int64_t>& shape, tk_dtype dtype);
    const tk_tensor* optional_output(size_t index, const std::vector<int64_t>& shape, tk_dtype dtype, tk_tensor& storage);
    Int64Indices int64_output(size_t index, const std::vector<int64_t>& shape);
    // The output's low-half view when the node produces it, else i32 scratch of that shape.
    tk_tensor int64_output_or_scratch(size_t index, const std::vector<int64_t>& shape);

    // Scratch bytes on the kernel's device (NULL for 0).
    void* scratch(uint64_t bytes);
    tk_tensor scratch_tensor(const std::vector<int64_t>& shape, tk_dtype dtype);
    // Sets `bytes` bytes at data to `value`, ordered on the stream on CUDA.
    void fill(void* data, int value, uint64_t bytes);

    void check(tk_status status, const char* function) const { name().check(status, function); }
    [[noreturn]] void fail_input(size_t index, const std::string& detail) const;
    const char* input_name(size_t index) const { return kernel_.spec_.inputs[index].name; }

private:
    tk_tensor describe(void* data, ONNXTensorElementDataType type, const std::vector<int64_t>& shape,
                       const std::string& what) const;
    void require_output_present(size_t index, bool present) const;

    const NodeKernel& kernel_;
    Ort::KernelContext context_;
    tk_device_kind device_kind_;
    int32_t device_ordinal_ = 0;
    tk_stream stream_ = nullptr;
    std::optional<Ort::Allocator> allocator_;  // the scratch's allocator, which frees it
    std::vector<void*> scratch_;
};

// ---- Helpers for the ops ---------------------------------------------------------------------

// A contiguous tensor's strides in elements.
void set_contiguous_strides(tk_tensor& t);
// A view of `t` with another shape and the same contiguous layout (same element count).
tk_tensor reshaped(const tk_tensor& t, const std::vector<int64_t>& shape);
// Rows [begin, begin + count) of t [B, R, C].
tk_tensor rows(const tk_tensor& t, int64_t begin, int64_t count);
// Columns [begin, end) of a contiguous t [B, N].
tk_tensor columns(const tk_tensor& t, int64_t begin, int64_t end);
std::string shape_text(const std::vector<int64_t>& shape);
// A float attribute as messages show it: the shortest text that reads back as the same float ("1.5").
std::string real_text(float value);

}  // namespace tk_ort
