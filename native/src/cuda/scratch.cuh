// Scratch memory of a CUDA op: the caller's workspace, or one allocated and freed stream-ordered
// around the call, carved into regions that each start on a kWorkspaceAlignment boundary.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/check.cuh"

namespace tk::cuda {

constexpr uint64_t kWorkspaceAlignment = 256;

inline uint64_t align_up(uint64_t bytes) {
    return (bytes + kWorkspaceAlignment - 1) / kWorkspaceAlignment * kWorkspaceAlignment;
}

template <class T>
T* at_offset(void* base, uint64_t offset) {
    return reinterpret_cast<T*>(static_cast<char*>(base) + offset);
}

// Regions laid out one after another, each aligned; total() includes the slack that aligns a
// caller's workspace starting off a boundary.
class RegionCursor {
public:
    uint64_t take(uint64_t bytes) {
        const uint64_t offset = at_;
        at_ += align_up(bytes);
        return offset;
    }
    uint64_t used() const { return at_; }
    uint64_t total() const { return at_ == 0 ? 0 : at_ + kWorkspaceAlignment - 1; }

private:
    uint64_t at_ = 0;
};

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
    void* data() const { return reinterpret_cast<void*>(align_up(reinterpret_cast<uintptr_t>(data_))); }

private:
    void* data_;
    cudaStream_t stream_;
    bool owned_ = false;
};

}  // namespace tk::cuda
