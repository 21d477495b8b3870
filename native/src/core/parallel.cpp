#include "core/parallel.hpp"

#include <atomic>
#include <thread>

namespace tk {

namespace {
std::atomic<int32_t> configured_threads{0};

// Read once: hardware_concurrency() reads /sys on Linux, which would cost microseconds per op.
int32_t default_threads() noexcept {
    static const int32_t threads = [] {
        const unsigned hardware = std::thread::hardware_concurrency();
        return hardware == 0 ? 1 : static_cast<int32_t>(hardware);
    }();
    return threads;
}
}  // namespace

int32_t num_threads() noexcept {
    const int32_t n = configured_threads.load(std::memory_order_relaxed);
    return n > 0 ? n : default_threads();
}

void set_num_threads(int32_t n) noexcept { configured_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

}  // namespace tk
