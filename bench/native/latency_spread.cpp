// Latency spread of one small CPU op as an embedding host calls it: a ToMe merge (ViT-L/14 at 224,
// 577 tokens x 1024 channels, 64-channel keys, r = 16, f32) on 2 threads, called once per "frame"
// with an idle gap between calls, while a second process keeps one core busy. Prints percentiles of
// the per-call wall time, and the CPU time the process used per call (the library's threads,
// working or waiting, and the caller's, which sleeps in the gaps). Only the C ABI is used, so the
// same binary times any build of the library (LD_LIBRARY_PATH picks it).
//
//   tokenkernels_latency_spread [--calls N] [--gap-us G] [--threads T] [--busy-cores K]
#include <tokenkernels/tokenkernels.h>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

namespace {

tk_tensor tensor3(void* data, tk_dtype dtype, int64_t b, int64_t n, int64_t c) {
    tk_tensor t{};
    t.data = data;
    t.dtype = dtype;
    t.device_kind = TK_DEVICE_CPU;
    t.rank = 3;
    t.shape[0] = b;
    t.shape[1] = n;
    t.shape[2] = c;
    t.strides[0] = n * c;
    t.strides[1] = c;
    t.strides[2] = 1;
    return t;
}

// Starts a process that spins on one core until killed: the "other work" of a busy host.
pid_t start_busy_process() {
    const pid_t pid = fork();
    if (pid == 0) {
        volatile uint64_t x = 0;
        for (;;) x = x + 1;
    }
    return pid;
}

// User and system CPU time of this process (not of the busy process), in milliseconds.
double process_cpu_ms() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const auto ms = [](const timeval& t) { return 1e3 * static_cast<double>(t.tv_sec) + 1e-3 * static_cast<double>(t.tv_usec); };
    return ms(usage.ru_utime) + ms(usage.ru_stime);
}

double percentile(std::vector<double> sorted, double p) {
    const size_t i = std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5));
    return sorted[i];
}

}  // namespace

int main(int argc, char** argv) {
    int calls = 2000;
    int gap_us = 1000;
    int threads = 2;
    int busy_cores = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        const int value = std::atoi(argv[i + 1]);
        if (flag == "--calls") calls = value;
        else if (flag == "--gap-us") gap_us = value;
        else if (flag == "--threads") threads = value;
        else if (flag == "--busy-cores") busy_cores = value;
        else {
            std::fprintf(stderr, "unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if (calls < 1) {
        std::fprintf(stderr, "--calls must be positive\n");
        return 2;
    }

    std::vector<pid_t> busy;  // forked before the library starts any thread
    for (int i = 0; i < busy_cores; ++i) busy.push_back(start_busy_process());

    constexpr int64_t kTokens = 577, kChannels = 1024, kMetricChannels = 64, kR = 16;
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    std::vector<float> metric(kTokens * kMetricChannels), x(kTokens * kChannels), out((kTokens - kR) * kChannels);
    for (float& v : metric) v = normal(rng);
    for (float& v : x) v = normal(rng);
    const tk_tensor metric_t = tensor3(metric.data(), TK_DTYPE_F32, 1, kTokens, kMetricChannels);
    const tk_tensor x_t = tensor3(x.data(), TK_DTYPE_F32, 1, kTokens, kChannels);
    const tk_tensor out_t = tensor3(out.data(), TK_DTYPE_F32, 1, kTokens - kR, kChannels);
    tk_merge_params params{};
    params.r = kR;
    params.protect_first = 1;

    int status = tk_set_num_threads(threads);
    std::vector<double> ms;
    double cpu_start = 0.0;
    for (int i = 0; i < calls + 20 && status == TK_STATUS_OK; ++i) {
        if (i == 20) cpu_start = process_cpu_ms();
        const auto start = std::chrono::steady_clock::now();
        status = tk_merge(&params, &metric_t, &x_t, nullptr, &out_t, nullptr, nullptr, nullptr, nullptr, 0, nullptr);
        const auto end = std::chrono::steady_clock::now();
        if (i >= 20) ms.push_back(std::chrono::duration<double, std::milli>(end - start).count());  // 20 warm-up calls
        std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
    }
    const double cpu_per_call = (process_cpu_ms() - cpu_start) / calls;
    for (pid_t pid : busy) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
    }
    if (status != TK_STATUS_OK) {
        std::fprintf(stderr, "tk_merge failed: %s\n", tk_last_error());
        return 1;
    }
    std::sort(ms.begin(), ms.end());
    std::printf("merge 1x577x1024 f32 r=16, %d threads, %d busy cores, %d calls, %d us gap: "
                "min %.3f p50 %.3f p90 %.3f p99 %.3f max %.3f ms; CPU %.3f ms per call\n",
                threads, busy_cores, calls, gap_us, ms.front(), percentile(ms, 0.5), percentile(ms, 0.9),
                percentile(ms, 0.99), ms.back(), cpu_per_call);
    return 0;
}
