// CUDA runtime plumbing shared by the CUDA backend's host code: turning a cudaError_t into a
// tk::Error, and making a device current for the duration of one call.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "core/error.hpp"

namespace tk::cuda {

inline tk_status status_of(cudaError_t status) {
    switch (status) {
        case cudaErrorMemoryAllocation: return TK_STATUS_OUT_OF_MEMORY;
        case cudaErrorNoDevice:
        case cudaErrorInsufficientDriver: return TK_STATUS_BACKEND_UNAVAILABLE;
        default: return TK_STATUS_CUDA_ERROR;
    }
}

// Throws for anything but cudaSuccess, with "<what>: <error name>: <error string>": OUT_OF_MEMORY for
// a failed allocation, BACKEND_UNAVAILABLE without a device or a recent enough driver (a call that
// takes no ordinal, such as a stream synchronisation, meets these here), else CUDA_ERROR. A failed
// call also sets the runtime's last error, which a later post-launch cudaGetLastError() would report
// against the wrong call, so it is cleared here. Sticky errors (a kernel fault) stay: they are
// reported again by every later call, as they must be.
inline void check(cudaError_t status, const char* what) {
    if (status == cudaSuccess) return;
    cudaGetLastError();
    const tk_status code = status_of(status);
    throw Error(code, std::string(what) + ": " + cudaGetErrorName(status) + ": " + cudaGetErrorString(status));
}

// Makes `ordinal` the current device and restores the caller's device on exit, so a call that
// targets a device never changes the current device of the calling thread.
class DeviceGuard {
public:
    explicit DeviceGuard(int32_t ordinal) : ordinal_(ordinal) {
        check(cudaGetDevice(&previous_), "cudaGetDevice");
        if (previous_ != ordinal_) check(cudaSetDevice(ordinal_), "cudaSetDevice");
    }
    ~DeviceGuard() {
        // A destructor cannot throw; failing to switch back to a device that was current a moment
        // ago leaves nothing useful to report, so only the last-error state is cleaned up.
        if (previous_ != ordinal_ && cudaSetDevice(previous_) != cudaSuccess) cudaGetLastError();
    }
    DeviceGuard(const DeviceGuard&) = delete;
    DeviceGuard& operator=(const DeviceGuard&) = delete;

private:
    int32_t ordinal_;
    int previous_ = 0;
};

}  // namespace tk::cuda
