// Scratch carved into regions laid out one after another, each starting on a kWorkspaceAlignment
// boundary. One RegionCursor pass both sizes an op's workspace (its *_workspace_size query) and
// gives the offsets the op carves it at, on the CPU and on CUDA.
#pragma once

#include <cstdint>

namespace tk {

constexpr uint64_t kWorkspaceAlignment = 256;

inline uint64_t align_up(uint64_t bytes) {
    return (bytes + kWorkspaceAlignment - 1) / kWorkspaceAlignment * kWorkspaceAlignment;
}

// n rounded up to a multiple of `multiple` (rows to whole panels, floats to whole vectors).
inline int64_t round_up(int64_t n, int64_t multiple) { return (n + multiple - 1) / multiple * multiple; }

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

// The first aligned address at or after p, where a workspace's regions start.
inline void* aligned_start(void* p) {
    return reinterpret_cast<void*>(align_up(reinterpret_cast<uintptr_t>(p)));
}

}  // namespace tk
