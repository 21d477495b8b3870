#include "core/parallel.hpp"

#include <algorithm>
#include <chrono>
#include <thread>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#elif defined(_WIN32)
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#ifndef NOMINMAX
#define NOMINMAX
#endif
#include <windows.h>
#endif

namespace tk {

namespace {
std::atomic<int32_t> configured_threads{0};

// Read once: hardware_concurrency() reads /sys on Linux, which would cost microseconds per op.
int32_t default_threads() noexcept {
    static const int32_t threads = [] {
        const unsigned hardware = std::thread::hardware_concurrency();
        return hardware == 0 ? 1 : static_cast<int32_t>(std::min<unsigned>(hardware, kMaxThreads));
    }();
    return threads;
}

// How long a thread that waits (a worker for its next job, a caller for its team, a member at a
// barrier) polls before it sleeps: long enough to catch the next op of a chain (topk after importance)
// without a wake-up, short enough that idle workers leave the cores to the host soon after a call.
constexpr std::chrono::microseconds kSpinBudget{50};

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// Polls done() for up to kSpinBudget: a few pause instructions first, then yielding the core to
// any other runnable thread between polls. Returns done()'s last value.
template <class Done>
bool spin_until(Done done) noexcept {
    constexpr int kPausePolls = 64;
    for (int i = 0; i < kPausePolls; ++i) {
        if (done()) return true;
        cpu_relax();
    }
    const auto deadline = std::chrono::steady_clock::now() + kSpinBudget;
    while (!done()) {
        if (std::chrono::steady_clock::now() >= deadline) return false;
        std::this_thread::yield();
    }
    return true;
}

// True on a thread while it runs a team member's task: a team started there runs on that thread alone.
thread_local bool t_in_team = false;

class InTeam {
public:
    InTeam() noexcept : outer_(t_in_team) { t_in_team = true; }
    ~InTeam() { t_in_team = outer_; }
    InTeam(const InTeam&) = delete;
    InTeam& operator=(const InTeam&) = delete;

private:
    bool outer_;
};

// Worker threads started on first need and kept for the life of the process. One team at a time: a
// second thread's call while a team runs gets a team of one (its own thread), so CPU ops never use
// more than num_threads() threads in all.
class WorkerPool {
public:
    static WorkerPool& instance() {
#if defined(_WIN32)
        // Never destroyed on Windows. At process exit Windows terminates every other thread before it
        // runs a DLL's static destructors (DLL_PROCESS_DETACH), so the workers are gone by then, and
        // destroying a condition variable that they were waiting on waits for them forever (winpthreads'
        // pthread_cond_destroy after a broadcast): the process would never exit.
        static WorkerPool& pool = *new WorkerPool();
#else
        static WorkerPool pool;
#endif
        return pool;
    }

    void run(int64_t requested_size, detail::Members members, detail::MemberTask task, void* context) noexcept {
        if (requested_size <= 1 || t_in_team || in_use_.exchange(true, std::memory_order_acquire)) {
            run_alone(task, context);
            return;
        }
        const int64_t size = std::min<int64_t>(requested_size, 1 + start_workers(requested_size - 1));
        if (size <= 1) {
            in_use_.store(false, std::memory_order_release);
            run_alone(task, context);
            return;
        }
        detail::TeamBarrier barrier(size);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            task_ = task;
            context_ = context;
            size_ = size;
            next_member_ = 1;
            barrier_ = &barrier;
            unfinished_.store(size - 1, std::memory_order_relaxed);
            job_.fetch_add(1, std::memory_order_release);
        }
        work_posted_.notify_all();
        {
            InTeam in_team;
            task(context, 0, size, &barrier);
        }
        if (members == detail::Members::kHelpers) {
            std::lock_guard<std::mutex> lock(mutex_);
            unfinished_.fetch_sub(size_ - next_member_, std::memory_order_relaxed);  // untaken: dropped
            next_member_ = size_;
        }
        const auto all_finished = [&] { return unfinished_.load(std::memory_order_acquire) == 0; };
        if (!spin_until(all_finished)) {
            std::unique_lock<std::mutex> lock(mutex_);
            members_finished_.wait(lock, all_finished);
        }
        in_use_.store(false, std::memory_order_release);
    }

    ~WorkerPool() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        work_posted_.notify_all();
        for (std::thread& worker : *workers_) worker.join();
        delete workers_;
    }

    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

private:
    WorkerPool() {
#if defined(__unix__) || defined(__APPLE__)
        pthread_atfork(nullptr, nullptr, [] { instance().forget_workers_after_fork(); });
#elif defined(_WIN32)
        // The workers wait in this DLL's code for the rest of the process (the pool is never destroyed,
        // see instance()): pinned, so that a FreeLibrary cannot unmap that code under them.
        HMODULE self = nullptr;
        GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN,
                           reinterpret_cast<LPCWSTR>(&configured_threads), &self);
#endif
    }

    static void run_alone(detail::MemberTask task, void* context) noexcept {
        detail::TeamBarrier barrier(1);
        InTeam in_team;
        task(context, 0, 1, &barrier);
    }

    // Starts workers until there are `wanted` (called with the pool in use, so by one thread at a
    // time); returns how many there are.
    int64_t start_workers(int64_t wanted) noexcept {
        const uint64_t current_job = job_.load(std::memory_order_relaxed);
        while (static_cast<int64_t>(workers_->size()) < wanted) {
            try {
                workers_->emplace_back([this, current_job] { work(current_job); });
            } catch (...) {  // no more threads to be had: run with those there are
                break;
            }
        }
        return static_cast<int64_t>(workers_->size());
    }

    // A worker: waits for a job after `seen`, takes a member of it if one is left, runs it.
    void work(uint64_t seen) noexcept {
#if defined(__linux__)
        pthread_setname_np(pthread_self(), "tokenkernels");
#endif
        const auto job_posted = [&] { return job_.load(std::memory_order_acquire) != seen; };
        for (;;) {
            if (!spin_until(job_posted)) {
                std::unique_lock<std::mutex> lock(mutex_);
                work_posted_.wait(lock, [&] { return stopping_ || job_posted(); });
            }
            detail::MemberTask task = nullptr;
            void* context = nullptr;
            detail::TeamBarrier* barrier = nullptr;
            int64_t member = -1;
            int64_t size = 0;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                if (stopping_) return;
                seen = job_.load(std::memory_order_relaxed);
                if (next_member_ < size_) {
                    member = next_member_++;
                    task = task_;
                    context = context_;
                    size = size_;
                    barrier = barrier_;
                }
            }
            if (member < 0) continue;
            {
                InTeam in_team;
                task(context, member, size, barrier);
            }
            if (unfinished_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                // Under the mutex, so the notification cannot fall between the caller's check and its wait.
                std::lock_guard<std::mutex> lock(mutex_);
                members_finished_.notify_one();
            }
        }
    }

    // In a child process after fork() only the forking thread exists: the workers' handles are left
    // behind (never joined) and new workers start on the next team.
    void forget_workers_after_fork() noexcept {
        workers_ = new std::vector<std::thread>();
        new (&mutex_) std::mutex();
        new (&work_posted_) std::condition_variable();
        new (&members_finished_) std::condition_variable();
        size_ = 0;
        next_member_ = 0;
        in_use_.store(false, std::memory_order_relaxed);
    }

    std::mutex mutex_;
    std::condition_variable work_posted_;
    std::condition_variable members_finished_;
    std::atomic<uint64_t> job_{0};  // moves on when a job is posted
    // The current job, written under mutex_ before job_ moves.
    detail::MemberTask task_ = nullptr;
    void* context_ = nullptr;
    int64_t size_ = 0;
    int64_t next_member_ = 0;  // the next member a worker takes
    detail::TeamBarrier* barrier_ = nullptr;
    std::atomic<int64_t> unfinished_{0};  // members 1 .. size-1 not yet returned
    std::atomic<bool> in_use_{false};     // a team is running
    bool stopping_ = false;
    std::vector<std::thread>* workers_ = new std::vector<std::thread>();
};
}  // namespace

int32_t num_threads() noexcept {
    const int32_t n = configured_threads.load(std::memory_order_relaxed);
    return n > 0 ? std::min(n, kMaxThreads) : default_threads();
}

void set_num_threads(int32_t n) noexcept { configured_threads.store(n > 0 ? n : 0, std::memory_order_relaxed); }

namespace detail {

void TeamBarrier::arrive_and_wait() noexcept {
    const uint64_t round = round_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == size_) {
        arrived_.store(0, std::memory_order_relaxed);
        {
            std::lock_guard<std::mutex> lock(mutex_);
            round_.store(round + 1, std::memory_order_release);
        }
        next_round_.notify_all();
        return;
    }
    const auto released = [&] { return round_.load(std::memory_order_acquire) != round; };
    if (!spin_until(released)) {
        std::unique_lock<std::mutex> lock(mutex_);
        next_round_.wait(lock, released);
    }
}

void run_team(int64_t requested_size, Members members, MemberTask task, void* context) noexcept {
    WorkerPool::instance().run(requested_size, members, task, context);
}

}  // namespace detail

}  // namespace tk
