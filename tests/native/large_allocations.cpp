// The test binary's replacement of the global operator new and delete, which counts large
// allocations for LargeAllocationCount. Memory comes from malloc (posix_memalign when over-aligned)
// and goes back to free. Left out (LargeAllocationCount then counts nothing) on Windows, where a DLL
// keeps its own allocator so none of its allocations could be counted, and under AddressSanitizer,
// whose own operator new checks that new and delete are paired.
#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

#include "support.hpp"

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TKT_ADDRESS_SANITIZER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define TKT_ADDRESS_SANITIZER 1
#endif
#if !defined(_WIN32) && !defined(TKT_ADDRESS_SANITIZER)
#define TKT_COUNT_ALLOCATIONS 1
#endif

namespace {

std::atomic<size_t> counted_from{0};  // 0: not counting
std::atomic<int64_t> large_count{0};

#if defined(TKT_COUNT_ALLOCATIONS)
void* allocate(size_t bytes, size_t alignment) {
    const size_t from = counted_from.load(std::memory_order_relaxed);
    if (from != 0 && bytes >= from) large_count.fetch_add(1, std::memory_order_relaxed);
    if (bytes == 0) bytes = 1;
    void* p = nullptr;
    if (alignment <= alignof(std::max_align_t)) {
        p = std::malloc(bytes);
    } else if (posix_memalign(&p, alignment, bytes) != 0) {
        p = nullptr;
    }
    if (p == nullptr) throw std::bad_alloc();
    return p;
}

void* allocate_or_null(size_t bytes, size_t alignment) noexcept {
    try {
        return allocate(bytes, alignment);
    } catch (const std::bad_alloc&) {
        return nullptr;
    }
}
#endif

}  // namespace

#if defined(TKT_COUNT_ALLOCATIONS)
void* operator new(size_t bytes) { return allocate(bytes, alignof(std::max_align_t)); }
void* operator new[](size_t bytes) { return allocate(bytes, alignof(std::max_align_t)); }
void* operator new(size_t bytes, std::align_val_t alignment) { return allocate(bytes, static_cast<size_t>(alignment)); }
void* operator new[](size_t bytes, std::align_val_t alignment) { return allocate(bytes, static_cast<size_t>(alignment)); }
void* operator new(size_t bytes, const std::nothrow_t&) noexcept { return allocate_or_null(bytes, alignof(std::max_align_t)); }
void* operator new[](size_t bytes, const std::nothrow_t&) noexcept { return allocate_or_null(bytes, alignof(std::max_align_t)); }
void* operator new(size_t bytes, std::align_val_t alignment, const std::nothrow_t&) noexcept {
    return allocate_or_null(bytes, static_cast<size_t>(alignment));
}
void* operator new[](size_t bytes, std::align_val_t alignment, const std::nothrow_t&) noexcept {
    return allocate_or_null(bytes, static_cast<size_t>(alignment));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
#endif

namespace tkt {

LargeAllocationCount::LargeAllocationCount(size_t bytes) {
    large_count.store(0, std::memory_order_relaxed);
    counted_from.store(bytes, std::memory_order_relaxed);
}

LargeAllocationCount::~LargeAllocationCount() { counted_from.store(0, std::memory_order_relaxed); }

int64_t LargeAllocationCount::count() const { return large_count.load(std::memory_order_relaxed); }

}  // namespace tkt
