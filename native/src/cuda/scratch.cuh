// Scratch memory of a CUDA op: the caller's workspace, or one allocated and freed stream-ordered
// around the call, carved into regions (core/regions.hpp).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "core/regions.hpp"
#include "cuda/check.cuh"

namespace tk::cuda {

class Scratch {
public:
    // what names the op in an allocation failure ("merge workspace"). Called with the op's device
    // current. Where the device has no stream-ordered allocator (cudaDevAttrMemoryPoolsSupported = 0:
    // some virtualised and older setups), the memory comes from cudaMalloc and is freed after the
    // stream has finished the op: that call then waits for its work, which a captured stream cannot,
    // so under capture such a device needs the caller's workspace.
    Scratch(void* caller_workspace, uint64_t bytes, cudaStream_t stream, const char* what)
        : data_(caller_workspace), stream_(stream) {
        if (data_ != nullptr || bytes == 0) return;
        int device = 0;
        int pools = 0;
        check(cudaGetDevice(&device), "cudaGetDevice");
        check(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, device),
              "cudaDeviceGetAttribute(MemoryPoolsSupported)");
        if (pools != 0) {
            check(cudaMallocAsync(&data_, bytes, stream_), ("cudaMallocAsync (" + std::string(what) + ")").c_str());
            owned_ = Owned::kStreamOrdered;
            return;
        }
        cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
        check(cudaStreamIsCapturing(stream_, &capture), "cudaStreamIsCapturing");
        if (capture != cudaStreamCaptureStatusNone)
            throw Error(TK_STATUS_INVALID_ARGUMENT,
                        std::string("workspace: a workspace of the queried size, since CUDA device ") +
                            std::to_string(device) +
                            " has no stream-ordered allocator (cudaDevAttrMemoryPoolsSupported = 0) and the stream "
                            "is being captured; got NULL");
        check(cudaMalloc(&data_, bytes), ("cudaMalloc (" + std::string(what) + ")").c_str());
        owned_ = Owned::kSynchronous;
    }
    ~Scratch() {
        // Freed after the work enqueued before it; a failure here leaves nothing to report.
        if (owned_ == Owned::kStreamOrdered && cudaFreeAsync(data_, stream_) != cudaSuccess) cudaGetLastError();
        if (owned_ == Owned::kSynchronous) {
            if (cudaStreamSynchronize(stream_) != cudaSuccess) cudaGetLastError();
            if (cudaFree(data_) != cudaSuccess) cudaGetLastError();
        }
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    // Regions are laid out from the first aligned address (the sizes include the slack).
    void* data() const { return aligned_start(data_); }

private:
    enum class Owned { kNo, kStreamOrdered, kSynchronous };
    void* data_;
    cudaStream_t stream_;
    Owned owned_ = Owned::kNo;
};

}  // namespace tk::cuda
