// The CUDA runtime behind cuda/runtime.hpp, on the statically linked cudart: the library loads and
// its CPU ops run on machines without a driver, where every query below reports "no device".
// Arguments are validated at the ABI boundary (ordinals by require_device, NULL streams and
// pointers, zero sizes), so the functions below only wrap the runtime calls.
#include "cuda/runtime.hpp"

#include <cuda.h>
#include <cuda_runtime.h>

#include <string>

#include "core/cuda_architectures.hpp"
#include "core/error.hpp"
#include "cuda/check.cuh"

namespace tk::cuda {
namespace {

// cudaGetDeviceCount, with its error kept for messages. Without a driver or device it fails
// (cudaErrorNoDevice, cudaErrorInsufficientDriver, ...); those errors are not sticky, so clearing
// the last error leaves the runtime usable for a later call.
cudaError_t query_device_count(int* count) noexcept {
    const cudaError_t status = cudaGetDeviceCount(count);
    if (status != cudaSuccess) {
        *count = 0;
        cudaGetLastError();
    }
    return status;
}

std::string device_expected(int32_t ordinal) { return "memory on CUDA device " + std::to_string(ordinal); }

cudaStream_t as_stream(void* stream) { return static_cast<cudaStream_t>(stream); }

// A driver API function, or NULL when the driver does not provide it. By version where the runtime
// can ask so (12.5 and newer): the unversioned query returns the newest ABI of a symbol, and
// cuStreamGetCtx's changed (a _v2 with a third argument) in CUDA 12.5 drivers.
template <class Function>
Function driver_function(const char* symbol, int version) {
    void* function = nullptr;
#if CUDART_VERSION >= 12050
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    const cudaError_t status = cudaGetDriverEntryPointByVersion(symbol, &function, version, cudaEnableDefault, &found);
    if (status != cudaSuccess || found != cudaDriverEntryPointSuccess) function = nullptr;
#else
    (void)version;
    const cudaError_t status = cudaGetDriverEntryPoint(symbol, &function, cudaEnableDefault);
#endif
    if (status != cudaSuccess) {
        cudaGetLastError();
        function = nullptr;
    }
    return reinterpret_cast<Function>(function);
}

// The device a stream was created on, read through the driver (the stream's context, made current
// for a moment, names its device), which CUDA allows while the stream is being captured; the
// runtime's cudaStreamGetDevice is not allowed then by every driver. -1 when the driver cannot tell
// (an entry point missing, a green-context stream on a CUDA 12 driver): the launch is then the check.
int stream_device(cudaStream_t stream) {
    using GetContext = CUresult(CUDAAPI*)(CUstream, CUcontext*);
    using PushContext = CUresult(CUDAAPI*)(CUcontext);
    using PopContext = CUresult(CUDAAPI*)(CUcontext*);
    using ContextDevice = CUresult(CUDAAPI*)(CUdevice*);
    struct Driver {
        GetContext get_context = driver_function<GetContext>("cuStreamGetCtx", 9020);
        PushContext push = driver_function<PushContext>("cuCtxPushCurrent", 4000);
        PopContext pop = driver_function<PopContext>("cuCtxPopCurrent", 4000);
        ContextDevice device = driver_function<ContextDevice>("cuCtxGetDevice", 2000);
    };
    static const Driver driver{};
    if (!driver.get_context || !driver.push || !driver.pop || !driver.device) return -1;
    CUcontext context = nullptr;
    if (driver.get_context(reinterpret_cast<CUstream>(stream), &context) != CUDA_SUCCESS || context == nullptr) return -1;
    if (driver.push(context) != CUDA_SUCCESS) return -1;
    CUdevice device = -1;
    const CUresult status = driver.device(&device);
    CUcontext popped = nullptr;
    driver.pop(&popped);
    return status == CUDA_SUCCESS ? static_cast<int>(device) : -1;
}

}  // namespace

bool is_built() noexcept { return true; }

int32_t device_count() noexcept {
    int count = 0;
    query_device_count(&count);
    return count;
}

void require_device(int32_t ordinal, const char* argument) {
    int count = 0;
    const cudaError_t status = query_device_count(&count);
    if (count == 0) {
        std::string message = std::string("CUDA device requested for ") + argument +
                              " but no CUDA device/driver is present";
        if (status != cudaSuccess)
            message += std::string(" (cudaGetDeviceCount: ") + cudaGetErrorName(status) + ": " +
                       cudaGetErrorString(status) + ")";
        throw Error(TK_STATUS_BACKEND_UNAVAILABLE, message);
    }
    require(ordinal >= 0 && ordinal < count, argument,
            "a CUDA device ordinal in [0, " + std::to_string(count) + ")", [&] { return std::to_string(ordinal); });
}

void require_device_pointer(const void* ptr, int32_t ordinal, const char* argument) {
    // devicePointer is reported for the current device, so ask with `ordinal` current.
    DeviceGuard guard(ordinal);
    cudaPointerAttributes attributes{};
    const cudaError_t status = cudaPointerGetAttributes(&attributes, ptr);
    if (status == cudaErrorInvalidValue) {
        cudaGetLastError();
        invalid_argument(argument, device_expected(ordinal), "a pointer CUDA does not know");
    }
    check(status, "cudaPointerGetAttributes");
    switch (attributes.type) {
        case cudaMemoryTypeDevice:
            if (attributes.device != ordinal)
                invalid_argument(argument, device_expected(ordinal),
                                 "memory on CUDA device " + std::to_string(attributes.device));
            return;
        case cudaMemoryTypeManaged:
            return;
        case cudaMemoryTypeHost:
            // Page-locked host memory is addressable by kernels only through its device alias;
            // accept it when that alias is the pointer itself (mapped memory under unified
            // addressing), since the kernels dereference the pointer as given.
            if (attributes.devicePointer != ptr)
                invalid_argument(argument, device_expected(ordinal),
                                 "page-locked host memory whose device address differs from the pointer");
            return;
        default:
            invalid_argument(argument, device_expected(ordinal), "host memory");
    }
}

void require_runnable_device(int32_t ordinal, const char* argument) {
    int32_t major = 0;
    int32_t minor = 0;
    device_capability(ordinal, &major, &minor);
    if (cuda_capability_support(major, minor) != CapabilitySupport::kNo) return;
    throw Error(TK_STATUS_BACKEND_UNAVAILABLE,
                std::string(argument) + ": CUDA device " + std::to_string(ordinal) + " (" + device_name(ordinal) +
                    ", compute capability " + std::to_string(major) + "." + std::to_string(minor) +
                    ") cannot run this library's CUDA code, built for the CUDA architectures " + cuda_architectures() +
                    "; rebuild with -DCMAKE_CUDA_ARCHITECTURES=" + std::to_string(major) + std::to_string(minor) +
                    " (or a list holding it)");
}

void require_stream_of_device(void* stream, int32_t ordinal) {
    const cudaStream_t handle = as_stream(stream);
    // The legacy and per-thread default streams are those of whichever device is current: the op's.
    if (handle == nullptr || handle == cudaStreamLegacy || handle == cudaStreamPerThread) return;
    const int device = stream_device(handle);
    if (device >= 0 && device != ordinal)
        invalid_argument("stream", "a stream of CUDA device " + std::to_string(ordinal) + " (the device of the tensors)",
                         "a stream of CUDA device " + std::to_string(device));
}

std::string device_name(int32_t ordinal) {
    cudaDeviceProp properties{};
    check(cudaGetDeviceProperties(&properties, ordinal), "cudaGetDeviceProperties");
    return properties.name;
}

void device_capability(int32_t ordinal, int32_t* major, int32_t* minor) {
    int value_major = 0;
    int value_minor = 0;
    check(cudaDeviceGetAttribute(&value_major, cudaDevAttrComputeCapabilityMajor, ordinal), "cudaDeviceGetAttribute");
    check(cudaDeviceGetAttribute(&value_minor, cudaDevAttrComputeCapabilityMinor, ordinal), "cudaDeviceGetAttribute");
    *major = value_major;
    *minor = value_minor;
}

void* stream_create(int32_t ordinal) {
    DeviceGuard guard(ordinal);
    // A blocking stream: work a caller also puts on the legacy default stream (NULL) stays ordered
    // with it, which is what a caller mixing NULL and its own streams expects.
    cudaStream_t stream = nullptr;
    check(cudaStreamCreateWithFlags(&stream, cudaStreamDefault), "cudaStreamCreateWithFlags");
    return stream;
}

void stream_destroy(void* stream) { check(cudaStreamDestroy(as_stream(stream)), "cudaStreamDestroy"); }

void stream_synchronize(void* stream) { check(cudaStreamSynchronize(as_stream(stream)), "cudaStreamSynchronize"); }

void* malloc_device(int32_t ordinal, uint64_t bytes) {
    DeviceGuard guard(ordinal);
    void* ptr = nullptr;
    check(cudaMalloc(&ptr, static_cast<size_t>(bytes)), "cudaMalloc");
    return ptr;
}

void free_device(int32_t ordinal, void* ptr) {
    DeviceGuard guard(ordinal);
    check(cudaFree(ptr), "cudaFree");
}

void memcpy_async(void* dst, const void* src, uint64_t bytes, void* stream) {
    check(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), cudaMemcpyDefault, as_stream(stream)),
          "cudaMemcpyAsync");
}

void memset_async(void* dst, int32_t value, uint64_t bytes, void* stream) {
    check(cudaMemsetAsync(dst, value, static_cast<size_t>(bytes), as_stream(stream)), "cudaMemsetAsync");
}

}  // namespace tk::cuda
