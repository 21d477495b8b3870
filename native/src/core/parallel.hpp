// CPU parallelism: one process-wide thread count (tk_set_num_threads) and a static-schedule
// parallel loop over [0, n). Built on OpenMP when the compiler has it, serial otherwise.
#pragma once

#include <cstdint>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tk {

int32_t num_threads() noexcept;
void set_num_threads(int32_t n) noexcept;  // 0: hardware concurrency

// Calls body(begin, end) on disjoint chunks covering [0, n), at most num_threads() at once; chunks
// smaller than min_chunk are not split further. Exceptions must not escape body.
template <class Body>
void parallel_for(int64_t n, int64_t min_chunk, Body&& body) {
    if (n <= 0) return;
    if (min_chunk < 1) min_chunk = 1;
    int64_t threads = num_threads();
    if (threads > (n + min_chunk - 1) / min_chunk) threads = (n + min_chunk - 1) / min_chunk;
    if (threads <= 1) {
        body(int64_t{0}, n);
        return;
    }
#if defined(_OPENMP)
#pragma omp parallel num_threads(static_cast<int>(threads))
    {
        // The team may be smaller than asked for; split by the size it really has.
        const int64_t team = omp_get_num_threads();
        const int64_t t = omp_get_thread_num();
        const int64_t begin = n * t / team;
        const int64_t end = n * (t + 1) / team;
        if (begin < end) body(begin, end);
    }
#else
    body(int64_t{0}, n);
#endif
}

}  // namespace tk
