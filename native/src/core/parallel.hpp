// CPU parallelism: one process-wide thread count (tk_set_num_threads), the library's own pool of
// worker threads, a dynamically scheduled parallel loop over [0, n) and teams that work in lockstep
// rounds. No OpenMP: nothing to load from the system, and idle workers stop spinning and sleep
// shortly after a call (core/parallel.cpp), so they do not compete with the host's own threads.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

namespace tk {

// The most threads CPU ops use: tk_set_num_threads rejects larger counts.
constexpr int32_t kMaxThreads = 1024;

// The thread count CPU ops use: the configured one, else the hardware concurrency; at most kMaxThreads.
int32_t num_threads() noexcept;
void set_num_threads(int32_t n) noexcept;  // 0: hardware concurrency

// parallel_for's min_chunk for tasks of elements_per_task elements each: enough elements of work per
// chunk that a thread is worth waking.
inline int64_t min_tasks_per_chunk(int64_t elements_per_task) {
    constexpr int64_t kMinElementsPerChunk = 1 << 15;
    return elements_per_task >= kMinElementsPerChunk ? 1 : kMinElementsPerChunk / std::max<int64_t>(elements_per_task, 1);
}

namespace detail {

// Blocks each arriving thread until `size` threads have arrived, then releases them all; reusable
// round after round. Spins briefly before sleeping.
class TeamBarrier {
public:
    explicit TeamBarrier(int64_t size) : size_(size) {}
    void arrive_and_wait() noexcept;

private:
    int64_t size_;
    std::atomic<int64_t> arrived_{0};
    std::atomic<uint64_t> round_{0};
    std::mutex mutex_;  // for sleeping when the spin budget runs out
    std::condition_variable next_round_;
};

// One member's share of a team's work: member in [0, size); the barrier is the team's.
using MemberTask = void (*)(void* context, int64_t member, int64_t size, TeamBarrier* barrier);

// Whether every member of a team must run. Helpers share work that the caller could finish alone (a
// loop handing out chunks): members that no worker has taken when the caller is done are dropped, so
// a call never waits for a sleeping worker to wake up only to find nothing left. Lockstep members own
// a share of the work and meet at barriers: all of them run.
enum class Members { kHelpers, kLockstep };

// Runs task for members 1 .. size-1 on pool workers and member 0 on the calling thread, and returns
// when every member that ran has returned (with kLockstep, every member). The team is smaller than
// asked (down to 1: the caller alone) when called from inside another team, while another thread's
// team holds the pool, or when workers cannot be started. Tasks must not throw.
void run_team(int64_t requested_size, Members members, MemberTask task, void* context) noexcept;

template <class Member>
void run_team(int64_t requested_size, Members members, Member& member) noexcept {
    run_team(
        requested_size, members,
        [](void* context, int64_t index, int64_t size, TeamBarrier* barrier) {
            (*static_cast<Member*>(context))(index, size, barrier);
        },
        &member);
}

}  // namespace detail

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
    // Chunks are handed out as threads ask for them, a few per thread: a thread that shares its core
    // with another process's (a BLAS pool spinning after its call, a game's render thread) takes
    // fewer, instead of every other thread waiting for its fixed share.
    constexpr int64_t kChunksPerThread = 4;
    const int64_t chunk = std::max(min_chunk, (n + threads * kChunksPerThread - 1) / (threads * kChunksPerThread));
    std::atomic<int64_t> next_begin{0};
    auto member = [&](int64_t, int64_t, detail::TeamBarrier*) {
        for (;;) {
            const int64_t begin = next_begin.fetch_add(chunk, std::memory_order_relaxed);
            if (begin >= n) break;
            body(begin, std::min(begin + chunk, n));
        }
    };
    detail::run_team(threads, detail::Members::kHelpers, member);
}

// The threads of one parallel_team call, as each sees them.
struct Team {
    int64_t thread;  // this thread's number, 0 to size - 1
    int64_t size;
    detail::TeamBarrier* team_barrier;
    // Waits until every thread of the team has reached it.
    void barrier() const {
        if (size > 1) team_barrier->arrive_and_wait();
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

// Runs body(team) once on each of up to `threads` threads (at most num_threads(); fewer when the pool
// gives fewer, e.g. one inside another team), for work done in lockstep rounds separated by
// team.barrier().
template <class Body>
void parallel_team(int64_t threads, Body&& body) {
    threads = std::min<int64_t>(threads, num_threads());
    if (threads <= 1) {
        body(Team{0, 1, nullptr});
        return;
    }
    auto member = [&](int64_t index, int64_t size, detail::TeamBarrier* barrier) { body(Team{index, size, barrier}); };
    detail::run_team(threads, detail::Members::kLockstep, member);
}

}  // namespace tk
