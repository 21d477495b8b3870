// The CPU thread pool as a host sees it: many host threads calling at once, with a fixed thread count
// or one they change between calls, a thread count far beyond the machine's, a forked child, and
// workers that go to sleep when no call is running.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <ctime>
#include <functional>
#include <iterator>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__unix__)
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#endif

#include "support.hpp"
#include "temporal_reference.hpp"

namespace {

using tkt::HostArray;
using tkt::HostTensor;

constexpr tk_pool_params kWindowPool{TK_POOL_WINDOW_AVG, {1, 2, 2}, {1, 2, 2}, {0, 0, 0}};

// Every op family of the C ABI on inputs drawn from one seed, at sizes (hundreds of tokens, 72 or 96
// channels) where each call splits over the pool's threads; the diversity selections also run as
// teams meeting at barriers. Mixed dtypes, so conversions run on the workers too.
struct Workload {
    HostTensor frames{TK_DTYPE_F32, {2, 8, 27, 27, 72}};
    HostTensor window_pooled{TK_DTYPE_F32, {2, 8, 13, 13, 72}};
    HostTensor adaptive_pooled{TK_DTYPE_F32, {2, 3, 10, 10, 72}};
    HostTensor bilinear_pooled{TK_DTYPE_F32, {2, 8, 14, 14, 72}};

    // Merging 601 tokens: fixed r = 150 (451 rows out), and threshold mode, where items merge about 140
    // to 160 tokens and the cap r_max = 150 binds on some.
    HostArray metric{TK_DTYPE_F32, {3, 601, 72}};
    HostArray x{TK_DTYPE_BF16, {3, 601, 96}};
    HostArray size{TK_DTYPE_F32, {3, 601}};
    HostArray match_dst{TK_DTYPE_I32, {3, 301}};
    HostArray match_best{TK_DTYPE_F32, {3, 301}};
    HostArray merged{TK_DTYPE_BF16, {3, 451, 96}};
    HostArray merged_size{TK_DTYPE_F32, {3, 451}};
    HostArray source_map{TK_DTYPE_I32, {3, 601}};
    HostArray merge_count{TK_DTYPE_I32, {3}};
    HostArray unmerged{TK_DTYPE_BF16, {3, 601, 96}};
    HostArray thresholded{TK_DTYPE_BF16, {3, 601, 96}};
    HostArray thresholded_size{TK_DTYPE_F32, {3, 601}};
    HostArray thresholded_map{TK_DTYPE_I32, {3, 601}};
    HostArray thresholded_count{TK_DTYPE_I32, {3}};

    // Importance: attention probabilities [2, 6, 40, 600], and q [2, 4, 50, 72] with k [2, 2, 300, 72].
    HostArray attn{TK_DTYPE_F16, {2 * 6, 40, 600}};
    HostArray attn_importance{TK_DTYPE_F32, {2, 599}};
    HostArray q{TK_DTYPE_F32, {2 * 4, 50, 72}};
    HostArray k{TK_DTYPE_F32, {2 * 2, 300, 72}};
    HostArray qk_importance{TK_DTYPE_F32, {2, 296}};

    // Top-k of 650 scores per item, then the kept tokens gathered and the rest made contextual tokens.
    HostArray scores{TK_DTYPE_F32, {12, 650}};
    HostArray kept{TK_DTYPE_I32, {12, 130}};
    HostArray ranked{TK_DTYPE_I32, {12, 130}};
    HostArray features{TK_DTYPE_F32, {12, 650, 72}};
    HostArray feature_metric{TK_DTYPE_F16, {12, 650, 64}};
    HostArray gathered{TK_DTYPE_F32, {12, 130, 72}};
    HostArray contextual{TK_DTYPE_F32, {12, 30, 72}};

    HostArray tokens{TK_DTYPE_F32, {2, 1500, 96}};
    HostArray max_min_order{TK_DTYPE_I32, {2, 96}};
    HostArray max_min_sorted{TK_DTYPE_I32, {2, 96}};
    HostArray max_sum_order{TK_DTYPE_I32, {2, 96}};

    // The video methods on the frames as [2, 8, 729, 72]: EVS at q = 0.5 keeps max(729, 2916) = 2916,
    // DyCoke at 0.7 keeps 2 x 729 + 6 x 218 = 2766, VidCom2 at its default 0.25 keeps max(8, 1458) = 1458,
    // FrameFusion keeps capacity for all 5832.
    HostArray similarity{TK_DTYPE_F32, {2, 8, 729}};
    HostArray evs_tokens{TK_DTYPE_F32, {2, 2916, 72}};
    HostArray evs_positions{TK_DTYPE_I32, {2, 2916, 3}};
    HostArray dycoke_tokens{TK_DTYPE_F32, {2, 2766, 72}};
    HostArray vidcom2_tokens{TK_DTYPE_F32, {2, 1458, 72}};
    HostArray vidcom2_mask{TK_DTYPE_I32, {2, 5832}};
    HostArray fused{TK_DTYPE_F32, {2, 5832, 72}};
    HostArray fused_map{TK_DTYPE_I32, {2, 5832}};
    HostArray fused_count{TK_DTYPE_I32, {2}};

    explicit Workload(uint64_t seed) {
        frames.fill_random(seed);
        std::mt19937_64 g(seed);
        for (HostArray* a : {&metric, &x, &q, &k, &scores, &features, &feature_metric, &tokens}) tkt::fill_uniform(*a, g, -1.5, 2.5);
        tkt::fill_uniform(attn, g, 0.0, 1.0);
        for (int64_t i = 0; i < size.shape()[0]; ++i)
            for (int64_t t = 0; t < size.shape()[1]; ++t) size.set(i, t, 0, static_cast<double>(1 + g() % 3));
    }

    // Runs every call in order, before_each_call before each; false (with the error added to the
    // test) at the first one rejected.
    bool run(const std::function<void()>& before_each_call = [] {}) {
        const tk_pool_params adaptive{TK_POOL_ADAPTIVE_MAX, {0, 0, 0}, {0, 0, 0}, {3, 10, 10}};
        const tk_pool_params bilinear{TK_POOL_BILINEAR, {0, 0, 0}, {0, 0, 0}, {8, 14, 14}};
        const tk_merge_params fixed{150, 0, 0.0f, 1, 0, TK_MERGE_WEIGHTED_MEAN, TK_MERGE_ORDER_POSITIONAL};
        const tk_merge_params threshold{150, 1, 0.45f, 0, 1, TK_MERGE_MEAN, TK_MERGE_ORDER_TOME};
        const tk_importance_params from_attn{2, 40, 1, 600, TK_REDUCE_MEAN, TK_REDUCE_MEAN, 1.0f, 0};
        const tk_importance_params from_qk{0, 50, 3, 299, TK_REDUCE_SUM, TK_REDUCE_MEAN, 1.0f / std::sqrt(72.0f), 1};
        const tk_topk_params topk{130};
        const tk_diversity_params max_min{96, TK_DISTANCE_COSINE, TK_FIRST_MOST_ISOLATED, TK_DIVERSITY_MAX_MIN};
        const tk_diversity_params max_sum{96, TK_DISTANCE_L2, TK_FIRST_MOST_ISOLATED, TK_DIVERSITY_MAX_SUM};
        const tk_evs_params evs{0.5, 27, 27};
        const tk_dycoke_params dycoke{0.7, 27, 27};
        const tk_vidcom2_params vidcom2{0.25, 0.5, 0.01, 27, 27};
        const tk_framefusion_params framefusion{0.6f, -1};

        const tk_tensor fr = frames.desc(), wp = window_pooled.desc(), ap = adaptive_pooled.desc(),
                        bp = bilinear_pooled.desc();
        const tk_tensor m = metric.desc(), xs = x.desc(), sz = size.desc(), md = match_dst.desc(), mb = match_best.desc(),
                        mo = merged.desc(), ms = merged_size.desc(), sm = source_map.desc(), mc = merge_count.desc(),
                        um = unmerged.desc(), to = thresholded.desc(), ts = thresholded_size.desc(),
                        tm = thresholded_map.desc(), tc = thresholded_count.desc();
        const tk_tensor at = tkt::split_heads(attn.desc(), 6), ai = attn_importance.desc(), qs = tkt::split_heads(q.desc(), 4),
                        ks = tkt::split_heads(k.desc(), 2), qi = qk_importance.desc();
        const tk_tensor sc = scores.desc(), kp = kept.desc(), rk = ranked.desc(), fe = features.desc(),
                        fm = feature_metric.desc(), ga = gathered.desc(), cx = contextual.desc();
        const tk_tensor tk = tokens.desc(), mmo = max_min_order.desc(), mms = max_min_sorted.desc(), mso = max_sum_order.desc();
        const tk_tensor video = tkt::video_desc(frames.desc()), si = similarity.desc(), et = evs_tokens.desc(),
                        ep = evs_positions.desc(), dt = dycoke_tokens.desc(), vt = vidcom2_tokens.desc(),
                        vm = vidcom2_mask.desc(), fu = fused.desc(), fmap = fused_map.desc(),
                        fc = fused_count.desc();

        const std::pair<const char*, std::function<tk_status()>> calls[] = {
            {"tk_pool window", [&] { return tk_pool(&kWindowPool, &fr, &wp, nullptr, 0, nullptr); }},
            {"tk_pool adaptive", [&] { return tk_pool(&adaptive, &fr, &ap, nullptr, 0, nullptr); }},
            {"tk_pool bilinear", [&] { return tk_pool(&bilinear, &fr, &bp, nullptr, 0, nullptr); }},
            {"tk_merge_match", [&] { return tk_merge_match(&fixed, &m, &md, &mb, nullptr, 0, nullptr); }},
            {"tk_merge fixed", [&] { return tk_merge(&fixed, &m, &xs, &sz, &mo, &ms, &sm, &mc, nullptr, 0, nullptr); }},
            {"tk_unmerge", [&] { return tk_unmerge(&mo, &sm, &um, nullptr); }},
            {"tk_merge threshold",
             [&] { return tk_merge(&threshold, &m, &xs, &sz, &to, &ts, &tm, &tc, nullptr, 0, nullptr); }},
            {"tk_attention_importance", [&] { return tk_attention_importance(&from_attn, &at, &ai, nullptr); }},
            {"tk_qk_importance", [&] { return tk_qk_importance(&from_qk, &qs, &ks, nullptr, &qi, nullptr, 0, nullptr); }},
            {"tk_topk", [&] { return tk_topk(&topk, &sc, nullptr, nullptr, &kp, &rk, nullptr, 0, nullptr); }},
            {"tk_gather", [&] { return tk_gather(&fe, &kp, &ga, nullptr); }},
            {"tk_visionzip_contextual",
             [&] { return tk_visionzip_contextual(30, &fm, &fe, &kp, &cx, nullptr, 0, nullptr); }},
            {"tk_diversity_select max-min",
             [&] {
                 return tk_diversity_select(&max_min, &tk, nullptr, nullptr, nullptr, nullptr, &mmo, &mms, nullptr, 0, nullptr);
             }},
            {"tk_diversity_select max-sum",
             [&] {
                 return tk_diversity_select(&max_sum, &tk, nullptr, nullptr, nullptr, nullptr, &mso, nullptr, nullptr, 0, nullptr);
             }},
            {"tk_temporal_similarity", [&] { return tk_temporal_similarity(&video, nullptr, &si, nullptr); }},
            {"tk_evs", [&] { return tk_evs(&evs, &video, &et, nullptr, &ep, nullptr, nullptr, 0, nullptr); }},
            {"tk_dycoke_ttm", [&] { return tk_dycoke_ttm(&dycoke, &video, &dt, nullptr, nullptr, nullptr, nullptr, 0, nullptr); }},
            {"tk_vidcom2", [&] { return tk_vidcom2(&vidcom2, &video, &vt, nullptr, nullptr, &vm, nullptr, 0, nullptr); }},
            {"tk_framefusion_merge",
             [&] { return tk_framefusion_merge(&framefusion, &video, &fu, nullptr, &fmap, &fc, nullptr, 0, nullptr); }},
        };
        for (const auto& [name, call] : calls) {
            before_each_call();
            if (call() != TK_STATUS_OK) {
                ADD_FAILURE() << name << ": " << tk_last_error();
                return false;
            }
        }
        return true;
    }

    // The first output whose bytes differ from other's, or "" when all are identical.
    std::string first_difference(const Workload& other) const {
        const auto mine = outputs(), theirs = other.outputs();
        for (size_t i = 0; i < mine.size(); ++i)
            if (*mine[i].second != *theirs[i].second) return mine[i].first;
        return "";
    }

private:
    std::vector<std::pair<const char*, const std::vector<uint8_t>*>> outputs() const {
        return {{"window pooled", &window_pooled.bytes()},
                {"adaptive pooled", &adaptive_pooled.bytes()},
                {"bilinear pooled", &bilinear_pooled.bytes()},
                {"match dst", &match_dst.bytes()},
                {"match best", &match_best.bytes()},
                {"merged", &merged.bytes()},
                {"merged size", &merged_size.bytes()},
                {"source map", &source_map.bytes()},
                {"merge count", &merge_count.bytes()},
                {"unmerged", &unmerged.bytes()},
                {"thresholded", &thresholded.bytes()},
                {"thresholded size", &thresholded_size.bytes()},
                {"thresholded map", &thresholded_map.bytes()},
                {"thresholded count", &thresholded_count.bytes()},
                {"attention importance", &attn_importance.bytes()},
                {"qk importance", &qk_importance.bytes()},
                {"top-k indices", &kept.bytes()},
                {"top-k ranked", &ranked.bytes()},
                {"gathered", &gathered.bytes()},
                {"contextual", &contextual.bytes()},
                {"max-min order", &max_min_order.bytes()},
                {"max-min sorted", &max_min_sorted.bytes()},
                {"max-sum order", &max_sum_order.bytes()},
                {"temporal similarity", &similarity.bytes()},
                {"EVS tokens", &evs_tokens.bytes()},
                {"EVS positions", &evs_positions.bytes()},
                {"DyCoke tokens", &dycoke_tokens.bytes()},
                {"VidCom2 tokens", &vidcom2_tokens.bytes()},
                {"VidCom2 mask", &vidcom2_mask.bytes()},
                {"FrameFusion tokens", &fused.bytes()},
                {"FrameFusion map", &fused_map.bytes()},
                {"FrameFusion count", &fused_count.bytes()}};
    }
};

// What one thread alone computes, for comparison.
Workload computed_on_one_thread(uint64_t seed) {
    const tkt::ScopedNumThreads one(1);
    Workload w(seed);
    EXPECT_TRUE(w.run());
    return w;
}

// 8 host threads, each on its own seed and buffers, run the workload at once, round after round, and
// each result must be one thread's bit for bit. With change_count every host thread sets the
// process-wide thread count before each of its calls, cycling through 1, 2, 3, 4 and 0 (the default)
// out of step with the others, so counts change while other threads' calls run.
void expect_host_threads_compute_what_one_thread_does(bool change_count) {
    constexpr int kHostThreads = 8;
    constexpr int kRounds = 3;
    constexpr int32_t kCounts[] = {1, 2, 3, 4, 0};
    std::vector<Workload> expected;
    for (int i = 0; i < kHostThreads; ++i) expected.push_back(computed_on_one_thread(1000 + i));

    const tkt::ScopedNumThreads pool_threads(4);  // also restores the count the hosts leave behind
    std::vector<std::thread> hosts;
    for (int i = 0; i < kHostThreads; ++i) {
        hosts.emplace_back([&, i] {
            size_t calls = 0;
            const auto set_count = [&] {
                const int32_t count = kCounts[(static_cast<size_t>(i) + calls++) % std::size(kCounts)];
                if (tk_set_num_threads(count) != TK_STATUS_OK)
                    ADD_FAILURE() << "tk_set_num_threads(" << count << "): " << tk_last_error();
            };
            for (int round = 0; round < kRounds; ++round) {
                Workload w(1000 + i);
                if (!(change_count ? w.run(set_count) : w.run())) return;
                const std::string differs = w.first_difference(expected[static_cast<size_t>(i)]);
                if (!differs.empty())
                    ADD_FAILURE() << "host thread " << i << ", round " << round << ": " << differs
                                  << " differs from one thread's result";
            }
        });
    }
    for (std::thread& host : hosts) host.join();
}

TEST(CpuThreads, ManyHostThreadsAtOnceComputeWhatOneThreadDoes) { expect_host_threads_compute_what_one_thread_does(false); }

TEST(CpuThreads, ManyHostThreadsChangingTheCountComputeWhatOneThreadDoes) {
    expect_host_threads_compute_what_one_thread_does(true);
}

TEST(CpuThreads, CountAtTheLimitComputesTheSame) {
    const Workload expected = computed_on_one_thread(7);
    const tkt::ScopedNumThreads most(1024);  // the most a count may be, far beyond the machine's
    ASSERT_EQ(tk_get_num_threads(), 1024);
    Workload w(7);
    const tk_tensor x = w.frames.desc();
    const tk_tensor out = w.window_pooled.desc();
    ASSERT_EQ(tk_pool(&kWindowPool, &x, &out, nullptr, 0, nullptr), TK_STATUS_OK) << tk_last_error();
    EXPECT_EQ(w.window_pooled.bytes(), expected.window_pooled.bytes());
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
        const bool ok = w.run() && w.first_difference(expected).empty();
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status)) << "the child was killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    EXPECT_EQ(WEXITSTATUS(status), 0) << "the child's results differ from one thread's";
}

#if defined(__linux__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
// The process's mapped bytes (VmSize), or 0 when /proc does not say.
uint64_t mapped_bytes() {
    std::ifstream status("/proc/self/status");
    std::string key;
    while (status >> key) {
        uint64_t kib = 0;
        if (key == "VmSize:" && status >> kib) return kib * 1024;
    }
    return 0;
}

// 1024 threads asked for where the system grants a few: a child process whose address space leaves
// room for about eight 8 MiB thread stacks runs DivPrune's selection on [1, 576, 1024] with k = 56 on
// the threads it gets, and selects what one thread does. (Sanitizers and emulators map memory their
// own way: x86-64 Linux without them only.)
TEST(CpuThreads, ThreadsTheSystemRefusesLeaveTheCallOnThoseItGrants) {
    HostArray x(TK_DTYPE_F32, {1, 576, 1024});
    tkt::fill_values(x);
    const tk_tensor xd = x.desc();
    const tk_diversity_params params{56, TK_DISTANCE_COSINE, TK_FIRST_MOST_ISOLATED, TK_DIVERSITY_MAX_MIN};
    const auto select = [&](HostArray& order) {
        const tk_tensor od = order.desc();
        return tk_diversity_select(&params, &xd, nullptr, nullptr, nullptr, nullptr, &od, nullptr, nullptr, 0, nullptr);
    };
    HostArray expected(TK_DTYPE_I32, {1, 56});
    {
        const tkt::ScopedNumThreads one(1);
        ASSERT_EQ(select(expected), TK_STATUS_OK) << tk_last_error();
    }
    const pid_t child = fork();
    ASSERT_NE(child, -1);
    if (child == 0) {
        alarm(60);
        const uint64_t mapped = mapped_bytes();
        const rlimit limit{mapped + (uint64_t{96} << 20), RLIM_INFINITY};
        if (mapped == 0 || setrlimit(RLIMIT_AS, &limit) != 0) _exit(2);
        if (tk_set_num_threads(1024) != TK_STATUS_OK) _exit(3);
        HostArray order(TK_DTYPE_I32, {1, 56});
        if (select(order) != TK_STATUS_OK) _exit(4);
        _exit(order.bytes() == expected.bytes() ? 0 : 5);
    }
    int status = 0;
    ASSERT_EQ(waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status)) << "the child was killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    EXPECT_EQ(WEXITSTATUS(status), 0) << "2: no address-space limit set; 3: 1024 threads refused; 4: the call failed; "
                                         "5: its selection differs from one thread's";
}
#endif
#endif

}  // namespace
