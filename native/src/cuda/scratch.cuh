// Scratch memory of a CUDA op: the caller's workspace, or one allocated and freed stream-ordered
// around the call, carved into regions (core/regions.hpp).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/regions.hpp"
#include "cuda/check.cuh"

namespace tk::cuda {

class Scratch {
public:
    // what names the op in an allocation failure ("merge workspace").
    Scratch(void* caller_workspace, uint64_t bytes, cudaStream_t stream, const char* what)
        : data_(caller_workspace), stream_(stream) {
        if (data_ == nullptr && bytes > 0) {
            check(cudaMallocAsync(&data_, bytes, stream_), what);
            owned_ = true;
        }
    }
    ~Scratch() {
        // Freed after the work enqueued before it; a failure here leaves nothing to report.
        if (owned_ && cudaFreeAsync(data_, stream_) != cudaSuccess) cudaGetLastError();
    }
    Scratch(const Scratch&) = delete;
    Scratch& operator=(const Scratch&) = delete;
    // Regions are laid out from the first aligned address (the sizes include the slack).
    void* data() const { return aligned_start(data_); }

private:
    void* data_;
    cudaStream_t stream_;
    bool owned_ = false;
};

}  // namespace tk::cuda
