// The CPU thread pool as a host sees it: many host threads calling at once, a thread count far
// beyond the machine's, a forked child, and workers that go to sleep when no call is running.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <ctime>
#include <thread>
#include <vector>

#if defined(__unix__)
#include <sys/wait.h>
#include <unistd.h>
#endif

#include "support.hpp"

namespace {

using tkt::HostArray;
using tkt::HostTensor;

// A pooling call whose output is split over threads (2 x 8 frames of 27 x 27 x 64), and the two
// diversity objectives, whose selections run as teams meeting at barriers.
struct Workload {
    HostTensor frames{TK_DTYPE_F32, {2, 8, 27, 27, 64}};
    HostTensor pooled{TK_DTYPE_F32, {2, 8, 13, 13, 64}};
    HostArray tokens{TK_DTYPE_F32, {2, 1500, 96}};
    HostArray max_min_order{TK_DTYPE_I32, {2, 96}};
    HostArray max_sum_order{TK_DTYPE_I32, {2, 96}};

    explicit Workload(uint64_t seed) {
        frames.fill_random(seed);
        tkt::fill_values(tokens);
    }

    // Runs every call; false (with the error added to the test) when one is rejected.
    bool run() {
        const tk_pool_params pool{TK_POOL_WINDOW_AVG, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}};
        const tk_tensor x = frames.desc();
        const tk_tensor out = pooled.desc();
        if (tk_pool(&pool, &x, &out, nullptr, 0, nullptr) != TK_STATUS_OK) {
            ADD_FAILURE() << tk_last_error();
            return false;
        }
        const tk_tensor t = tokens.desc();
        for (const auto& [objective, order] : {std::pair{TK_DIVERSITY_MAX_MIN, &max_min_order},
                                               std::pair{TK_DIVERSITY_MAX_SUM, &max_sum_order}}) {
            const tk_diversity_params params{96, TK_DISTANCE_COSINE, TK_FIRST_MOST_ISOLATED, objective};
            const tk_tensor o = order->desc();
            if (tk_diversity_select(&params, &t, nullptr, nullptr, nullptr, nullptr, &o, nullptr, nullptr, 0, nullptr) !=
                TK_STATUS_OK) {
                ADD_FAILURE() << tk_last_error();
                return false;
            }
        }
        return true;
    }

    bool same_results(const Workload& other) const {
        return pooled.bytes() == other.pooled.bytes() && max_min_order.bytes() == other.max_min_order.bytes() &&
               max_sum_order.bytes() == other.max_sum_order.bytes();
    }
};

// What one thread alone computes, for comparison.
Workload computed_on_one_thread(uint64_t seed) {
    const tkt::ScopedNumThreads one(1);
    Workload w(seed);
    w.run();
    return w;
}

TEST(CpuThreads, ManyHostThreadsAtOnceComputeWhatOneThreadDoes) {
    constexpr int kHostThreads = 8;
    constexpr int kRounds = 4;
    std::vector<Workload> expected;
    for (int i = 0; i < kHostThreads; ++i) expected.push_back(computed_on_one_thread(1000 + i));

    const tkt::ScopedNumThreads pool_threads(4);
    std::atomic<int> mismatches{0};
    std::atomic<int> rejected{0};
    std::vector<std::thread> hosts;
    for (int i = 0; i < kHostThreads; ++i) {
        hosts.emplace_back([&, i] {
            for (int round = 0; round < kRounds; ++round) {
                Workload w(1000 + i);
                if (!w.run()) {
                    ++rejected;
                    return;
                }
                if (!w.same_results(expected[static_cast<size_t>(i)])) ++mismatches;
            }
        });
    }
    for (std::thread& host : hosts) host.join();
    EXPECT_EQ(rejected.load(), 0);
    EXPECT_EQ(mismatches.load(), 0) << "calls made at once by several host threads differ from one thread's results";
}

TEST(CpuThreads, CountBeyondTheLimitIsCappedAndComputesTheSame) {
    const Workload expected = computed_on_one_thread(7);
    const tkt::ScopedNumThreads huge(INT32_MAX);
    EXPECT_EQ(tk_get_num_threads(), 1024) << "the count ops use is capped at 1024";
    Workload w(7);
    const tk_pool_params pool{TK_POOL_WINDOW_AVG, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}};
    const tk_tensor x = w.frames.desc();
    const tk_tensor out = w.pooled.desc();
    ASSERT_EQ(tk_pool(&pool, &x, &out, nullptr, 0, nullptr), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(w.pooled.bytes(), expected.pooled.bytes());
}

// Process CPU time in seconds: this process's threads only, whatever else the machine runs.
double process_cpu_seconds() {
    timespec t{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

TEST(CpuThreads, IdleWorkersSleepAfterACall) {
    const tkt::ScopedNumThreads threads(4);
    Workload w(3);
    ASSERT_TRUE(w.run());
    // Workers poll for 50 us after a call, then sleep: over the next 300 ms of idleness the process
    // (whose main thread sleeps too) uses next to no CPU. Spinning workers would use up to 3 x 300 ms.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const double before = process_cpu_seconds();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    const double used = process_cpu_seconds() - before;
    EXPECT_LT(used, 0.03) << "idle workers used " << used * 1e3 << " ms of CPU in 300 ms";
}

#if defined(__unix__)
TEST(CpuThreads, ForkedChildRunsOpsOnItsOwnThreads) {
#if defined(__SANITIZE_THREAD__)
    GTEST_SKIP() << "ThreadSanitizer does not support starting threads after a multi-threaded fork";
#endif
    const Workload expected = computed_on_one_thread(11);
    const tkt::ScopedNumThreads threads(4);
    Workload parent(11);
    ASSERT_TRUE(parent.run());  // the pool's workers exist when the process forks
    const pid_t child = fork();
    ASSERT_NE(child, -1);
    if (child == 0) {
        alarm(60);  // a child that hangs on the parent's workers dies instead of blocking the test
        Workload w(11);
        const bool ok = w.run() && w.same_results(expected);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status)) << "the child was killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's results differ from one thread's";
}
#endif

}  // namespace
