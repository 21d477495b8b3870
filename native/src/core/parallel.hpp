// CPU parallelism: one process-wide thread count (tk_set_num_threads) and a dynamically
// scheduled parallel loop over [0, n). Built on OpenMP when the compiler has it, serial otherwise.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <vector>

#if defined(_OPENMP)
#include <omp.h>
#endif

namespace tk {

int32_t num_threads() noexcept;
void set_num_threads(int32_t n) noexcept;  // 0: hardware concurrency

// parallel_for's min_chunk for tasks of elements_per_task elements each: enough elements of work per
// chunk that a thread is worth waking.
inline int64_t min_tasks_per_chunk(int64_t elements_per_task) {
    constexpr int64_t kMinElementsPerChunk = 1 << 15;
    return elements_per_task >= kMinElementsPerChunk ? 1 : kMinElementsPerChunk / std::max<int64_t>(elements_per_task, 1);
}

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
    // Chunks are handed out as threads ask for them, a few per thread: a thread that shares its core
    // with another process's (a BLAS pool spinning after its call, a game's render thread) takes
    // fewer, instead of every other thread waiting for its fixed share.
    constexpr int64_t kChunksPerThread = 4;
    const int64_t chunk = std::max(min_chunk, (n + threads * kChunksPerThread - 1) / (threads * kChunksPerThread));
    std::atomic<int64_t> next_begin{0};
#pragma omp parallel num_threads(static_cast<int>(threads))
    {
        for (;;) {
            const int64_t begin = next_begin.fetch_add(chunk, std::memory_order_relaxed);
            if (begin >= n) break;
            body(begin, std::min(begin + chunk, n));
        }
    }
#else
    body(int64_t{0}, n);
#endif
}

// The threads of one parallel_team call, as each sees them.
struct Team {
    int64_t thread;  // this thread's number, 0 to size - 1
    int64_t size;
    // Waits until every thread of the team has reached it.
    void barrier() const {
#if defined(_OPENMP)
        if (size > 1) {
#pragma omp barrier
        }
#endif
    }
};

// What each thread of a team posts once a round (`width` values) and every thread reads after the
// round's barrier. Alternate rounds use alternate halves, as a thread may post the next round's
// values while another still reads this round's: one barrier a round suffices.
template <class T>
class RoundBoard {
public:
    RoundBoard(int64_t threads, int64_t width)
        : threads_(threads), width_(width), values_(static_cast<size_t>(2 * threads * width)) {}
    // The `width` values of `thread` in `round` (threads below the team size given at construction).
    T* posted(int64_t round, int64_t thread) { return values_.data() + ((round & 1) * threads_ + thread) * width_; }

private:
    int64_t threads_;
    int64_t width_;
    std::vector<T> values_;
};

// Runs body(team) once on each of up to `threads` threads (at most num_threads(); fewer if the
// runtime gives fewer, one inside another parallel region), for work done in lockstep rounds
// separated by team.barrier().
template <class Body>
void parallel_team(int64_t threads, Body&& body) {
    threads = std::min<int64_t>(threads, num_threads());
#if defined(_OPENMP)
    if (threads > 1) {
#pragma omp parallel num_threads(static_cast<int>(threads))
        body(Team{omp_get_thread_num(), omp_get_num_threads()});
        return;
    }
#endif
    body(Team{0, 1});
}

}  // namespace tk
